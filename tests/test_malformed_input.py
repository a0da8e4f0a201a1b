"""Malformed input, property-based: every failure is one of our own errors, with a message, never another exception.

Covers `[tool.kernels]` tables (`parse_kernels_table`, `load_project` on generated files), `kernels.lock` text
(`parse_lock` on generated TOML and on mutated valid locks), variant names (`parse_variant`, `rank_variants`,
`select_variant`), targets (`parse_target`), repo ids, and the CLI (`lock --check`, `verify`, `sync --frozen`) on
generated bad inputs: exit 2, one `error:` paragraph, no traceback.

Hypothesis runs derandomized with bounded examples, so the file is deterministic and quick. Set
`KERNEL_LOCK_COUNTS=/path/file.jsonl` to collect the number of inputs generated (for the README).
"""

from __future__ import annotations

import copy
import json
import string
import tempfile
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomli_w
from click.testing import CliRunner
from huggingface_hub.utils import validate_repo_id
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from kernel_lock.core.lockfile import Lock, LockedKernel, parse_lock
from kernel_lock.core.requirement import is_repo_id
from kernel_lock.core.target import Target, parse_target
from kernel_lock.core.variants import NOT_A_VARIANT, parse_variant, rank_variants, select_variant
from kernel_lock.errors import KernelLockError, LockfileError, VariantError
from kernel_lock.project.config import ConfigError, load_project, parse_dependency, parse_kernels_table
from kernel_lock.testing.fixtures import CPU_VARIANT

COUNTS: Counter[str] = Counter()


def fuzz(max_examples: int):
    """Deterministic, bounded hypothesis settings (no example database, no deadline on a loaded machine)."""
    return settings(
        max_examples=max_examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )


def assert_our_error(exc: BaseException, kind: type[KernelLockError] = KernelLockError) -> None:
    """`exc` is one of ours (of `kind`), with a real, single-paragraph-ish message."""
    assert isinstance(exc, kind), f"{type(exc).__name__} escaped: {exc!r}"
    assert str(exc).strip(), f"{type(exc).__name__} without a message"


# -- strategies ------------------------------------------------------------------------------------------

TOML_KEYS = st.text(alphabet=string.ascii_letters + string.digits + "-_./ \n\"'\\ä", max_size=10)
TOML_SCALARS = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.text(max_size=20),
    st.dates(),
    st.datetimes(),
    st.times(),
)
TOML_VALUES = st.recursive(
    TOML_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TOML_KEYS, inner, max_size=3),
    max_leaves=6,
)
VALID_REPO_IDS = ["kernels-community/relu", "a/b", "org.x/name_y", "A1/b-2", "my-org/untrusted-kernel"]
NEAR_REPO_IDS = [
    "org",
    "org/name/extra",
    "org--x/y",
    "org/x--y",
    "a/..",
    "../b",
    "/b",
    "a/",
    "",
    " a/b",
    "a/b ",
    "-a/b",
    "a/b-",
    ".a/b",
    "a/.b",
    "a b/c",
    "a/b\t",
    "a\\b",
    "org/" + "n" * 97,
    "ä/b",
    "a/bä",
    "a/b\x00",
]
REPO_KEYS = st.one_of(st.sampled_from(VALID_REPO_IDS + NEAR_REPO_IDS), TOML_KEYS)
DEP_TABLES = st.dictionaries(
    st.one_of(st.sampled_from(["version", "revision", "trust-remote-code"]), TOML_KEYS),
    TOML_VALUES,
    max_size=3,
)
DEP_VALUES = st.one_of(
    st.integers(min_value=-3, max_value=2**63 - 1),
    st.sampled_from([">=0.0.2 && <0.1.0", "1", "^1.0", "", "v1", "main"]),
    DEP_TABLES,
    st.fixed_dictionaries({"version": st.one_of(st.integers(-2, 5), TOML_SCALARS)}),
    st.fixed_dictionaries(
        {"revision": st.one_of(st.sampled_from(["main", "v1.0.0", " ", "", "0" * 40]), TOML_SCALARS)}
    ),
    TOML_VALUES,
)
KERNELS_TABLES = st.one_of(
    st.fixed_dictionaries({"dependencies": st.dictionaries(REPO_KEYS, DEP_VALUES, max_size=4)}),
    st.dictionaries(
        st.sampled_from(["dependencies", "dependency", "deps", "version"]), TOML_VALUES, max_size=2
    ),
    TOML_VALUES,
)


