"""`kernel-lock cache prune`: remove the kernel commits and variants that no given project's lock uses.

Only kernel repositories (`kernels--*`) in the Hugging Face cache are touched. A snapshot of a commit
no lock holds goes whole (with its records and refs naming it); of a locked commit, only the
`build/<variant>` folders (and records) of variants the lock does not list. A blob goes once no
remaining snapshot file links to it. Nothing is followed through a symlinked folder: whatever a link in
the cache leads to (a `snapshots/`, `.kernel-lock/`, `refs/`, `blobs/` or commit folder replaced by a link,
in a cache others can write) is neither read nor removed, and a repo whose `snapshots/` is a link is left
whole, since which blobs it still needs is not known.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from kernel_lock.cache.writes import remove_in_cache
from kernel_lock.core.cache_layout import RECORD_DIR, first_unsafe_folder, hub_cache_dir
from kernel_lock.core.lockfile import Lock


@dataclass(frozen=True)
class Pruned:
    """One thing removed: a whole commit of a repo (`variant` None), or one variant of a commit."""

    repo_id: str
    commit: str
    variant: str | None


@dataclass
class PruneResult:
    """What `prune_cache` removed (or, on a dry run, would remove), and the bytes of blobs freed."""

    removed: list[Pruned] = field(default_factory=list)
    blobs: int = 0
    freed_bytes: int = 0


def _kept(locks: Iterable[Lock]) -> dict[str, dict[str, set[str]]]:
    """repo id -> commit -> variants, over every entry of every lock."""
    kept: dict[str, dict[str, set[str]]] = {}
    for lock in locks:
        for entry in lock.kernel:
            kept.setdefault(entry.repo_id, {}).setdefault(entry.commit, set()).update(entry.variants)
    return kept


def _remove(cache: Path, path: Path, dry_run: bool) -> bool:
    """Remove `path` (nothing, on a dry run) unless a folder on its way from the cache is a link: whether it goes."""
    if first_unsafe_folder(cache, path.parent) is not None:
        return False
    return dry_run or remove_in_cache(cache, path)


def _real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


def _linked_blobs(snapshots: Path, skip: set[Path]) -> set[str]:
    """Names of the blobs that files under `snapshots` link to, outside the folders in `skip`."""
    names = set()
    for folder, dirs, files in os.walk(snapshots):
        dirs[:] = [d for d in dirs if Path(folder) / d not in skip]
        for name in [*files, *dirs]:
            path = Path(folder) / name
            if path.is_symlink():
                names.add(os.path.basename(os.readlink(path)))
    return names


def prune_cache(locks: Iterable[Lock], *, cache: Path | None = None, dry_run: bool = False) -> PruneResult:
    """Remove what no lock in `locks` uses from the kernel repositories of the cache (nothing, on a dry run)."""
    cache = cache or hub_cache_dir()
    kept = _kept(locks)
    result = PruneResult()
    for repo in sorted(cache.glob("kernels--*--*")):
        snapshots, records = repo / "snapshots", repo / RECORD_DIR
        if first_unsafe_folder(cache, snapshots) is not None:  # the repo or its snapshots folder is a link
            continue
        repo_id = repo.name.removeprefix("kernels--").replace("--", "/", 1)
        commits = kept.get(repo_id, {})
        gone_commits = set()
        skip: set[Path] = set()
        for snapshot in sorted(snapshots.iterdir()) if snapshots.is_dir() else []:
            commit = snapshot.name
            if commit not in commits:
                if _remove(cache, snapshot, dry_run):
                    result.removed.append(Pruned(repo_id, commit, None))
                    gone_commits.add(commit)
                    skip.add(snapshot)
                    _remove(cache, records / commit, dry_run)
                continue
            build = snapshot / "build"
            for variant in sorted(build.iterdir()) if _real_dir(snapshot) and _real_dir(build) else []:
                if variant.name not in commits[commit] and _remove(cache, variant, dry_run):
                    result.removed.append(Pruned(repo_id, commit, variant.name))
                    skip.add(variant)
                    _remove(cache, records / commit / f"{variant.name}.json", dry_run)
        refs = repo / "refs"
        for ref in refs.rglob("*") if _real_dir(refs) else []:
            plain = first_unsafe_folder(cache, ref.parent) is None and ref.is_file() and not ref.is_symlink()
            if plain and ref.read_text(encoding="utf-8", errors="replace").strip() in gone_commits:
                _remove(cache, ref, dry_run)
        blobs = repo / "blobs"
        if _real_dir(blobs):
            still = _linked_blobs(snapshots, skip) if snapshots.is_dir() else set()
            for blob in sorted(blobs.iterdir()):
                if blob.name not in still and blob.is_file() and not blob.is_symlink():
                    size = blob.stat().st_size
                    if _remove(cache, blob, dry_run):
                        result.blobs += 1
                        result.freed_bytes += size
        if not dry_run and not (snapshots.is_dir() and any(snapshots.iterdir())):
            remove_in_cache(cache, repo)
    return result
