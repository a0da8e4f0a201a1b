"""Where kernels live in the Hugging Face cache, and where kernel-lock keeps its records beside them.

No pydantic and nothing heavy: the quick load path (`kernel_lock.quickload`) needs only these.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from kernel_lock import env
from kernel_lock.fsutil import first_shared, writable_by_others

__all__ = [
    "RECORD_DIR",
    "blob_path",
    "first_shared",
    "first_unsafe_folder",
    "hub_cache_dir",
    "record_path",
    "record_trusted",
    "repo_dir",
    "variant_dir",
    "writable_by_others",
    "writable_in_cache",
]

RECORD_DIR = ".kernel-lock"


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, resolved from the environment as `huggingface_hub` does."""
    return env.hub_cache()


def repo_dir(repo_id: str, cache: Path | None = None) -> Path:
    """The cache folder of a kernel repo: `kernels--{org}--{name}`."""
    return (cache or hub_cache_dir()) / ("kernels--" + repo_id.replace("/", "--"))


def variant_dir(repo_id: str, commit: str, variant: str, cache: Path | None = None) -> Path:
    """The snapshot folder of one variant at one commit."""
    return repo_dir(repo_id, cache) / "snapshots" / commit / "build" / variant


def blob_path(repo_id: str, name: str, cache: Path | None = None) -> Path:
    """Where a file's content lives, named by its hash (git blob id, or LFS sha256), as `huggingface_hub` names it."""
    return repo_dir(repo_id, cache) / "blobs" / name


def record_path(repo_id: str, commit: str, variant: str, cache: Path | None = None) -> Path:
    """Where the `VariantRecord` of a synced variant lives."""
    return repo_dir(repo_id, cache) / RECORD_DIR / commit / f"{variant}.json"


def first_unsafe_folder(base: Path, path: Path) -> Path | None:
    """The first folder from `base` (exclusive) down to `path` (inclusive) that is a symlink or not a folder.

    A snapshot or variant folder replaced by a symlink (to a copy outside the cache, say) is refused like a
    symlinked file is. None when every one is a real folder or does not exist yet.
    """
    current = str(base)  # joined as text: the quick load path calls this three times per load
    for part in path.relative_to(base).parts:
        current = os.path.join(current, part)
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return None
        if not stat.S_ISDIR(mode):
            return Path(current)
    return None


def writable_in_cache(path: Path) -> bool:
    """Whether writing `path` (under the hub cache) stays inside it: no folder on the way is a symlink or a file.

    The optimisation caches kept beside the snapshots are skipped rather than written through a planted link.
    """
    return first_unsafe_folder(hub_cache_dir(), path.parent) is None


def record_trusted(repo_id: str, commit: str, variant: str, cache: Path | None = None) -> bool:
    """Whether a variant's sync record may spare its files a hash: no one but this user and root can change
    the record, the variant folder or the blobs folder, nor any folder from the cache root down to them
    (`first_shared`).

    Otherwise (a team cache that a group can write, a record another user wrote) the record's fingerprints
    vouch for nothing: whoever can rewrite it could record the fingerprint of any file, an older build's blob
    say. Its manifest is still authenticated by the lock's variant hash, so every file is then hashed.
    """
    root = cache or hub_cache_dir()
    paths = (
        record_path(repo_id, commit, variant, root),
        variant_dir(repo_id, commit, variant, root),
        blob_path(repo_id, "", root),
    )
    return all(first_shared(root, p) is None for p in paths)
