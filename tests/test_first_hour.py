"""What a new user trips over in the first hour (issue 22), each through the CLI against the local Hub."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import click
import pytest
from test_examples import kernel_lock

from kernel_lock.core.lockfile import read_lock
from kernel_lock.testing.fixtures import CPU_VARIANT

RELU_V1 = '"kernels-community/relu" = 1'
RELU_V2 = '"kernels-community/relu" = 2'
OLD_RELU = '"kernels-community/old-relu" = 2'  # redirects to kernels-community/relu
EXIT_3 = [sys.executable, "-c", "raise SystemExit(3)"]


def test_sync_a_redirected_repo_beside_its_destination_on_an_empty_cache(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V2, OLD_RELU)
    for args in (["sync"], ["sync", "--frozen", "--target", CPU_VARIANT], ["sync", "--frozen"]):
        run = cli(*args, "--project", str(root), "--json")
        assert run.exit_code == 0, (args, run.stdout, run.stderr)
        variants = run.json()["variants"]
        assert len(variants) == 3 and all(v["status"] == "ok" for v in variants), variants
    assert cli("verify", "--project", str(root)).exit_code == 0


def test_add_says_that_a_repo_redirects(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V2)
    run = cli("add", "kernels-community/old-relu", "--no-sync", "--project", str(root), "--json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["kernels"][0]["redirects-to"] == "kernels-community/relu"
    assert "old-relu redirects to kernels-community/relu" in run.stderr


def test_add_keeps_an_existing_requirement_unless_asked(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V1)
    before = (root / "pyproject.toml").read_text()
    run = cli("add", "kernels-community/relu", "--no-sync", "--project", str(root), "--json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["kernels"][0]["action"] == "unchanged"
    assert "already requires version 1" in run.stderr and "Updated" not in run.stderr
    assert (root / "pyproject.toml").read_text() == before
    run = cli("add", "kernels-community/relu", "--upgrade", "--no-sync", "--project", str(root))
    assert run.exit_code == 0, run.stderr
    assert "from version 1 to version 2" in run.stderr
    assert RELU_V2 in (root / "pyproject.toml").read_text()
    run = cli("add", "kernels-community/relu@1", "--no-sync", "--project", str(root))
    assert run.exit_code == 0 and "from version 2 to version 1" in run.stderr


def test_add_syncs_the_new_kernel_for_this_machine_unless_no_sync(hub_env, make_project, cli) -> None:
    root = make_project()
    run = cli("add", "kernels-community/relu@2", "--project", str(root), "--json")
    assert run.exit_code == 0, run.stderr
    synced = {(v["repo-id"], v["variant"], v["status"]) for v in run.json()["variants"]}
    assert synced == {
        ("kernels-community/relu", CPU_VARIANT, "ok"),
        ("kernels-community/activation", CPU_VARIANT, "ok"),
    }
    assert cli("verify", "--project", str(root)).exit_code == 0
    run = cli("add", "kernels-community/old-relu", "--no-sync", "--project", str(root), "--json")
    assert run.exit_code == 0 and run.json()["variants"] == []


def test_a_missing_lock_is_exit_1_and_says_no_kernels_lock(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V2)
    for args in (["sync", "--locked"], ["sync", "--frozen"], ["lock", "--check"], ["status"], ["verify"]):
        run = cli(*args, "--project", str(root))
        assert run.exit_code == 1, (args, run.stderr)
        assert "no kernels.lock" in run.stderr and "Run `kernel-lock lock`" in run.stderr, (args, run.stderr)
        assert "out of date" not in run.stderr, args
    assert cli("sync", "--locked", "--project", str(root), "--json").json()["error"]["code"] == "lock-missing"


def test_outside_a_project_the_message_names_init(tmp_path, cli) -> None:
    for args in (["status"], ["verify"], ["tree"], ["lock"], ["lock", "--check"], ["sync", "--locked"]):
        run = cli(*args, "--project", str(tmp_path))
        assert run.exit_code == 2, (args, run.stderr)
        assert "`kernel-lock init`" in run.stderr, (args, run.stderr)
        assert "Run `kernel-lock lock`" not in run.stderr, (args, run.stderr)


def test_no_variant_fits_suggests_the_nearest_targets_that_fit_never_the_failing_one(
    hub_env, make_project, cli
) -> None:
    root = make_project('"kernels-community/activation" = 1')
    assert cli("lock", "--project", str(root)).exit_code == 0
    failing = "torch210-cxx11-cu128-x86_64-linux"
    run = cli("sync", "--frozen", "--target", failing, "--project", str(root), "--json")
    assert run.exit_code == 2
    message = run.json()["error"]["message"]
    assert f"--target {failing}" not in message
    suggested = re.findall(r"`--target ([^`]+)`", message)
    assert suggested[0] == "torch212-cxx11-cu128-x86_64-linux", message  # same backend, the nearest torch
    for spec in suggested:
        assert cli("sync", "--dry-run", "--frozen", "--target", spec, "--project", str(root)).exit_code == 0
    reasons = re.findall(r"^  - (\S+): (.*)$", message, flags=re.MULTILINE)
    assert [variant for variant, _ in reasons] == sorted(variant for variant, _ in reasons)
    assert dict(reasons)["torch213-metal-aarch64-darwin"] == (
        "built for Metal on aarch64-darwin, the target is x86_64-linux"
    )


def test_change_lines_name_what_changed_and_nothing_else(hub_env, make_project, cli) -> None:
    root = make_project('"kernels-community/activation" = 1', RELU_V2, OLD_RELU)
    project = ["--project", str(root)]
    assert cli("lock", *project).exit_code == 0
    for step in (
        ("add", "kernels-community/relu@1", "--no-sync"),  # relu moves; activation stays direct, untouched
        ("remove", "kernels-community/old-relu"),  # a redirected repo leaves
    ):
        run = cli(*step, *project, "--json")
        assert run.exit_code == 0, (step, run.stderr)
        document = run.json()
        assert "kernels-community/activation" not in document["updated"], (step, document["updated"])
        assert "kernels-community/activation" not in [c["repo-id"] for c in document["changes"]], step
    run = cli("lock", "--hash-type", "git_lfs_concat", *project)
    assert run.exit_code == 0 and "now required directly" not in run.stdout, run.stdout
    assert "~ kernels-community/activation v1 (6dbdb7a) (hashes now git_lfs_concat)" in run.stdout


def test_every_command_takes_the_shared_options(cli) -> None:
    from kernel_lock.cli import main

    for name, command in main.commands.items():
        commands = command.commands.values() if isinstance(command, click.Group) else [command]
        for leaf in commands:
            options = {o for p in leaf.params for o in getattr(p, "opts", [])}
            assert {"--json", "--quiet", "--verbose", "--color", "-q", "-v"} <= options, (name, leaf.name)
    run = cli("completion", "bash", "--json")
    assert run.exit_code == 0 and "_KERNEL_LOCK_COMPLETE" in run.json()["script"]


def test_shared_options_before_the_command_and_dash_capital_v(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V2)
    assert cli("lock", "--project", str(root)).exit_code == 0
    run = cli("--json", "-q", "--color", "never", "status", "--project", str(root))
    assert run.exit_code == 0 and run.json()["up-to-date"] is True
    run = cli("--json", "cache", "prune", "--dry-run", "--project", str(root))
    assert run.exit_code == 0 and run.json()["dry-run"] is True
    assert re.fullmatch(r"kernel-lock \S+\n", cli("-V").stdout)


def test_run_json_without_record_prints_a_document(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V2)
    assert cli("sync", "--project", str(root)).exit_code == 0
    run = subprocess.run(  # a process of its own: without --json, `run` replaces the process it runs in
        [sys.executable, "-m", "kernel_lock", "run", "--json", "--project", str(root), "--", *EXIT_3],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 3, run.stderr
    document = json.loads(run.stdout)
    assert document["exit-code"] == 3 and document["lockfile"] == str(root / "kernels.lock")


def test_remove_takes_several_repos(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V2, OLD_RELU, '"kernels-community/activation" = 1')
    run = cli(
        "remove", "kernels-community/old-relu", "kernels-community/relu", "--project", str(root), "--json"
    )
    assert run.exit_code == 0, run.stderr
    assert run.json()["repo-ids"] == ["kernels-community/old-relu", "kernels-community/relu"]
    assert "relu" not in (root / "pyproject.toml").read_text().replace("activation", "")


def test_force_color_and_no_color(hub_env, make_project, cli, monkeypatch) -> None:
    root = make_project(RELU_V2)
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert "\x1b[" in cli("sync", "--project", str(root)).stdout
    monkeypatch.setenv("NO_COLOR", "1")
    assert "\x1b[" not in cli("sync", "--project", str(root)).stdout


def test_one_error_style_for_usage_errors(cli) -> None:
    for args in (["--bogus"], ["status", "--bogus"], ["remove"], ["export", "--format", "yaml"]):
        run = cli(*args)
        assert run.exit_code == 2, args
        assert run.stderr.startswith("error: ") and "Error:" not in run.stderr, (args, run.stderr)
        assert "--help`" in run.stderr


def test_offline_errors_name_the_option_and_versions_blames_no_pyproject(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V2)
    run = cli("lock", "--offline", "--project", str(root))
    assert run.exit_code == 3 and "--offline was given" in run.stderr and "HF_HUB_OFFLINE" not in run.stderr
    run = cli("versions", "kernels-community/does-not-exist")
    assert run.exit_code == 2 and "not found" in run.stderr and "pyproject.toml" not in run.stderr, run.stderr


KERNELS_JSON = '[{"repo_id": "kernels-community/relu", "sha": "' + "a" * 40 + '", "variants": {}}]\n'
"""A `kernels` JSON lock (the legacy layout), as `kernels lock` writes over ours: both are named kernels.lock."""


def test_every_command_that_meets_a_kernels_json_lock_says_what_happened(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V2)
    (root / "kernels.lock").write_text(KERNELS_JSON)
    project = ["--project", str(root)]
    for args in (
        ["add", "kernels-community/activation@1"],
        ["remove", "kernels-community/relu"],
        ["lock"],
        ["lock", "--check"],
        ["sync"],
        ["sync", "--frozen"],
        ["verify"],
        ["status"],
        ["tree"],
        ["cache", "prune"],
        ["export", "--format", "kernels", "-o", str(root / "out.json")],
        ["run", "--sync"],
    ):
        command = [*args, *project, "--json"] + (["--", *EXIT_3] if args[0] == "run" else [])
        run = cli(*command)
        assert run.exit_code == 2, (args, run.stdout, run.stderr)
        message = run.json()["error"]["message"]
        assert run.json()["error"]["code"] == "lock-is-kernels-json", (args, message)
        assert "`kernels lock` overwrites ours" in message and "Nothing was changed" in message
        assert "`git restore kernels.lock`" in message and "`kernel-lock import`" in message
        assert (root / "kernels.lock").read_text() == KERNELS_JSON, args
        assert '"kernels-community/relu" = 2' in (root / "pyproject.toml").read_text(), args


def test_quiet_keeps_the_answer_and_qq_is_silent(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V2)
    project = ["--project", str(root)]
    assert cli("sync", *project).exit_code == 0
    for args in (["status"], ["tree"], ["env"]):
        quiet = cli(*args, *project[: 2 if args[0] != "env" else 0], "-q")
        assert quiet.exit_code == 0 and quiet.stdout.strip(), args  # the answer asked for
        assert quiet.stderr == "", (args, quiet.stderr)  # no target line, no notice
        silent = cli(*args, *project[: 2 if args[0] != "env" else 0], "-qq")
        assert silent.exit_code == 0 and silent.stdout == "", args
    assert "kernels-community/relu" in cli("tree", *project, "-q").stdout


def test_a_notice_shows_once_while_new_and_status_summarises_it(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V1)
    project = ["--project", str(root)]
    first = cli("lock", *project)
    assert first.exit_code == 0 and "notice: kernels-community/relu: version 1 is locked" in first.stderr
    assert "variant(s) are unsigned" in first.stderr
    again = cli("lock", "--upgrade", *project, "--json")
    assert "notice:" not in again.stderr, again.stderr
    assert any("version 2 is available" in w for w in again.json()["warnings"]), "the document keeps them"
    assert "notice:" not in cli("lock", "--upgrade", *project, "-q").stderr
    status = cli("status", *project, "--outdated")
    assert "Notice: 1 kernel(s) have unsigned variants (kernels-community/relu)" in status.stdout
    assert "Notice: newer major versions are available: kernels-community/relu 2." in status.stdout


def test_verbose_shows_requests_timings_and_decisions(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V2)
    project = ["--project", str(root)]
    run = cli("lock", *project, "-v")
    assert "HTTP Request: GET" in run.stderr and re.search(r"lock took \d+\.\d\ds", run.stderr)
    assert "kernels-community/relu@v2: v2 -> " in run.stderr
    run = cli("sync", *project, "-v")
    assert (
        f"✅ {CPU_VARIANT}: preferred" in run.stderr
        and "✗  torch213-metal-aarch64-darwin: rejected" in run.stderr
    )
    assert "HTTP Request: GET" in run.stderr
    assert "KERNEL_LOCK_TARGET: " + CPU_VARIANT in cli("env", "-v").stderr


ROOT = Path(__file__).resolve().parent.parent


def test_install_lines_install_what_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    install = readme[readme.index("## Install") : readme.index("## Try it offline")]
    assert "pip wheel --no-deps -w dist" in install and "pip install ./kernel-lock" in install
    for dockerfile in (ROOT / "examples").glob("*/Dockerfile"):
        text = dockerfile.read_text()
        assert "pip wheel --no-deps -w wheels" in text, dockerfile
        for line in text.splitlines():
            if line.startswith("RUN pip install"):
                assert "kernel_lock-*.whl" in line and " kernel-lock" not in line, (dockerfile, line)


def test_the_demo_hub_serves_the_readme_walkthrough(tmp_path, monkeypatch) -> None:
    server = subprocess.Popen(
        [sys.executable, "-m", "kernel_lock.testing", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = re.search(r"Local Hub at (http://127\.0\.0\.1:\d+)", server.stdout.readline())
        assert url, "the first line names the endpoint"
        env = {
            **os.environ,
            "HF_ENDPOINT": url[1],
            "HF_HUB_CACHE": str(tmp_path / "cache"),
            "HF_HOME": str(tmp_path / "home"),
            "KERNEL_LOCK_TARGET": CPU_VARIANT,
        }
        demo = tmp_path / "demo"
        demo.mkdir()
        for args in (["init"], ["add", "kernels-community/relu"]):
            kernel_lock(*args, env=env, cwd=demo)
        assert "verified" in kernel_lock("status", env=env, cwd=demo)
        assert "kernels-community/activation" in kernel_lock("tree", env=env, cwd=demo)
    finally:
        server.terminate()
        server.wait(timeout=30)


def python(program: Path) -> list[str]:
    return [sys.executable, str(program)]


def _kernels_enforceable() -> bool:
    """Whether the installed `kernels` is one enforcement hooks (its tests need a real enforced load)."""
    from importlib.metadata import PackageNotFoundError, version

    from kernel_lock.enforcement import SUPPORTED_KERNELS

    try:
        major, minor = (int(part) for part in version("kernels").split(".")[:2])
    except PackageNotFoundError:
        return False
    return (major, minor) in SUPPORTED_KERNELS


def test_run_refuses_a_stale_lock_naming_lock_and_frozen_runs_anyway(
    hub_env, make_project, cli, tmp_path
) -> None:
    root = make_project(RELU_V2)
    project = ["--project", str(root)]
    assert cli("sync", *project).exit_code == 0
    make_project()  # the kernel is removed from pyproject.toml; the lock still holds it
    marker = tmp_path / "ran"
    touch = [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]
    run = cli("run", "--json", *project, "--", *touch)
    assert run.exit_code == 1 and run.json()["error"]["code"] == "lock-out-of-date"
    assert "Run `kernel-lock lock`" in run.json()["error"]["message"] and not marker.exists()
    assert cli("run", "--json", "--frozen", *project, "--", *touch).exit_code == 0 and marker.exists()


def test_run_sync_locks_a_stale_lock_first(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V1)
    project = ["--project", str(root)]
    assert cli("lock", *project).exit_code == 0
    make_project(RELU_V1, '"kernels-community/activation" = 1')
    run = cli("run", "--sync", "--json", *project, "--", *EXIT_3)
    assert run.exit_code == 3, run.stderr
    assert read_lock(root / "kernels.lock").find("kernels-community/activation") is not None
    assert cli("lock", "--check", *project).exit_code == 0


def test_run_record_locks_a_missing_lock_and_says_what_it_recorded(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V2)
    run = cli("run", "--record", "--project", str(root), "--", *EXIT_3)
    assert run.exit_code == 3, run.stderr
    assert "Recorded: 0 kernel(s) asked for; nothing new." in run.stderr
    assert "Wrote " in run.stdout and cli("lock", "--check", "--project", str(root)).exit_code == 0


@pytest.mark.skipif(not _kernels_enforceable(), reason="enforcement does not hook this kernels release")
def test_not_locked_but_declared_names_kernel_lock_lock(hub_env, make_project, cli, tmp_path) -> None:
    root = make_project(RELU_V2)
    assert cli("sync", "--project", str(root)).exit_code == 0
    make_project(RELU_V2, ['"kernels-community/relu" = 2', '"kernels-community/old-relu" = 2'][1])
    program = tmp_path / "prog.py"
    program.write_text('import kernels\nkernels.get_kernel("kernels-community/old-relu", version=2)\n')
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "kernel_lock",
            "run",
            "--frozen",
            "--project",
            str(root),
            "--",
            *python(program),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert proc.returncode != 0 and "NotLockedError" in proc.stderr
    assert "Run `kernel-lock lock`" in proc.stderr and "kernel-lock add" not in proc.stderr
