"""File and variant hashes: git blob ids, LFS sha256, and the `git_lfs_concat` variant hash.

`git_lfs_concat` is computable from a Hub tree listing alone (docs/architecture.md): for each
file of a variant except `*.pyc` and `__pycache__/`, its path relative to the
variant directory and its hash (LFS sha256, else git blob sha1), sorted by path
bytes, fed to one sha256 as path bytes followed by the raw hash bytes.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from typing import Final

HASH_TYPE: Final = "git_lfs_concat"
_CHUNK = 1 << 20


def is_ignored(relpath: str) -> bool:
    """Whether a path inside a variant is left out of its hash (bytecode caches)."""
    return relpath.endswith(".pyc") or "__pycache__" in relpath.split("/")


def variant_hash(files: Iterable[tuple[str, str]]) -> str:
    """The `git_lfs_concat` hash of (relative path, hex hash) pairs; ignored paths are skipped."""
    digest = hashlib.sha256()
    for path, hexhash in sorted(((p.encode("utf-8"), h) for p, h in files if not is_ignored(p))):
        digest.update(path)
        digest.update(bytes.fromhex(hexhash))
    return f"sha256-{digest.hexdigest()}"


def git_blob_sha1(data: bytes) -> str:
    """The git blob id of `data`, as in a Hub tree listing's `oid`."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def hash_file(path: str | os.PathLike[str], *, lfs: bool) -> str:
    """Hash a file read once: sha256 for an LFS file, the git blob sha1 otherwise."""
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as f:
        digest = hashlib.sha256() if lfs else hashlib.sha1(b"blob %d\0" % os.fstat(f.fileno()).st_size)
        while n := f.readinto(buf):
            digest.update(view[:n])
        return digest.hexdigest()
