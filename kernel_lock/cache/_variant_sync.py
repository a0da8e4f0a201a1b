"""One variant's sync: its manifest from the Hub, a plan built from the verification verdict, and its execution.

As pip-tools does, the plan (`plan_variant`: what to clear, link and fetch, computed without writing) is
separate from carrying it out (`carry_out`). The plan comes from the same verdict that verification acts on
(`kernel_lock.core.verdict`): files the verdict vouches for or that hash correctly stay, everything it finds
wrong or extra is cleared, and each missing or wrong file is linked to a good blob already in the cache or
fetched. Downloads take every path from the lock, never from the Hub's headers, and land under their blob
name only once they match. Nothing outside the variant's own folder is removed and no blob is deleted
(another snapshot may link to it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import stat
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kernel_lock.cache.verify import (
    FileHashes,
    VariantCheck,
    check_variant,
    content_problem,
    hash_files,
    publisher_digest_problems,
    record_for,
    verify_mode,
)
from kernel_lock.cache.writes import make_real_folder, remove_in_cache, write_record
from kernel_lock.core.cache_layout import (
    Fingerprint,
    ManifestEntry,
    blob_path,
    first_unsafe_folder,
    manifest_hash,
    read_record,
    record_path,
    unwritable_paths,
    variant_dir,
)
from kernel_lock.core.hashing import is_ignored
from kernel_lock.core.lockfile import LockedKernel
from kernel_lock.core.verdict import FileProblem, judge, look_at, take_snapshot, wanted
from kernel_lock.errors import CacheError, HubError
from kernel_lock.hub.fetch import Digests, Source, digests_of, fetch_blob, store_blob

if TYPE_CHECKING:
    from kernel_lock.cache.sync import SyncResult
    from kernel_lock.hub.client import Hub


def hub_manifest(hub: Hub, entry: LockedKernel, variant: str, cache: Path) -> list[ManifestEntry]:
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
    # Without a publisher digest a git file's SHA-256 is known once it lands: `_link_and_record` checks the hash then.
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
        make_real_folder(cache, blob_path(entry.repo_id, "", cache)), meta.hash, data
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
    """What sync does to one variant that did not verify; computed without writing anything (`plan_variant`).

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


def plan_variant(
    entry: LockedKernel, variant: str, manifest: list[ManifestEntry], cache: Path
) -> VariantPlan:
    """The plan that makes a variant's folder hold exactly its manifest; reads the cache, writes nothing.

    Built from the verification verdict over the folder, as a load judges it: files the verdict vouches for
    (fast mode, a trusted record that reproduces the lock's hash) stay without a hash, the others it leaves
    to hash stay if their content is right; whatever it finds wrong or extra is cleared. A folder on the way
    that is a symlink or a file makes every file count as missing: its contents are not ours to read.
    """
    record = read_record(record_path(entry.repo_id, entry.commit, variant, cache))
    matches = record is not None and record.manifest_matches(entry.variants[variant], entry.hash_type)
    verdict = judge(
        wanted(manifest),
        record.stamps() if record is not None and matches else {},
        take_snapshot(entry.repo_id, entry.commit, variant, cache),
        hash_all=verify_mode() == "full",
    )
    # the lock's hash authenticates the record, so its SHA-256 of each file it vouches for
    recorded = {e.path: e.sha256 for e in record.manifest} if record is not None and matches else {}
    sha256 = {p: h for p in verdict.vouched if (h := recorded.get(p)) is not None}
    keep = {p: Fingerprint.of(s) for p, s in verdict.vouched.items() if p in sha256}
    clear = set(verdict.clear)
    need = list(verdict.replace)
    by_path = {e.path: e for e in manifest}
    vdir = variant_dir(entry.repo_id, entry.commit, variant, cache)
    jobs = [(by_path[p], vdir / p, s) for p, s in verdict.to_hash.items()]
    jobs += [(by_path[p], vdir / p, s) for p, s in verdict.vouched.items() if p not in sha256]
    for item, stamp, actual in hash_files(jobs):
        if content_problem(item, actual) is None and isinstance(actual, FileHashes):
            keep[item.path] = Fingerprint.of(stamp)
            sha256[item.path] = actual.sha256
        else:
            clear.add(item.path)
            need.append(item.path)
    blobs = blob_path(entry.repo_id, "", cache)
    blobs_usable = first_unsafe_folder(cache, blobs) is None  # a symlinked blobs folder is replaced, not used
    link: list[ManifestEntry] = []
    fetch: list[ManifestEntry] = []
    for item in (by_path[p] for p in sorted(need)):
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
        sha256=sha256,
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


def carry_out(
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
            make_real_folder(cache, vdir)
            blobs = make_real_folder(cache, blob_path(plan.entry.repo_id, "", cache))
            for rel in plan.clear:
                remove_in_cache(vdir, vdir / rel)
            for item in plan.fetch:
                key = (plan.entry.repo_id, item.hash)
                if key not in downloads:
                    remove_in_cache(blobs, blobs / item.hash, only_a_folder=True)
                    source = Source(
                        plan.entry.repo_id, plan.entry.commit, f"build/{plan.variant}/{item.path}"
                    )
                    downloads[key] = pool.submit(fetch_blob, hub, source, item, blobs, received)
        checks = []
        for plan in plans:
            checks.append(_link_and_record(plan, cache, downloads, result))
        return checks
    except OSError as exc:
        for future in downloads.values():
            future.cancel()
        raise CacheError(
            f"Cannot write {exc.filename or 'a file'} in the Hugging Face cache at {cache} ({exc.strerror or exc}). "
            f"Check the permissions and free space of the cache (HF_HUB_CACHE), then sync again."
        ) from None


def _link_and_record(
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
    for item in linked:
        path = vdir / item.path
        make_real_folder(vdir, path.parent)
        _symlink(os.path.relpath(blobs / item.hash, path.parent), path)
        seen = look_at(vdir, item.path, blobs)
        if seen.stamp is not None:
            fingerprints[item.path] = Fingerprint.of(seen.stamp)
        else:
            problems.append(seen.problem(item.path, item.hash))
    manifest = [e if e.sha256 else dataclasses.replace(e, sha256=sha256.get(e.path)) for e in plan.manifest]
    if not problems:
        problems = _check_variant_hash(entry, variant, manifest, cache)
    record = record_for(entry, variant, manifest, None if problems else fingerprints)
    rpath = record_path(entry.repo_id, entry.commit, variant, cache)
    make_real_folder(cache, rpath.parent)
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
    vdir = variant_dir(entry.repo_id, entry.commit, variant, cache)
    named = publisher_digest_problems(vdir, manifest)
    for item in manifest:
        remove_in_cache(vdir, vdir / item.path)
    return [
        FileProblem("", "the files served do not reproduce the lock's variant hash", expected, got or "-"),
        *named,
    ]


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
