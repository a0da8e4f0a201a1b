"""Variant hashes at lock time, from the `build/` listing, each variant's `metadata.json` and its publisher digest.

For hash type `sha256` each file's SHA-256 comes from, in order: the listing (LFS
files carry their SHA-256), the bytes of `metadata.json` (which lock reads anyway),
the publisher's `digest` in `metadata.json` (SHA-256 digests), and otherwise the
file's bytes, hashed once per git blob id and only once that id is the listed one
(content-addressed: a file shared by variants or commits costs one request, and
the bytes kept in the cache save the next run's; no hash is ever read from the cache).
Where a variant has a digest it is cross-checked against the listing whatever the
hash type: the file sets must be equal and every LFS file's SHA-256 must match,
else the variant is refused, naming the file (for a variant with a signature
bundle, `kernel_lock.lock.signatures` does this once the signature verified).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kernel_lock.core.cache_layout import RECORD_DIR, blob_path, repo_dir, unwritable_paths, writable_in_cache
from kernel_lock.core.fsutil import atomic_write, read_regular_file
from kernel_lock.core.hashing import HashType, git_blob_sha1, is_ignored, variant_hash
from kernel_lock.core.lockfile import Provenance, is_variant_name
from kernel_lock.errors import DigestError, HubError, ResolutionError
from kernel_lock.lock._provenance import parse_provenance
from kernel_lock.lock.digest import HashMismatch, MalformedDigest, PublisherDigest, in_digest, parse_digest

if TYPE_CHECKING:
    from kernel_lock.hub.client import Hub, TreeEntry

METADATA = "metadata.json"
BUNDLE = "metadata.json.sigstore"
BLOB_DIR = "blobs"  # lock's copies of git-stored files, by blob id, under the records folder


@dataclass(frozen=True)
class LockedVariant:
    """What the lock learns of one variant: hash, `metadata.json` (bytes, parsed, provenance, digest), bundle.

    `bundle` is the signature bundle's bytes; None where there is none, or where it is stored in Git LFS.
    """

    hash: str
    metadata_bytes: bytes | None
    metadata: dict[str, Any]
    provenance: Provenance | None
    digest: PublisherDigest | None
    bundle: bytes | None


def list_variants(repo_id: str, commit: str, entries: Iterable[TreeEntry]) -> dict[str, dict[str, TreeEntry]]:
    """Group a `build/` listing by variant (name -> relative path -> entry), refusing what cannot be a variant."""
    files: dict[str, dict[str, TreeEntry]] = defaultdict(dict)
    for entry in entries:
        if entry.type == "directory":
            continue
        split = split_variant_path(repo_id, commit, entry.path)
        if split is None:
            continue
        variant, rel = split
        if not is_variant_name(variant):
            raise HubError(
                f"{repo_id} at {commit} has a build variant folder named {variant!r}, which is not a variant name. "
                f"Refusing to lock it."
            )
        if entry.type != "file":
            raise HubError(
                f"{repo_id} at {commit} lists {entry.path!r} as a {entry.type!r}; kernel variants may hold only "
                f"regular files. Refusing to lock it."
            )
        if rel in files[variant]:
            raise HubError(f"{repo_id} at {commit} lists {entry.path!r} twice. Refusing to lock it.")
        if not is_ignored(rel):
            files[variant][rel] = entry
    if not files:
        raise ResolutionError(f"{repo_id} has no build variants (no files under build/) at commit {commit}.")
    for variant, listed in sorted(files.items()):
        bad = unwritable_paths(sorted(listed))
        if bad:
            raise HubError(
                f"{repo_id} at {commit} lists files under build/{variant}/ that no cache can hold: "
                f"{', '.join(map(repr, bad[:5]))}{' ...' if len(bad) > 5 else ''} (a file where another needs "
                f"a folder, or a name over 255 bytes). Sync could not write them, so the lock refuses them; "
                f"tell the kernel's publisher."
            )
    return dict(sorted(files.items()))


def split_variant_path(repo_id: str, commit: str, path: str) -> tuple[str, str] | None:
    """`build/<variant>/<rel>` -> (variant, rel); None for a file directly in `build/`.

    Paths that could escape a directory (absolute, `..`, backslash) are refused.
    """
    parts = path.split("/")
    unsafe = (
        "\\" in path
        or "\0" in path
        or path.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or len(parts) < 2
        or parts[0] != "build"
    )
    if unsafe:
        raise HubError(
            f"{repo_id} at {commit} lists an unsafe or unexpected path {path!r} (absolute, '..', backslash, "
            f"or outside build/<variant>/). Refusing to lock it; the Hub or mirror may be compromised."
        )
    return (parts[1], "/".join(parts[2:])) if len(parts) > 2 else None


class Blobs:
    """Git-stored files of one lock run, hashed at most once per blob id, from bytes that match the blob id.

    The bytes come from the cache (a synced file's blob, or a copy an earlier lock kept) or from the Hub;
    either way they are hashed only once `git_blob_sha1` of them is the listed blob id, so nothing written
    into a shared cache decides a hash in the lock. Fetched bytes are kept per repo, named by blob id (a
    blob id names its content, so the copies need no invalidation); `fetched` counts the requests made.
    """

    def __init__(self, hub: Hub, pool: ThreadPoolExecutor) -> None:
        self.hub = hub
        self.pool = pool
        self.fetched = 0
        self._futures: dict[str, Future[dict[str, str]]] = {}
        self._lock = threading.Lock()

    def hashes(self, repo_id: str, commit: str, path: str, oid: str) -> Future[dict[str, str]]:
        """{"sha256": hex, "sha512": hex} of the blob `oid`, which the repo lists at `path` of `commit`."""
        with self._lock:
            if oid not in self._futures:
                self._futures[oid] = self.pool.submit(self._hash, repo_id, commit, path, oid)
            return self._futures[oid]

    def _hash(self, repo_id: str, commit: str, path: str, oid: str) -> dict[str, str]:
        data = next((d for d in map(_read_blob, kept_blob_paths(repo_id, oid)) if _is_blob(d, oid)), None)
        if data is None:
            data = self.hub.read_file(repo_id, commit, path)
            with self._lock:
                self.fetched += 1
            if data is None or not _is_blob(data, oid):
                raise HubError(
                    f"The Hub served {path} of {repo_id} at {commit[:12]} with content that does not match its "
                    f"own listing (blob {oid}). Refusing to lock from it."
                )
            keep_in_cache(kept_blob_paths(repo_id, oid)[-1], data)
        return {"sha256": hashlib.sha256(data).hexdigest(), "sha512": hashlib.sha512(data).hexdigest()}


def kept_blob_paths(repo_id: str, oid: str) -> list[Path]:
    """Where the cache may hold the bytes of git blob `oid`: a synced file's blob, then lock's own copy."""
    return [blob_path(repo_id, oid), repo_dir(repo_id) / RECORD_DIR / BLOB_DIR / oid]


def _read_blob(path: Path) -> bytes | None:
    """A regular file's bytes, None where there is none (the caller checks them against a blob id)."""
    try:
        return read_regular_file(path)
    except OSError:
        return None


def _is_blob(data: bytes | None, oid: str) -> bool:
    """Whether `data` is the content of git blob `oid` (sha1 of `blob <len>\\0` + bytes)."""
    return data is not None and git_blob_sha1(data) == oid


def keep_in_cache(path: Path, data: bytes) -> None:
    """Write a file that only saves requests (best effort), never through a planted link or folder."""
    if not writable_in_cache(path):
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data, durable=False)
    except OSError:
        pass


