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

No pydantic and nothing heavy: the no-op sync and every load, the quick one included, go through here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import shutil
import stat
import sys
from collections.abc import Iterator
from dataclasses import field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kernel_lock import env
from kernel_lock.core._record import Record
from kernel_lock.core.fsutil import atomic_write, first_shared, parts_below, read_regular_file
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
    "cache_file_lock",
    "first_unsafe_folder",
    "hub_cache_dir",
    "make_real_folder",
    "manifest_hash",
    "read_record",
    "record_path",
    "record_trusted",
    "remove_in_cache",
    "repo_dir",
    "unwritable_paths",
    "variant_dir",
    "writable_in_cache",
    "write_record",
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


def remove_in_cache(base: Path, path: Path, *, only_a_folder: bool = False) -> bool:
    """Remove `path` under `base` (a folder with all in it, or a file or link itself), never through a link.

    Each folder on the way from `base` is opened without following links, so a `snapshots/`, `.kernel-lock/`
    or commit folder that someone replaced by a symlink leads nowhere: False, and nothing is touched. A folder
    goes by `shutil.rmtree`, which removes links inside it, never what they lead to. True once `path` is gone
    (or, with `only_a_folder`, is no folder: a file there, a blob say, is left as it is).
    """
    parts = path.relative_to(base).parts
    if os.name != "posix":
        if first_unsafe_folder(base, path.parent) is not None:
            return False
        _remove_entry(str(path), None, only_a_folder=only_a_folder)
        return True
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            try:
                child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except FileNotFoundError:
                return True
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    return False
                raise
            os.close(fd)
            fd = child
        _remove_entry(parts[-1], fd, path, only_a_folder=only_a_folder)
        return True
    finally:
        os.close(fd)


def _remove_entry(
    name: str, dir_fd: int | None, path: Path | None = None, *, only_a_folder: bool = False
) -> None:
    """Remove the entry `name` of the folder `dir_fd` (a link or file itself, unless `only_a_folder`; a folder
    with all in it)."""
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):
        if not only_a_folder:
            os.unlink(name, dir_fd=dir_fd)
    elif sys.version_info >= (3, 11) and dir_fd is not None:
        shutil.rmtree(name, dir_fd=dir_fd)
    else:  # Python 3.10 has no rmtree(dir_fd=): the folders above were checked a moment ago
        shutil.rmtree(path or name)


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


@contextlib.contextmanager
def cache_file_lock(path: Path) -> Iterator[None]:
    """Hold the file lock at `path` in the cache, never opened through something planted there.

    Whoever can write a shared cache could put a symlink (or a hard link, a FIFO) where the lock file goes, and
    opening the lock would then create, truncate or block on another file. Such an entry is removed first;
    filelock opens with `O_NOFOLLOW` (3.20.1 on), so a link planted again in between fails rather than leads
    elsewhere, and the next try removes it too.
    """
    from filelock import FileLock

    from kernel_lock.errors import CacheError

    problem: OSError | None = None
    for _ in range(3):
        lock = FileLock(str(path))
        try:
            with contextlib.suppress(FileNotFoundError):
                st = os.lstat(path)
                if not stat.S_ISDIR(st.st_mode) and (not stat.S_ISREG(st.st_mode) or st.st_nlink > 1):
                    os.unlink(path)
            lock.acquire()
        except OSError as exc:
            problem = exc
            continue
        try:
            yield
        finally:
            lock.release()
        return
    raise CacheError(
        f"Cannot take the lock file {path}: {problem and (problem.strerror or problem)}. Something may keep "
        f"replacing it, or a folder or another user's file stands in its place: remove it, and check who else can "
        f"write {path.parent}."
    )


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


def make_real_folder(base: Path, path: Path) -> Path:
    """Make `path` (under `base`) a real folder, replacing any symlink or file in the way by a folder.

    Only the link or file itself is removed, never what a link points to; nothing is created outside `base`.
    """
    base.mkdir(parents=True, exist_ok=True)
    current = base
    for part in path.relative_to(base).parts:
        current = current / part
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            with contextlib.suppress(FileExistsError):
                os.mkdir(current)
            continue
        if not stat.S_ISDIR(mode):
            os.unlink(current)
            os.mkdir(current)
    return path


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


def write_record(path: Path, record: VariantRecord) -> None:
    """Write a record atomically, as blobs are written: writable by this user alone (`record_trusted`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(dataclasses.asdict(record), indent=1, ensure_ascii=False)
    atomic_write(path, text.encode(), mode=0o644)
