"""Small file-system helpers: atomic writes, so no reader ever sees half a file; reads that cannot block."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
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


def atomic_write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write `data` to `path` via a temp file in the same directory, fsync, then rename over it.

    A crash leaves either the old file or the new one, never a mix. An existing
    file's permission bits are kept. `durable=False` skips the fsyncs, for caches
    that may be lost in a power failure but must never be seen half-written.
    """
    path = Path(path)
    try:
        mode: int | None = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = None
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
