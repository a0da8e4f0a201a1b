"""`kernel-lock cache prune`: what no given lock uses goes; what any of them uses stays and still verifies."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from kernel_lock.core.cache_layout import hub_cache_dir
from kernel_lock.core.lockfile import read_lock
from kernel_lock.testing.fixtures import CPU_VARIANT


def snapshot_state() -> dict[str, object]:
    """Every path under the kernel repositories of the cache (links as their targets)."""
    found: dict[str, object] = {}
    for path in sorted(hub_cache_dir().glob("kernels--*/**/*")):
        rel = str(path.relative_to(hub_cache_dir()))
        found[rel] = (
            str(path.readlink()) if path.is_symlink() else path.stat().st_size if path.is_file() else "dir"
        )
    return found


def test_prune_keeps_what_any_lock_uses(hub_env, make_project, cli) -> None:
    old = make_project('"kernels-community/relu" = 1', name="old")
    new = make_project('"kernels-community/relu" = 2', name="new")
    for root in (old, new):
        assert cli("sync", "--project", str(root), "--target", CPU_VARIANT).exit_code == 0
    assert cli("sync", "--project", str(new), "--variant", "torch-cpu").exit_code == 0
    relu_v1 = read_lock(old / "kernels.lock").find("kernels-community/relu")

    both = cli("cache", "prune", "--project", str(old), "--project", str(new), "--json")
    assert both.exit_code == 0 and both.json()["removed"] == [] and both.json()["blobs"] == 0

    before = snapshot_state()
    dry = cli("cache", "prune", "--project", str(new), "--dry-run", "--json")
    assert dry.exit_code == 0 and snapshot_state() == before, "a dry run removes nothing"
    assert [(r["repo-id"], r["commit"], r["variant"]) for r in dry.json()["removed"]] == [
        ("kernels-community/relu", relu_v1.commit, None)
    ]
    assert dry.json()["blobs"] > 0 and dry.json()["freed-bytes"] > 0

    run = cli("cache", "prune", "--project", str(new), "--json")
    assert run.exit_code == 0, run.stderr
    assert {k: v for k, v in run.json().items() if k != "dry-run"} == {
        k: v for k, v in dry.json().items() if k != "dry-run"
    }, "the dry run said what would happen"
    relu_repo = hub_cache_dir() / "kernels--kernels-community--relu"
    assert not (relu_repo / "snapshots" / relu_v1.commit).exists()
    assert not (relu_repo / ".kernel-lock" / relu_v1.commit).exists()
    assert cli("verify", "--project", str(new), "--target", CPU_VARIANT, "--full").exit_code == 0
    assert cli("verify", "--project", str(new), "--variant", "torch-cpu", "--full").exit_code == 0
    assert cli("verify", "--project", str(old), "--target", CPU_VARIANT).exit_code == 4, (
        "the old commit is gone"
    )


def test_prune_removes_variants_the_lock_no_longer_lists(hub_env, make_project, cli) -> None:
    root = make_project('"kernels-community/relu" = 2')
    assert cli("sync", "--project", str(root), "--target", CPU_VARIANT).exit_code == 0
    entry = read_lock(root / "kernels.lock").find("kernels-community/relu")
    stray = (
        hub_cache_dir()
        / "kernels--kernels-community--relu"
        / "snapshots"
        / entry.commit
        / "build"
        / "torch-gone"
    )
    stray.mkdir()
    (stray / "x.py").write_text("pass\n")
    run = cli("cache", "prune", "--project", str(root))
    assert (
        run.exit_code == 0
        and f"removed kernels-community/relu {entry.commit[:12]} variant torch-gone" in run.stdout
    )
    assert (
        not stray.exists()
        and cli("verify", "--project", str(root), "--target", CPU_VARIANT, "--full").exit_code == 0
    )


def test_prune_without_a_lock_is_an_error(tmp_path: Path, cli) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.kernels.dependencies]\n")
    run = cli("cache", "prune", "--project", str(tmp_path), "--json")
    assert run.exit_code == 1 and run.json()["error"]["code"] == "lock-missing"


GONE = "f" * 40  # a commit no lock holds


def tree(root: Path) -> dict[str, object]:
    """Every path under `root`, with file contents and link targets."""
    return {
        str(p.relative_to(root)): (
            str(p.readlink()) if p.is_symlink() else p.read_bytes() if p.is_file() else "dir"
        )
        for p in sorted(root.rglob("*"))
    }


def planted(name: str, repo: Path, commit: str, elsewhere: Path) -> None:
    """Link a folder of the cached repo to `elsewhere`, which holds what prune would remove through the link."""

    def link(path: Path) -> None:
        if path.exists():
            shutil.rmtree(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(elsewhere, target_is_directory=True)

    (repo / "snapshots" / GONE / "build" / "torch-cpu").mkdir(parents=True)  # pruned: its records and refs go
    (repo / "snapshots" / commit / "build" / "torch-gone").mkdir()  # a variant no lock lists: pruned
    if name == "snapshots":  # a commit "in" the snapshots folder: the whole folder outside
        (elsewhere / GONE).mkdir()
        (elsewhere / GONE / "keep.txt").write_text("keep\n")
        link(repo / "snapshots")
    elif name == "records":  # the record folder of the pruned commit: through a linked .kernel-lock
        (elsewhere / GONE).mkdir()
        (elsewhere / GONE / "torch-cpu.json").write_text("keep\n")
        link(repo / ".kernel-lock")
    elif name == "commit-records":  # the record of the pruned variant: through a linked commit record folder
        (elsewhere / "torch-gone.json").write_text("keep\n")
        link(repo / ".kernel-lock" / commit)
    elif name == "refs":  # a ref naming the pruned commit: through a linked refs folder
        (elsewhere / "main").write_text(GONE)
        link(repo / "refs")
    elif name == "snapshot":  # the pruned variant: through a linked snapshot of the locked commit
        (elsewhere / "build" / "torch-gone").mkdir(parents=True)
        (elsewhere / "build" / "torch-gone" / "keep.py").write_text("keep\n")
        link(repo / "snapshots" / commit)
    elif name == "blobs":
        (elsewhere / ("0" * 40)).write_text("keep\n")
        link(repo / "blobs")


@pytest.mark.parametrize("name", ["snapshots", "records", "commit-records", "refs", "snapshot", "blobs"])
def test_prune_touches_nothing_outside_the_cache_through_a_link(
    hub_env, make_project, cli, tmp_path, name: str
) -> None:
    root = make_project('"kernels-community/relu" = 2')
    assert cli("sync", "--project", str(root), "--target", CPU_VARIANT).exit_code == 0
    entry = read_lock(root / "kernels.lock").find("kernels-community/relu")
    repo = hub_cache_dir() / "kernels--kernels-community--relu"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    planted(name, repo, entry.commit, elsewhere)
    before = tree(elsewhere)
    for args in (("--dry-run",), ()):
        run = cli("cache", "prune", "--project", str(root), *args)
        assert run.exit_code == 0, run.stderr
        assert tree(elsewhere) == before, f"prune {args} changed what a link in the cache leads to"
    assert elsewhere.is_dir()
