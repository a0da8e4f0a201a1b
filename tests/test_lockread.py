"""How the quick load path reads a lock: it must agree with the full path wherever it answers.

`lockfile_reader.read` reads what `Lock.to_toml` writes: wherever it returns a value, `tomllib.loads` returns
the same value; everywhere else it returns None and `parse_lock` asks tomllib. Both feed the one validator,
`Lock.from_dict`. Checked on every shape of entry the writer makes, on hand-made edge cases, and on random
(seeded) mutations of a rich lock.
"""

from __future__ import annotations

import random
import sys

import pytest

from kernel_lock.core.lockfile import InvalidLockData, Lock, LockedKernel, Provenance, RequiredBy
from kernel_lock.core.lockfile_reader import read
from kernel_lock.core.signers import Signer

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

H = "sha256-" + "ab" * 32
COMMIT = "0123456789abcdef0123456789abcdef01234567"
SIGNER = Signer(
    issuer="https://token.actions.githubusercontent.com",
    workflow="https://github.com/org/k/.github/workflows/build.yaml@refs/heads/main",
    repository="https://github.com/org/k",
)


def entry(repo: str = "org/k", **fields: object) -> LockedKernel:
    base: dict[str, object] = {"repo_id": repo, "version": 1, "ref": "v1", "commit": COMMIT}
    base["variants"] = {"torch-cpu": H, "torch213-cxx11-cu130-x86_64-linux": H}
    return LockedKernel(**(base | fields))


RICH = Lock(
    kernel=[
        entry(
            trust="trusted-publisher",
            provenance=[
                Provenance(builder="0.12.1", source_commit=COMMIT, dirty=False, variants=["torch-cpu"]),
                Provenance(builder="0.12.0", dirty=True, variants=["torch213-cxx11-cu130-x86_64-linux"]),
            ],
            signed_by={"torch-cpu": SIGNER, "torch213-cxx11-cu130-x86_64-linux": SIGNER},
        ),
        entry(
            "org/dep",
            direct=False,
            hash_type="git_lfs_concat",
            required_by=[RequiredBy(kernel="org/k@v1", variants=["torch-cpu"])],
        ),
        entry("org/pinned", version=None, revision="feature/ünïcode", ref=COMMIT, trust="trust-remote-code"),
        entry("new-org/k", redirected_from="old-org/k", version=0),
    ]
)
# Shapes the reader leaves to tomllib: the writer escapes these.
QUOTED = [
    Lock(kernel=[entry(version=None, revision='a"quote', ref=COMMIT)]),
    Lock(kernel=[entry(version=None, revision="back\\slash", ref=COMMIT)]),
]


def agrees(text: str) -> bool:
    """Whether `read` returns None or exactly what tomllib does; True when it read the text itself."""
    got = read(text)
    if got is None:
        return False
    assert got == tomllib.loads(text), text
    return True


@pytest.mark.parametrize("lock", [RICH, *(Lock(kernel=[k]) for k in RICH.kernel), Lock()])
def test_every_shape_the_writer_makes_is_read_without_tomllib(lock) -> None:
    assert agrees(lock.to_toml())


@pytest.mark.parametrize("lock", QUOTED)
def test_escapes_are_left_to_tomllib(lock) -> None:
    assert read(lock.to_toml()) is None


NEW_GRAMMAR = "torch-2.10-cxx11-cuda-12.8-cpython-3.9-abi3-x86_64-linux"


def test_quoted_keys_the_writer_makes_for_new_grammar_variants_are_read_without_tomllib() -> None:
    """A `kernels` 0.19 variant name holds dots, so the writer quotes it; the quick path must still read it."""
    lock = Lock(kernel=[entry(variants={NEW_GRAMMAR: H, "torch.dotted": H})])
    text = lock.to_toml()
    assert f'"{NEW_GRAMMAR}" = ' in text
    assert agrees(text)
    for header in ('[kernel."a.b"]', '[kernel."a".b]', '[kernel.""]'):
        assert agrees(f"[[kernel]]\n{header}\ny = 1\n"), header
    for unread in ('[kernel."a"b]', '[kernel."a]', '"a\\"b" = 1', '"a"b" = 1'):
        assert read(f"[[kernel]]\n{unread}\n") is None, unread


