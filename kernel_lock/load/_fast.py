"""The common verified load, answered before the full path's imports: a fresh process pays for the checks.

`get_kernel` in fast mode, for a kernel without kernel dependencies, takes the steps of the full check
(`kernel_lock.cache.verify.check_variant`) with the same model and rule: the lock as the one lock model
reads it (`kernel_lock.core.lockfile`), the sync record as `kernel_lock.core.cache_layout` reads it, its
manifest reproducing the lock's variant hash, and the one verification verdict
(`kernel_lock.core.verdict.judge` over the folder's `take_snapshot`). It stops where the full check would
do more: a file to hash, a kernel dependency, a missing or refused record or lock all return None, and the
full path decides and gives the proper error. So this module says yes only where the full path says yes,
faster. The import itself is the full path's (`kernel_lock.load._registry.import_variant`).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from kernel_lock import env
from kernel_lock.core.cache_layout import VariantRecord, read_record, record_path, variant_dir
from kernel_lock.core.verdict import judge, take_snapshot, wanted

if TYPE_CHECKING:
    from kernel_lock.core.lockfile import LockedKernel


def quick_get_kernel(lockfile: Path, repo_id: str) -> ModuleType | None:
    """The verified kernel, or None where the full path must decide (see the module docstring)."""
    if (env.verify_mode() or "fast").strip().lower() != "fast":
        return None
    entry = _direct_entry(lockfile, repo_id)
    if entry is None:
        return None
    from kernel_lock.core.target import default_target
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


def _verified_without_hashing(entry: LockedKernel, variant: str) -> VariantRecord | None:
    """The sync record, where `cache.verify.check_variant` in fast mode would pass without hashing a file.

    The same steps with the same model and rule: the record as `read_record` reads it, its manifest
    reproducing the lock's variant hash, and the verdict over the folder's snapshot leaving nothing to hash.
    """
    record = read_record(record_path(entry.repo_id, entry.commit, variant))
    expected = entry.variants.get(variant)
    if record is None or expected is None or not record.manifest_matches(expected, entry.hash_type):
        return None
    snapshot = take_snapshot(entry.repo_id, entry.commit, variant)
    verdict = judge(wanted(record.manifest), record.stamps(), snapshot, hash_all=False)
    return record if verdict.ok_without_hashing else None


def _import_once(entry: LockedKernel, variant: str, record: VariantRecord) -> ModuleType:
    """Import the verified variant through the loader's registry (once per process per variant)."""
    from kernel_lock.load import _registry as registry
    from kernel_lock.load._verified_import import locked_files

    vdir = variant_dir(entry.repo_id, entry.commit, variant)
    where = f"{entry.repo_id} variant {variant}"
    return registry.imported_once(
        (entry.repo_id, entry.commit, variant),
        lambda: registry.import_variant(vdir, where=where, files=locked_files(record)),
    )
