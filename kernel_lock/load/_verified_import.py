"""Import a verified kernel only from bytes that match the lock, at the moment each module is imported.

Verification happens before the import, but a kernel may import a submodule much later (lazily, on first
use), and the folder can change in between: a swapped file, or a `.pyc` planted once
`sys.path_importer_cache` is cleared. So a kernel's modules are not found on the file system at all: a
finder placed first on `sys.meta_path` answers for the kernel's unique package name (its metadata `id`) and
everything under it, from the locked file list alone. A Python module is read, its bytes hashed against the
lock's hash for that file and compiled from those same bytes (never from `__pycache__`); a name the lock
holds no file for is not found, whatever lies on disk. A zip-layout variant (`build-layout: "zip"`) is read
once, its bytes hashed against the lock, and its modules are served from that archive in memory.

An extension module (`.so`) must be handed to the dynamic loader by path: it is loaded only where its
fingerprint (device, inode, size, mtime, ctime) is still the one that verified and no one but this user
and root can write it (the one rule, `kernel_lock.core.verdict.vouches`), and hashed against the lock
otherwise. Only this user or root can then swap it between that check and `dlopen`.

No pydantic here: the quick load path uses it.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import stat
import sys
import threading
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from kernel_lock.core.fsutil import read_regular_file, writable_by_others
from kernel_lock.core.hashing import git_blob_sha1
from kernel_lock.core.verdict import vouches
from kernel_lock.errors import VerificationError

if TYPE_CHECKING:
    from importlib.abc import Loader

    from kernel_lock.core.cache_layout import VariantRecord

Fingerprint = tuple[int, int, int, int, int]  # dev, ino, size, mtime_ns, ctime_ns


class LockedFile:
    """What a file of a verified variant must be: its hash as the lock pins it, and its verified fingerprint.

    (Plain classes here, not dataclasses, named tuples or `importlib.abc`: a fresh process's fast load pays
    for what this module costs to import.)
    """

    __slots__ = ("digest", "fingerprint", "git_blob")

    def __init__(self, git_blob: bool, digest: str, fingerprint: Fingerprint | None = None) -> None:
        self.git_blob = (
            git_blob  # the lock pins this file by its git blob id (`git_lfs_concat`), not by SHA-256
        )
        self.digest = digest
        self.fingerprint = fingerprint

    def problem(self, data: bytes) -> str | None:
        """What is wrong with `data` as this file (None: it is the locked file)."""
        actual = git_blob_sha1(data) if self.git_blob else hashlib.sha256(data).hexdigest()
        return None if actual == self.digest else f"content changed (expected {self.digest}, actual {actual})"


def locked_files(record: VariantRecord) -> dict[str, LockedFile]:
    """Each file of a verified record's manifest, by the hash the lock's variant hash covers."""
    files = {}
    git_blob = record.hash_type == "git_lfs_concat"
    for e in record.manifest:
        digest = e.hash if git_blob else e.sha256
        if digest is None:
            continue  # never verified: such a record does not load
        fp = record.verified.get(e.path)
        files[e.path] = LockedFile(git_blob and e.kind == "git", digest, fp.stamp[:5] if fp else None)
    return files


class _Package:
    """One imported kernel package: where its files are and what each must be."""

    def __init__(self, name: str, root: str, files: Mapping[str, LockedFile], where: str) -> None:
        self.name = name
        self.root = root
        self.files = files
        self.where = where
        self.members: dict[str, bytes] | None = None  # a zip layout's verified archive, by member path

    def location(self, rel: str) -> str:
        return os.path.join(self.root, *rel.split("/"))

    def exists(self, rel: str) -> bool:
        return rel in (self.members if self.members is not None else self.files)

    def folders(self) -> set[str]:
        """Every folder that holds a file of the package (its own folder aside)."""
        paths = self.members if self.members is not None else self.files
        return {
            "/".join(parts[:i])
            for p in paths
            if "/" in p
            for parts in [p.split("/")]
            for i in range(1, len(parts))
        }

    def source(self, rel: str) -> bytes:
        """The bytes of the file `rel`, checked against the lock now."""
        if self.members is not None:
            return self.members[rel]
        return verified_bytes(self.root, rel, self.files, self.where)

    def check_extension(self, rel: str) -> str:
        """The path of the extension module `rel` once it is still the file that verified (else hashed now)."""
        path = self.location(rel)
        locked = self.files[rel]
        try:
            st = os.stat(path)
        except OSError as exc:
            raise self.refused(rel, f"cannot be read ({exc.strerror or exc})") from None
        now = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if not stat.S_ISREG(st.st_mode):
            raise self.refused(rel, "not a regular file")
        if not vouches(locked.fingerprint, now, shared=writable_by_others(st)):
            self.source(rel)
        return path

    def refused(self, rel: str, problem: str) -> VerificationError:
        return _refused(self.where, rel, problem)


def verified_bytes(root: str, rel: str, files: Mapping[str, LockedFile], where: str) -> bytes:
    """The bytes of the file `rel` of the verified variant folder `root`, read once and checked against the lock."""
    locked = files.get(rel)
    if locked is None:
        raise _refused(where, rel, "not in the locked variant")
    try:
        data = read_regular_file(os.path.join(root, *rel.split("/")))
    except OSError as exc:
        raise _refused(where, rel, f"cannot be read ({exc.strerror or exc})") from None
    problem = locked.problem(data)
    if problem is not None:
        raise _refused(where, rel, problem)
    return data


def _refused(where: str, rel: str, problem: str) -> VerificationError:
    return VerificationError(
        f"{where}: {rel}: {problem}, when it was read to be imported. The variant verified before and changed "
        f"since; nothing of that file was run. Run `kernel-lock sync` to restore the locked files, and find out "
        f"who changed them."
    )


class _SourceLoader(importlib.machinery.SourceFileLoader):
    """Compiles a kernel module from bytes that matched the lock as it was read; no bytecode cache, ever."""

    def __init__(self, fullname: str, path: str, package: _Package, rel: str) -> None:
        super().__init__(fullname, path)
        self._package = package
        self._rel = rel

    def get_data(self, path: str) -> bytes:
        if path == self.path:
            return self._package.source(self._rel)
        return super().get_data(path)

    def get_code(self, fullname: str) -> Any:
        return compile(self._package.source(self._rel), self.path, "exec", dont_inherit=True)


class _ExtensionLoader(importlib.machinery.ExtensionFileLoader):
    """Hands an extension module to the dynamic loader only while it is the file that verified."""

    def __init__(self, fullname: str, path: str, package: _Package, rel: str) -> None:
        super().__init__(fullname, path)
        self._package = package
        self._rel = rel

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        self._package.check_extension(self._rel)
        return super().create_module(spec)


class _FolderLoader:
    """A folder of the lock's files without an `__init__.py` (a namespace package): nothing to run."""

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        return None


