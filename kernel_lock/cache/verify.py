"""Offline verification of a synced variant against the lock.

A variant verifies when (1) its record's manifest reproduces the lock's variant
hash, (2) its snapshot folder holds exactly the manifest's files (bytecode caches
aside), each a regular file or a symlink into the repo's own `blobs/`, and (3)
every file's content has the manifest's SHA-256 (and listed hash).

Step (3) has two modes, chosen by `KERNEL_LOCK_VERIFY`:

- `fast` (default): a file whose (device, inode, size, mtime, ctime, link target)
  equals the fingerprint recorded when it last hashed correctly is not re-hashed;
  any other file is. An edit, truncation, replacement, rename over, copy, `touch`
  or `chmod` changes the ctime or inode, so it is caught; what is not caught is
  someone with write access to the cache who also rewrites the record, or a
  filesystem that fakes ctime. A write through a shared writable mapping opened
  before the last hash (a page already dirty is written without updating mtime
  or ctime) is why a fingerprint vouches only for a file no one but this user
  and root can write (`core.verdict.vouches`): other files are hashed on every check. The
  fingerprints themselves count only where no one else can change the record,
  nor the folders from the cache root down to it, the variant and the blobs
  (`record_trusted`): in a cache a group can write, every file is hashed.
- `full`: every file is hashed on every check; catches everything above without
  trusting the record's fingerprints. Where the variant's `metadata.json` has a
  publisher digest, the files are also checked against it (for a lock of hash type
  `git_lfs_concat`, this is what checks the Python files by SHA-256).

Which files need a hash, and what is wrong before any hash, is `kernel_lock.core.verdict`'s one rule over
a snapshot of the folder (`take_snapshot`, there too); this module hashes what the verdict leaves to hash.
Files are hashed in parallel and read once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from kernel_lock import env
from kernel_lock.cache.writes import write_record
from kernel_lock.core.cache_layout import (
    Fingerprint,
    ManifestEntry,
    VariantRecord,
    read_record,
    record_path,
    variant_dir,
)
from kernel_lock.core.hashing import hash_file
from kernel_lock.core.lockfile import LockedKernel
from kernel_lock.core.verdict import FileProblem, Stamp, Verdict, judge, take_snapshot, wanted
from kernel_lock.errors import NotSyncedError, VerificationError
from kernel_lock.lock.digest import MalformedDigest, hash_path, in_digest, parse_digest

Mode = Literal["fast", "full"]
MODES: tuple[Mode, ...] = ("fast", "full")
HASH_WORKERS = max(2, min(8, os.cpu_count() or 2))
PARALLEL_HASH_MIN_BYTES = 1 << 20  # about 1 ms of hashing: less than starting the threads costs
METADATA = "metadata.json"


@dataclass
class VariantCheck:
    """The outcome of verifying one variant of one locked kernel."""

    repo_id: str
    commit: str
    variant: str
    status: Literal["ok", "missing", "corrupt"]
    path: Path
    problems: list[FileProblem] = field(default_factory=list)
    hashed: int = 0
    record: VariantRecord | None = (
        None  # once it verified: the manifest and fingerprints the import checks against
    )

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def error(self) -> VerificationError:
        """The error to raise for a failed check, naming kernel, variant and every bad file."""
        where = f"{self.repo_id} variant {self.variant} (commit {self.commit[:12]})"
        if self.status == "missing":
            detail = "; ".join(map(str, self.problems)) or "not synced"
            return NotSyncedError(
                f"{where} is not synced and verified in {self.path.parent.parent.parent.parent}: {detail}."
            )
        files = "; ".join(map(str, self.problems))
        return VerificationError(
            f"{where} failed verification: {files}. The files in {self.path} do not match kernels.lock; "
            f"nothing was imported. Run `kernel-lock sync` to restore the locked files."
        )


def verify_mode(mode: str | None = None) -> Mode:
    """The verification mode: the argument, else `KERNEL_LOCK_VERIFY`, else `fast`."""
    value = (mode or env.verify_mode() or "fast").strip().lower()
    if value not in MODES:
        raise VerificationError(
            f"Unknown verification mode {value!r} (from KERNEL_LOCK_VERIFY or the caller). Use 'fast' or 'full'."
        )
    return value


def check_variant(
    entry: LockedKernel, variant: str, *, cache: Path | None = None, mode: str | None = None
) -> VariantCheck:
    """Verify one synced variant offline; on success refresh the record's fingerprints."""
    chosen = verify_mode(mode)
    vdir = variant_dir(entry.repo_id, entry.commit, variant, cache)
    check = VariantCheck(entry.repo_id, entry.commit, variant, "ok", vdir)
    expected = entry.variants.get(variant)
    if expected is None:
        check.status = "missing"
        check.problems.append(
            FileProblem("", f"variant not in the lock (locked: {', '.join(sorted(entry.variants))})")
        )
        return check
    rpath = record_path(entry.repo_id, entry.commit, variant, cache)
    record = read_record(rpath)
    if record is None:
        check.status = "missing"
        check.problems.append(FileProblem("", "no sync record"))
        return check
    if not record.manifest_matches(expected, entry.hash_type):
        check.status = "corrupt"
        check.problems.append(
            FileProblem(
                str(rpath),
                "sync record does not reproduce the lock's variant hash",
                expected,
                record.variant_hash,
            )
        )
        return check
    verdict = judge(
        wanted(record.manifest),
        record.stamps(),
        take_snapshot(entry.repo_id, entry.commit, variant, cache),
        hash_all=chosen == "full",
    )
    content, fingerprints = hash_and_check(vdir, record.manifest, verdict)
    check.hashed = len(verdict.to_hash)
    problems = [*verdict.problems, *content]
    if chosen == "full" and not problems:
        problems = publisher_digest_problems(vdir, record.manifest)
    if problems:
        check.status = "missing" if verdict.status == "missing" else "corrupt"
        check.problems.extend(problems)
        return check
    if fingerprints != record.verified:
        record = dataclasses.replace(record, verified=fingerprints)
        # A read-only cache (e.g. a production image) still verifies, by hashing.
        with contextlib.suppress(OSError):
            write_record(rpath, record)
    check.record = record
    return check


