"""Hostile input, from a file or from the Hub, gets one of our errors and exit codes, never a crash.

Arrays nested hundreds deep in `pyproject.toml`, `kernels.lock`, `kernel-status.toml` or `metadata.json`; a
variant folder named `torch..universal`; listings sync could not write (a file where another needs a folder,
a name over 255 bytes), refused by `lock` and naming the paths; a lock that starts with a byte order mark
(read); thousands of unresolvable requirements (the lock stops at the first); a `metadata.json` with a key
twice (Python would keep the last, `kernels` refuses it: refused at lock and sync); a `python-depends` entry
that names no package (a missing package); a Hub answer nested 100,000 deep or with a key twice.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from kernel_lock.core.lockfile import read_lock
from kernel_lock.errors import LockfileError
from kernel_lock.load.locked import get_kernel
from kernel_lock.testing import LocalHub, repo_files

COUNTS: Counter[str] = Counter()
DEEP = "[" * 600 + "]" * 600


def assert_clean(run, code: int, *says: str) -> None:
    assert run.exit_code == code, (run.exit_code, run.stdout, run.stderr)
    assert "Traceback" not in run.stderr and "error: unexpected" not in run.stderr, run.stderr
    assert "RecursionError" not in run.stderr and "pydantic" not in run.stderr.lower(), run.stderr
    for text in says:
        assert text in run.stderr, run.stderr
    COUNTS["hostile_inputs_refused"] += 1


def publish(hub: LocalHub, repo_id: str, files: dict[str, bytes]) -> None:
    repo = hub.create_repo(repo_id)
    repo.create_branch("v1", repo.commit(files, branch="main"))
    hub.set_organization(repo_id.split("/")[0], trusted_kernel_publisher=True)


@pytest.mark.parametrize("command", [("lock",), ("lock", "--check"), ("sync",)])
def test_deeply_nested_pyproject(make_project, cli, command: tuple[str, ...]) -> None:
    root = make_project(f'"kernels-community/relu" = {DEEP}')
    assert_clean(cli(*command, "--project", str(root)), 2, "pyproject.toml", "nested too deeply")


@pytest.mark.parametrize("command", [("verify",), ("sync", "--frozen"), ("lock", "--check")])
def test_deeply_nested_lock(make_project, cli, command: tuple[str, ...]) -> None:
    root = make_project('"kernels-community/relu" = 1')
    (root / "kernels.lock").write_text(f"version = 1\nkernel = {DEEP}\n")
    assert_clean(cli(*command, "--project", str(root)), 2, "kernels.lock", "nested too deeply")


def test_deeply_nested_lock_from_get_kernel(make_project) -> None:
    root = make_project('"kernels-community/relu" = 1')
    (root / "kernels.lock").write_text(f"version = 1\nkernel = {DEEP}\n")
    with pytest.raises(LockfileError, match="nested too deeply"):
        get_kernel("kernels-community/relu", lockfile=root / "kernels.lock")
    COUNTS["hostile_inputs_refused"] += 1


def test_lock_with_a_byte_order_mark_is_read(hub_env, make_project, cli) -> None:
    root = make_project('"kernels-community/relu" = 1')
    assert cli("lock", "--project", str(root)).exit_code == 0
    lock = root / "kernels.lock"
    lock.write_bytes(b"\xef\xbb\xbf" + lock.read_bytes())
    run = cli("lock", "--check", "--project", str(root))
    assert run.exit_code == 0, run.stderr
    pyproject = root / "pyproject.toml"
    pyproject.write_bytes(b"\xef\xbb\xbf" + pyproject.read_bytes())
    assert cli("lock", "--check", "--project", str(root)).exit_code == 0


def test_deeply_nested_status_file_and_metadata_from_the_hub(hub_env, make_project, cli) -> None:
    hub_env.create_repo("kernels-community/deep-status").commit(
        {"kernel-status.toml": f'kind = "redirect"\ndestination = {DEEP}\n'.encode()}
    )
    root = make_project('"kernels-community/deep-status" = 1', name="status")
    assert_clean(
        cli("lock", "--project", str(root)), 3, "kernels-community/deep-status", "kernel-status.toml"
    )

    files = repo_files(["torch-cpu"], name="deepmeta")
    files["build/torch-cpu/metadata.json"] = ("[" * 100_000 + "]" * 100_000).encode()
    publish(hub_env, "kernels-community/deepmeta", files)
    root = make_project('"kernels-community/deepmeta" = 1', name="meta")
    assert_clean(cli("lock", "--project", str(root)), 3, "kernels-community/deepmeta", "metadata.json")


@pytest.mark.parametrize("variant", ["torch..universal", "torch-cpu..", ".hidden"])
def test_hub_variant_names_that_cannot_be_locked(hub_env, make_project, cli, variant: str) -> None:
    files = repo_files(["torch-cpu"], name="oddvariant")
    files.update(
        {f"build/{variant}/{k.split('/', 2)[2]}": v for k, v in files.items() if k.startswith("build/")}
    )
    publish(hub_env, "kernels-community/oddvariant", files)
    root = make_project('"kernels-community/oddvariant" = 1')
    assert_clean(cli("lock", "--project", str(root)), 3, "kernels-community/oddvariant", repr(variant))
    assert not (root / "kernels.lock").exists()


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        ({"layers.py/inner.py": b"x = 1\n"}, "'layers.py'"),
        ({"relu": b"a file named like the package folder\n"}, "'relu'"),
        ({"x" * 300 + ".py": b"x = 1\n"}, "'" + "x" * 300 + ".py'"),
        ({"d" * 256 + "/a.py": b"x = 1\n"}, "a.py"),
    ],
    ids=["file-and-folder", "folder-and-file", "300-char-name", "256-char-folder"],
)
def test_listings_sync_could_not_write_are_refused_at_lock(
    hub_env, make_project, cli, extra: dict[str, bytes], says: str
) -> None:
    files = repo_files(["torch-cpu"], name="relu")
    files.update({f"build/torch-cpu/{path}": data for path, data in extra.items()})
    publish(hub_env, "kernels-community/unwritable", files)
    root = make_project('"kernels-community/unwritable" = 1')
    run = cli("lock", "--project", str(root))
    assert_clean(run, 3, "kernels-community/unwritable", "build/torch-cpu/", says, "no cache can hold")
    assert not (root / "kernels.lock").exists()


def test_lock_stops_at_the_first_unresolvable_requirement(hub_env, make_project, cli) -> None:
    missing = [f'"nobody-{i:04d}/missing-{i:04d}" = 1' for i in range(2000)]
    root = make_project(*missing)
    hub_env.clear_log()
    run = cli("lock", "--project", str(root))
    assert_clean(run, 2, "not found")
    asked = {r.path.split("/")[3] for r in hub_env.requests if r.path.startswith("/api/kernels/")}
    assert len(asked) < 200, f"the lock asked about {len(asked)} of 2000 missing repos after the first failed"
    COUNTS["missing_repos_not_asked"] += 2000 - len(asked)


def test_malformed_json_reply_is_its_own_error_with_the_request_id(hub_env, make_project, cli) -> None:
    from kernel_lock.testing import Answer

    hub_env.add_answer(
        Answer(r"relu/refs$", body=b"<html>not json", headers={"X-Request-Id": "req-1234"}, count=None)
    )
    root = make_project('"kernels-community/relu" = 1')
    run = cli("lock", "--verbose", "--project", str(root))
    assert_clean(run, 3, "kernels-community/relu", "not JSON")
    assert "Cannot reach" not in run.stderr
    assert "req-1234" in run.stderr
    json_run = cli("lock", "--json", "--project", str(root))
    assert json.loads(json_run.stdout)["error"]["code"] == "hub-malformed-reply"


def key_twice(metadata: bytes, key: str, value: object) -> bytes:
    """`metadata.json` with `key` written a second time (with `value`) right after its first appearance."""
    text = metadata.decode()
    at = text.index(f'"{key}":')
    end = text.index("\n", at)
    first = text[at:end].rstrip(",")
    return (
        (text[:end] + f'\n  "{key}": {json.dumps(value)},' + text[end:])
        .replace(first + "\n", first + ",\n", 1)
        .encode()
    )


def locked_elsewhere(hub: LocalHub, root, repo_id: str, files: dict[str, bytes]) -> None:
    """Point the project's lock at a commit of `files`, hashed as a lock written by another tool would be."""
    import hashlib

    from kernel_lock.core.hashing import variant_hash

    repo = hub.create_repo(repo_id + "-bad")
    commit = repo.commit(files, branch="v1")  # on the history of the ref the lock's requirement names
    lock = (root / "kernels.lock").read_text()
    entry = read_lock(root / "kernels.lock").find(repo_id)
    assert entry is not None
    for variant, old in entry.variants.items():
        prefix = f"build/{variant}/"
        new = variant_hash(
            (p.removeprefix(prefix), hashlib.sha256(d).hexdigest())
            for p, d in files.items()
            if p.startswith(prefix)
        )
        lock = lock.replace(old, new)
    (root / "kernels.lock").write_text(lock.replace(entry.commit, commit).replace(repo_id, repo_id + "-bad"))


