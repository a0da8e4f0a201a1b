"""Where kernels live in the Hugging Face cache, and where kernel-lock keeps its records beside them.

No pydantic and nothing heavy: the quick load path (`kernel_lock.load._fast`) needs only these.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

from kernel_lock import env
from kernel_lock.core.fsutil import first_shared

__all__ = [
    "RECORD_DIR",
    "blob_path",
    "cache_file_lock",
    "first_unsafe_folder",
    "hub_cache_dir",
    "record_path",
    "record_trusted",
    "remove_in_cache",
    "repo_dir",
    "variant_dir",
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


def remove_in_cache(base: Path, path: Path, *, only_a_folder: bool = False) -> bool:
    """Remove `path` under `base` (a folder with all in it, or a file or link itself), never through a link.

    Each folder on the way from `base` is opened without following links, so a `snapshots/`, `.kernel-lock/`
    or commit folder that someone replaced by a symlink leads nowhere: False, and nothing is touched. A folder
    goes by `shutil.rmtree`, which removes links inside it, never what they lead to. True once `path` is gone
    (or, with `only_a_folder`, is no folder: a file there, a blob say, is left as it is).
    """
    parts = path.relative_to(base).parts
    if os.name != "posix":
        if first_unsafe_folder(base, path.parent) is not None:
            return False
        _remove_entry(str(path), None, only_a_folder=only_a_folder)
        return True
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            try:
                child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                return True
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    return False
                raise
            os.close(fd)
            fd = child
        _remove_entry(parts[-1], fd, path, only_a_folder=only_a_folder)
        return True
    finally:
        os.close(fd)


def _remove_entry(
    name: str, dir_fd: int | None, path: Path | None = None, *, only_a_folder: bool = False
) -> None:
    """Remove the entry `name` of the folder `dir_fd` (a link or file itself, unless `only_a_folder`; a folder
    with all in it)."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):
        if not only_a_folder:
            os.unlink(name, dir_fd=dir_fd)
    elif sys.version_info >= (3, 11) and dir_fd is not None:
        shutil.rmtree(name, dir_fd=dir_fd)
    else:  # Python 3.10 has no rmtree(dir_fd=): the folders above were checked a moment ago
        shutil.rmtree(path or name)


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


@contextlib.contextmanager
def cache_file_lock(path: Path) -> Iterator[None]:
    """Hold the file lock at `path` in the cache, never opened through something planted there.

    Whoever can write a shared cache could put a symlink (or a hard link, a FIFO) where the lock file goes, and
    opening the lock would then create, truncate or block on another file. Such an entry is removed first;
    filelock opens with `O_NOFOLLOW` (3.20.1 on), so a link planted again in between fails rather than leads
    elsewhere, and the next try removes it too.
    """
    from filelock import FileLock

    from kernel_lock.errors import CacheError

    problem: OSError | None = None
    for _ in range(3):
        lock = FileLock(str(path))
        try:
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(path)
                if not stat.S_ISDIR(st.st_mode) and (not stat.S_ISREG(st.st_mode) or st.st_nlink > 1):
                    os.unlink(path)
            lock.acquire()
        except OSError as exc:
            problem = exc
            continue
        try:
            yield
        finally:
            lock.release()
        return
    raise CacheError(
        f"Cannot take the lock file {path}: {problem and (problem.strerror or problem)}. Something may keep "
        f"replacing it, or a folder or another user's file stands in its place: remove it, and check who else can "
        f"write {path.parent}."
    )
