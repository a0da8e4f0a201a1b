"""File and variant hashes: git blob ids, SHA-256, and the two variant hash types a lock can hold.

A variant hash is computed the same way for both types: for each file of a
variant except `*.pyc` and `__pycache__/`, its path relative to the variant
directory and a per-file hash, sorted by path bytes, fed to one SHA-256 as path
bytes followed by the raw hash bytes, written `sha256-<hex>`. The types differ
in the per-file hash:

- `sha256` (the default): the SHA-256 of the file's content, for every file.
- `git_lfs_concat` (older `kernels` locks): the LFS SHA-256 for LFS files, the
  git blob SHA-1 otherwise; computable from a Hub tree listing alone, but it
  pins the Python that is imported by SHA-1.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from typing import Final, Literal

HashType = Literal["sha256", "git_lfs_concat"]
HASH_TYPES: Final[tuple[HashType, ...]] = ("sha256", "git_lfs_concat")
DEFAULT_HASH_TYPE: Final = "sha256"
LEGACY_HASH_TYPE: Final = "git_lfs_concat"
_CHUNK = 1 << 20
_SMALL_CHUNK = 1 << 16


def is_ignored(relpath: str) -> bool:
    """Whether a path inside a variant is left out of its hash (bytecode caches)."""
    return relpath.endswith(".pyc") or "__pycache__" in relpath.split("/")


def implied_folders(paths: Iterable[str]) -> set[str]:
    """The folders a variant's files need (`a/b/c.py` needs `a` and `a/b`); any other folder is planted.

    An empty planted folder, or one holding only bytecode, would import as a namespace package.
    """
    return {path.rsplit("/", i)[0] for path in paths for i in range(1, path.count("/") + 1)}


def variant_hash(files: Iterable[tuple[str, str]]) -> str:
    """The variant hash of (relative path, hex per-file hash) pairs; ignored paths are skipped."""
    digest = hashlib.sha256()
    for path, hexhash in sorted(((p.encode("utf-8"), h) for p, h in files if not is_ignored(p))):
        digest.update(path)
        digest.update(bytes.fromhex(hexhash))
    return f"sha256-{digest.hexdigest()}"


def git_blob_sha1(data: bytes) -> str:
    """The git blob id of `data`, as in a Hub tree listing's `oid`."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def hash_file(path: str | os.PathLike[str], *, git_blob: bool = False) -> tuple[str, str | None]:
    """(SHA-256, git blob id if asked) of a file's content, read once.

    The read buffer is 1 MiB only for a file that large: zeroing it costs more than hashing a small
    Python file, and a variant is mostly small files.
    """
    with open(path, "rb", buffering=0) as f:
        size = os.fstat(f.fileno()).st_size
        buf = bytearray(min(_CHUNK, max(_SMALL_CHUNK, size)))
        view = memoryview(buf)
        sha256 = hashlib.sha256()
        blob = hashlib.sha1(b"blob %d\0" % size) if git_blob else None
        while n := f.readinto(buf):
            sha256.update(view[:n])
            if blob is not None:
                blob.update(view[:n])
        return sha256.hexdigest(), blob.hexdigest() if blob is not None else None
