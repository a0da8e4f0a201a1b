"""`kernel-lock sync`: fetch the locked variant(s) into the Hugging Face cache and verify every byte.

For each selected variant: if it already verifies (offline, from its record) nothing
is fetched and no request is made. Otherwise the Hub's listing of the variant at
the locked commit becomes its manifest, accepted only if it reproduces the lock's
variant hash. Then, as pip-tools does, a plan (`diff`: what to clear, link and
fetch, computed without writing) and its application (`apply`). Downloads go
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
import dataclasses
import os
import shutil
import stat
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from kernel_lock.cache.verify import (
    FileHashes,
    VariantCheck,
    check_variant,
    content_problem,
    hash_files,
    inspect_file,
    record_for,
    verify_mode,
    vouches,
    walk,
)
from kernel_lock.core.cache_layout import cache_file_lock
from kernel_lock.core.hashing import implied_folders, is_ignored
from kernel_lock.core.lockfile import Lock, LockedKernel, read_lock, read_lock_if_exists
from kernel_lock.core.records import (
    Fingerprint,
    ManifestEntry,
    blob_path,
    first_unsafe_folder,
    hub_cache_dir,
    manifest_hash,
    read_record,
    real_folder,
    record_path,
    record_trusted,
    unwritable_paths,
    variant_dir,
    write_record,
)
from kernel_lock.core.verdict import FileProblem
from kernel_lock.errors import CacheError, ConfigError, HubError, SyncFailed, VariantError
from kernel_lock.hub.fetch import Digests, Source, digests_of, fetch_blob, store_blob
from kernel_lock.project.config import load_project
from kernel_lock.project.paths import find_project_root

if TYPE_CHECKING:
    from kernel_lock.core.target import Target
    from kernel_lock.hub.client import Hub
    from kernel_lock.lock.project import LockResult

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
        lock = read_lock(find_project_root(project) / "kernels.lock")
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

    from kernel_lock.cache.pydeps import missing, python_depends
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
    plan per variant (`diff`, no writes), then its application (`apply`), under a per-variant file lock.
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
        manifests = list(pool.map(lambda p: _manifest(hub, p[0], p[1], cache), todo))
        plans = []
        for (entry, variant), manifest in zip(todo, manifests, strict=True):
            check = check_variant(entry, variant, cache=cache)  # another process may have synced it meanwhile
            if check.ok:
                result.checks.append(check)
            else:
                plans.append(diff(entry, variant, manifest, cache))
        if progress is not None:
            fetched = {(p.entry.repo_id, item.hash): item.size for p in plans for item in p.fetch}
            progress.planned(len(fetched), sum(fetched.values()))
        for check in apply(plans, hub, cache, pool, result, progress.received if progress else None):
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
            real_folder(cache, path.parent)
            locks.enter_context(cache_file_lock(Path(f"{path}.lock")))
        yield


def _manifest(hub: Hub, entry: LockedKernel, variant: str, cache: Path) -> list[ManifestEntry]:
    """The Hub's listing of a variant at the locked commit, accepted only if it reproduces the lock's hash."""
    from kernel_lock.lock.resolve import split_variant_path

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
                sha256=item.lfs.oid if item.lfs else None,
            )
        )
    if entry.hash_type == "sha256":
        manifest = _with_publisher_digest(hub, entry, variant, manifest, cache)
    got = manifest_hash(manifest, entry.hash_type)
    # Without a publisher digest a git file's SHA-256 is known once it lands: `_finish` checks the hash then.
    if got is not None and got != entry.variants[variant]:
        raise HubError(
            f"The Hub at {hub.endpoint} lists {entry.repo_id} variant {variant} at commit {entry.commit[:12]} "
            f"with hash {got}, but kernels.lock says {entry.variants[variant]}. The Hub or mirror serves "
            f"something other than what was locked; nothing was downloaded."
        )
    bad = unwritable_paths([e.path for e in manifest])
    if bad:
        raise HubError(
            f"{entry.repo_id} variant {variant} at {entry.commit[:12]} lists paths no cache can hold: "
            f"{', '.join(map(repr, bad[:5]))}{' ...' if len(bad) > 5 else ''} (unsafe, over 255 bytes a name, or "
            f"a file where another needs a folder). Nothing was downloaded; tell the kernel's publisher."
        )
    return manifest


def _with_publisher_digest(
    hub: Hub, entry: LockedKernel, variant: str, manifest: list[ManifestEntry], cache: Path
) -> list[ManifestEntry]:
    """The manifest with each git file's expected SHA-256 from the publisher digest, where the variant has one.

    Reads `metadata.json` first (checked against its blob id; cached from lock time), so that a listing the
    lock does not match is refused before anything else is downloaded, and each file is checked by SHA-256
    as it lands. The digest is only a guide: the lock's variant hash decides. The bytes read are kept as the
    file's blob, so the plan links it instead of fetching it again.
    """
    import hashlib

    from kernel_lock.lock.digest import MalformedDigest, parse_digest
    from kernel_lock.lock.hashes import METADATA, MetadataCache

    meta = next((e for e in manifest if e.path == METADATA and e.kind == "git"), None)
    if meta is None:
        return manifest
    data = MetadataCache(entry.repo_id, entry.commit).get(variant, meta.hash, hub)
    store_blob(
        real_folder(cache, blob_path(entry.repo_id, "", cache)), meta.hash, data
    )  # checked: its blob id
    try:
        digest = parse_digest(data)
    except MalformedDigest as exc:
        raise HubError(
            f"The Hub at {hub.endpoint} serves {entry.repo_id} variant {variant} at commit {entry.commit[:12]} "
            f"with a {METADATA} that is not what was locked ({exc.reason}); nothing was downloaded."
        ) from None
    if digest is None or digest.algorithm != "sha256":
        return manifest
    violations = digest.check({e.path: e.sha256 for e in manifest})
    if violations:  # lock refused such variants, so this is not what was locked
        raise HubError(
            f"The Hub at {hub.endpoint} lists {entry.repo_id} variant {variant} at commit {entry.commit[:12]} "
            f"differently from the publisher's digest in its {METADATA} ({'; '.join(map(str, violations))}), "
            f"which is not what was locked. The Hub or mirror serves something else; nothing was downloaded."
        )
    known = {**{p: digest.hex(p) for p in digest.files}, METADATA: hashlib.sha256(data).hexdigest()}
    return [e if e.sha256 else dataclasses.replace(e, sha256=known.get(e.path)) for e in manifest]


@dataclass(frozen=True)
class VariantPlan:
    """What sync does to one variant that did not verify; computed without writing anything (`diff`).

    `clear`: paths inside the variant folder to remove first (extra files, wrong files, a folder or link
    where a file belongs); `link`: files whose blob is already in the cache and correct; `fetch`: files to
    download. `keep` holds the fingerprints of the files that verified as they are, `sha256` the SHA-256 of
    every file known before downloading (kept, or linked to a blob already in the cache).
    """

    entry: LockedKernel
    variant: str
    manifest: tuple[ManifestEntry, ...]
    keep: dict[str, Fingerprint]
    clear: tuple[str, ...]
    link: tuple[ManifestEntry, ...]
    fetch: tuple[ManifestEntry, ...]
    sha256: dict[str, str]

    @property
    def source(self) -> str:
        """`repo variant` for messages."""
        return f"{self.entry.repo_id} {self.variant}"


def diff(entry: LockedKernel, variant: str, manifest: list[ManifestEntry], cache: Path) -> VariantPlan:
    """The plan that makes a variant's folder hold exactly its manifest; reads the cache, writes nothing.

    Files whose fingerprint matches the variant's record are not hashed again (unless KERNEL_LOCK_VERIFY=full),
    as at load time. A folder on the way that is a symlink or a file makes every file count as missing: its
    contents are not ours to read or delete.
    """
    vdir = variant_dir(entry.repo_id, entry.commit, variant, cache)
    blobs = blob_path(entry.repo_id, "", cache)
    record = read_record(record_path(entry.repo_id, entry.commit, variant, cache))
    known: dict[str, Fingerprint] = {}
    sha256: dict[str, str] = {}
    if (
        record is not None
        and record.manifest_matches(entry.variants[variant], entry.hash_type)
        and verify_mode() == "fast"
        and record_trusted(entry.repo_id, entry.commit, variant, cache)
    ):  # the lock's hash authenticates the record's SHA-256s
        known = record.verified
        sha256 = {e.path: e.sha256 for e in record.manifest if e.sha256 is not None}
    keep: dict[str, Fingerprint] = {}
    clear: set[str] = set()
    need: list[ManifestEntry] = []
    if first_unsafe_folder(cache, vdir) is not None:
        need = list(manifest)
    else:
        present, folders, walk_problems = walk(vdir)
        by_path = {e.path: e for e in manifest}
        clear = {p.path for p in walk_problems} | (present - by_path.keys())
        clear |= folders - implied_folders(by_path)
        to_hash = []
        blobs_real = os.path.realpath(blobs)
        for item in manifest:
            path = vdir / item.path
            blocker = first_unsafe_folder(vdir, path.parent)
            if blocker is not None:
                clear.add(blocker.relative_to(vdir).as_posix())
                need.append(item)
                continue
            found = inspect_file(vdir, item, blobs_real)
            if isinstance(found, Fingerprint):
                if (
                    vouches(known.get(item.path), found, path)
                    and found.size == item.size
                    and item.path in sha256
                ):
                    keep[item.path] = found
                else:
                    to_hash.append((item, path, found))
            else:
                if os.path.lexists(path):
                    clear.add(item.path)
                need.append(item)
        for item, fp, actual in hash_files(to_hash):
            if content_problem(item, actual) is None and isinstance(actual, FileHashes):
                keep[item.path] = fp
                sha256[item.path] = actual.sha256
            else:
                clear.add(item.path)
                need.append(item)
    link: list[ManifestEntry] = []
    fetch: list[ManifestEntry] = []
    blobs_usable = first_unsafe_folder(cache, blobs) is None  # a symlinked blobs folder is replaced, not used
    for item in need:
        good = _good_blob(blobs / item.hash, item) if blobs_usable else None
        if good is not None:
            sha256[item.path] = good
        (link if good is not None else fetch).append(item)
    return VariantPlan(
        entry=entry,
        variant=variant,
        manifest=tuple(manifest),
        keep=keep,
        clear=tuple(sorted(clear, key=lambda p: (p.count("/"), p))),
        link=tuple(link),
        fetch=tuple(fetch),
        sha256={p: h for p, h in sha256.items() if p in keep or any(i.path == p for i in link)},
    )


def _good_blob(blob: Path, item: ManifestEntry) -> str | None:
    """The SHA-256 of this file's content where the cache already holds it, under its own name, as a regular
    file (None where it does not)."""
    try:
        st = os.lstat(blob)
        if not stat.S_ISREG(st.st_mode) or st.st_size != item.size:
            return None
        digests = digests_of(blob, item.size)
    except OSError:
        return None
    sha256 = digests.hexdigests()["sha256"]
    good = digests.for_kind(item.kind) == item.hash and item.sha256 in (None, sha256)
    return sha256 if good else None


def apply(
    plans: list[VariantPlan],
    hub: Hub,
    cache: Path,
    pool: ThreadPoolExecutor,
    result: SyncResult,
    received: Callable[[int], None] | None = None,
) -> list[VariantCheck]:
    """Carry out the plans: clear, download every missing blob once (all at once), link, record, verify.

    Nothing outside a variant's own folder is removed; no blob is ever deleted (another snapshot may link
    to it); a download lands under its blob name only once it matched the lock.
    """
    downloads: dict[tuple[str, str], Future[FileProblem | Digests]] = {}
    try:
        for plan in plans:
            vdir = variant_dir(plan.entry.repo_id, plan.entry.commit, plan.variant, cache)
            real_folder(cache, vdir)
            blobs = real_folder(cache, blob_path(plan.entry.repo_id, "", cache))
            for rel in plan.clear:
                _clear(vdir, vdir / rel)
            for item in plan.fetch:
                key = (plan.entry.repo_id, item.hash)
                if key not in downloads:
                    _clear(blobs, blobs / item.hash, folders_only=True)
                    source = Source(
                        plan.entry.repo_id, plan.entry.commit, f"build/{plan.variant}/{item.path}"
                    )
                    downloads[key] = pool.submit(fetch_blob, hub, source, item, blobs, received)
        checks = []
        for plan in plans:
            checks.append(_finish(plan, cache, downloads, result))
        return checks
    except OSError as exc:
        for future in downloads.values():
            future.cancel()
        raise CacheError(
            f"Cannot write {exc.filename or 'a file'} in the Hugging Face cache at {cache} ({exc.strerror or exc}). "
            f"Check the permissions and free space of the cache (HF_HUB_CACHE), then sync again."
        ) from None


def _finish(
    plan: VariantPlan,
    cache: Path,
    downloads: dict[tuple[str, str], Future[FileProblem | Digests]],
    result: SyncResult,
) -> VariantCheck:
    """Link a variant's files to their blobs once downloaded, write its record, and verify it."""
    entry, variant = plan.entry, plan.variant
    vdir = variant_dir(entry.repo_id, entry.commit, variant, cache)
    blobs = blob_path(entry.repo_id, "", cache)
    problems = []
    linked = list(plan.link)
    sha256 = dict(plan.sha256)
    for item in plan.fetch:
        got = downloads[(entry.repo_id, item.hash)].result()
        if isinstance(got, FileProblem):
            problems.append(dataclasses.replace(got, path=item.path))
            continue
        sha256[item.path] = got.hexdigests()["sha256"]
        linked.append(item)
        result.downloaded_files += 1
        result.downloaded_bytes += item.size
    fingerprints = dict(plan.keep)
    blobs_real = os.path.realpath(blobs)
    for item in linked:
        path = vdir / item.path
        real_folder(vdir, path.parent)
        _symlink(os.path.relpath(blobs / item.hash, path.parent), path)
        found = inspect_file(vdir, item, blobs_real)
        if isinstance(found, Fingerprint):
            fingerprints[item.path] = found
        else:
            problems.append(found)
    manifest = [e if e.sha256 else dataclasses.replace(e, sha256=sha256.get(e.path)) for e in plan.manifest]
    if not problems:
        problems = _check_variant_hash(entry, variant, manifest, cache)
    record = record_for(entry, variant, manifest)
    if not problems:
        record.verified = fingerprints
    rpath = record_path(entry.repo_id, entry.commit, variant, cache)
    real_folder(cache, rpath.parent)
    write_record(rpath, record)
    check = check_variant(entry, variant, cache=cache)
    if problems:
        check.status, check.problems = "corrupt", problems
    return check


