"""The one lock model: plain dataclasses with one validator, no pydantic on the load path, and a JSON Schema
that accepts exactly what the model accepts.

The schema (`schemas/kernels-lock.schema.json`) is generated from the dataclasses' field metadata by pydantic
at the edge; the model checks every field itself (`Lock.from_dict`). They are two statements of one rule, so
a corpus of valid locks and systematic mutations of them (each key dropped, an unknown key added, each value
of the wrong type, bad repo ids, commits, hashes and variant names) must get the same answer from both,
except for the rules a JSON Schema cannot state, listed in `SCHEMA_CANNOT_SAY`.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import kernel_lock
from kernel_lock.core import tomlread
from kernel_lock.core.lockfile import InvalidLockData, Lock, LockedKernel, Provenance, RequiredBy
from kernel_lock.core.signers import DEFAULT_SIGNERS

ROOT = Path(__file__).resolve().parent.parent
CORE = Path(kernel_lock.__file__).parent / "core"
CPU = "torch213-cxx11-cpu-x86_64-linux"
H = "sha256-" + "cd" * 32
COMMIT = "89abcdef0123456789abcdef0123456789abcdef"
SIGNER = DEFAULT_SIGNERS[0]


# --- no pydantic where the lock is read and kernels are loaded ---------------------------------------------


def _imported(code: str, **env: str) -> tuple[list[str], str]:
    """Run `code` in a fresh interpreter: its output lines, and which of pydantic and huggingface_hub it left
    imported (as the last line)."""
    report = "\nimport sys\nprint(sorted({m.split('.')[0] for m in sys.modules} & {'pydantic', 'huggingface_hub'}))"
    proc = subprocess.run(
        [sys.executable, "-c", code + report],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, **env},
    )
    assert proc.returncode == 0, proc.stderr
    *out, heavy = proc.stdout.strip().splitlines()
    return out, heavy


@pytest.mark.parametrize("module", sorted(p.stem for p in CORE.glob("*.py") if p.stem != "__init__"))
def test_core_imports_neither_pydantic_nor_huggingface_hub(module: str) -> None:
    assert _imported(f"import kernel_lock.core.{module}")[1] == "[]"


def test_reading_and_writing_a_lock_imports_no_pydantic(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        from pathlib import Path
        from kernel_lock.core.lockfile import parse_lock, write_lock
        lock = parse_lock(Path({str(ROOT / "kernels.lock.example")!r}).read_text(), where="example")
        write_lock(Path({str(tmp_path / "kernels.lock")!r}), lock)
        print(len(lock.kernel))
        """
    )
    assert _imported(code) == (["3"], "[]")


LOAD = textwrap.dedent(
    """
    from kernel_lock import get_kernel
    print(get_kernel("kernels-community/relu").VARIANT)
    """
)


@pytest.mark.torch
@pytest.mark.parametrize("mode", ["fast", "full"])
def test_a_verified_load_imports_no_pydantic(hub_env, make_project, cli, tmp_path, mode) -> None:
    """Full mode reads the lock and the sync record with the same model as fast mode: neither imports pydantic."""
    pytest.importorskip("torch")
    root = make_project('"kernels-community/relu" = 1')
    assert cli("lock", "--project", str(root)).exit_code == 0
    assert cli("sync", "--project", str(root), "--variant", CPU).exit_code == 0
    env = {"KERNEL_LOCK_FILE": str(root / "kernels.lock"), "KERNEL_LOCK_TARGET": CPU, "HF_HUB_OFFLINE": "1"}
    assert _imported(LOAD, KERNEL_LOCK_VERIFY=mode, **env) == ([CPU], "[]")


# --- the model and the schema accept the same locks ---------------------------------------------------------


def _rich() -> Lock:
    """A lock with every field the model has, each kind of entry (version, revision, redirect, transitive), in
    the order the writer writes them."""
    return Lock(
        kernel=[
            LockedKernel(
                repo_id="org/k",
                version=1,
                ref="v1",
                commit=COMMIT,
                trust="trusted-publisher",
                variants={
                    "torch-cpu": H,
                    CPU: H,
                    "torch-2.10-cxx11-cuda-12.8-cpython-3.9-abi3-x86_64-linux": H,
                },
                provenance=[
                    Provenance(
                        builder="0.12.1",
                        builder_commit=COMMIT,
                        source_commit=COMMIT,
                        dirty=False,
                        variants=[CPU],
                    ),
                    Provenance(builder="0.12.0", dirty=True, variants=["torch-cpu"]),
                ],
                signed_by={"torch-cpu": SIGNER, CPU: SIGNER},
            ),
            LockedKernel(
                repo_id="org/dep",
                version=0,
                ref="v0",
                commit=COMMIT,
                hash_type="git_lfs_concat",
                direct=False,
                variants={"torch-cpu": H},
                required_by=[RequiredBy(kernel="org/k@v1", variants=["torch-cpu"])],
            ),
            LockedKernel(
                repo_id="org/pinned",
                revision="feature/x",
                ref=COMMIT,
                commit=COMMIT,
                trust="trust-remote-code",
                variants={"torch-cpu": H},
            ),
            LockedKernel(
                repo_id="zz-new/k",
                redirected_from="zz-old/k",
                version=2,
                ref="v2",
                commit=COMMIT,
                variants={},
            ),
        ]
    )


