"""File hashing: every size gives hashlib's SHA-256 and git's blob id, on the sequential and the threaded path."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from kernel_lock.cache.verify import PARALLEL_HASH_MIN_BYTES, FileHashes, hash_files
from kernel_lock.core.cache_layout import ManifestEntry
from kernel_lock.core.hashing import git_blob_sha1, hash_file
from kernel_lock.core.verdict import look_at

MIB = 1 << 20


def write(folder: Path, name: str, size: int) -> bytes:
    data = os.urandom(size)
    (folder / name).write_bytes(data)
    return data


@pytest.mark.parametrize("size", [0, 1, 5_000, (1 << 16) + 1, MIB - 1, MIB, 3 * MIB + 7])
def test_hash_file_matches_hashlib_and_git_at_every_size(tmp_path: Path, size: int) -> None:
    data = write(tmp_path, "f", size)
    assert hash_file(tmp_path / "f", git_blob=True) == (hashlib.sha256(data).hexdigest(), git_blob_sha1(data))
    assert hash_file(tmp_path / "f") == (hashlib.sha256(data).hexdigest(), None)


@pytest.mark.parametrize(
    "sizes",
    [
        [3 * MIB, 800, 12_000, 0],  # one large file and small ones: hashed in this thread
        [3 * MIB, PARALLEL_HASH_MIN_BYTES, 800, 2 * MIB + 1],  # several large ones: hashed by threads
    ],
)
def test_hash_files_gives_each_file_its_own_hashes_in_order(tmp_path: Path, sizes: list[int]) -> None:
    jobs = []
    expected = []
    for i, size in enumerate(sizes):
        data = write(tmp_path, f"f{i}", size)
        sha256 = hashlib.sha256(data).hexdigest()
        kind = "git" if i % 2 else "lfs"
        entry = ManifestEntry(
            path=f"f{i}", size=size, kind=kind, hash=git_blob_sha1(data) if kind == "git" else sha256
        )
        fingerprint = look_at(tmp_path, entry.path, tmp_path).stamp
        assert fingerprint is not None and fingerprint[2] == size
        jobs.append((entry, tmp_path / entry.path, fingerprint))
        expected.append((entry, fingerprint, FileHashes(sha256, entry.hash)))
    assert hash_files(jobs) == expected


def test_hash_files_reports_a_file_that_cannot_be_read(tmp_path: Path) -> None:
    data = write(tmp_path, "big", 2 * MIB)
    entry = ManifestEntry(path="big", size=len(data), kind="lfs", hash=hashlib.sha256(data).hexdigest())
    fingerprint = look_at(tmp_path, entry.path, tmp_path).stamp
    assert fingerprint is not None
    gone = ManifestEntry(path="gone", size=len(data), kind="lfs", hash=entry.hash)
    [first, second] = hash_files(
        [(entry, tmp_path / "big", fingerprint), (gone, tmp_path / "gone", fingerprint)]
    )
    assert first[2] == FileHashes(entry.hash, entry.hash)
    assert isinstance(second[2], FileNotFoundError)