def _check_variant_hash(
    entry: LockedKernel, variant: str, manifest: list[ManifestEntry], cache: Path
) -> list[FileProblem]:
    """Whether the files that landed reproduce the lock's variant hash; if not, which files (unlinked again).

    The files are named by the publisher digest in the `metadata.json` that landed, where it has one;
    otherwise only the variant as a whole is known to be wrong. No blob is deleted (another snapshot may
    link to it); the variant's own links are.
    """
    expected = entry.variants[variant]
    got = manifest_hash(manifest, entry.hash_type)
    if got == expected:
        return []
    from kernel_lock.cache.verify import publisher_digest_problems

    vdir = variant_dir(entry.repo_id, entry.commit, variant, cache)
    named = publisher_digest_problems(vdir, manifest)
    for item in manifest:
        _clear(vdir, vdir / item.path)
    return [
        FileProblem("", "the files served do not reproduce the lock's variant hash", expected, got or "-"),
        *named,
    ]


def _clear(base: Path, path: Path, *, folders_only: bool = False) -> None:
    """Remove one path under `base` (a folder with what is in it); never through a symlinked folder, never a link's target."""
    if first_unsafe_folder(base, path.parent) is not None:
        return  # a folder on the way is itself being cleared or replaced; what is behind it is not ours
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path)
    elif not folders_only:
        os.unlink(path)


def _symlink(target: str, path: Path) -> None:
    """Point `path` at `target` (relative), replacing whatever is there in one rename."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.link")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp)
    os.symlink(target, tmp)
    try:
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
