"""Small file-system helpers: atomic writes, so no reader ever sees half a file; reads that cannot block."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


def read_regular_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a regular file; OSError for anything else.

    Opened without blocking and checked before reading: a FIFO planted where the cache holds a record
    would otherwise hang every reader, and a device would be read forever.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_BINARY", 0))
    with open(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
        return f.read()


def writable_by_others(st: os.stat_result) -> bool:
    """Whether someone other than this user and root may write the file or folder `st` describes (POSIX).

    Its owner may (and may `chmod` it), everyone may where its mode says so, and so may its group, unless
    that is this user's own private group (where umask 002 is the default, every folder is group-writable).
    """
    if os.name != "posix":
        return False
    if st.st_uid not in (0, os.geteuid()) or st.st_mode & stat.S_IWOTH:
        return True
    return bool(st.st_mode & stat.S_IWGRP) and not _private_group(st.st_gid)


_PRIVATE_GROUPS: dict[tuple[int, int], bool] = {}


def _private_group(gid: int) -> bool:
    """Whether the group `gid` is this user's alone: the user's primary group, named after the user, with no
    other member listed (the user-private-group scheme of most Linux distributions); looked up once."""
    key = (os.geteuid(), gid)
    if key not in _PRIVATE_GROUPS:
        import grp
        import pwd

        try:
            user, group = pwd.getpwuid(key[0]), grp.getgrgid(gid)
        except KeyError:
            _PRIVATE_GROUPS[key] = False
        else:
            _PRIVATE_GROUPS[key] = (
                gid == user.pw_gid
                and group.gr_name == user.pw_name
                and not set(group.gr_mem) - {user.pw_name}
            )
    return _PRIVATE_GROUPS[key]


def parts_below(base: str | os.PathLike[str], path: str | os.PathLike[str]) -> list[str]:
    """The names from `base` (exclusive) down to `path`, as `Path.relative_to(base).parts` gives them, read
    from the text (`pathlib` costs every load on the quick path); ValueError where `path` is not below."""
    top, below = os.fspath(base).rstrip(os.sep), os.fspath(path)
    if below == top:
        return []
    if not below.startswith(top + os.sep):
        raise ValueError(f"{below!r} is not in {top!r}")
    return [part for part in below[len(top) + 1 :].split(os.sep) if part and part != "."]


def first_shared(base: str | os.PathLike[str], path: str | os.PathLike[str]) -> str | None:
    """The first of the paths from `base` down to `path` (both included) that someone other than this user and
    root could change; None where no one else can.

    One rule for every file kernel-lock trusts without checking its bytes (a sync record, a lock found by
    walking up): the file and every folder on the way are ours or root's, `path` is writable by no one else,
    no entry below `base` is a symlink, and no folder on the way lets others rename its entries (it is
    writable by no one else, or sticky and ours or root's, like `/tmp`). `base` itself may be a symlink (a
    cache root often is one); what it leads to is checked.
    """
    if os.name != "posix":
        return None
    current = os.fspath(base)
    try:
        st = os.stat(current)
        for part in parts_below(base, path):
            opened = _lets_others_rename(st)
            current = os.path.join(current, part)
            st = os.lstat(current)
            if opened or stat.S_ISLNK(st.st_mode) or st.st_uid not in (0, os.geteuid()):
                return current
    except OSError:
        return current
    return current if writable_by_others(st) else None


def _lets_others_rename(st: os.stat_result) -> bool:
    """Whether someone other than this user and root may rename or remove entries of the folder `st`
    describes: anyone who may write it, unless it is sticky and ours or root's (then only an entry's owner)."""
    sticky = bool(st.st_mode & stat.S_ISVTX) and st.st_uid in (0, os.geteuid())
    return writable_by_others(st) and not sticky


def atomic_write(path: Path, data: bytes, *, durable: bool = True, mode: int | None = None) -> None:
    """Write `data` to `path` via a temp file in the same directory, fsync, then rename over it.

    A crash leaves either the old file or the new one, never a mix. An existing
    file's permission bits are kept, unless `mode` is given (then it is used, less the
    umask). `durable=False` skips the fsyncs, for caches that may be lost in a power
    failure but must never be seen half-written.
    """
    path = Path(path)
    if mode is not None:
        umask = os.umask(0)
        os.umask(umask)
        mode &= ~umask
    else:
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = None
    import tempfile  # here: the load path reads with this module and never writes (tempfile costs ms)

    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
