"""The one rule of "does this variant folder match its record": a pure judgement over a snapshot of the folder.

`take_snapshot` gathers what the folder holds (the only I/O, kept to that one walker at the end of this
module: one module less for the quick load path to import); `judge` compares it with the record's manifest
and fingerprints and says which files are fine as they are, which must be hashed, and what is wrong. Verification at load (fast or full), the quick load path and sync's plan all act on this verdict,
so a rule of the threat model is written once. Fast and full mode differ only in `hash_all`.

Light types only, and no dataclasses: the quick load path imports this module, and a fresh process would pay
about half a millisecond to build each dataclass (no pydantic, no huggingface_hub either).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from kernel_lock.core._record import Record
from kernel_lock.core.cache_layout import (
    first_unsafe_folder,
    hub_cache_dir,
    record_path,
    record_trusted,
    repo_dir,
    variant_dir,
)
from kernel_lock.core.fsutil import writable_by_others
from kernel_lock.core.hashing import implied_folders, is_ignored

Stamp = tuple[int, int, int, int, int, "str | None"]
"""A file's fingerprint: (device, inode, size, mtime_ns, ctime_ns, link text or None)."""

if TYPE_CHECKING:
    from kernel_lock.core.cache_layout import ManifestEntry

    # only annotations name it: a `Literal` costs every fresh load 0.04 ms to make
    SeenKind = Literal["file", "not-regular", "outside-blobs", "unreadable"]


class FileProblem(Record, kw_only=False):
    """One file that is wrong, and how."""

    path: str
    problem: str
    expected: str | None = None
    actual: str | None = None

    def __str__(self) -> str:
        text = f"{self.path}: {self.problem}" if self.path else self.problem
        if self.expected or self.actual:
            text += f" (expected {self.expected or '-'}, actual {self.actual or '-'})"
        return text


class FileSeen:
    """One entry of a variant folder that is not a folder, as the snapshot found it (links followed into blobs).

    `stamp` is set for a regular file (`kind == "file"`); `detail` says more for the others (where a link
    leads, why a file cannot be read); `shared`: someone other than this user and root may write it.
    """

    __slots__ = ("detail", "kind", "shared", "stamp")

    def __init__(
        self, kind: SeenKind, stamp: Stamp | None = None, shared: bool = False, detail: str = ""
    ) -> None:
        self.kind = kind
        self.stamp = stamp
        self.shared = shared
        self.detail = detail

    def problem(self, path: str, expected: str | None) -> FileProblem:
        """What is wrong with this entry (one without a `stamp`) as the manifest file `path`."""
        if self.kind == "outside-blobs":
            return FileProblem(path, f"symlink leads outside the cache's blobs folder, to {self.detail}")
        if self.kind == "unreadable":
            return FileProblem(path, f"cannot be read ({self.detail})", expected)
        return FileProblem(path, "not a regular file")


class Snapshot:
    """What a variant folder holds, gathered without judging it (`take_snapshot`).

    `unsafe`: the first folder on the way to the variant, its record or the repo's blobs that is a symlink
    or a file (then nothing below it was read); `present`: the variant folder exists; `record_trusted`: no one
    but this user and root can change the record nor the folders above it (`cache_layout.record_trusted`);
    `files` and `folders` below it by relative path, and `linked_folders`, symlinks to folders (not entered).
    """

    __slots__ = ("files", "folder", "folders", "linked_folders", "present", "record_trusted", "unsafe")

    def __init__(
        self,
        folder: str,
        *,
        unsafe: str | None = None,
        present: bool = True,
        record_trusted: bool = True,
        files: Mapping[str, FileSeen],
        folders: frozenset[str] = frozenset(),
        linked_folders: frozenset[str] = frozenset(),
    ) -> None:
        self.folder = folder
        self.unsafe = unsafe
        self.present = present
        self.record_trusted = record_trusted
        self.files = files
        self.folders = folders
        self.linked_folders = linked_folders


class Wanted:
    """A file the record's manifest lists: its path in the variant, size and listed hash (its blob name)."""

    __slots__ = ("hash", "path", "size")

    def __init__(self, path: str, size: int, hash: str) -> None:
        self.path = path
        self.size = size
        self.hash = hash


