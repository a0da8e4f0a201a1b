"""Where synced kernels live: the standard Hugging Face cache, and kernel-lock's own records beside it.

Files go where `huggingface_hub` puts them (`<cache>/kernels--org--name/snapshots/<commit>/...`,
symlinks into `blobs/`), so other tools find them. Next to them, in
`<cache>/kernels--org--name/.kernel-lock/<commit>/<variant>.json`, sync keeps a `VariantRecord`: the
variant's manifest (each file's path, size, kind, listed hash and SHA-256, as the Hub listed and served it
at the locked commit) and the stat fingerprint of each file when it last verified. The manifest needs no
trust of its own: it is accepted only if it reproduces the lock's variant hash. Its fingerprints spare a
file a hash only where no one but this user and root can change the record and the folders above it
(`record_trusted`), and records are written like blobs (0644), so forging one takes the same rights as
changing the kernel files it describes.

This module reads; `kernel_lock.cache.writes` changes the cache. No pydantic and nothing heavy: the no-op
sync and every load, the quick one included, go through here.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kernel_lock import env
from kernel_lock.core._record import Record
from kernel_lock.core.fsutil import first_shared, parts_below, read_regular_file
from kernel_lock.core.hashing import HASH_TYPES, HashType, variant_hash
from kernel_lock.core.requirement import is_hex

if TYPE_CHECKING:
    from kernel_lock.core.verdict import Stamp

__all__ = [
    "NAME_MAX",
    "PATH_MAX",
    "RECORD_DIR",
    "Fingerprint",
    "ManifestEntry",
    "VariantRecord",
    "blob_path",
    "first_unsafe_folder",
    "hub_cache_dir",
    "manifest_hash",
    "read_record",
    "record_path",
    "record_trusted",
    "repo_dir",
    "unwritable_paths",
    "variant_dir",
    "writable_in_cache",
]

RECORD_DIR = ".kernel-lock"


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, resolved from the environment as `huggingface_hub` does."""
    return env.hub_cache()


def repo_dir(repo_id: str, cache: Path | None = None) -> Path:
    """The cache folder of a kernel repo: `kernels--{org}--{name}`."""
    return (cache or hub_cache_dir()) / ("kernels--" + repo_id.replace("/", "--"))


def variant_dir(repo_id: str, commit: str, variant: str, cache: Path | None = None) -> Path:
    """The snapshot folder of one variant at one commit."""
    return repo_dir(repo_id, cache) / "snapshots" / commit / "build" / variant


def blob_path(repo_id: str, name: str, cache: Path | None = None) -> Path:
    """Where a file's content lives, named by its hash (git blob id, or LFS sha256), as `huggingface_hub` names it."""
    return repo_dir(repo_id, cache) / "blobs" / name


def record_path(repo_id: str, commit: str, variant: str, cache: Path | None = None) -> Path:
    """Where the `VariantRecord` of a synced variant lives."""
    return repo_dir(repo_id, cache) / RECORD_DIR / commit / f"{variant}.json"


def first_unsafe_folder(base: Path, path: Path) -> Path | None:
    """The first folder from `base` (exclusive) down to `path` (inclusive) that is a symlink or not a folder.

    A snapshot or variant folder replaced by a symlink (to a copy outside the cache, say) is refused like a
    symlinked file is. None when every one is a real folder or does not exist yet.
    """
    current = str(base)  # joined as text: the quick load path calls this three times per load
    for part in parts_below(base, path):
        current = os.path.join(current, part)
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            return None
        if not stat.S_ISDIR(mode):
            return Path(current)
    return None


def writable_in_cache(path: Path) -> bool:
    """Whether writing `path` (under the hub cache) stays inside it: no folder on the way is a symlink or a file.

    The optimisation caches kept beside the snapshots are skipped rather than written through a planted link.
    """
    return first_unsafe_folder(hub_cache_dir(), path.parent) is None