EDGES = {
    "defined super-table after a sub-table": "[[kernel]]\n[kernel.a.b]\nx = 1\n[kernel.a]\ny = 2\n",
    "table named twice": "[[kernel]]\n[kernel.a]\n[kernel.a]\n",
    "sub-table named after its super-table": "[[kernel]]\n[kernel.a]\nx = 1\n[kernel.a.b]\n",
    "key then table of the same name": "[[kernel]]\na = 1\n[kernel.a]\n",
    "static array then array of tables": "[[kernel]]\na = [\n]\n[[kernel.a]]\n",
    "array of tables then table": "[[kernel]]\n[[kernel.a]]\n[kernel.a]\n",
    "table then array of tables": "[[kernel]]\n[kernel.a]\n[[kernel.a]]\n",
    "static kernel array then header": "kernel = [\n]\n[[kernel]]\n",
    "duplicate key": "version = 1\nversion = 1\n",
    "table before any kernel": "[kernel.a]\n",
    "top-level table": "[[kernel]]\n[other]\n",
    "leading zero": "a = 01\n",
    "zero": "a = 0\n",
    "negative": "a = -1\n",
    "underscore": "a = 1_000\n",
    "trailing comment": 'a = "x" # note\n',
    "trailing space": 'a = "x" \n',
    "empty string": 'a = ""\n',
    "tab in string": 'a = "x\ty"\n',
    "tab in comment": "# a\tcomment\n",
    "control character": 'a = "x\x01"\n',
    "delete character": "# \x7f\n",
    "CRLF": 'a = "x"\r\n',
    "multi-line string": 'a = """x"""\n',
    "literal string": "a = 'x'\n",
    "unterminated array": 'a = [\n    "x",\n',
    "array of ints": "a = [\n    1,\n]\n",
    "array item without comma": 'a = [\n    "x"\n]\n',
    "empty inline array": "a = []\n",
    "byte order mark": '\ufeffa = "x"\n',
    "no final newline": 'a = "x"',
    "blank lines and comments": '\n# c\n\na = "x"\n\n',
    "non-ASCII": 'a = "ünï"\n',
    "line separator in string": 'a = "x\u2028y"\n',
}


@pytest.mark.parametrize("text", EDGES.values(), ids=EDGES.keys())
def test_edge_cases_agree_with_tomllib(text) -> None:
    try:
        expected = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        assert read(text) is None
    else:
        got = read(text)
        assert got is None or got == expected


def test_mutations_of_a_rich_lock_agree_with_tomllib() -> None:
    """Single-character and single-line edits: wherever the reader reads the result, tomllib reads it alike."""
    text = RICH.to_toml()
    lines = text.split("\n")
    alphabet = [
        '"',
        "[",
        "]",
        "=",
        ".",
        "#",
        "\\",
        " ",
        "\n",
        ",",
        "'",
        "{",
        "}",
        "\t",
        "\r",
        "0",
        "t",
        "-",
        "é",
    ]
    rng = random.Random(20261125)
    read_here = 0
    for _ in range(3000):
        how = rng.randrange(5)
        if how == 0:
            i = rng.randrange(len(text))
            mutated = text[:i] + text[i + 1 :]
        elif how == 1:
            i = rng.randrange(len(text) + 1)
            mutated = text[:i] + rng.choice(alphabet) + text[i:]
        elif how == 2:
            i = rng.randrange(len(lines))
            mutated = "\n".join([*lines[:i], lines[i], *lines[i:]])
        elif how == 3:
            i, j = rng.randrange(len(lines)), rng.randrange(len(lines))
            swapped = list(lines)
            swapped[i], swapped[j] = swapped[j], swapped[i]
            mutated = "\n".join(swapped)
        else:
            i = rng.randrange(len(lines))
            mutated = "\n".join(lines[:i] + lines[i + 1 :])
        got = read(mutated)
        if got is None:
            continue
        read_here += 1
        assert got == tomllib.loads(mutated), mutated
    assert read_here > 300  # the check above ran on many texts the reader read itself


def test_an_integer_too_long_for_int_is_left_to_tomllib() -> None:
    assert read("a = " + "9" * 5000 + "\n") is None


VALUES = ['"bogus"', '""', "1", "0", "-1", "1.0", "true", "[]", "{}", '"org/k"', '"sha256-00"', '"org/k@v1"']


def test_both_readers_feed_the_validator_the_same_lock(tmp_path) -> None:
    """Every value of a rich lock replaced in turn, its lines dropped or repeated: where the fast reader reads
    the text, the one validator gives the same lock, or the same error, as it does on tomllib's reading."""
    lines = RICH.to_toml().split("\n")
    texts = []
    for i, line in enumerate(lines):
        key, eq, _ = line.partition(" = ")
        if eq:
            texts += ["\n".join([*lines[:i], f"{key} = {v}", *lines[i + 1 :]]) for v in VALUES]
        texts.append("\n".join(lines[:i] + lines[i + 1 :]))
        texts.append("\n".join([*lines[: i + 1], *lines[i:]]))
    start = lines.index("[[kernel]]")
    texts.append("\n".join([*lines, *lines[start:]]))  # every entry locked twice
    read_here = accepted = 0
    for text in texts:
        data = read(text)
        if data is None:
            continue
        read_here += 1
        outcomes = []
        for parsed in (data, tomllib.loads(text)):
            try:
                outcomes.append(Lock.from_dict(parsed))
            except InvalidLockData as exc:
                outcomes.append(str(exc))
        assert outcomes[0] == outcomes[1], text
        accepted += isinstance(outcomes[0], Lock)
    assert read_here > 300 and accepted > 50
