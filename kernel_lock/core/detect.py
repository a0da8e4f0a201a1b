"""This machine's environment as kernels would see it, detected without importing torch, and the target to select for.

`detect_target` reads torch's `version.py` and CMake config (importing torch would cost ~1.4 s);
`choose_target` picks between a declared target, `KERNEL_LOCK_TARGET` and the detected one. Cheap to
import, like `kernel_lock.core.target`: the verified quick load imports it in every fresh process.
"""

from __future__ import annotations

import functools
import importlib.util
import platform
import re
import sys
from pathlib import Path
from typing import Literal

from kernel_lock import env
from kernel_lock.core._record import Record
from kernel_lock.core.target import Target, is_free_threaded_build, parse_target, this_machine


def _macos_version() -> tuple[int, int] | None:
    """(major, minor) of the running macOS, None if unknown."""
    release = platform.mac_ver()[0]
    return _major_minor(release) if release else None


def _major_minor(text: str) -> tuple[int, int] | None:
    """(major, minor) from the start of a version string like `12.8` or `6.3.42131-fa1d`."""
    m = re.match(r"(\d+)(?:\.(\d+))?", text)
    return (int(m.group(1)), int(m.group(2) or 0)) if m else None


def torch_dir() -> Path | None:
    """Directory of the installed torch package, found without importing it."""
    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


_VERSION_NAMES = ("__version__", "cuda", "hip", "xpu")  # what detection reads of torch/version.py


def _version_py_values(source: str) -> dict[str, str]:
    """The string assignments `name = '...'` (annotated or not) of torch/version.py, the first for each name.

    One pass with one pattern: a name assigned None (`hip = None` on a CUDA build) is absent.
    """
    values: dict[str, str] = {}
    for m in re.finditer(r"^(\w+)\s*(?::[^=\n]*)?=\s*(['\"])(.*?)\2", source, re.MULTILINE):
        values.setdefault(m.group(1), m.group(3))
    return values


def _cxx11_abi(torch_dir: Path) -> bool:
    """The C++ ABI of a Linux torch, from the `_GLIBCXX_USE_CXX11_ABI` flag its CMake config records.

    Torch >= 2.7 dropped the old ABI and with it the flag (torch 2.13 records none), so no flag means cxx11.
    """
    for config in ("Torch/TorchConfig.cmake", "Caffe2/Caffe2Config.cmake"):
        try:
            text = (torch_dir / "share" / "cmake" / config).read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        m = re.search(r"_GLIBCXX_USE_CXX11_ABI=([01])", text)
        if m:
            return m.group(1) == "1"
    return True


def _libcudart_version() -> tuple[int, int] | None:
    """CUDA runtime version from libcudart, as kernels' `_get_cuda()` does when torch is absent."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("cudart")
    if name is None:
        return None
    try:
        libcudart = ctypes.CDLL(name)
    except OSError:
        return None
    version = ctypes.c_int(0)
    if libcudart.cudaRuntimeGetVersion(ctypes.byref(version)) != 0:
        return None
    return version.value // 1000, (version.value % 1000) // 10


TargetSource = Literal["--target", "options", "KERNEL_LOCK_TARGET", "detected"]
_SOURCE_WORDS = {
    "--target": "from --target",
    "options": "from --torch/--cuda/... options",
    "KERNEL_LOCK_TARGET": "from KERNEL_LOCK_TARGET",
    "detected": "detected",
}


class TargetChoice(Record, kw_only=False):
    """A target and where it came from, for commands to say what they selected for."""

    target: Target
    source: TargetSource

    def describe(self) -> str:
        """E.g. `torch 2.13 (cxx11), CPU, x86_64-linux (detected)`."""
        return f"{self.target.describe()} ({_SOURCE_WORDS[self.source]})"


def choose_target(declared: TargetChoice | None = None) -> TargetChoice:
    """`declared` if given, else `KERNEL_LOCK_TARGET` if set, else this machine's environment."""
    if declared is not None:
        return declared
    spec = env.declared_target()
    if spec:
        return TargetChoice(parse_target(spec), "KERNEL_LOCK_TARGET")
    return TargetChoice(detect_target(), "detected")


def default_target() -> Target:
    """The environment to select for when none is given: `KERNEL_LOCK_TARGET` if set, else this machine's."""
    return choose_target().target


def _torch_facts(linux: bool) -> tuple[dict[str, str], bool | None] | None:
    """The strings of `torch.version` and, on Linux, torch's C++ ABI; None without torch.

    Asked of torch where this process imported it already (as kernels asks; free), else read from its
    `version.py` and CMake config (torch is never imported for this).
    """
    torch = sys.modules.get("torch")
    version = getattr(torch, "version", None)
    abi = getattr(torch, "compiled_with_cxx11_abi", None)
    if version is not None and abi is not None:  # not while torch itself is still being imported
        values = {name: v for name in _VERSION_NAMES if isinstance(v := getattr(version, name, None), str)}
        return values, (bool(abi()) if linux else None)
    torch_path = torch_dir()
    if torch_path is None:
        return None
    try:
        source = (torch_path / "version.py").read_text(encoding="utf-8")
    except OSError:
        return None
    return _version_py_values(source), (_cxx11_abi(torch_path) if linux else None)


@functools.cache
def detect_target() -> Target:
    """The running environment, as kernels would see it, computed without importing torch (cached)."""
    arch, os = this_machine()
    macos = _macos_version() if os == "darwin" else None
    free_threaded = is_free_threaded_build()
    python = (sys.version_info[0], sys.version_info[1])
    facts = _torch_facts(linux=os == "linux")
    backend: tuple[str, tuple[int, int] | None]
    if facts is None:
        runtime = _libcudart_version()
        backend = ("cpu", None) if runtime is None else ("cuda", runtime)
        return Target(None, None, backend[0], backend[1], arch, os, macos, free_threaded, python)
    values, cxx11_abi = facts
    cuda, hip, xpu = values.get("cuda"), values.get("hip"), values.get("xpu")
    if cuda is not None:
        backend = ("cuda", _major_minor(cuda))
    elif hip is not None:
        backend = ("rocm", _major_minor(hip))
    elif os == "darwin":
        backend = ("metal", None)
    elif xpu is not None:
        backend = ("xpu", _major_minor(f"{xpu[0:4]}.{xpu[5:6]}"))
    else:
        backend = ("cpu", None)
    torch_version = _major_minor(values.get("__version__", ""))
    return Target(torch_version, cxx11_abi, backend[0], backend[1], arch, os, macos, free_threaded, python)
