"""Changing the cache without following anything planted in it: removing an entry, making a real folder,
the cache's file lock, writing a sync record.

Reading the cache (its layout, the records, whether a folder may be trusted) is `kernel_lock.core.cache_layout`,
which every load imports; only sync, prune and `kernel-lock run` change the cache.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import shutil
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

from kernel_lock.core.cache_layout import VariantRecord, first_unsafe_folder
from kernel_lock.core.fsutil import atomic_write


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


def make_real_folder(base: Path, path: Path) -> Path:
    """Make `path` (under `base`) a real folder, replacing any symlink or file in the way by a folder.

    Only the link or file itself is removed, never what a link points to; nothing is created outside `base`.
    """
    base.mkdir(parents=True, exist_ok=True)
    current = base
    for part in path.relative_to(base).parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                os.mkdir(current)
            continue
        if not stat.S_ISDIR(mode):
            os.unlink(current)
            os.mkdir(current)
    return path


def write_record(path: Path, record: VariantRecord) -> None:
    """Write a record atomically, as blobs are written: writable by this user alone (`record_trusted`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(dataclasses.asdict(record), indent=1, ensure_ascii=False)
    atomic_write(path, text.encode(), mode=0o644)