@st.composite
def mutated_text(draw: st.DrawFn, base: str) -> str:
    """`base` with a few random edits: deletions, insertions, duplicated or swapped lines."""
    text = base
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "insert", "dup-line", "swap-lines", "replace"]))
        if not text:
            text = draw(st.text(max_size=10))
            continue
        i = draw(st.integers(0, len(text) - 1))
        if kind == "delete":
            j = draw(st.integers(i, min(len(text), i + 20)))
            text = text[:i] + text[j:]
        elif kind == "insert":
            text = (
                text[:i]
                + draw(st.text(alphabet=st.sampled_from(list("=[]{}\"'.,#\n 0123456789abc-/\\")), max_size=6))
                + text[i:]
            )
        elif kind == "replace":
            text = text[:i] + draw(st.characters()) + text[i + 1 :]
        else:
            lines = text.split("\n")
            a, b = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            if kind == "dup-line":
                lines.insert(b, lines[a])
            else:
                lines[a], lines[b] = lines[b], lines[a]
            text = "\n".join(lines)
    return text


def valid_lock() -> Lock:
    """A valid lock with every kind of entry (version, revision, redirect), built without a Hub."""
    return Lock(
        kernel=[
            LockedKernel(
                repo_id="kernels-community/activation",
                version=1,
                ref="v1",
                commit="a" * 40,
                variants={
                    "torch-cpu": "sha256-" + "1" * 64,
                    "torch213-cxx11-cpu-x86_64-linux": "sha256-" + "2" * 64,
                },
            ),
            LockedKernel(
                repo_id="kernels-community/relu",
                redirected_from="kernels-community/old-relu",
                version=2,
                ref="v2",
                commit="b" * 40,
                variants={"torch-universal": "sha256-" + "3" * 64},
            ),
            LockedKernel(
                repo_id="my-org/k",
                revision="v1.0.0",
                ref="v1.0.0",
                commit="c" * 40,
                variants={"torch-stable-abi210-cu128-x86_64-linux": "sha256-" + "4" * 64},
            ),
        ]
    )


VALID_LOCK_TEXT = valid_lock().to_toml()
VALID_LOCK_DATA = json.loads(json.dumps(valid_lock().to_dict()))
VALID_PYPROJECT = (
    '[project]\nname = "p"\nversion = "0.1.0"\n\n[tool.kernels.dependencies]\n'
    '"kernels-community/activation" = 1\n"kernels-community/old-relu" = { version = 2 }\n'
    '"my-org/k" = { revision = "v1.0.0", trust-remote-code = true }\n'
)


@st.composite
def mutated_lock_data(draw: st.DrawFn) -> dict:
    """The valid lock's data with one to three structural changes (dropped, retyped, added or duplicated parts)."""
    data = copy.deepcopy(VALID_LOCK_DATA)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(["top", "kernel-drop", "kernel-set", "kernel-add", "variants", "dup", "kernels"])
        )
        kernels = data.get("kernel") if isinstance(data.get("kernel"), list) else []
        entry = (
            draw(st.sampled_from(kernels)) if kernels and all(isinstance(k, dict) for k in kernels) else None
        )
        if kind == "top":
            data[draw(st.sampled_from(["version", "kernel", "extra"]))] = draw(TOML_VALUES)
        elif kind == "kernels":
            data["kernel"] = draw(st.lists(TOML_VALUES, max_size=2))
        elif entry is None:
            continue
        elif kind == "kernel-drop" and entry:
            entry.pop(draw(st.sampled_from(sorted(entry))))
        elif kind == "kernel-set":
            key = draw(
                st.sampled_from(
                    [
                        "repo-id",
                        "version",
                        "revision",
                        "redirected-from",
                        "ref",
                        "commit",
                        "hash-type",
                        "variants",
                    ]
                )
            )
            entry[key] = draw(
                st.one_of(
                    TOML_VALUES,
                    st.sampled_from(NEAR_REPO_IDS + VALID_REPO_IDS + ["0" * 40, "A" * 40, "0" * 39]),
                )
            )
        elif kind == "kernel-add":
            entry[draw(TOML_KEYS)] = draw(TOML_VALUES)
        elif kind == "variants":
            variants = entry.setdefault("variants", {})
            if isinstance(variants, dict):
                name = draw(st.one_of(st.sampled_from(["torch-cpu", "", "x"]), TOML_KEYS))
                variants[name] = draw(
                    st.one_of(
                        st.sampled_from(["sha256-" + "0" * 64, "sha256-" + "0" * 63, "sha1-x"]), TOML_VALUES
                    )
                )
        elif kind == "dup":
            kernels.append(copy.deepcopy(entry))
    return data