def record_trusted(repo_id: str, commit: str, variant: str, cache: Path | None = None) -> bool:
    """Whether a variant's sync record may spare its files a hash: no one but this user and root can change
    the record, the variant folder or the blobs folder, nor any folder from the cache root down to them
    (`first_shared`).

    Otherwise (a team cache that a group can write, a record another user wrote) the record's fingerprints
    vouch for nothing: whoever can rewrite it could record the fingerprint of any file, an older build's blob
    say. Its manifest is still authenticated by the lock's variant hash, so every file is then hashed.
    """
    root = cache or hub_cache_dir()
    paths = (
        record_path(repo_id, commit, variant, root),
        variant_dir(repo_id, commit, variant, root),
        blob_path(repo_id, "", root),
    )
    return all(first_shared(root, p) is None for p in paths)


NAME_MAX = 255  # bytes in one file name, on Linux, macOS and Windows file systems alike
PATH_MAX = 1024  # bytes in a path inside a variant; the cache adds its own prefix (PATH_MAX is 4096 on Linux)


def unwritable_paths(paths: list[str]) -> list[str]:
    """Paths of one variant that no cache could hold: unsafe, too long, or a file where another needs a folder.

    `a` and `a/b.py` cannot both be files; a name over 255 bytes cannot be created; `..`, an absolute path,
    a backslash or a NUL could leave the variant folder. Lock and sync refuse such listings, naming them.
    """
    bad = []
    as_set = set(paths)
    for path in paths:
        parts = path.split("/")
        unsafe = (
            not path
            or "\\" in path
            or "\0" in path
            or path.startswith("/")
            or any(p in ("", ".", "..") for p in parts)
            or len(path.encode("utf-8", "surrogatepass")) > PATH_MAX
            or any(len(p.encode("utf-8", "surrogatepass")) > NAME_MAX for p in parts)
        )
        in_the_way = [prefix for i in range(1, len(parts)) if (prefix := "/".join(parts[:i])) in as_set]
        if unsafe or in_the_way:
            bad.extend([path, *in_the_way])
    return sorted(set(bad))


class ManifestEntry(Record):
    """One file of a variant: path relative to the variant dir, size, kind, listed hash, SHA-256.

    `hash` is what the Hub lists (git blob id, or LFS SHA-256) and the blob's name
    in the cache. The SHA-256 of a git-stored file is not in the listing: it comes
    from the publisher digest or from the bytes once they matched `hash`, and a
    record is complete only when every entry has one.
    """

    path: str
    size: int
    kind: Literal["git", "lfs"]
    hash: str  # git blob sha1 (40 hex), or LFS sha256 (64 hex)
    sha256: str | None = None  # SHA-256 of the content (64 hex)

    @classmethod
    def from_dict(cls, data: object) -> ManifestEntry:
        """Validate one manifest entry of a record; `_Invalid` otherwise."""
        d = _fields(data, required=("path", "size", "kind", "hash"), optional=("sha256",))
        size, kind, sha256 = _whole(d["size"]), d["kind"], d.get("sha256")
        if size < 0 or kind not in ("git", "lfs") or not (is_hex(d["hash"], 40) or is_hex(d["hash"], 64)):
            raise _Invalid
        if sha256 is not None and not is_hex(sha256, 64):
            raise _Invalid
        return cls(path=_text(d["path"]), size=size, kind=kind, hash=d["hash"], sha256=sha256)

    def file_hash(self, hash_type: HashType) -> str | None:
        """This file's hash in a variant hash of `hash_type` (None where not known yet)."""
        return self.hash if hash_type == "git_lfs_concat" else self.sha256