@pytest.mark.parametrize(("key", "value"), [("id", "_other_module"), ("algorithm", "sha512")])
def test_metadata_with_a_key_twice_is_refused_at_lock_sync_and_verify(
    hub_env, make_project, cli, key: str, value: str
) -> None:
    files = repo_files(["torch-cpu"], name="twice")
    path = "build/torch-cpu/metadata.json"
    files[path] = key_twice(files[path], key, value)
    assert f'"{key}"' in files[path].decode().split(f'"{key}"', 1)[1]  # the key is there twice
    publish(hub_env, "kernels-community/twice", files)
    root = make_project('"kernels-community/twice" = 1')
    assert_clean(
        cli("lock", "--project", str(root)),
        3,
        "kernels-community/twice",
        "metadata.json",
        f"{key!r} appears twice",
    )
    assert not (root / "kernels.lock").exists()

    # A lock written elsewhere (an older kernel-lock): sync refuses the file before any other download.
    publish(hub_env, "kernels-community/twice-ok", repo_files(["torch-cpu"], name="twice"))
    root = make_project('"kernels-community/twice-ok" = 1', name="elsewhere")
    assert cli("lock", "--project", str(root)).exit_code == 0
    locked_elsewhere(hub_env, root, "kernels-community/twice-ok", files)
    run = cli("sync", "--frozen", "--project", str(root))
    assert_clean(run, 3, "kernels-community/twice-ok-bad", f"{key!r} appears twice")
    assert cli("verify", "--project", str(root)).exit_code == 4  # nothing was synced