def toml_text(data: object) -> str | None:
    """TOML for `data`, or None where tomli_w cannot write it (e.g. a top-level that is not a table)."""
    try:
        return tomli_w.dumps(data)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


VARIANT_PARTS = [
    "torch",
    "torch210",
    "torch29",
    "torch2",
    "torch1234",
    "torch-stable-abi210",
    "torch-stable-abi29",
    "cxx11",
    "cxx98",
    "cu128",
    "cu126",
    "cu130",
    "cu",
    "cu1",
    "rocm71",
    "rocm",
    "xpu20253",
    "cann81",
    "cpu",
    "metal",
    "neuron",
    "tpu",
    "cuda",
    "universal",
    "x86_64",
    "aarch64",
    "arm64",
    "linux",
    "darwin",
    "windows",
    "tvm",
    "ffi01",
    "tvm-ffi01",
    "stable",
    "abi210",
    "abi",
    "2.10",
    "12.8",
    "0.1",
    "cpython",
    "3.12",
    "3.15",
    "abi3",
    "abi3t",
    "sdk",
    "mlx",
    "",
    "13",
    "٣",
    "\n",
]
VARIANT_NAMES = st.one_of(
    st.lists(st.one_of(st.sampled_from(VARIANT_PARTS), st.text(max_size=4)), min_size=1, max_size=6).map(
        "-".join
    ),
    st.text(max_size=30),
    st.sampled_from(
        [
            "torch-cpu",
            "torch-universal",
            "torch210-cxx11-cu128-x86_64-linux",
            "torch-stable-abi210-cu128-x86_64-linux",
        ]
    ),
)
TARGET_SPECS = st.one_of(
    st.lists(st.one_of(st.sampled_from(VARIANT_PARTS), st.text(max_size=4)), min_size=1, max_size=6).map(
        "-".join
    ),
    st.text(max_size=30),
)
GOOD_TARGETS = [
    parse_target(spec)
    for spec in (
        "torch210-cxx11-cu128-x86_64-linux",
        "torch213-cxx11-cpu-x86_64-linux",
        "torch213-cxx98-cu126-x86_64-linux",
        "torch213-metal-aarch64-darwin",
        "torch212-cxx11-rocm72-x86_64-linux",
        "torch213-cxx11-xpu20260-x86_64-linux",
        "torch29-cpu-x86_64-windows",
        "torch213-cxx11-cann81-aarch64-linux",
        "torch213-cxx11-cu132-aarch64-linux",
        "torch-2.10-cxx11-cuda-12.8-cpython-3.12-abi3-x86_64-linux",
        "torch-2.13-cpu-cpython-3.15-abi3t-x86_64-linux",
    )
]


# -- [tool.kernels] -------------------------------------------------------------------------------------


@fuzz(300)
@given(table=KERNELS_TABLES)
@example(table={"dependencies": {"kernels-community/relu": ">=0.0.2 && <0.1.0"}})
@example(table={"dependencies": {"kernels-community/relu": {"version": 1, "revision": "main"}}})
@example(table={"dependencies": {"kernels-community/relu": {"version": True}}})
@example(table={"dependencies": {"kernels-community/relu": {"version": 2**63 - 1}}})
@example(table={"dependencies": {"kernels-community/relu": {"revision": []}}})
@example(table={"dependencies": []})
@example(table=[])
def test_parse_kernels_table_fails_only_with_config_errors(table: object) -> None:
    COUNTS["kernels_tables"] += 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            deps = parse_kernels_table(table, where="pyproject.toml")
        except Exception as exc:
            assert_our_error(exc, ConfigError)
            return
    assert list(deps) == sorted(deps)
    for repo_id, dep in deps.items():
        assert is_repo_id(repo_id)
        assert (dep.version is None) != (dep.revision is None)