class Fingerprint(Record):
    """What an ordinary change to a file cannot preserve: its inode, size, mtime and ctime."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int
    link: str | None = None  # the symlink target in the snapshot, if the file is a link

    @classmethod
    def from_dict(cls, data: object) -> Fingerprint:
        """Validate one fingerprint of a record; `_Invalid` otherwise."""
        numbers = ("dev", "ino", "size", "mtime_ns", "ctime_ns")
        d = _fields(data, required=numbers, optional=("link",))
        link = d.get("link")
        return cls(**{k: _whole(d[k]) for k in numbers}, link=None if link is None else _text(link))

    @classmethod
    def of(cls, stamp: Stamp) -> Fingerprint:
        """A fingerprint the verdict saw, as a record stores it."""
        dev, ino, size, mtime_ns, ctime_ns, link = stamp
        return cls(dev=dev, ino=ino, size=size, mtime_ns=mtime_ns, ctime_ns=ctime_ns, link=link)

    @property
    def stamp(self) -> Stamp:
        """The fingerprint as the verdict compares it."""
        return (self.dev, self.ino, self.size, self.mtime_ns, self.ctime_ns, self.link)


class VariantRecord(Record):
    """A synced variant: its manifest and, once verified, each file's fingerprint."""

    repo_id: str
    commit: str
    variant: str
    hash_type: HashType
    variant_hash: str
    manifest: list[ManifestEntry]
    verified: dict[str, Fingerprint] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: object) -> VariantRecord:
        """Validate a record as `json` reads it; `_Invalid` otherwise."""
        names = ("repo_id", "commit", "variant", "hash_type", "variant_hash", "manifest")
        d = _fields(data, required=names, optional=("verified",))
        manifest, verified = d["manifest"], d.get("verified", {})
        if (
            d["hash_type"] not in HASH_TYPES
            or not isinstance(manifest, list)
            or not isinstance(verified, dict)
        ):
            raise _Invalid
        return cls(
            repo_id=_text(d["repo_id"]),
            commit=_text(d["commit"]),
            variant=_text(d["variant"]),
            hash_type=d["hash_type"],
            variant_hash=_text(d["variant_hash"]),
            manifest=[ManifestEntry.from_dict(e) for e in manifest],
            verified={_text(p): Fingerprint.from_dict(f) for p, f in verified.items()},
        )

    def manifest_matches(self, expected_hash: str, hash_type: HashType) -> bool:
        """Whether the manifest is complete and reproduces the lock's variant hash (which authenticates it)."""
        return (
            self.hash_type == hash_type
            and self.variant_hash == expected_hash
            and all(e.sha256 is not None for e in self.manifest)
            and manifest_hash(self.manifest, hash_type) == expected_hash
        )

    def stamps(self) -> dict[str, Stamp]:
        """The recorded fingerprints as the verdict compares them."""
        return {p: f.stamp for p, f in self.verified.items()}


class _Invalid(Exception):
    """A record that is not one sync writes (it then counts as not synced: no reason is needed)."""


def _fields(data: object, *, required: tuple[str, ...], optional: tuple[str, ...]) -> dict[str, Any]:
    """`data` as an object with all `required` keys and no key beyond `optional`."""
    if not isinstance(data, dict) or not set(required) <= data.keys() <= {*required, *optional}:
        raise _Invalid
    return data


def _text(value: object) -> str:
    """A string that is valid Unicode (JSON's escapes can spell a lone surrogate)."""
    if not isinstance(value, str):
        raise _Invalid
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Invalid from None
    return value


def _whole(value: object) -> int:
    """A whole number (`1.0` too, as JSON writers may spell one), never a bool."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    raise _Invalid


def manifest_hash(manifest: list[ManifestEntry], hash_type: HashType) -> str | None:
    """The variant hash of a manifest, None while a file's hash is not known."""
    hashes = [(e.path, e.file_hash(hash_type)) for e in manifest]
    if any(h is None for _, h in hashes):
        return None
    return variant_hash((p, h) for p, h in hashes if h is not None)


def read_record(path: Path) -> VariantRecord | None:
    """The record at `path`, or None if it is missing or unreadable (then the variant counts as not synced)."""
    try:
        return VariantRecord.from_dict(json.loads(read_regular_file(path).decode("utf-8")))
    except (OSError, ValueError, RecursionError, _Invalid):
        return None