class MetadataCache:
    """One small file of every variant of a commit (`metadata.json`, or its signature), checked against the
    listed blob ids, kept in one cache file; an empty entry records that a variant has no such file.

    A commit's files never change, so the cache needs no invalidation; a cached
    file that does not match its blob id (or a missing one) is fetched again.
    """

    def __init__(self, repo_id: str, commit: str, name: str = METADATA) -> None:
        self.repo_id = repo_id
        self.commit = commit
        self.name = name
        self.path = repo_dir(repo_id) / RECORD_DIR / commit / name
        try:
            cached = json.loads(read_regular_file(self.path))
        except (OSError, ValueError, RecursionError):
            cached = {}
        self.files: dict[str, str] = (
            {k: v for k, v in cached.items() if isinstance(v, str)} if isinstance(cached, dict) else {}
        )
        self.changed = False

    def get(self, variant: str, oid: str, hub: Hub) -> bytes:
        """A variant's file, from the cache or the Hub; refused if it does not match `oid`."""
        cached = self.files.get(variant)
        if cached is not None and git_blob_sha1(cached.encode()) == oid:
            return cached.encode()
        data = hub.read_file(self.repo_id, self.commit, f"build/{variant}/{self.name}") or b""
        if git_blob_sha1(data) != oid:
            raise HubError(
                f"The Hub served build/{variant}/{self.name} of {self.repo_id} at {self.commit[:12]} with content "
                f"that does not match its own listing (blob {oid}). Refusing to lock from it."
            )
        try:
            self.files[variant] = data.decode("utf-8")
            self.changed = True
        except UnicodeDecodeError:
            pass
        return data

    def note_absent(self, variants: Iterable[str]) -> None:
        """Remember that these variants have no such file (kept as an empty entry)."""
        for variant in variants:
            if self.files.get(variant) != "":
                self.files[variant] = ""
                self.changed = True

    def save(self) -> None:
        """Write the cache if anything was fetched (best effort: it is only an optimisation)."""
        if self.changed:
            keep_in_cache(self.path, json.dumps(self.files, sort_keys=True).encode())