@fuzz(200)
@given(
    text=st.one_of(
        mutated_text(VALID_PYPROJECT),
        KERNELS_TABLES.map(lambda t: toml_text({"project": {"name": "p"}, "tool": {"kernels": t}})).filter(
            bool
        ),
        st.builds(lambda t: toml_text({"tool": t}), TOML_VALUES).filter(bool),
    ),
    raw=st.one_of(st.none(), st.binary(max_size=40)),
)
@example(text="[tool.kernels]\ndependencies = 3\n", raw=None)
@example(text="tool = 1\n", raw=None)
@example(text="", raw=b"\xff\xfe[tool.kernels]")
def test_load_project_on_generated_files(text: str, raw: bytes | None) -> None:
    COUNTS["pyproject_files"] += 1
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pyproject.toml"
        if raw is not None:
            path.write_bytes(text.encode("utf-8", "surrogatepass") + raw)
        else:
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                project = load_project(tmp)
            except Exception as exc:
                assert_our_error(exc, ConfigError)
                return
        assert all(is_repo_id(r) for r in project.dependencies)


@fuzz(400)
@given(
    repo_id=st.one_of(
        REPO_KEYS, st.text(max_size=40), st.integers(), st.none(), st.lists(st.text(max_size=3), max_size=2)
    )
)
def test_repo_ids_are_checked_without_crashing(repo_id: object) -> None:
    COUNTS["repo_ids"] += 1
    valid = is_repo_id(repo_id)
    if valid:  # what we accept, the Hub client accepts too (we are stricter: ASCII only, `org/name`)
        validate_repo_id(repo_id)
    try:
        dep = parse_dependency(repo_id, 1, where="pyproject.toml")
    except Exception as exc:
        assert_our_error(exc, ConfigError)
        assert not valid
        return
    assert valid and dep.version == 1


@pytest.mark.parametrize("repo_id", ["kernels-community/relu\n", "a/b\n"])
def test_repo_id_with_trailing_newline_is_refused(repo_id: str) -> None:
    COUNTS["repo_ids"] += 1
    with pytest.raises(ConfigError):
        parse_dependency(repo_id, 1, where="pyproject.toml")


# -- kernels.lock ---------------------------------------------------------------------------------------


def check_parse_lock(text: str) -> Lock | None:
    try:
        lock = parse_lock(text, where="kernels.lock")
    except Exception as exc:
        assert_our_error(exc, LockfileError)
        assert "kernels.lock" in str(exc)
        return None
    # Whatever parses serializes to a lock that parses back to the same bytes (the writer and reader agree).
    text = lock.to_toml()
    assert parse_lock(text, where="roundtrip").to_toml() == text
    return lock


def test_the_valid_lock_parses() -> None:
    assert parse_lock(VALID_LOCK_TEXT, where="kernels.lock") == valid_lock()


@fuzz(300)
@given(data=mutated_lock_data())
def test_parse_lock_on_structurally_mutated_locks(data: dict) -> None:
    COUNTS["lock_texts"] += 1
    text = toml_text(data)
    if text is not None:
        check_parse_lock(text)


@fuzz(300)
@given(
    text=st.one_of(
        mutated_text(VALID_LOCK_TEXT),
        st.text(max_size=60),
        TOML_VALUES.map(lambda v: toml_text({"version": 1, "kernel": v}) or ""),
    )
)
@example(text="version = 1\nkernel = 3\n")
@example(text="version = 2\n")
@example(text='version = "1"\n')
@example(text="version = 1\n[[kernel]]\n")
def test_parse_lock_on_generated_text(text: str) -> None:
    COUNTS["lock_texts"] += 1
    check_parse_lock(text)


