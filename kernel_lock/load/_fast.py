"""The common verified load, answered before the full path's imports: a fresh process pays for the checks.

`get_kernel` in fast mode, for a kernel without kernel dependencies, reads the lock with the one lock model
(`kernel_lock.core.lockfile`, no pydantic) and the sync record with `json`, and accepts the variant only
where the full check (`kernel_lock.cache.verify`) would accept it without hashing: the record's manifest
reproduces the lock's variant hash, and the one verification verdict (`kernel_lock.core.verdict.judge`, over
the folder's `take_snapshot`, as the full check judges it) leaves no file to hash and finds nothing wrong.
Anything else (a lock the model refuses, a file to hash, a dependency, a missing record) returns None, and
the full path decides and gives the proper error. So this module may only say yes where the full path says
yes, faster.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kernel_lock import env
from kernel_lock.core.cache_layout import record_path, variant_dir
from kernel_lock.core.fsutil import read_regular_file
from kernel_lock.core.hashing import variant_hash
from kernel_lock.core.requirement import is_hex
from kernel_lock.core.verdict import Stamp, Wanted, judge, take_snapshot

if TYPE_CHECKING:
    from kernel_lock.core.lockfile import LockedKernel

_RECORD_KEYS = {"repo_id", "commit", "variant", "hash_type", "variant_hash", "manifest", "verified"}
_FINGERPRINT_KEYS = ("dev", "ino", "size", "mtime_ns", "ctime_ns", "link")


def quick_get_kernel(lockfile: Path, repo_id: str) -> ModuleType | None:
    """The verified kernel, or None where the full path must decide (see the module docstring)."""
    if (env.verify_mode() or "fast").strip().lower() != "fast":
        return None
    entry = _direct_entry(lockfile, repo_id)
    if entry is None:
        return None
    from kernel_lock.core.detect import default_target
    from kernel_lock.core.variants import select_variant

    try:
        variant = select_variant(entry.variants, default_target(), repo_id=entry.repo_id)
    except Exception:
        return None
    record = _verified_without_hashing(entry, variant)
    if record is None:
        return None
    return _import_once(entry, variant, record)


def _direct_entry(lockfile: Path, repo_id: str) -> LockedKernel | None:
    """The lock's direct entry for `repo_id` (as `Lock.find` picks it), if the lock is valid and the entry has
    no kernel dependencies."""
    from kernel_lock.core.lockfile import read_lock
    from kernel_lock.errors import KernelLockError

    try:
        lock = read_lock(lockfile)
    except KernelLockError:
        return None  # the full path reads it again and raises
    entry = lock.find(repo_id)
    if entry is None:
        return None
    if [k.requested_repo for k in lock.kernel].count(entry.requested_repo) > 1:
        return None  # the same repo locked twice (for itself and for another kernel): the full path decides
    if any(r.kernel == entry.key for k in lock.kernel for r in k.required_by):
        return None  # it has kernel dependencies: the full path imports them first
    return entry


def _is_hex(value: Any, *lengths: int) -> bool:
    """Lowercase hex of one of `lengths` characters."""
    return any(is_hex(value, n) for n in lengths)


def _verified_without_hashing(entry: LockedKernel, variant: str) -> dict[str, Any] | None:
    """The record, where the fast-mode check passes with no file to hash (the record's fingerprints all hold).

    The record must be one the model reads as it is, in the shape sync writes: UTF-8 (as pydantic reads it;
    `json.loads` of bytes would also take UTF-16 or a byte order mark), naming this variant, each manifest
    path once (the model hashes the list as written, duplicates and all) and a fingerprint for exactly those
    paths (the model validates every one it holds).
    """
    repo_id, commit = entry.repo_id, entry.commit
    rpath = record_path(repo_id, commit, variant)
    try:
        record = json.loads(read_regular_file(rpath).decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if (
        not isinstance(record, dict)
        or set(record) - _RECORD_KEYS
        or (record.get("repo_id"), record.get("commit"), record.get("variant")) != (repo_id, commit, variant)
    ):
        return None
    manifest, verified = record.get("manifest"), record.get("verified", {})
    if not isinstance(manifest, list) or not isinstance(verified, dict):
        return None
    hash_type = entry.hash_type
    by_path: dict[str, dict[str, Any]] = {}
    for m in manifest:
        if not (
            isinstance(m, dict)
            and set(m) == {"path", "size", "kind", "hash", "sha256"}
            and isinstance(m["path"], str)
            and type(m["size"]) is int
            and m["size"] >= 0
            and m["kind"] in ("git", "lfs")
            and _is_hex(m["hash"], 40, 64)
            and _is_hex(m["sha256"], 64)
        ):
            return None
        by_path[m["path"]] = m
    if len(by_path) != len(manifest) or verified.keys() != by_path.keys():
        return None
    expected = entry.variants.get(variant)
    per_file = ((p, m["hash"] if hash_type == "git_lfs_concat" else m["sha256"]) for p, m in by_path.items())
    try:
        actual = variant_hash(per_file)
    except UnicodeEncodeError:  # a lone surrogate (a `\udcff` escape) in a path: the model refuses the record
        return None
    if record.get("hash_type") != hash_type or record.get("variant_hash") != expected or actual != expected:
        return None
    known: dict[str, Stamp] = {}
    for rel, fingerprint in verified.items():
        if not isinstance(fingerprint, dict) or tuple(fingerprint) != _FINGERPRINT_KEYS:
            return None
        known[rel] = tuple(fingerprint.values())  # JSON values: compared with what the folder holds
    files = [Wanted(rel, m["size"], m["hash"]) for rel, m in by_path.items()]
    verdict = judge(files, known, take_snapshot(repo_id, commit, variant), hash_all=False)
    return record if verdict.ok_without_hashing else None


def _import_once(entry: LockedKernel, variant: str, record: dict[str, Any]) -> ModuleType | None:
    """Import the verified variant through the loader's registry (once per process per variant)."""
    from kernel_lock.cache.pydeps import missing, python_depends
    from kernel_lock.load import _registry as registry
    from kernel_lock.load._verified_import import locked_files

    vdir = variant_dir(entry.repo_id, entry.commit, variant)

    def load() -> ModuleType | None:
        if missing(python_depends(vdir)):
            return None  # the full path names what is missing
        files = locked_files(
            ((m["path"], m["kind"], m["hash"], m["sha256"]) for m in record["manifest"]),
            entry.hash_type,
            record["verified"],
        )
        return registry.import_variant(vdir, where=f"{entry.repo_id} variant {variant}", files=files)

    return registry.imported_once((entry.repo_id, entry.commit, variant), load)
