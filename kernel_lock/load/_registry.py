"""The kernels this process imported: each (repo, commit, variant) once, whichever loader asks first."""

from __future__ import annotations

import sys
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, TypeVar

from kernel_lock.errors import MissingPythonDependency, VerificationError

if TYPE_CHECKING:
    from kernel_lock.load._verified_import import LockedFile

Key = tuple[str, str, str]  # (repo id, commit, variant)
M = TypeVar("M", ModuleType, "ModuleType | None")

loaded: dict[Key, ModuleType] = {}
_key_locks: defaultdict[Key, threading.Lock] = defaultdict(threading.Lock)
_registry_lock = threading.Lock()


def imported_once(key: Key, import_it: Callable[[], M]) -> M:
    """The module imported for `key`, importing it with `import_it` if no thread has yet (None is not kept)."""
    with _registry_lock:
        key_lock = _key_locks[key]
    with key_lock:
        module = loaded.get(key)
        if module is None:
            module = import_it()
            if module is not None:
                loaded[key] = module
    return module


def import_variant(vdir: Path, *, where: str, files: Mapping[str, LockedFile]) -> ModuleType:
    """Import a verified variant folder as a package named by its metadata `id`, from the lock's files alone.

    `files` is what each file of the variant must be; `metadata.json` is read through it too, and every module
    of the package, now or when it is imported later, is read and checked against it (`verifiedimport`). A
    zip-layout variant (`build-layout: "zip"`, one `<id>.zip`) is imported from its verified archive.

    A variant whose `python-depends` are not all installed is refused (`MissingPythonDependency`). The name
    must be free: a module already in `sys.modules` under it is another kernel's or another
    package's (the loader's registry returns this variant's own module before it gets here), and handing
    it back would run code that was never verified for this variant.
    """
    from kernel_lock.core import jsonread
    from kernel_lock.load._verified_import import import_package, verified_bytes

    try:
        metadata = jsonread.loads(verified_bytes(str(vdir), "metadata.json", files, where))
    except ValueError:
        metadata = None
    if isinstance(metadata, dict) and metadata.get("python-depends"):  # most kernels need none
        _refuse_missing_python_depends(metadata, where)
    if not isinstance(metadata, dict) or "id" not in metadata:
        raise VerificationError(f"{where} has no usable metadata.json with an 'id'; it cannot be imported.")
    name, layout = metadata["id"], metadata.get("build-layout", "files")
    if not isinstance(name, str) or not name.isidentifier():
        raise VerificationError(
            f"{where} declares module id {name!r} in metadata.json, which is not a module name."
        )
    if layout not in ("files", "zip"):
        raise VerificationError(
            f"{where} declares build-layout {layout!r} in metadata.json; kernel-lock imports 'files' and 'zip'."
        )
    existing = sys.modules.get(name)
    if existing is not None:
        raise VerificationError(
            f"{where} declares module id {name!r} in metadata.json, but that name is already {_holder(existing)}. "
            f"Refusing to hand back another module in its place, and to import over it. Two kernels (or a kernel "
            f"and a Python module) cannot share a module id in one process: drop one of them, or tell the "
            f"kernel's publisher."
        )
    archive = f"{name}.zip" if layout == "zip" else None
    if archive is not None and archive not in files:
        raise VerificationError(f"{where} has build-layout 'zip' but no {archive}; it cannot be imported.")
    return import_package(name, str(vdir), files, where=where, archive=archive)


def _refuse_missing_python_depends(metadata: dict[str, object], where: str) -> None:
    """`MissingPythonDependency` where a package the variant's `python-depends` names is not installed."""
    from kernel_lock.core.pydeps import missing, python_depends_of

    absent = missing(python_depends_of(metadata))
    if absent:
        raise MissingPythonDependency(
            f"{where} needs Python packages that are not installed: {', '.join(absent)}. "
            f"Install them (e.g. `pip install {' '.join(absent)}`) and load again."
        )


def _holder(module: ModuleType) -> str:
    """Who holds a module name: a kernel variant this loader verified and imported, or some other module."""
    for (repo_id, commit, variant), imported in list(loaded.items()):
        if imported is module:
            return f"taken by {repo_id} variant {variant} (commit {commit[:12]}), imported earlier in this process"
    origin = getattr(module, "__file__", None) or "built in"
    return f"taken by the module {module.__name__!r} ({origin}), which this loader did not verify"