def corpus() -> dict[str, dict[str, Any]]:
    """Valid locks as TOML reads them: the example in the repository, and the rich lock above."""
    return {
        "kernels.lock.example": tomlread.loads((ROOT / "kernels.lock.example").read_text(encoding="utf-8")),
        "rich": tomlread.loads(_rich().to_toml()),
    }


WRONG_TYPES: list[Any] = [5, -1, 1.0, 1.5, True, "", "x", [], ["x"], [5], {}, {"x": "y"}]
BAD_STRINGS = {
    "repo-id": [
        "org",
        "org/k/x",
        "-org/k",
        "org/k-",
        "org--x/k",
        "org/k..x",
        "é/k",
        "a" * 97 + "/k",
        "org/k\n",
    ],
    "commit": ["0" * 39, "0" * 41, "A" * 40, "g" * 40, "0" * 40 + "\n"],
    "hash": ["sha256-" + "0" * 63, "sha256-" + "A" * 64, "sha512-" + "0" * 64, "0" * 64, H + "\n"],
    "hash-type": ["sha512", "SHA256", "git"],
    "trust": ["trusted", "TRUSTED-PUBLISHER"],
}
BAD_VARIANT_NAMES = ["", "-x", ".x", "a..b", "a/b", "a b", "x" * 129, "é", "torch\n"]