def test_publisher_digest_of_a_metadata_with_a_key_twice_is_refused() -> None:
    from kernel_lock.lock.digest import MalformedDigest, parse_digest

    metadata = repo_files(["torch-cpu"], name="twice")["build/torch-cpu/metadata.json"]
    assert parse_digest(metadata) is not None
    for key, value in (("id", "_other"), ("algorithm", "sha512"), ("version", 2)):
        with pytest.raises(MalformedDigest, match=f"{key!r} appears twice"):
            parse_digest(key_twice(metadata, key, value))


def test_python_depends_without_a_name_is_a_missing_package_not_a_crash(hub_env, make_project, cli) -> None:
    from kernel_lock.errors import MissingPythonDependency

    path = "build/torch-cpu/metadata.json"
    metadata = json.loads(repo_files(["torch-cpu"], name="pydeps")[path])
    metadata["python-depends"] = ["<2", "", " ", "ok-name", "@http://x"]
    files = repo_files(["torch-cpu"], name="pydeps")
    files[path] = json.dumps(metadata).encode()
    publish(hub_env, "kernels-community/pydeps", files)
    root = make_project('"kernels-community/pydeps" = 1')
    assert cli("lock", "--project", str(root)).exit_code == 0
    sync = cli("sync", "--project", str(root))
    assert sync.exit_code == 0, sync.stderr
    assert "'<2'" in sync.stderr or "<2" in sync.stderr
    status = cli("status", "--project", str(root))
    assert status.exit_code == 0, status.stderr
    with pytest.raises(MissingPythonDependency, match="<2"):
        get_kernel("kernels-community/pydeps", lockfile=root / "kernels.lock")


def test_refs_nested_100000_deep_is_a_malformed_reply(hub_env, make_project, cli) -> None:
    from kernel_lock.testing import Answer

    deep = b'{"branches": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    hub_env.add_answer(Answer(r"relu/refs$", body=deep, headers={"X-Request-Id": "req-deep"}, count=None))
    root = make_project('"kernels-community/relu" = 1')
    run = cli("lock", "--verbose", "--project", str(root))
    assert_clean(run, 3, "kernels-community/relu", "nested too deeply", "req-deep")
    twice = b'{"branches": [], "branches": [{"name": "v1", "targetCommit": "' + b"a" * 40 + b'"}]}'
    hub_env.add_answer(Answer(r"relu/refs$", body=twice, count=None))
    assert_clean(cli("lock", "--project", str(root)), 3, "kernels-community/relu", "'branches' appears twice")