def hash_and_check(
    vdir: Path, manifest: Iterable[ManifestEntry], verdict: Verdict
) -> tuple[list[FileProblem], dict[str, Fingerprint]]:
    """Hash the files a verdict leaves to hash: (content problems, fingerprints of every good file)."""
    by_path = {e.path: e for e in manifest}
    fingerprints = {p: Fingerprint.of(s) for p, s in verdict.vouched.items()}
    problems = []
    for entry, stamp, actual in hash_files([(by_path[p], vdir / p, s) for p, s in verdict.to_hash.items()]):
        problem = content_problem(entry, actual)
        if problem is not None:
            problems.append(problem)
        else:
            fingerprints[entry.path] = Fingerprint.of(stamp)
    return problems, fingerprints


@dataclass(frozen=True)
class FileHashes:
    """A file's SHA-256 and the hash its manifest entry lists (git blob id, or, for LFS, the SHA-256 again)."""

    sha256: str
    listed: str


def content_problem(entry: ManifestEntry, actual: FileHashes | OSError) -> FileProblem | None:
    """What is wrong with a hashed file's content (None: nothing); by SHA-256 where the manifest knows it."""
    if isinstance(actual, OSError):
        return FileProblem(entry.path, f"cannot be read ({actual.strerror})", entry.sha256 or entry.hash)
    if entry.sha256 is not None and actual.sha256 != entry.sha256:
        return FileProblem(entry.path, "content changed", entry.sha256, actual.sha256)
    if actual.listed != entry.hash:
        return FileProblem(entry.path, "content changed", entry.hash, actual.listed)
    return None


def hash_files(
    jobs: list[tuple[ManifestEntry, Path, Stamp]],
) -> list[tuple[ManifestEntry, Stamp, FileHashes | OSError]]:
    """Hash files, each read once; a file that cannot be read gives its error.

    Threads (hashlib releases the GIL) can save at most the time of hashing every file but the largest,
    so they are used only where those hold `PARALLEL_HASH_MIN_BYTES` or more. A typical variant, one
    large `.so` and a few small Python files, is hashed in this thread: there the pool would save nothing
    and cost a fresh process (every `KERNEL_LOCK_VERIFY=full` load) milliseconds to start.
    """

    def hash_job(
        job: tuple[ManifestEntry, Path, Stamp],
    ) -> tuple[ManifestEntry, Stamp, FileHashes | OSError]:
        entry, path, stamp = job
        try:
            sha256, blob = hash_file(path, git_blob=entry.kind == "git")
        except OSError as exc:
            return entry, stamp, exc
        return entry, stamp, FileHashes(sha256, blob or sha256)

    sizes = sorted(stamp[2] for _, _, stamp in jobs)
    if sum(sizes[:-1]) < PARALLEL_HASH_MIN_BYTES:
        return [hash_job(j) for j in jobs]
    with ThreadPoolExecutor(max_workers=min(HASH_WORKERS, len(jobs))) as pool:
        return list(pool.map(hash_job, jobs))


def publisher_digest_problems(vdir: Path, manifest: list[ManifestEntry]) -> list[FileProblem]:
    """The differences between a verified variant and the publisher digest in its `metadata.json` (if any).

    Files are compared by the SHA-256 just verified; a SHA-512 digest hashes them
    again. Each difference is one of the `kernels` library's `DigestViolation` kinds.
    """
    try:
        digest = parse_digest((vdir / METADATA).read_bytes())
    except FileNotFoundError:
        return []
    except (OSError, MalformedDigest) as exc:
        return [FileProblem(METADATA, f"publisher digest unreadable: {exc}")]
    if digest is None:
        return []
    if digest.algorithm == "sha256":
        actual = {e.path: e.sha256 for e in manifest}
    else:
        actual = {e.path: hash_path(vdir / e.path, digest.algorithm) for e in manifest if in_digest(e.path)}
    return [
        FileProblem(getattr(v, "path", METADATA), f"publisher digest: {v}")
        for v in digest.check(actual, digest.algorithm)
    ]


def record_for(
    entry: LockedKernel,
    variant: str,
    manifest: list[ManifestEntry],
    verified: dict[str, Fingerprint] | None = None,
) -> VariantRecord:
    """A record for a variant being synced: nothing verified yet, or the fingerprints of its verified files."""
    return VariantRecord(
        repo_id=entry.repo_id,
        commit=entry.commit,
        variant=variant,
        hash_type=entry.hash_type,
        variant_hash=entry.variants[variant],
        manifest=sorted(manifest, key=lambda e: e.path),
        verified=verified or {},
    )