def lock_variants(
    repo_id: str,
    commit: str,
    listing: Mapping[str, Mapping[str, TreeEntry]],
    *,
    hub: Hub,
    pool: ThreadPoolExecutor,
    blobs: Blobs,
    hash_type: HashType,
) -> dict[str, LockedVariant]:
    """Hash every listed variant of `repo_id` at `commit`.

    Its `metadata.json` and signature bundle files (git-stored) are fetched concurrently and kept per commit.
    """
    small = {name: _fetch_named(repo_id, commit, listing, name, hub, pool) for name in (METADATA, BUNDLE)}
    parsed: dict[str, tuple[bytes | None, dict[str, Any], PublisherDigest | None]] = {}
    for variant in listing:
        data = small[METADATA].get(variant)
        parsed[variant] = (data, *_read_metadata(repo_id, commit, variant, data))
    bundles = small[BUNDLE]
    pending: dict[str, dict[str, Future[dict[str, str]]]] = {}
    for variant, files in listing.items():
        data, _, digest = parsed[variant]
        if BUNDLE not in files:  # a signed variant's digest is checked with its signature (`signatures`)
            _cross_check(repo_id, commit, variant, files, digest)
        if hash_type == "sha256":
            pending[variant] = {
                rel: blobs.hashes(repo_id, commit, f"build/{variant}/{rel}", e.oid)
                for rel, e in files.items()
                if e.lfs is None
                and not (rel == METADATA and data is not None)
                and not (rel == BUNDLE and variant in bundles)
                and not _digest_has(digest, rel)
            }
    locked = {}
    per_file: dict[str, dict[str, str]] = {}
    for variant, files in listing.items():
        data, metadata, digest = parsed[variant]
        if hash_type == "sha256":
            fetched = {METADATA: data, BUNDLE: bundles.get(variant)}
            per_file[variant] = _sha256s(repo_id, commit, variant, files, fetched, digest, pending[variant])
        else:
            per_file[variant] = {rel: e.file_hash for rel, e in files.items()}
        provenance = _provenance(repo_id, commit, variant, metadata)
        locked[variant] = LockedVariant(
            variant_hash(per_file[variant].items()), data, metadata, provenance, digest, bundles.get(variant)
        )
    keep_in_cache(file_hashes_path(repo_id, commit, hash_type), json.dumps(per_file, sort_keys=True).encode())
    return locked


def file_hashes_path(repo_id: str, commit: str, hash_type: HashType) -> Path:
    """Where lock keeps each variant's per-file hashes of a commit: an untrusted cache, which a reader accepts
    for a variant only where the hashes reproduce the lock's variant hash (`kept_file_hashes`)."""
    return repo_dir(repo_id) / RECORD_DIR / commit / f"file-hashes-{hash_type}.json"


def kept_file_hashes(
    repo_id: str, commit: str, hash_type: HashType, variant: str, expected: str
) -> dict[str, str] | None:
    """A variant's per-file hashes as lock kept them, only if they reproduce `expected` (the lock's hash)."""
    try:
        table = json.loads(read_regular_file(file_hashes_path(repo_id, commit, hash_type)))
        files = table[variant]
        hashes = {str(k): str(v) for k, v in files.items()}
        return hashes if variant_hash(hashes.items()) == expected else None
    except (OSError, ValueError, RecursionError, KeyError, TypeError, AttributeError):
        return None