@pytest.mark.parametrize("name", ["../../../../escaped", "a/b", "..", ""])
def test_parse_lock_refuses_variant_names_that_are_not_one_path_component(name: str) -> None:
    COUNTS["lock_texts"] += 1
    text = VALID_LOCK_TEXT.replace("\ntorch-universal = ", f"\n{json.dumps(name)} = ")
    assert text != VALID_LOCK_TEXT
    with pytest.raises(LockfileError):
        parse_lock(text, where="kernels.lock")


# -- variant names and targets --------------------------------------------------------------------------


@fuzz(600)
@given(name=VARIANT_NAMES)
@example(name="torch")
@example(name="torch-")
@example(name="torch210")
@example(name="torch210-cxx11")
@example(name="torch-stable-abi")
@example(name="tvm-ffi")
@example(name="torch210-cxx11-cu-x86_64-linux")
@example(name="torch-2.10-cuda-12.8-cpython-3.12-abi3t-x86_64-linux")
@example(name="sdk-cpython-3.12-abi3")
@example(name="torch-stable-abi-2.x-cpu-cpython-3.9-abi3-x86_64-linux")
def test_parse_variant_fails_only_with_variant_errors(name: str) -> None:
    COUNTS["variant_names"] += 1
    try:
        v = parse_variant(name)
    except Exception as exc:
        assert_our_error(exc, VariantError)
        assert repr(name) in str(exc)
        return
    assert v.name == name


@fuzz(300)
@given(names=st.lists(VARIANT_NAMES, max_size=8), target=st.sampled_from(GOOD_TARGETS))
def test_rank_and_select_variants_never_crash(names: list[str], target: Target) -> None:
    COUNTS["variant_names"] += len(names)
    decisions = rank_variants(names, target)
    assert sorted(d.variant for d in decisions) == sorted(set(names))
    accepted = [d.accepted for d in decisions]
    assert accepted == sorted(accepted, reverse=True), "accepted variants come first"
    for d in decisions:
        assert d.accepted == (d.reason is None)
    try:
        chosen = select_variant(names, target, repo_id="org/name")
    except Exception as exc:
        assert_our_error(exc, VariantError)
        assert not any(accepted)
        for name in names:
            assert repr(name)[1:-1] in str(exc) or name in str(exc)
        return
    assert chosen == decisions[0].variant and decisions[0].accepted
    assert all(d.reason != NOT_A_VARIANT for d in decisions if d.variant == chosen)


@fuzz(500)
@given(spec=TARGET_SPECS)
@example(spec="torch210-cxx11-cu128-x86_64-linux")
@example(spec="torch210-cxx11-metal-aarch64-darwin")
@example(spec="torch210-cu1-x86_64-linux")
@example(spec="torch210-cpu-AMD64-windows")
@example(spec=" torch210-cpu-x86_64-linux\n")
@example(spec="torch-2.10-cuda-12.8-cpython-3.12-abi3t-x86_64-linux")
@example(spec="torch-2.10-cxx11-cuda-12.8-cpython-x86_64-linux")
def test_parse_target_fails_only_with_variant_errors(spec: str) -> None:
    COUNTS["targets"] += 1
    try:
        target = parse_target(spec)
    except Exception as exc:
        assert_our_error(exc, VariantError)
        return
    # A parsed target describes itself and round-trips through its spec.
    assert target.describe()
    assert parse_target(target.spec()) == target


# -- the command line on bad input: exit 2, no traceback ---------------------------------------------------


