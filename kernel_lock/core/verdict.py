"""The one rule of "does this variant folder match its record": a pure judgement over a snapshot of the folder.

`kernel_lock.core.snapshot` gathers what the folder holds (the only I/O); `judge` compares it with the
record's manifest and fingerprints and says which files are fine as they are, which must be hashed, and what
is wrong. Verification at load (fast or full), the quick load path and sync's plan all act on this verdict,
so a rule of the threat model is written once. Fast and full mode differ only in `hash_all`.

Light types only, and no dataclasses: the quick load path imports this module, and a fresh process would pay
about half a millisecond to build each dataclass (no pydantic, no huggingface_hub either).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal, NamedTuple

from kernel_lock.core.hashing import implied_folders

Stamp = tuple[int, int, int, int, int, "str | None"]
"""A file's fingerprint: (device, inode, size, mtime_ns, ctime_ns, link text or None)."""

SeenKind = Literal["file", "not-regular", "outside-blobs", "unreadable"]


class FileProblem(NamedTuple):
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
    """What a variant folder holds, gathered without judging it (`kernel_lock.core.snapshot.take`).

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


class Verdict:
    """What a folder is, measured against a manifest.

    `vouched`: files whose recorded fingerprint spares them a hash; `to_hash`: files that are hashed before
    they count (their fingerprint now); `problems`: what is wrong already. For a repair (sync): `clear`, the
    entries that must go (shallowest first), and `replace`, the manifest files missing or wrong as they are.
    """

    __slots__ = ("clear", "problems", "replace", "status", "to_hash", "vouched")

    def __init__(
        self,
        status: Literal["ok", "missing", "corrupt"],
        problems: tuple[FileProblem, ...],
        vouched: Mapping[str, Stamp],
        to_hash: Mapping[str, Stamp],
        clear: tuple[str, ...],
        replace: tuple[str, ...],
    ) -> None:
        self.status = status
        self.problems = problems
        self.vouched = vouched
        self.to_hash = to_hash
        self.clear = clear
        self.replace = replace

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
