"""The everyday commands: init, tree, completion, --dry-run, --offline, --version, and the generated reference."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from kernel_lock import __version__
from kernel_lock.cli import doc as clidoc
from kernel_lock.core.cache_layout import hub_cache_dir
from kernel_lock.core.lockfile import read_lock
from kernel_lock.testing.fixtures import CPU_VARIANT

ROOT = Path(__file__).resolve().parent.parent
RELU_V2 = '"kernels-community/relu" = 2'  # relu v2 depends on activation v1


def test_the_command_reference_is_current() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert clidoc.readme(readme) == readme, (
        "README.md's reference is stale: run `python -m kernel_lock.cli.doc`"
    )
    assert (ROOT / "docs" / "cli.md").read_text(encoding="utf-8") == clidoc.reference(), (
        "docs/cli.md is stale: run `python -m kernel_lock.cli.doc`"
    )
    for name in ("init", "add", "lock", "sync", "tree", "completion", "env"):
        assert f"`kernel-lock {name} " in readme


def test_version(cli) -> None:
    run = cli("--version")
    assert run.exit_code == 0 and run.stdout == f"kernel-lock {__version__}\n"


def test_init_creates_or_adds_the_table_and_keeps_the_rest(tmp_path: Path, cli) -> None:
    fresh = tmp_path / "fresh"
    run = cli("init", "--project", str(fresh), "--json")
    assert run.exit_code == 0 and run.json()["action"] == "created"
    assert (fresh / "pyproject.toml").read_text() == "[tool.kernels.dependencies]\n"
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "pyproject.toml").write_text('[project]\nname = "x"  # mine\n')
    assert cli("init", "--project", str(existing)).exit_code == 0
    assert (existing / "pyproject.toml").read_text() == (
        '[project]\nname = "x"  # mine\n\n[tool.kernels.dependencies]\n'
    )
    again = cli("init", "--project", str(existing), "--json")
    assert again.json()["action"] == "unchanged" and "nothing to do" in again.stderr
    (existing / "pyproject.toml").write_text("[project\n")
    bad = cli("init", "--project", str(existing))
    assert bad.exit_code == 2 and (existing / "pyproject.toml").read_text() == "[project\n"


def test_tree_and_inverted_tree(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V2, '"kernels-community/activation" = 1')
    assert cli("lock", "--project", str(root)).exit_code == 0
    lines = cli("tree", "--project", str(root)).stdout.splitlines()
    assert lines[0].startswith("kernels-community/activation v1 (")
    relu = lines.index(next(line for line in lines if line.startswith("kernels-community/relu v2 (")))
    assert (
        lines[relu + 1].startswith("└── kernels-community/activation v1 (")
        and "[variants: " in lines[relu + 1]
    )
    data = cli("tree", "--invert", "--project", str(root), "--json").json()
    activation = next(n for n in data["kernels"] if n["key"] == "kernels-community/activation@v1")
    assert [c["key"] for c in activation["children"]] == ["kernels-community/relu@v2"]
    assert activation["children"][0]["variants"], "the edge names the variants that require it"


def test_lock_and_sync_dry_run_write_and_fetch_nothing(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V2)
    dry = cli("lock", "--dry-run", "--project", str(root), "--json")
    assert dry.exit_code == 0 and dry.json()["dry-run"] is True and dry.json()["written"] is False
    assert [c["change"] for c in dry.json()["changes"]] == ["added", "added"]
    assert not (root / "kernels.lock").exists()
    sync = cli("sync", "--dry-run", "--project", str(root), "--target", CPU_VARIANT)
    assert sync.exit_code == 0, sync.stderr
    assert (
        f"would fetch kernels-community/relu {CPU_VARIANT}" in sync.stdout
        and "nothing was written" in sync.stdout
    )
    assert not (root / "kernels.lock").exists() and not list(hub_cache_dir().glob("kernels--*/snapshots"))
    assert cli("sync", "--project", str(root), "--target", CPU_VARIANT).exit_code == 0
    again = cli("sync", "--dry-run", "--project", str(root), "--target", CPU_VARIANT, "--json")
    assert {v["status"] for v in again.json()["variants"]} == {"ok"}


def test_offline_makes_no_request(hub_env, make_project, cli) -> None:
    root = make_project(RELU_V2)
    hub_env.clear_log()
    run = cli("lock", "--offline", "--project", str(root), "--json")
    assert run.exit_code == 3 and "--offline was given" in run.json()["error"]["message"]
    assert hub_env.requests == [] and not (root / "kernels.lock").exists()
    assert cli("lock", "--project", str(root)).exit_code == 0, "--offline does not outlive its command"
    assert read_lock(root / "kernels.lock").find("kernels-community/relu") is not None


def test_completion_scripts() -> None:
    for shell, marker in (("bash", "complete -o"), ("zsh", "compdef"), ("fish", "complete --no-files")):
        run = subprocess.run(
            [sys.executable, "-m", "kernel_lock", "completion", shell],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0 and marker in run.stdout and "_KERNEL_LOCK_COMPLETE" in run.stdout