@pytest.fixture(scope="module")
def cli_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An isolated, offline Hub environment for in-process CLI runs (nothing may reach a network)."""
    base = tmp_path_factory.mktemp("malformed-cli")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("HF_HUB_CACHE", str(base / "hf-cache"))
        mp.setenv("HF_HOME", str(base / "hf-home"))
        mp.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # a closed port: any request fails fast
        yield base


def run_cli(*args: str) -> tuple[int, str]:
    from kernel_lock.cli import main

    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stderr


def assert_bad_input(code: int, stderr: str) -> None:
    assert code == 2, f"exit {code}, stderr: {stderr}"
    assert any(line.startswith("error: ") for line in stderr.splitlines()), stderr
    assert "Traceback" not in stderr and "error: unexpected" not in stderr, stderr


def expected_config_failure(path: Path) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            load_project(path)
        except ConfigError:
            return True
    return False


@fuzz(150)
@given(
    text=st.one_of(
        mutated_text(VALID_PYPROJECT),
        KERNELS_TABLES.map(lambda t: toml_text({"project": {"name": "p"}, "tool": {"kernels": t}})).filter(
            bool
        ),
    )
)
def test_lock_check_exits_2_on_bad_pyproject(cli_env: Path, text: str) -> None:
    COUNTS["cli_runs"] += 1
    with tempfile.TemporaryDirectory(dir=cli_env) as tmp:
        Path(tmp, "pyproject.toml").write_text(text, encoding="utf-8", errors="surrogatepass")
        bad = expected_config_failure(Path(tmp))
        code, stderr = run_cli("lock", "--check", "--project", tmp)
    if bad:
        assert_bad_input(code, stderr)
    else:
        assert code in (0, 1), stderr  # a valid pyproject: up to date (no deps) or out of date (no lock)
        assert "Traceback" not in stderr


@fuzz(150)
@given(
    text=st.one_of(
        mutated_lock_data().map(toml_text).filter(bool),
        mutated_text(VALID_LOCK_TEXT),
        st.text(max_size=40),
    ),
    command=st.sampled_from(
        [
            ("verify",),
            ("verify", "--all-variants", "--full"),
            ("sync", "--frozen"),
            ("sync", "--frozen", "--all-variants"),
        ]
    ),
)
@example(text="version = 1\nkernel = 3\n", command=("verify",))
def test_verify_and_frozen_sync_exit_2_on_a_bad_lock(
    cli_env: Path, text: str, command: tuple[str, ...]
) -> None:
    try:
        parse_lock(text, where="kernels.lock")
    except LockfileError:
        pass
    else:
        return  # a valid lock is not this test's subject
    COUNTS["cli_runs"] += 1
    with tempfile.TemporaryDirectory(dir=cli_env) as tmp:
        Path(tmp, "pyproject.toml").write_text(VALID_PYPROJECT)
        Path(tmp, "kernels.lock").write_text(text, encoding="utf-8", errors="surrogatepass")
        code, stderr = run_cli(*command, "--project", tmp, "--target", CPU_VARIANT)
    assert_bad_input(code, stderr)
    assert "kernels.lock" in stderr


@pytest.mark.parametrize(
    ("files", "args"),
    [
        ({"pyproject.toml": b"\xff\xfe not utf-8"}, ("lock", "--check")),
        ({"pyproject.toml": b"[tool.kernels"}, ("lock", "--check")),
        (
            {"pyproject.toml": b"[tool.kernels.dependencies]\n'kernels-community/relu' = '>=0.1'\n"},
            ("lock", "--check"),
        ),
        ({"pyproject.toml": b"[tool.kernels.dependencies]\n'kernels-community/relu' = {}\n"}, ("sync",)),
        ({"kernels.lock": b"\xff\xfe"}, ("verify",)),
        ({"kernels.lock": b"version = 1\n[[kernel]]\nrepo-id = 'a/b'\n"}, ("sync", "--frozen")),
        ({}, ("verify",)),
        ({}, ("sync", "--frozen")),
        ({"kernels.lock": VALID_LOCK_TEXT.encode()}, ("sync", "--frozen", "--target", "torch99-nope")),
        ({"kernels.lock": VALID_LOCK_TEXT.encode()}, ("verify", "--torch", "2.x", "--cuda", "12.8")),
        (
            {"kernels.lock": VALID_LOCK_TEXT.encode()},
            ("verify", "--torch", "2.10", "--cuda", "12.8", "--cpu"),
        ),
        (
            {"kernels.lock": VALID_LOCK_TEXT.encode()},
            ("verify", "--target", "torch210-cpu-x86_64-linux", "--torch", "2.1"),
        ),
    ],
)
def test_cli_bad_input_examples_exit_2(
    cli_env: Path, tmp_path: Path, files: dict[str, bytes], args: tuple[str, ...]
) -> None:
    COUNTS["cli_runs"] += 1
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    code, stderr = run_cli(*args, "--project", str(tmp_path))
    assert_bad_input(code, stderr)
