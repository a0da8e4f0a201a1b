"""`kernel-lock sync`: fetch the locked variant(s) into the Hugging Face cache and verify every byte.

For each selected variant: if it already verifies (offline, from its record) nothing
is fetched and no request is made. Otherwise the Hub's listing of the variant at
the locked commit becomes its manifest, accepted only if it reproduces the lock's
variant hash; files that are wrong are deleted, missing ones are downloaded
through `huggingface_hub` (many at once) and hashed as they land; the variant's
record gets its fingerprints only once every file matched. A variant is never
marked synced before it verified, and a bad file never stays in the cache.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kernel_lock.cache import (
    Fingerprint,
    ManifestEntry,
    hub_cache_dir,
    read_record,
    record_path,
    repo_dir,
    variant_dir,
    write_record,
)
from kernel_lock.config import find_project_root, load_project
from kernel_lock.errors import ConfigError, HubError, SyncFailed, VariantError
from kernel_lock.hashing import is_ignored, variant_hash
from kernel_lock.lockfile import Lock, LockedKernel, read_lock, read_lock_if_exists
from kernel_lock.verify import (
    FileProblem,
    VariantCheck,
    check_variant,
    record_for,
    verify_file,
    verify_files,
    verify_mode,
)

if TYPE_CHECKING:
    from kernel_lock.hub import Hub
    from kernel_lock.locking import LockResult
    from kernel_lock.target import Target

DOWNLOAD_WORKERS = 32
Progress = Callable[[str], None]


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
        from kernel_lock.target import default_target
        from kernel_lock.variants import select_variant

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
    endpoint: str | None = None,
    progress: Progress | None = None,
) -> SyncResult:
    """Sync a project's locked kernels, with `uv sync`'s semantics for the lock.

    By default a missing or stale lock is brought up to date first (as `kernel-lock lock`
    would: unchanged requirements keep their commits); `locked` instead fails with
    `LockOutOfDate` when it is stale; `frozen` uses the lock as it is, unchecked.
    """
    if frozen and locked:
        raise ConfigError("Give --locked or --frozen, not both: --frozen does not check the lock at all.")
    lock_result = None
    if frozen:
        lock = read_lock(find_project_root(project) / "kernels.lock")
    else:
        from kernel_lock.locking import check_lock, lock_differences, lock_project

        config = load_project(project)
        if locked:
            lock = check_lock(config)
        else:
            current = read_lock_if_exists(config.lockfile)
            if current is None or lock_differences(config, current):
                lock_result = lock_project(config, endpoint=endpoint)
                lock = lock_result.lock
            else:
                lock = current
    pairs = selected_variants(lock, target=target, names=variants, all_variants=all_variants)
    result = sync_variants(pairs, endpoint=endpoint, progress=progress)
    result.lock_result = lock_result
    _warn_missing_python_depends(result)
    return result


def _warn_missing_python_depends(result: SyncResult) -> None:
    """Sync may run where the kernels will not (a build stage), so missing packages are a warning here."""
    import warnings

    from kernel_lock.errors import KernelLockWarning
    from kernel_lock.pydeps import missing, python_depends

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
    """Make each (kernel, variant) present and verified in the cache, fetching only what is missing or wrong."""
    cache = cache or hub_cache_dir()
    result = SyncResult()
    todo = []
    for entry, variant in pairs:
        check = check_variant(entry, variant, cache=cache)
        if check.ok:
            result.checks.append(check)
        else:
            todo.append((entry, variant))
    if not todo:
        return result

    from filelock import FileLock

    from kernel_lock.hub import Hub

    hub = Hub(endpoint)
    _quiet_client()
    locks = []
    try:
        for entry, variant in sorted(todo, key=lambda p: (p[0].repo_id, p[1])):
            path = record_path(entry.repo_id, entry.commit, variant, cache)
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = FileLock(str(path) + ".lock")
            lock.acquire()
            locks.append(lock)
        with ThreadPoolExecutor(max_workers=DOWNLOAD_WORKERS, thread_name_prefix="kernel-lock-sync") as pool:
            manifests = list(pool.map(lambda p: _manifest(hub, *p), todo))
            jobs = []
            for (entry, variant), manifest in zip(todo, manifests, strict=False):
                check = check_variant(
                    entry, variant, cache=cache
                )  # another process may have synced it meanwhile
                if check.ok:
                    result.checks.append(check)
                    continue
                jobs.append((entry, variant, manifest, _prepare(entry, variant, manifest, cache)))
            fetched = [
                [pool.submit(_fetch, hub, entry, variant, e, cache) for e in missing]
                for entry, variant, manifest, (good, missing) in jobs
            ]
            failures = []
            for (entry, variant, manifest, (good, _)), futures in zip(jobs, fetched, strict=False):
                problems = []
                fingerprints = dict(good)
                for future in futures:
                    rel, fp, problem, size = future.result()
                    if problem is not None:
                        problems.append(problem)
                    elif fp is not None:
                        fingerprints[rel] = fp
                        result.downloaded_files += 1
                        result.downloaded_bytes += size
                record = record_for(entry, variant, manifest)
                if not problems:
                    record.verified = fingerprints
                write_record(record_path(entry.repo_id, entry.commit, variant, cache), record)
                check = check_variant(entry, variant, cache=cache)
                if problems:
                    check.status, check.problems = "corrupt", problems
                result.checks.append(check)
                if not check.ok:
                    failures.append(check)
                elif progress:
                    progress(f"synced {entry.repo_id} {variant}")
    finally:
        for lock in reversed(locks):
            lock.release()
    if failures:
        raise SyncFailed([f.error() for f in failures])
    return result


def _manifest(hub: Hub, entry: LockedKernel, variant: str) -> list[ManifestEntry]:
    """The Hub's listing of a variant at the locked commit, accepted only if it reproduces the lock's hash."""
    from kernel_lock.resolve import split_variant_path

    manifest = []
    for item in hub.tree(entry.repo_id, entry.commit, f"build/{variant}"):
        if item.type == "directory":
            continue
        split = split_variant_path(entry.repo_id, entry.commit, item.path)
        if split is not None and is_ignored(split[1]):
            continue
        if split is None or split[0] != variant or item.type != "file":
            raise HubError(
                f"The Hub listed {item.path!r} ({item.type}) for {entry.repo_id} variant {variant} at "
                f"{entry.commit[:12]}; refusing to sync from it."
            )
        manifest.append(
            ManifestEntry(
                path=split[1],
                size=item.lfs.size if item.lfs else item.size,
                kind="lfs" if item.lfs else "git",
                hash=item.file_hash,
            )
        )
    got = variant_hash((e.path, e.hash) for e in manifest)
    if got != entry.variants[variant]:
        raise HubError(
            f"The Hub at {hub.endpoint} lists {entry.repo_id} variant {variant} at commit {entry.commit[:12]} "
            f"with hash {got}, but kernels.lock says {entry.variants[variant]}. The Hub or mirror serves "
            f"something other than what was locked; nothing was downloaded."
        )
    return manifest


def _prepare(
    entry: LockedKernel, variant: str, manifest: list[ManifestEntry], cache: Path
) -> tuple[dict[str, Fingerprint], list[ManifestEntry]]:
    """Delete wrong and extra files of a variant; return (fingerprints of good files, entries to fetch).

    Files whose fingerprint matches the variant's record are not hashed again (unless KERNEL_LOCK_VERIFY=full),
    as at load time.
    """
    vdir = variant_dir(entry.repo_id, entry.commit, variant, cache)
    blobs = repo_dir(entry.repo_id, cache) / "blobs"
    record = read_record(record_path(entry.repo_id, entry.commit, variant, cache))
    trusted = (
        record is not None and record.manifest_matches(entry.variants[variant]) and verify_mode() == "fast"
    )
    problems, good, _ = verify_files(
        vdir, manifest, blobs, known=record.verified if trusted and record is not None else {}
    )
    for problem in problems:
        if problem.problem != "missing":
            _remove(vdir / problem.path, blobs)
    return good, [e for e in manifest if e.path not in good]


def _fetch(
    hub: Hub, entry: LockedKernel, variant: str, item: ManifestEntry, cache: Path
) -> tuple[str, Fingerprint | None, FileProblem | None, int]:
    """Download one file and hash it as soon as it lands; a wrong file is deleted again."""
    vdir = variant_dir(entry.repo_id, entry.commit, variant, cache)
    blobs = repo_dir(entry.repo_id, cache) / "blobs"
    path = hub.download(entry.repo_id, entry.commit, f"build/{variant}/{item.path}", cache)
    expected = vdir / item.path
    if os.path.abspath(path) != os.path.abspath(expected):
        _remove(path, blobs)
        raise HubError(
            f"The Hub at {hub.endpoint} answered {entry.repo_id} {item.path} for commit {entry.commit[:12]} "
            f"with another commit's file ({path}). Refusing it; check HF_ENDPOINT."
        )
    found = verify_file(vdir, item, blobs)
    if isinstance(found, FileProblem):
        _remove(expected, blobs)
        return item.path, None, found, 0
    return item.path, found, None, item.size


def _remove(path: Path, blobs: Path) -> None:
    """Delete a snapshot file and, if it links into the repo's blobs, the blob it points to."""
    try:
        if path.is_symlink():
            real = Path(os.path.realpath(path))
            if real.parent == Path(os.path.realpath(blobs)):
                real.unlink(missing_ok=True)
        path.unlink(missing_ok=True)
    except IsADirectoryError:
        import shutil

        shutil.rmtree(path, ignore_errors=True)


def _quiet_client() -> None:
    """Silence `huggingface_hub`'s own progress bars; sync reports progress itself."""
    from huggingface_hub.utils import disable_progress_bars

    disable_progress_bars()