def _fetch_named(
    repo_id: str,
    commit: str,
    listing: Mapping[str, Mapping[str, TreeEntry]],
    name: str,
    hub: Hub,
    pool: ThreadPoolExecutor,
) -> dict[str, bytes]:
    """Each variant's git-stored top-level file `name` (fetched concurrently, cached by commit)."""
    cache = MetadataCache(repo_id, commit, name)
    futures = {
        variant: pool.submit(cache.get, variant, files[name].oid, hub)
        for variant, files in listing.items()
        if name in files and files[name].lfs is None
    }
    found = {variant: future.result() for variant, future in futures.items()}
    cache.note_absent(set(listing) - set(found))
    cache.save()
    return found


def _digest_has(digest: PublisherDigest | None, rel: str) -> bool:
    """Whether the digest gives this file's SHA-256 (a SHA-512 digest gives none)."""
    return digest is not None and digest.algorithm == "sha256" and rel in digest.files


def _where(repo_id: str, commit: str, variant: str) -> str:
    return f"build/{variant}/{METADATA} of {repo_id} at {commit[:12]}"


def _read_metadata(
    repo_id: str, commit: str, variant: str, data: bytes | None
) -> tuple[dict[str, Any], PublisherDigest | None]:
    """The parsed `metadata.json` (empty if there is none) and its digest."""
    if data is None:
        return {}, None
    from kernel_lock.core import jsonread

    try:
        parsed = jsonread.loads(data)
    except jsonread.MalformedJSON as exc:
        raise HubError(f"{_where(repo_id, commit, variant)} is not JSON ({exc.reason}).") from None
    if not isinstance(parsed, dict):
        return {}, None
    try:
        digest = parse_digest(parsed)
    except MalformedDigest as exc:
        raise DigestError(
            f"{_where(repo_id, commit, variant)}: {exc.reason}. Refusing to lock the variant; tell its publisher.",
            repo_id=repo_id,
            commit=commit,
            variant=variant,
        ) from None
    return parsed, digest


def _provenance(repo_id: str, commit: str, variant: str, metadata: Mapping[str, Any]) -> Provenance | None:
    try:
        return parse_provenance(metadata)
    except ValueError as exc:
        raise HubError(
            f"{_where(repo_id, commit, variant)} has a malformed provenance ({exc}), which the kernels library "
            f"cannot load either. Tell its publisher."
        ) from None


def _cross_check(
    repo_id: str, commit: str, variant: str, files: Mapping[str, TreeEntry], digest: PublisherDigest | None
) -> None:
    """Refuse a variant whose listing disagrees with its publisher digest: other files, or other LFS hashes."""
    if digest is None:
        return
    listed = {
        rel: (e.lfs.oid if e.lfs is not None and digest.algorithm == "sha256" else None)
        for rel, e in files.items()
    }
    violations = digest.check(listed, digest.algorithm)
    if violations:
        raise DigestError(
            f"{repo_id} variant {variant} at {commit[:12]}: the Hub's listing does not match the publisher's digest "
            f"in {METADATA} ({'; '.join(map(str, violations))}). Refusing to lock it; the Hub, a mirror or the "
            f"publisher's build is inconsistent.",
            repo_id=repo_id,
            commit=commit,
            variant=variant,
            violations=violations,
        )


def _sha256s(
    repo_id: str,
    commit: str,
    variant: str,
    files: Mapping[str, TreeEntry],
    read: Mapping[str, bytes | None],
    digest: PublisherDigest | None,
    fetched: Mapping[str, Future[dict[str, str]]],
) -> dict[str, str]:
    """SHA-256 of every file of a variant (`read`: the bytes of files lock read anyway, by path).

    Files fetched to hash them are checked against a SHA-512 digest.
    """
    out: dict[str, str] = {}
    for rel, entry in files.items():
        known = read.get(rel)
        if entry.lfs is not None:
            out[rel] = entry.lfs.oid
        elif known is not None:
            out[rel] = hashlib.sha256(known).hexdigest()
        elif digest is not None and _digest_has(digest, rel):
            out[rel] = digest.hex(rel)
        else:
            hashes = fetched[rel].result()
            if digest is not None and in_digest(rel):
                violations = digest.check({rel: hashes[digest.algorithm]}, digest.algorithm)
                mismatch = [v for v in violations if isinstance(v, HashMismatch)]
                if mismatch:
                    raise DigestError(
                        f"{repo_id} variant {variant} at {commit[:12]}: {rel} as served does not match the "
                        f"publisher's digest ({mismatch[0]}). Refusing to lock it.",
                        repo_id=repo_id,
                        commit=commit,
                        variant=variant,
                        violations=mismatch,
                    )
            out[rel] = hashes["sha256"]
    return out
