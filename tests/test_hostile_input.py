"""Hostile input, from a file or from the Hub, gets one of our errors and exit codes, never a crash.

Arrays nested hundreds deep in `pyproject.toml`, `kernels.lock`, `kernel-status.toml` or `metadata.json`; a
variant folder named `torch..universal`; listings sync could not write (a file where another needs a folder,
a name over 255 bytes), refused by `lock` and naming the paths; a lock that starts with a byte order mark
(read); thousands of unresolvable requirements (the lock stops at the first).
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from kernel_lock.errors import LockfileError
from kernel_lock.load import get_kernel
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
