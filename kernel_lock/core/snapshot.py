"""The walker that gathers a variant folder's `Snapshot` (the I/O of verification; `core.verdict` judges it).

Safety rules kept here, once: no folder on the way to the variant, its record or the repo's blobs may be a
symlink or a file (nothing below one is read); a symlinked subfolder is listed, never entered; a file that
is a link counts only where it leads into the repo's own `blobs/` (followed no further); bytecode caches
are skipped. Light imports only: the quick load path uses it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from kernel_lock.core.cache_layout import (
    first_unsafe_folder,
    hub_cache_dir,
    record_path,
    record_trusted,
    repo_dir,
    variant_dir,
)
from kernel_lock.core.fsutil import writable_by_others
from kernel_lock.core.hashing import is_ignored
from kernel_lock.core.verdict import FileSeen, Snapshot

_CLIMB = "../" * 4  # from a variant folder (snapshots/<commit>/build/<variant>) up to its repo folder


def take(repo_id: str, commit: str, variant: str, cache: Path | None = None) -> Snapshot:
    """What the synced folder of one variant holds now (see the module docstring for what is not followed)."""
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
    """The file `rel` of the variant folder `vdir`, as `take` sees each file (`blobs`: the repo's blobs)."""
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
