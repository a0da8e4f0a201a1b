"""The command line as a uv/cargo/`kernels` user meets it: a `kernels` JSON lock in the project, `sync`
that locks first (`--locked`, `--frozen`), a stale lock shown by `status`, the target printed with its source."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kernel_lock.core.lockfile import read_lock
from kernel_lock.testing import repo_files
from kernel_lock.testing.fixtures import CPU_VARIANT
from kernel_lock.testing.upstream import KERNELS_CLI

RELU_V2 = '"kernels-community/relu" = 2'  # relu v2 depends on activation v1
RELU_V1 = '"kernels-community/relu" = 1'


def kernels_lock(root: Path) -> bytes:
    """`kernels lock ROOT` with the real `kernels` 0.17.2 (against the local Hub); the JSON it wrote."""
    run = subprocess.run(
        [sys.executable, "-c", KERNELS_CLI, "lock", str(root)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    return (root / "kernels.lock").read_bytes()


@pytest.mark.kernels
def test_every_command_names_import_for_a_kernels_json_lock(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V2)
    theirs = kernels_lock(root)
    assert theirs.startswith(b"[")
    for args in (
        ["lock"],
        ["lock", "--check"],
        ["sync"],
        ["sync", "--frozen"],
        ["verify"],
        ["status"],
        ["export", "--format", "kernels"],
    ):
        run = cli(*args, "--project", str(root), "--json")
        assert run.exit_code == 2, (args, run.stdout, run.stderr)
        error = run.json()["error"]
        assert error["code"] == "lock-is-kernels-json", args
        assert (
            "written by the `kernels` library" in error["message"]
            and "`kernel-lock import`" in error["message"]
        )
        assert "Run `kernel-lock lock`" not in run.stderr
        assert (root / "kernels.lock").read_bytes() == theirs, f"{args} must not touch the kernels lock"


@pytest.mark.kernels
def test_import_in_place_keeps_a_backup_and_the_commits(hub_env, hub_fixtures, make_project, cli) -> None:
    root = make_project(RELU_V2)
    theirs = kernels_lock(root)
    locked_commits = {e["dependency"]["repo-id"]: e["lock"]["commit"] for e in json.loads(theirs)}
    hub_fixtures.relu.commit(repo_files(["torch-cpu"], seed="moved"), branch="v2", message="moved on")

    run = cli("import", "--project", str(root))
    assert run.exit_code == 0, run.stderr
    backup = root / "kernels.lock.kernels.json"
    assert backup.read_bytes() == theirs, "the kernels lock is kept byte for byte"
    lock = read_lock(root / "kernels.lock")
    assert {k.repo_id: k.commit for k in lock.kernel} == locked_commits, (
        "the commits of the file, not the heads"
    )
    assert cli("lock", "--check", "--project", str(root)).exit_code == 0

    again = cli("import", "--project", str(root), "--json")
    assert again.exit_code == 2 and "already kernel-lock's TOML lock" in again.json()["error"]["message"]
    assert backup.read_bytes() == theirs


@pytest.mark.kernels
def test_import_in_place_never_overwrites_another_backup(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V2)
    theirs = kernels_lock(root)
    (root / "kernels.lock.kernels.json").write_bytes(b"something the user keeps\n")
    run = cli("import", str(root / "kernels.lock"), "--project", str(root), "--json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["backup"] == str(root / "kernels.lock.1.kernels.json")
    assert (root / "kernels.lock.kernels.json").read_bytes() == b"something the user keeps\n"
    assert (root / "kernels.lock.1.kernels.json").read_bytes() == theirs


@pytest.mark.kernels
def test_a_failed_in_place_import_changes_nothing(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V2)
    theirs = kernels_lock(root)
    make_project(RELU_V1)  # pyproject.toml now disagrees with the kernels lock
    run = cli("import", "--project", str(root))
    assert run.exit_code == 2 and "does not match" in run.stderr
    assert (root / "kernels.lock").read_bytes() == theirs
    assert not (root / "kernels.lock.kernels.json").exists()


def test_sync_locks_first_when_the_lock_is_missing(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V1)
    run = cli("sync", "--project", str(root), "--target", CPU_VARIANT)
    assert run.exit_code == 0, run.stderr
    assert run.stdout.startswith("+ kernels-community/relu v1 (")
    assert read_lock(root / "kernels.lock").find("kernels-community/relu") is not None
    assert f"ok kernels-community/relu {CPU_VARIANT}" in run.stdout


def test_sync_relocks_a_stale_lock_keeping_unchanged_commits(
    hub_env, hub_fixtures, make_project, cli
) -> None:
    root = make_project(RELU_V1)
    assert cli("lock", "--project", str(root)).exit_code == 0
    relu_commit = read_lock(root / "kernels.lock").find("kernels-community/relu").commit
    hub_fixtures.relu.commit(repo_files(["torch-cpu"], seed="moved"), branch="v1", message="moved on")
    make_project(RELU_V1, '"kernels-community/activation" = 1')
    run = cli("sync", "--project", str(root), "--target", CPU_VARIANT, "--json")
    assert run.exit_code == 0, run.stderr
    data = run.json()
    assert [(c["repo-id"], c["change"]) for c in data["lock"]["changes"]] == [
        ("kernels-community/activation", "added")
    ]
    assert read_lock(root / "kernels.lock").find("kernels-community/relu").commit == relu_commit
    assert {v["repo-id"] for v in data["variants"]} == {
        "kernels-community/relu",
        "kernels-community/activation",
    }


def test_sync_help_says_it_behaves_as_uv(cli) -> None:
    text = cli("sync", "--help").stdout
    assert "As `uv sync`" in text and "--locked" in text and "--frozen" in text


def test_status_shows_a_stale_lock_and_check_fails(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V1)
    assert cli("lock", "--project", str(root)).exit_code == 0
    fresh = cli("status", "--project", str(root), "--check", "--target", CPU_VARIANT, "--json")
    assert fresh.exit_code == 0 and fresh.json()["up-to-date"] is True and fresh.json()["warnings"] == []
    make_project(RELU_V2)
    run = cli("status", "--project", str(root), "--target", CPU_VARIANT)
    assert run.exit_code == 0
    assert "warning:" in run.stderr and "kernels.lock is out of date" in run.stderr
    assert "pyproject.toml asks for version 2, the lock has version 1" in run.stderr
    check = cli("status", "--project", str(root), "--check", "--target", CPU_VARIANT, "--json")
    assert check.exit_code == 1
    data = check.json()
    assert data["up-to-date"] is False and data["differences"] and "out of date" in data["warnings"][0]


@pytest.mark.parametrize(
    ("args", "env", "source"),
    [
        (["--target", CPU_VARIANT], {}, "from --target"),
        (
            ["--torch", "2.13", "--cpu", "--arch", "x86_64", "--os", "linux"],
            {},
            "from --torch/--cuda/... options",
        ),
        ([], {"KERNEL_LOCK_TARGET": CPU_VARIANT}, "from KERNEL_LOCK_TARGET"),
    ],
)
def test_the_target_is_printed_once_with_its_source(
    hub_env, make_project, cli, monkeypatch, args, env, source
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    root = make_project(RELU_V1)
    for command in ("sync", "verify", "status"):
        run = cli(command, "--project", str(root), *args)
        assert run.exit_code == 0, run.stderr
        assert run.stderr.count("Target: ") == 1
        assert f"Target: torch 2.13 (cxx11), CPU, x86_64-linux ({source})" in run.stderr
    data = cli("env", *args, "--json").json()
    assert data["target"]["spec"] == CPU_VARIANT and data["target"]["source"] in (
        "--target",
        "options",
        "KERNEL_LOCK_TARGET",
    )


def test_detection_without_torch_warns(tmp_path: Path, hub_env, make_project, cli) -> None:
    """In an interpreter where torch is not importable, commands say so and name --target."""
    root = make_project('"kernels-community/activation" = 1')
    assert cli("lock", "--project", str(root)).exit_code == 0
    blocker = tmp_path / "no_torch"
    blocker.mkdir()
    (blocker / "torch.py").write_text("raise ImportError('no torch in this environment')\n")  # shadows torch
    env = {k: v for k, v in os.environ.items() if k != "KERNEL_LOCK_TARGET"}
    env["PYTHONPATH"] = str(blocker)
    run = subprocess.run(
        [sys.executable, "-m", "kernel_lock", "status", "--project", str(root), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert run.returncode == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["target"]["source"] == "detected" and data["target"]["torch"] is False
    assert "torch is not importable here" in run.stderr and "--target" in run.stderr
    assert any("torch is not importable here" in w for w in data["warnings"])
    assert {k["variant"] for k in data["kernels"]} <= {"torch-universal", "torch-cpu", None}


def short(root: Path, repo: str) -> str:
    """`v2 (97406b2)`: how a change summary names a locked entry."""
    entry = read_lock(root / "kernels.lock").find(repo)
    assert entry is not None
    return f"v{entry.version} ({entry.commit[:7]})"


def test_lock_add_and_remove_print_what_changed(hub_env, hub_fixtures, make_project, cli) -> None:
    root = make_project(RELU_V1)
    first = cli("lock", "--project", str(root))
    assert first.exit_code == 0
    v1 = short(root, "kernels-community/relu")
    assert first.stdout.splitlines()[0] == f"+ kernels-community/relu {v1}"
    assert "`kernel-lock add kernels-community/relu --version 2` moves to it" in first.stderr

    up = cli("add", "kernels-community/relu", "--version", "2", "--project", str(root))
    assert up.exit_code == 0, up.stderr
    assert (
        "Updated kernels-community/relu from version 1 to version 2" in up.stderr and "Added" not in up.stderr
    )
    v2 = short(root, "kernels-community/relu")
    lines = up.stdout.splitlines()
    assert f"~ kernels-community/relu {v1} → {v2}" in lines
    assert any(line.startswith("+ kernels-community/activation (dependency) v1 (") for line in lines)

    same = cli("add", "kernels-community/relu", "--version", "2", "--project", str(root), "--json")
    assert same.json()["kernels"][0]["action"] == "unchanged" and same.json()["changes"] == []
    assert "already requires version 2" in same.stderr

    hub_fixtures.relu.commit(repo_files(["torch-cpu"], seed="moved"), branch="v2", message="moved on")
    moved = cli("lock", "--upgrade", "--project", str(root), "--json")
    [change] = [c for c in moved.json()["changes"] if c["repo-id"] == "kernels-community/relu"]
    assert change["change"] == "commit-moved" and change["before"] == v2
    assert change["after"] == short(root, "kernels-community/relu") != v2

    gone = cli("remove", "kernels-community/relu", "--project", str(root))
    assert gone.stdout.splitlines()[0].startswith("- kernels-community/relu v2 (")


def test_remove_of_a_kernel_still_required_says_it_stays(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V2, '"kernels-community/activation" = 1')
    assert cli("lock", "--project", str(root)).exit_code == 0
    run = cli("remove", "kernels-community/activation", "--project", str(root), "--json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["required-by"] == ["kernels-community/relu@v2"]
    text = cli("add", "kernels-community/activation", "--version", "1", "--project", str(root))
    assert "~ kernels-community/activation" in text.stdout and "now required directly" in text.stdout
    again = cli("remove", "kernels-community/activation", "--project", str(root))
    assert (
        "kernels-community/activation stays in the lock: required by kernels-community/relu@v2."
        in again.stderr
    )
    assert "now only a dependency" in again.stdout
    entry = [
        k
        for k in read_lock(root / "kernels.lock").kernel
        if k.requested_repo == "kernels-community/activation"
    ]
    assert len(entry) == 1 and not entry[0].direct


def test_lock_check_counts_every_locked_kernel(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V2)
    assert cli("lock", "--project", str(root)).exit_code == 0
    run = cli("lock", "--check", "--project", str(root))
    assert run.exit_code == 0 and "up to date (2 kernel(s);" in run.stdout  # relu and, through it, activation


def test_add_keeps_the_entrys_own_spacing_and_other_keys(hub_env, tmp_path: Path, cli) -> None:
    (tmp_path / "pyproject.toml").write_text(
        "[tool.kernels.dependencies]\n"
        '"kernels-community/relu" = {version = 1, require-signature = false}  # tight, as I like it\n'
    )
    run = cli("add", "kernels-community/relu", "--version", "2", "--project", str(tmp_path))
    assert run.exit_code == 0, run.stderr
    assert (tmp_path / "pyproject.toml").read_text() == (
        "[tool.kernels.dependencies]\n"
        '"kernels-community/relu" = {version = 2, require-signature = false}  # tight, as I like it\n'
    )
    run = cli("add", "kernels-community/activation", "--revision", "v1", "--project", str(tmp_path))
    assert run.exit_code == 0, run.stderr
    assert '"kernels-community/activation" = {revision = "v1"}\n' in (tmp_path / "pyproject.toml").read_text()


def test_show_is_marked_as_an_alias(cli) -> None:
    text = cli("--help").stdout
    assert re.search(r"^  show +Alias of `status`\.$", text, re.MULTILINE)


def test_add_errors_name_the_add_options(hub_env, make_project, tmp_path: Path, cli) -> None:
    root = make_project()
    before = (root / "pyproject.toml").read_text()
    seven = cli("add", "kernels-community/relu", "--version", "7", "--project", str(root), "--json")
    assert seven.exit_code == 2 and seven.json()["error"]["code"] == "no-such-version"
    message = seven.json()["error"]["message"]
    assert (
        "Available versions: 1, 2" in message
        and "`kernel-lock add kernels-community/relu --version 2`" in message
    )
    assert "pyproject.toml" not in message
    untrusted = cli("add", "my-org/untrusted-kernel", "--project", str(root), "--json")
    assert untrusted.json()["error"]["code"] == "untrusted-publisher"
    assert (
        "`kernel-lock add my-org/untrusted-kernel --trust-remote-code`"
        in untrusted.json()["error"]["message"]
    )
    assert (root / "pyproject.toml").read_text() == before and not (root / "kernels.lock").exists()
    trusted = cli("add", "my-org/untrusted-kernel", "--trust-remote-code", "--project", str(root))
    assert trusted.exit_code == 0, trusted.stderr
    bad = cli("add", "kernels-community/relu@", "--project", str(root))
    assert bad.exit_code == 2 and "@VERSION" in bad.stderr


def test_add_several_pinned_and_a_redirecting_repo(hub_env, make_project, cli) -> None:
    root = make_project()
    run = cli(
        "add", "kernels-community/relu@1", "kernels-community/old-relu", "--project", str(root), "--json"
    )
    assert run.exit_code == 0, run.stderr
    assert [(k["repo-id"], k["requirement"], k["action"]) for k in run.json()["kernels"]] == [
        ("kernels-community/relu", "version 1", "added"),
        ("kernels-community/old-relu", "version 2", "added"),  # the newest of the repo it redirects to
    ]
    text = (root / "pyproject.toml").read_text()
    assert '"kernels-community/relu" = 1\n"kernels-community/old-relu" = 2\n' in text
    lock = read_lock(root / "kernels.lock")
    assert lock.find("kernels-community/old-relu").redirected_from == "kernels-community/old-relu"
    both = cli("add", "kernels-community/relu@1", "--version", "2", "--project", str(root))
    assert both.exit_code == 2 and "names its version" in both.stderr


def test_versions_verbose_says_why_and_warns_about_untrusted_publishers(hub_env, cli) -> None:
    plain = cli("versions", "kernels-community/relu", "--target", CPU_VARIANT)
    assert plain.exit_code == 0 and all(line.startswith("Version ") for line in plain.stdout.splitlines())
    run = cli("versions", "kernels-community/relu", "--target", CPU_VARIANT, "--verbose")
    lines = run.stdout.splitlines()
    assert lines[0].startswith("Version 1: ") and f"  ✅ {CPU_VARIANT}: preferred" in lines
    assert any(line.endswith(": compatible") and "torch-cpu" in line for line in lines)
    assert any("torch213-cxx11-cu126-x86_64-linux: rejected (built for CUDA 12.6" in line for line in lines)
    data = cli("versions", "kernels-community/relu", "--target", CPU_VARIANT, "--json").json()
    assert data["trusted-publisher"] is True and data["warnings"] == []
    statuses = {d["variant"]: d["status"] for d in data["versions"][0]["decisions"]}
    assert statuses[CPU_VARIANT] == "preferred" and statuses["torch-cpu"] == "compatible"
    none = cli("versions", "kernels-community/relu", "--target", "torch213-cxx11-cu126-aarch64-linux")
    assert "(none fits torch 2.13 (cxx11), CUDA 12.6, aarch64-linux)" in none.stdout
    untrusted = cli("versions", "my-org/untrusted-kernel", "--json")
    assert untrusted.json()["trusted-publisher"] is False
    assert any("--trust-remote-code" in w for w in untrusted.json()["warnings"])


def test_a_typod_repo_id_gets_the_closest_kernel_of_its_organization(hub_env, make_project, cli) -> None:
    root = make_project()
    run = cli("add", "kernels-community/rleu", "--project", str(root), "--json")
    assert run.exit_code == 2 and run.json()["error"]["code"] == "repo-not-found"
    message = run.json()["error"]["message"]
    assert (
        "Did you mean kernels-community/relu?" in message
        and "`kernel-lock add kernels-community/relu`" in message
    )
    typo = make_project('"kernels-community/activaton" = 1', name="typo")
    locked = cli("lock", "--project", str(typo))
    assert "Did you mean kernels-community/activation?" in locked.stderr and "pyproject.toml" in locked.stderr
    nothing_close = cli("add", "kernels-community/zzzzzz", "--project", str(root))
    assert nothing_close.exit_code == 2 and "Did you mean" not in nothing_close.stderr