def wanted(manifest: Iterable[ManifestEntry]) -> list[Wanted]:
    """A manifest as the verdict reads it."""
    return [Wanted(e.path, e.size, e.hash) for e in manifest]


class Verdict(Record, kw_only=False):
    """What a folder is, measured against a manifest.

    `vouched`: files whose recorded fingerprint spares them a hash; `to_hash`: files that are hashed before
    they count (their fingerprint now); `problems`: what is wrong already. For a repair (sync): `clear`, the
    entries that must go (shallowest first), and `replace`, the manifest files missing or wrong as they are.
    """

    status: Literal["ok", "missing", "corrupt"]
    problems: tuple[FileProblem, ...]
    vouched: Mapping[str, Stamp]
    to_hash: Mapping[str, Stamp]
    clear: tuple[str, ...]
    replace: tuple[str, ...]

    @property
    def ok_without_hashing(self) -> bool:
        """Whether the folder matches with nothing left to hash."""
        return self.status == "ok" and not self.to_hash


def vouches(known: tuple[object, ...] | None, found: tuple[object, ...], *, shared: bool) -> bool:
    """Whether a recorded fingerprint spares a file a hash: it is the one found now, and no one but this user
    and root can write the file (a write through a mapping opened earlier changes no mtime nor ctime)."""
    return known is not None and known == found and not shared


def judge(
    wanted: Iterable[Wanted], known: Mapping[str, Stamp], snapshot: Snapshot, *, hash_all: bool
) -> Verdict:
    """Judge a folder against a record's manifest and fingerprints (`known`).

    The folder must hold exactly the manifest's files and the folders they need (bytecode caches aside),
    each a regular file or a link into the repo's blobs. A file is spared its hash only where `hash_all` is
    off (fast mode), the record is trusted, its fingerprint is the recorded one and no one else can write it.
    """
    by_path = {w.path: w for w in wanted}
    if snapshot.unsafe is not None or not snapshot.present:
        problem = (
            FileProblem(snapshot.unsafe, "a symlink or a file where the cache needs a real folder")
            if snapshot.unsafe is not None
            else FileProblem("", f"no folder {snapshot.folder}")
        )
        everything = set(snapshot.files) | snapshot.folders | snapshot.linked_folders
        return Verdict(
            "corrupt" if snapshot.unsafe is not None else "missing",
            (problem,),
            {},
            {},
            _shallowest_first(everything),
            tuple(sorted(by_path)),
        )
    present = snapshot.files.keys()
    extra_folders = snapshot.folders - implied_folders(by_path)
    problems = [FileProblem(rel, "symlink to a directory") for rel in sorted(snapshot.linked_folders)]
    problems += [
        FileProblem(rel, "extra file, not in the locked variant") for rel in sorted(present - by_path)
    ]
    problems += [FileProblem(rel, "extra folder, not in the locked variant") for rel in sorted(extra_folders)]
    missing = sorted(by_path.keys() - present)
    problems += [FileProblem(rel, "missing", by_path[rel].hash) for rel in missing]
    clear = set(snapshot.linked_folders) | (present - by_path.keys()) | extra_folders
    replace = list(missing)
    vouched: dict[str, Stamp] = {}
    to_hash: dict[str, Stamp] = {}
    spare = not hash_all and snapshot.record_trusted
    for rel in sorted(present & by_path.keys()):
        seen = snapshot.files[rel]
        if seen.stamp is None:
            problems.append(seen.problem(rel, by_path[rel].hash))
            clear.add(rel)
            replace.append(rel)
        elif (
            spare
            and seen.stamp[2] == by_path[rel].size
            and vouches(known.get(rel), seen.stamp, shared=seen.shared)
        ):
            vouched[rel] = seen.stamp
        else:
            to_hash[rel] = seen.stamp
    return Verdict(
        "corrupt" if problems else "ok",
        tuple(problems),
        vouched,
        to_hash,
        _shallowest_first(clear),
        tuple(replace),
    )


def _shallowest_first(paths: Iterable[str]) -> tuple[str, ...]:
    """Paths ordered so that a folder comes before what it holds (removing it removes them too)."""
    return tuple(sorted(paths, key=lambda p: (p.count("/"), p)))


# The walker: the one function that reads the folder, and its helpers.