def _paths(data: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every value below `data` (tables and arrays included)."""
    items = data.items() if isinstance(data, dict) else enumerate(data) if isinstance(data, list) else []
    for key, value in items:
        yield (*path, key)
        yield from _paths(value, (*path, key))


def _at(data: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        data = data[key]
    return data


def _with(data: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A copy of `data` with the value at `path` replaced (or removed, for `...`)."""
    out = copy.deepcopy(data)
    parent = _at(out, path[:-1])
    if value is ...:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return out


def _renamed(data: dict[str, Any], path: tuple[Any, ...], old: str, new: str) -> dict[str, Any]:
    """A copy of `data` with the key `old` of the table at `path` renamed to `new`."""
    out = copy.deepcopy(data)
    table = _at(out, path)
    table[new] = table.pop(old)
    return out


def _field(path: tuple[Any, ...]) -> str | None:
    """The kind of string at `path`, for `BAD_STRINGS`."""
    names = [p for p in path if isinstance(p, str)]
    if names[-1:] in (["repo-id"], ["redirected-from"]):
        return "repo-id"
    if len(names) >= 2 and names[-2] == "variants" and len(path) == 4:
        return "hash"
    return names[-1] if names and names[-1] in BAD_STRINGS else None


def mutations(data: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Locks an editor (or attacker) could write, each one change away from `data`."""
    for path in _paths(data):
        where = ".".join(map(str, path))
        yield f"{where} dropped", _with(data, path, ...)
        for value in WRONG_TYPES:
            yield f"{where} = {value!r}", _with(data, path, value)
        for value in BAD_STRINGS.get(_field(path) or "", []):
            yield f"{where} = {value!r}", _with(data, path, value)
        if isinstance(_at(data, path), dict):
            yield f"{where}.surprise added", _with(data, (*path, "surprise"), 1)
            if path[-1] == "variants" and _at(data, path):
                first = next(iter(_at(data, path)))
                for name in BAD_VARIANT_NAMES:
                    yield f"{where} variant {name!r}", _renamed(data, path, first, name)
    yield "surprise added", {**data, "surprise": 1}
    yield "version = 2", {**data, "version": 2}
    for i, entry in enumerate(data["kernel"]):
        both = {**entry, "version": 1, "revision": "main"}
        yield f"kernel.{i} with version and revision", _with(data, ("kernel", i), both)
        neither = {k: v for k, v in entry.items() if k not in ("version", "revision")}
        yield f"kernel.{i} with neither version nor revision", _with(data, ("kernel", i), neither)
        if entry.get("signed-by"):
            signed = next(iter(entry["signed-by"]))
            yield (
                f"signed-by-unlocked: kernel.{i}.signed-by names a variant that is not locked",
                _renamed(data, ("kernel", i, "signed-by"), signed, "torch-not-locked"),
            )
        yield f"locked-twice: kernel.{i} twice", {**data, "kernel": [*data["kernel"], entry]}


# What the model refuses and a JSON Schema cannot say (the schema accepts these), by the start of the mutation's
# description or the value it holds.
SCHEMA_CANNOT_SAY = {
    "signed-by-unlocked": "signed-by may name only locked variants: keys of one table checked against another's",
    "locked-twice": "no two entries with one key (repo@requirement), no repo directly twice: across array items",
    "trailing newline": "a pattern's `$` matches before a final newline in Python's `re.search`, which jsonschema "
    "uses; the model's checks take the whole string",
    "whole float": "JSON Schema counts 1.0 an integer; TOML keeps it a float, which the writer never writes and "
    "the model refuses",
}


def _known(name: str, data: dict[str, Any]) -> str | None:
    """Which of `SCHEMA_CANNOT_SAY` a disagreement is, None where it is none of them."""
    entries = [k for k in data["kernel"] if isinstance(k, dict)]
    if any(set(k.get("signed-by", {})) - set(k.get("variants", {})) for k in entries):
        return "signed-by-unlocked"
    try:
        kernels = [LockedKernel.from_dict(k) for k in data["kernel"]]
    except InvalidLockData:
        kernels = []
    keys, direct = [k.key for k in kernels], [k.requested_repo for k in kernels if k.direct]
    if len(set(keys)) < len(keys) or len(set(direct)) < len(direct):
        return "locked-twice"
    if name.endswith("\\n'"):
        return "trailing newline"
    if any(type(v) is float and v.is_integer() for v in (_at(data, p) for p in _paths(data))):
        return "whole float"
    return None


def _model_accepts(data: dict[str, Any]) -> bool:
    try:
        Lock.from_dict(data)
    except InvalidLockData:
        return False
    return True


def test_the_model_accepts_exactly_what_the_schema_describes() -> None:
    schema = json.loads((ROOT / "schemas" / "kernels-lock.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    seen: dict[str, int] = dict.fromkeys(SCHEMA_CANNOT_SAY, 0)
    checked = refused = 0
    disagreements = []
    for lock_name, valid in corpus().items():
        assert validator.is_valid(valid) and _model_accepts(valid), lock_name
        for name, data in mutations(valid):
            checked += 1
            by_schema, by_model = validator.is_valid(data), _model_accepts(data)
            refused += not by_model
            if by_schema == by_model:
                continue
            known = _known(name, data)
            if known is not None and by_schema and not by_model:
                seen[known] += 1
            else:
                disagreements.append(f"{lock_name}: {name}: schema {by_schema}, model {by_model}")
    assert disagreements == [], "\n".join(disagreements)
    assert checked > 2000 and refused > 1500, (checked, refused)
    assert all(seen.values()), f"a case listed as one the schema cannot say never came up: {seen}"


def test_whole_floats_are_the_one_type_difference() -> None:
    """`_known`'s "whole float": the schema's integer takes 1.0 (and its const 1 does), the model does not."""
    data = corpus()["rich"]
    schema = json.loads((ROOT / "schemas" / "kernels-lock.schema.json").read_text(encoding="utf-8"))
    floated = _with(data, ("kernel", 0, "version"), 1.0)
    assert jsonschema.Draft202012Validator(schema).is_valid(floated)
    with pytest.raises(InvalidLockData, match=r"kernel\.0\.version: must be a whole number >= 0"):
        Lock.from_dict(floated)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("kernel", 0, "commit"), "0" * 39, "kernel.0.commit: not a commit"),
        (
            ("kernel", 0, "variants", "torch-cpu"),
            "sha256-00",
            "kernel.0.variants.torch-cpu: not a variant hash",
        ),
        (
            ("kernel", 3, "required-by", 0, "variants", 0),
            5,
            "kernel.3.required-by.0.variants.0: must be a string",
        ),
        (
            ("kernel", 0, "signed-by", "torch-cpu", "issuer"),
            "",
            "kernel.0.signed-by.torch-cpu.issuer: must not be empty",
        ),
        (("kernel", 0, "provenance", 0, "dirty"), "no", "kernel.0.provenance.0.dirty: must be true or false"),
        (("kernel", 2, "surprise"), 1, "kernel.2.surprise: unknown key"),
    ],
)
def test_a_refusal_names_the_key_path(path: tuple[Any, ...], value: Any, message: str) -> None:
    with pytest.raises(InvalidLockData) as caught:
        Lock.from_dict(_with(corpus()["rich"], path, value))
    assert str(caught.value).startswith(message)


def test_the_writer_and_the_model_round_trip() -> None:
    text = _rich().to_toml()
    parsed = Lock.from_dict(tomlread.loads(text))
    assert parsed.to_toml() == text and Lock.from_dict(parsed.to_dict()) == parsed