class VerifiedFinder:
    """Finds the modules of the kernel packages kernel-lock imported, and only those, from the lock's files."""

    def __init__(self) -> None:
        self.packages: dict[str, _Package] = {}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package = self.packages.get(fullname.partition(".")[0])
        if package is None:
            return None
        base = "/".join(fullname.split(".")[1:])
        if base:
            candidates = [f"{base}/__init__.py", f"{base}.py"]
            candidates += [base + suffix for suffix in importlib.machinery.EXTENSION_SUFFIXES]
        else:
            candidates = ["__init__.py"]
        for rel in candidates:
            if package.exists(rel):
                return _spec(package, fullname, rel)
        if base and base in package.folders():
            spec = importlib.machinery.ModuleSpec(fullname, cast("Loader", _FolderLoader()), is_package=True)
            spec.submodule_search_locations = [package.location(base)]
            return spec
        raise ModuleNotFoundError(f"No module named {fullname!r} in {package.where}", name=fullname)


def _spec(package: _Package, fullname: str, rel: str) -> importlib.machinery.ModuleSpec:
    path = package.location(rel)
    loader: _SourceLoader | _ExtensionLoader
    if rel.endswith(".py"):
        loader = _SourceLoader(fullname, path, package, rel)
    elif package.members is None:
        loader = _ExtensionLoader(fullname, path, package, rel)
    else:
        raise ModuleNotFoundError(
            f"{package.where}: {rel} is an extension module inside the zip archive, which Python cannot load "
            f"from memory.",
            name=fullname,
        )
    is_package = rel.endswith("/__init__.py") or rel == "__init__.py"
    spec = importlib.machinery.ModuleSpec(fullname, loader, origin=path, is_package=is_package)
    spec.has_location = True
    if is_package:
        spec.submodule_search_locations = [os.path.dirname(path)]
    return spec


_finder = VerifiedFinder()
_finder_lock = threading.Lock()


def import_package(
    name: str, root: str, files: Mapping[str, LockedFile], *, where: str, archive: str | None = None
) -> ModuleType:
    """Import the verified package `name` from the folder `root` (or from the zip `archive`, a file of it).

    The caller has checked that `name` is free in `sys.modules` and that the variant verified; `files` is
    what each file must be. Every module of the package, now and later, is served by `VerifiedFinder`.
    """
    package = _Package(name, root, files, where)
    if archive is not None:
        package.members = _verified_archive(package, archive)
        package.root = package.location(archive)
    if not package.exists("__init__.py"):
        raise VerificationError(f"{where} has no __init__.py; it cannot be imported.")
    with _finder_lock:
        if _finder not in sys.meta_path:
            sys.meta_path.insert(0, _finder)
        _finder.packages[name] = package
    spec = _spec(package, name, "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        assert spec.loader is not None
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        with _finder_lock:
            _finder.packages.pop(name, None)
        raise
    return module


def _verified_archive(package: _Package, archive: str) -> dict[str, bytes]:
    """The members of the zip `archive` (a file of the variant), read from bytes that matched the lock."""
    import io
    import zipfile  # only for zip layouts: most loads never pay for it

    data = package.source(archive)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            members = {
                info.filename: zf.read(info)
                for info in zf.infolist()
                if not info.is_dir()
                and "__pycache__/" not in info.filename
                and not info.filename.endswith(".pyc")
            }
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise VerificationError(
            f"{package.where}: {archive} is not a readable zip archive ({exc})."
        ) from None
    unsafe = [m for m in members if m.startswith("/") or "\\" in m or ".." in m.split("/")]
    if unsafe:
        raise VerificationError(f"{package.where}: {archive} holds unsafe member names: {', '.join(unsafe)}.")
    return members