_CLIMB = "../" * 4  # from a variant folder (snapshots/<commit>/build/<variant>) up to its repo folder


def take_snapshot(repo_id: str, commit: str, variant: str, cache: Path | None = None) -> Snapshot:
    """What the synced folder of one variant holds now: the only I/O of verification, with its safety rules.

    No folder on the way to the variant, its record or the repo's blobs may be a symlink or a file (nothing
    below one is read); a symlinked subfolder is listed, never entered; a file that is a link counts only
    where it leads into the repo's own `blobs/` (followed no further); bytecode caches are skipped.
    """
    root = cache or hub_cache_dir()
    vdir = variant_dir(repo_id, commit, variant, root)
    blobs = repo_dir(repo_id, root) / "blobs"
    rdir = record_path(repo_id, commit, variant, root).parent
    vdir_unsafe = first_unsafe_folder(root, vdir)
    unsafe = vdir_unsafe or first_unsafe_folder(root, rdir) or first_unsafe_folder(root, blobs)
    try:
        present = vdir_unsafe is None and stat.S_ISDIR(os.lstat(vdir).st_mode)
    except OSError:
        present = False
    files: dict[str, FileSeen] = {}
    folders: set[str] = set()
    linked: set[str] = set()
    if present:
        _walk(str(vdir), str(blobs), files, folders, linked)
    return Snapshot(
        folder=str(vdir),
        unsafe=None if unsafe is None else str(unsafe),
        present=present,
        record_trusted=unsafe is None and record_trusted(repo_id, commit, variant, root),
        files=files,
        folders=frozenset(folders),
        linked_folders=frozenset(linked),
    )


def _walk(vdir: str, blobs: str, files: dict[str, FileSeen], folders: set[str], linked: set[str]) -> None:
    """Fill `files`, `folders` and `linked` (symlinks to folders) with what is under `vdir`, as relative paths.

    A folder that cannot be listed adds nothing (its files then count as missing).
    """
    pending = [("", vdir)]
    while pending:
        prefix, folder = pending.pop()
        try:
            with os.scandir(folder) as entries:
                items = [(item.name, item.path, item.is_dir(), item.is_symlink()) for item in entries]
        except OSError:
            continue
        for name, path, is_dir, is_link in items:
            rel = prefix + name
            if not is_dir:
                if not is_ignored(rel):
                    files[rel] = _look(path, _CLIMB + "../" * rel.count("/"), blobs)
            elif name == "__pycache__":
                continue
            elif is_link:
                linked.add(rel)
            else:
                folders.add(rel)
                pending.append((rel + "/", path))


def look_at(vdir: Path, rel: str, blobs: Path) -> FileSeen:
    """The file `rel` of the variant folder `vdir`, as `take_snapshot` sees each file (`blobs`: the repo's blobs)."""
    return _look(os.path.join(vdir, rel), _CLIMB + "../" * rel.count("/"), str(blobs))


def _look(path: str, climb: str, blobs: str) -> FileSeen:
    """One file of a variant, a link followed only into `blobs`; `climb` leads from its folder to the repo's.

    A link whose text is `climb + "blobs/<name>"` to a blob that is no link itself leads where it says (the
    folders it climbs were checked to be real folders); any other link is resolved, and counts only where it
    ends directly in `blobs`.
    """
    link = None
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            link = os.readlink(path)
            if not _into_blobs(path, link, climb, blobs):
                return FileSeen("outside-blobs", detail=os.path.realpath(path))
            st = os.stat(path)
    except OSError as exc:
        return FileSeen("unreadable", detail=str(exc.strerror or exc))
    if not stat.S_ISREG(st.st_mode):
        return FileSeen("not-regular")
    stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, link)
    return FileSeen("file", stamp, writable_by_others(st))


def _into_blobs(path: str, link: str, climb: str, blobs: str) -> bool:
    """Whether the link at `path` (text `link`) leads to a file directly in the folder `blobs`."""
    name = link[len(climb) + len("blobs/") :] if link.startswith(climb + "blobs/") else ""
    if name and "/" not in name and name not in (".", ".."):
        try:
            if not stat.S_ISLNK(os.lstat(os.path.join(blobs, name)).st_mode):
                return True
        except OSError:
            pass
    return os.path.dirname(os.path.realpath(path)) == os.path.realpath(blobs)
