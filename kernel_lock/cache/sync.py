"""`kernel-lock sync`: fetch the locked variant(s) into the Hugging Face cache and verify every byte.

For each selected variant: if it already verifies (offline, from its record) nothing
is fetched and no request is made. Otherwise the Hub's listing of the variant at
the locked commit becomes its manifest, accepted only if it reproduces the lock's
variant hash. Then, as pip-tools does, a plan (`plan_variant`: what to clear, link
and fetch, built from the verification verdict without writing) and its execution
(`carry_out`), in `kernel_lock.cache._variant_sync`. Downloads go
through our own fetcher (`kernel_lock.hub.fetch`), which takes every path from the
lock, never from the Hub's headers, and keeps nothing that does not match. The
standard Hugging Face layout is kept (`snapshots/<commit>/...` as relative
symlinks into `blobs/<hash>`), so other tools find the files. A sync touches
only the folder of the variant it syncs and the blobs it needs; it deletes no
blob (another snapshot may link to it) and writes no `refs/`. The variant's
record gets its fingerprints only once every file matched. A sync that contacts
the Hub first checks that each locked commit it fetches is on the history of the
ref its requirement names (a hand-edited lock's pull-request commit is not), and
a kernel under `require-signature` has its signature verified from the synced files.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from kernel_lock.cache._variant_sync import carry_out, hub_manifest, plan_variant
from kernel_lock.cache.verify import VariantCheck, check_variant
from kernel_lock.cache.writes import cache_file_lock, make_real_folder
from kernel_lock.core.cache_layout import hub_cache_dir, record_path
from kernel_lock.core.lockfile import Lock, LockedKernel, read_lock, read_lock_if_exists
from kernel_lock.errors import ConfigError, SyncFailed, VariantError
from kernel_lock.project.config import load_project
from kernel_lock.project.paths import project_lockfile

if TYPE_CHECKING:
    from kernel_lock.core.target import Target
    from kernel_lock.lock.changes import LockResult

DOWNLOAD_WORKERS = 32


class Progress(Protocol):
    """What a sync reports as it goes (a progress bar on a terminal): the plan, bytes as they land, each variant."""

    def planned(self, files: int, size: int) -> None:
        """The files (and their bytes) this sync will download, once known."""

    def received(self, size: int) -> None:
        """`size` more bytes landed (called from download threads)."""

    def synced(self, check: VariantCheck) -> None:
        """A variant is in the cache and verified."""


@dataclass
class SyncResult:
    """What a sync found and did: one check per selected variant, and what was fetched."""

    checks: list[VariantCheck] = field(default_factory=list)
    downloaded_files: int = 0
    downloaded_bytes: int = 0
    lock_result: LockResult | None = None  # what locking first changed, where the lock was missing or stale

    @property
    def fetched_anything(self) -> bool:
        return self.downloaded_files > 0


def selected_variants(
    lock: Lock,
    *,
    target: Target | None = None,
    names: Iterable[str] = (),
    all_variants: bool = False,
) -> list[tuple[LockedKernel, str]]:
    """(kernel, variant) pairs to act on: every variant, the named ones, or the best one for the target.

    The kernels each chosen variant depends on (`required-by` in the lock) come
    along, with their variant for the same target (or the named ones they have).
    """
    if all_variants:
        return [(entry, v) for entry in lock.kernel for v in sorted(entry.variants)]
    names = list(names)
    environment: list[Target] = []

    def for_target(entry: LockedKernel) -> str:
        from kernel_lock.core.target import default_target
        from kernel_lock.core.variants import select_variant

        if not environment:
            environment.append(target or default_target())
        return select_variant(entry.variants, environment[0], repo_id=entry.repo_id)

    def choose(entry: LockedKernel) -> list[str]:
        chosen = [n for n in names if n in entry.variants]
        if chosen:
            return chosen
        if names and entry.direct:
            raise VariantError(
                f"{entry.repo_id} has none of the variants {', '.join(names)} at commit {entry.commit[:12]}. "
                f"Locked variants: {', '.join(sorted(entry.variants))}. Pick one of them with --variant."
            )
        return [for_target(entry)]

    pairs: list[tuple[LockedKernel, str]] = []
    seen: set[tuple[str, str]] = set()

    def add(entry: LockedKernel, variant: str) -> None:
        if (entry.key, variant) in seen:
            return
        seen.add((entry.key, variant))
        pairs.append((entry, variant))
        for dependency in lock.dependencies_of(entry, variant):
            for dep_variant in choose(dependency):
                add(dependency, dep_variant)

    for entry in lock.kernel:
        if entry.direct:
            for variant in choose(entry):
                add(entry, variant)
    return pairs


def sync_project(
    project: Path | None = None,
    *,
    target: Target | None = None,
    variants: Iterable[str] = (),
    all_variants: bool = False,
    frozen: bool = False,
    locked: bool = False,
    dry_run: bool = False,
    endpoint: str | None = None,
    progress: Progress | None = None,
) -> SyncResult:
    """Sync a project's locked kernels, with `uv sync`'s semantics for the lock.

    By default a missing or stale lock is brought up to date first (as `kernel-lock lock`
    would: unchanged requirements keep their commits); `locked` instead fails with
    `LockOutOfDate` when it is stale; `frozen` uses the lock as it is, unchecked.
    `dry_run` writes and fetches nothing: the result's checks say what is missing.
    """
    if frozen and locked:
        raise ConfigError("Give --locked or --frozen, not both: --frozen does not check the lock at all.")
    lock_result = None
    config = load_project(project)
    if frozen:
        lock = read_lock(project_lockfile(project))
    else:
        from kernel_lock.lock.project import check_lock, lock_differences, lock_project

        if locked:
            lock = check_lock(config)
        else:
            current = read_lock_if_exists(config.lockfile)
            if current is None or lock_differences(config, current):
                lock_result = lock_project(config, endpoint=endpoint, dry_run=dry_run)
                lock = lock_result.lock
            else:
                lock = current
    pairs = selected_variants(lock, target=target, names=variants, all_variants=all_variants)
    if dry_run:
        return SyncResult(
            checks=[check_variant(entry, variant) for entry, variant in pairs], lock_result=lock_result
        )
    result = sync_variants(pairs, endpoint=endpoint, progress=progress)
    result.lock_result = lock_result
    if any(config.signing().policy(entry.requested_repo).required for entry, _ in pairs):
        from kernel_lock.lock.signatures import check_required_signatures

        check_required_signatures(pairs, config.signing())
    _warn_missing_python_depends(result)
    return result


def _warn_missing_python_depends(result: SyncResult) -> None:
    """Sync may run where the kernels will not (a build stage), so missing packages are a warning here."""
    import warnings

    from kernel_lock.core.pydeps import missing, python_depends
    from kernel_lock.errors import KernelLockWarning

    for check in result.checks:
        absent = missing(python_depends(check.path))
        if absent:
            warnings.warn(
                f"{check.repo_id} variant {check.variant} needs Python packages that are not installed here: "
                f"{', '.join(absent)}. Install them where the kernel is loaded.",
                KernelLockWarning,
                stacklevel=2,
            )


def sync_variants(
    pairs: list[tuple[LockedKernel, str]],
    *,
    endpoint: str | None = None,
    cache: Path | None = None,
    progress: Progress | None = None,
) -> SyncResult:
    """Make each (kernel, variant) present and verified in the cache, fetching only what is missing or wrong.

    Variants that verify offline cost no request. For the others: their manifests (one listing each), then a
    plan per variant (`plan_variant`, no writes), then its execution (`carry_out`), under a per-variant file
    lock.
    """
    cache = cache or hub_cache_dir()
    result = SyncResult()
    todo = []
    same_folder = []  # a redirected repo and its destination, locked at one commit, share one folder
    folders = set()
    for entry, variant in pairs:
        check = check_variant(entry, variant, cache=cache)
        if check.ok:
            result.checks.append(check)
        elif (entry.repo_id, entry.commit, variant) in folders:
            same_folder.append((entry, variant))
        else:
            folders.add((entry.repo_id, entry.commit, variant))
            todo.append((entry, variant))
    if not todo:
        return result

    from kernel_lock.hub.client import Hub
    from kernel_lock.lock.project import check_commits_on_refs

    hub = Hub(endpoint)
    failures = []
    with (
        _variant_locks(todo, cache),
        ThreadPoolExecutor(max_workers=DOWNLOAD_WORKERS, thread_name_prefix="kernel-lock-sync") as pool,
    ):
        check_commits_on_refs({entry.key: entry for entry, _ in todo}.values(), hub)
        manifests = list(pool.map(lambda p: hub_manifest(hub, p[0], p[1], cache), todo))
        plans = []
        for (entry, variant), manifest in zip(todo, manifests, strict=True):
            check = check_variant(entry, variant, cache=cache)  # another process may have synced it meanwhile
            if check.ok:
                result.checks.append(check)
            else:
                plans.append(plan_variant(entry, variant, manifest, cache))
        if progress is not None:
            fetched = {(p.entry.repo_id, item.hash): item.size for p in plans for item in p.fetch}
            progress.planned(len(fetched), sum(fetched.values()))
        for check in carry_out(plans, hub, cache, pool, result, progress.received if progress else None):
            result.checks.append(check)
            if not check.ok:
                failures.append(check)
            elif progress:
                progress.synced(check)
    result.checks.extend(check_variant(entry, variant, cache=cache) for entry, variant in same_folder)
    if failures:
        raise SyncFailed([f.error() for f in failures], endpoint=hub.endpoint)
    return result


@contextlib.contextmanager
def _variant_locks(todo: list[tuple[LockedKernel, str]], cache: Path) -> Iterator[None]:
    """Hold the file lock of every variant to sync (in one order, so two syncs never deadlock)."""
    with contextlib.ExitStack() as locks:
        for entry, variant in sorted(todo, key=lambda p: (p[0].repo_id, p[1])):
            path = record_path(entry.repo_id, entry.commit, variant, cache)
            make_real_folder(cache, path.parent)
            locks.enter_context(cache_file_lock(Path(f"{path}.lock")))
        yield
