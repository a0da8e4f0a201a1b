"""The rest of the command line: versions, add/remove, status, migration notices, output conventions."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from kernel_lock.core.lockfile import read_lock
from kernel_lock.testing import repo_files
from kernel_lock.testing.fixtures import CPU_VARIANT

ELABORATE = """\
# A project with opinions about formatting.
[project]
name    = "elaborate"     # aligned
version = "0.1.0"
dependencies = [
  "torch",   # the usual
]

[tool.ruff]
line-length = 120
  [tool.ruff.lint]
  select = ["E", "F"]

[tool.kernels.dependencies]
# the kernels we use
"kernels-community/activation" = 1   # activation functions

[tool.something-else]
keep = { me = "as I am" }
"""


def test_versions_text_and_json(hub_env, cli) -> None:
    run = cli("versions", "kernels-community/relu", "--target", CPU_VARIANT)
    assert run.exit_code == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0].startswith("Version 1: torch-cpu, torch-stable-abi210-cu128-x86_64-linux, ")
    assert f"{CPU_VARIANT} ✅" in lines[0] and lines[1].startswith("Version 2: ")
    data = cli(
        "versions", "kernels-community/old-relu", "--json", "--target", "torch213-cxx11-cu126-x86_64-linux"
    ).json()
    assert data["repo-id"] == "kernels-community/relu"
    assert [v["version"] for v in data["versions"]] == [1, 2]
    assert data["versions"][0]["selected"] == "torch213-cxx11-cu126-x86_64-linux"
    assert data["versions"][0]["variants"] == sorted(data["versions"][0]["variants"])


def test_version_zero_is_labelled_unstable(hub_env, hub_fixtures, cli) -> None:
    hub_fixtures.activation.commit(
        repo_files(["torch-cpu"], name="activation", seed="v0"), branch="v0", message="alpha"
    )
    run = cli("versions", "kernels-community/activation")
    assert run.stdout.splitlines()[0].startswith("Version 0 (unstable")


def test_add_and_remove_keep_everything_else_byte_for_byte(hub_env, tmp_path: Path, cli) -> None:
    root = tmp_path / "elaborate"
    root.mkdir()
    (root / "pyproject.toml").write_text(ELABORATE)
    run = cli("add", "kernels-community/relu", "--project", str(root))
    assert run.exit_code == 0, run.stderr
    added = (root / "pyproject.toml").read_text()
    assert added == ELABORATE.replace(
        '"kernels-community/activation" = 1   # activation functions\n',
        '"kernels-community/activation" = 1   # activation functions\n"kernels-community/relu" = 2\n',
    )
    lock = read_lock(root / "kernels.lock")
    assert lock.find("kernels-community/relu").version == 2  # the newest major, written explicitly
    run = cli("add", "kernels-community/relu", "--version", "1", "--project", str(root))
    assert run.exit_code == 0
    assert '"kernels-community/relu" = 1\n' in (root / "pyproject.toml").read_text()
    run = cli("remove", "kernels-community/relu", "--project", str(root), "--json")
    assert run.exit_code == 0 and run.json()["removed"] == ["kernels-community/relu"]
    assert (root / "pyproject.toml").read_text() == ELABORATE
    assert [k.requested_repo for k in read_lock(root / "kernels.lock").kernel] == [
        "kernels-community/activation"
    ]


def test_add_that_cannot_resolve_writes_nothing(hub_env, tmp_path: Path, cli) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "pyproject.toml").write_text(ELABORATE)
    run = cli("add", "kernels-community/does-not-exist", "--project", str(root))
    assert run.exit_code == 2 and "not found" in run.stderr
    run = cli("add", "kernels-community/relu", "--version", "7", "--project", str(root))
    assert run.exit_code == 2 and "Available versions: 1, 2" in run.stderr
    assert (root / "pyproject.toml").read_text() == ELABORATE
    assert not (root / "kernels.lock").exists()
    run = cli("remove", "kernels-community/relu", "--project", str(root))
    assert run.exit_code == 2 and "nothing to remove" in run.stderr


def test_add_to_a_project_without_a_kernels_table(hub_env, tmp_path: Path, cli) -> None:
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "bare"\n')
    assert cli("add", "kernels-community/activation", "--project", str(tmp_path)).exit_code == 0
    assert (tmp_path / "pyproject.toml").read_text() == (
        '[project]\nname = "bare"\n\n[tool.kernels.dependencies]\n"kernels-community/activation" = 1\n'
    )


def test_status_rows_text_json_and_outdated(hub_env, hub_fixtures, make_project, cli) -> None:
    root = make_project('"kernels-community/relu" = 1', '"kernels-community/old-relu" = 2')
    assert cli("lock", "--project", str(root)).exit_code == 0
    assert cli("sync", "--project", str(root), "--variant", "torch-cpu").exit_code == 0
    run = cli("status", "--project", str(root), "--target", CPU_VARIANT)
    assert run.exit_code == 0, run.stderr
    lines = [line for line in run.stdout.splitlines() if not line.startswith("Notice: ")]
    relu = next(line for line in lines if line.startswith("kernels-community/relu "))
    assert re.match(rf"kernels-community/relu +version 1  [0-9a-f]{{12}}  {CPU_VARIANT}  missing", relu)
    assert len({line.index(" version ") for line in lines}) == 1, "the columns line up"
    assert "Target: torch 2.13 (cxx11), CPU, x86_64-linux (from --target)" in run.stderr
    data = cli("show", "--project", str(root), "--cpu", "--torch", "2.13", "--json").json()
    rows = {(r["repo-id"], r["requirement"]): r for r in data["kernels"]}
    assert rows[("kernels-community/activation", "version 1")]["direct"] is False
    assert rows[("kernels-community/relu", "version 1")]["variant"] == CPU_VARIANT
    hub_fixtures.relu.commit(repo_files(["torch-cpu"], seed="newer"), branch="v1", message="newer")
    run = cli("status", "--project", str(root), "--outdated", "--json")
    assert run.exit_code == 1
    relu = next(
        r for r in run.json()["kernels"] if r["requirement"] == "version 1" and r["repo-id"].endswith("/relu")
    )
    assert relu["newer-version"] == 2 and relu["newer-commit"] == hub_fixtures.relu.branches["v1"]


def test_status_names_the_target_no_variant_fits(hub_env, make_project, cli) -> None:
    root = make_project('"kernels-community/relu" = 2')
    assert cli("lock", "--project", str(root)).exit_code == 0
    run = cli("status", "--project", str(root), "--target", "torch213-cxx11-cu126-aarch64-linux", "--json")
    assert run.exit_code == 0, run.stderr
    row = next(r for r in run.json()["kernels"] if r["repo-id"] == "kernels-community/relu")
    assert row["variant"] is None
    assert row["variant-error"] == (
        "No build variant of kernels-community/relu fits torch 2.13 (cxx11), CUDA 12.6, aarch64-linux"
    )


def test_function_repository_notice(hub_env, make_project, cli) -> None:
    root = make_project('"kernels-community/activation" = 1')
    (root / "model.py").write_text(
        "from kernels import LockedFuncRepository\nrepo = LockedFuncRepository('x')\n"
    )
    run = cli("lock", "--project", str(root))
    assert run.exit_code == 0
    assert "function repositories (model.py:1, model.py:2)" in run.stderr and "as a layer" in run.stderr


def test_unknown_upgrade_package_is_an_input_error(hub_env, make_project, cli) -> None:
    root = make_project('"kernels-community/activation" = 1')
    run = cli("lock", "-P", "kernels-community/nope", "--project", str(root))
    assert run.exit_code == 2 and "not in [tool.kernels.dependencies]" in run.stderr


def test_quiet_json_and_no_traceback_in_a_real_process(hub_env, make_project) -> None:
    root = make_project('"kernels-community/activation" = 1')
    quiet = subprocess.run(
        [sys.executable, "-m", "kernel_lock", "lock", "-q", "--project", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert quiet.returncode == 0 and quiet.stdout == ""
    bad = subprocess.run(
        [sys.executable, "-m", "kernel_lock", "verify", "--json", "--project", str(root / "nowhere")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and '"error"' in bad.stdout and "Traceback" not in bad.stderr


def test_export_and_import_commands(hub_env, make_project, tmp_path: Path, cli) -> None:
    root = make_project('"kernels-community/relu" = 2')
    assert cli("lock", "--project", str(root)).exit_code == 0
    exported = tmp_path / "kernels.json"
    run = cli("export", "--format", "kernels", "-o", str(exported), "--project", str(root))
    assert (
        run.exit_code == 0
        and exported.read_text() == cli("export", "--format", "kernels", "--project", str(root)).stdout
    )
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / "pyproject.toml").write_text('[project]\nname = "fresh"\n')
    run = cli("import", str(exported), "--project", str(fresh), "--json")
    assert run.exit_code == 0, run.stderr
    assert run.json()["added-dependencies"] == {"kernels-community/relu": "version 2"}
    assert (fresh / "kernels.lock").read_text() == (root / "kernels.lock").read_text()
    (tmp_path / "bad.json").write_text("{not json")
    bad = cli("import", str(tmp_path / "bad.json"), "--project", str(fresh))
    assert bad.exit_code == 2 and "Traceback" not in bad.stderr
