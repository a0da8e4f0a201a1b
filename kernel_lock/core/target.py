"""The environment a build variant is selected for, and this machine's, detected as kernels would see it.

A `Target` is torch version and C++ ABI, backend, CPU, OS and Python. `detect_target` finds this machine's
without importing torch (which would cost ~1.4 s): it asks torch where this process imported it already,
else reads torch's `version.py` and CMake config. `choose_target` picks between a declared target (`parse_target`, or
`kernel_lock.core.target_options` for the CLI's options), `KERNEL_LOCK_TARGET` and the detected one.

The verified quick load imports this module in every fresh process, so its import stays cheap: its
values are `Record`s (`kernel_lock.core._record`), and no regex is compiled at import.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import os
import platform
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from kernel_lock import env
from kernel_lock.core._record import Record
from kernel_lock.errors import VariantError


class Backend(Record, kw_only=False):
    """A compute backend, as variant names, targets and the command line spell it."""

    name: str  # as in `Target.backend`, and the name of its CLI option (`--cuda`)
    label: str  # for people: `CUDA 12.8`
    prefix: str | None = (
        None  # variant-name prefix of a versioned backend (`cu` of `cu128`); None: unversioned
    )
    example: str | None = None  # a version, for help and error text
    noarch: str | None = None  # the `torch-<name>` noarch variant it loads, where not `name`


# The one table of backends: adding one here adds its variant parsing, labels and CLI option.
BACKENDS = {
    b.name: b
    for b in (
        Backend("cpu", "CPU"),
        Backend("cuda", "CUDA", "cu", "12.8"),
        Backend("rocm", "ROCm", "rocm", "7.1"),
        Backend("xpu", "XPU", "xpu", "2025.3"),
        Backend("metal", "Metal"),
        Backend("cann", "CANN", "cann", "8.2", noarch="npu"),
        Backend("neuron", "Neuron"),
        Backend("tpu", "TPU"),
    )
}
_BY_PREFIX = {b.prefix: b for b in BACKENDS.values() if b.prefix}
# Metal builds need macOS 26 (kernels' `_METAL_MIN_MACOS_VERSION`); assumed for declared darwin targets.
METAL_MIN_MACOS = (26, 0)
# Free-threaded CPython exists from 3.13 (PEP 703).
FREE_THREADED_MIN_PYTHON = (3, 13)
# A kernels release family, (major, minor): the rules selection follows.
Rules = tuple[int, int]
NEWEST_RULES: Rules = (0, 19)
OLDEST_RULES: Rules = (0, 17)


def parse_backend(text: str) -> tuple[str, tuple[int, int] | None]:
    """Parse a variant's backend part (`cu128`, `rocm71`, `cpu`, ...) into (name, version); ValueError if unknown."""
    if text in BACKENDS and not BACKENDS[text].prefix:
        return text, None
    for prefix, backend in _BY_PREFIX.items():
        digits = text[len(prefix) :]
        # Same grouping as kernels: the last digit is the minor version (`cu128` is 12.8, `xpu20253` 2025.3).
        if text.startswith(prefix) and len(digits) >= 2 and is_digits(digits):
            return backend.name, (int(digits[:-1]), int(digits[-1]))
    raise ValueError(f"unknown backend {text!r}")


def is_digits(text: str) -> bool:
    """Whether `text` is ASCII digits, as kernels' versions are (`packaging` refuses other decimal digits)."""
    return text.isascii() and text.isdecimal()


def parse_dotted(text: str) -> tuple[int, int] | None:
    """`X.Y` (digits only, as kernels' new variant grammar writes versions) as (X, Y); None if not that."""
    major, dot, minor = text.partition(".")
    return (int(major), int(minor)) if dot and is_digits(major) and is_digits(minor) else None


def parse_backend_parts(parts: list[str]) -> tuple[str, tuple[int, int] | None]:
    """Parse a backend in kernels 0.19's grammar (`["cuda", "12.8"]`, `["cpu"]`) into (name, version); ValueError if not one."""
    backend = BACKENDS.get(parts[0]) if parts else None
    if backend is not None and not backend.prefix and len(parts) == 1:
        return backend.name, None
    if backend is not None and backend.prefix and len(parts) == 2:
        version = parse_dotted(parts[1])
        if version is not None:
            return backend.name, version
    raise ValueError(f"unknown backend {'-'.join(parts)!r}")


def backend_variant_str(backend: str, version: tuple[int, int] | None, *, dotted: bool = False) -> str:
    """The backend part of a variant name: `cu128` (or `cuda-12.8` if `dotted`) for CUDA 12.8, `cpu` for CPU."""
    if version is None:
        return backend
    if dotted:
        return f"{backend}-{version[0]}.{version[1]}"
    return f"{BACKENDS[backend].prefix}{version[0]}{version[1]}"


def dotted(version: tuple[int, int]) -> str:
    """A (major, minor) version as people write it: `2.10`."""
    return f"{version[0]}.{version[1]}"


def backend_label(backend: str, version: tuple[int, int] | None) -> str:
    """Human name of a backend, e.g. `CUDA 12.8`, `CPU`."""
    label = BACKENDS[backend].label if backend in BACKENDS else backend
    return label if version is None else f"{label} {dotted(version)}"


class Target(Record, kw_only=False):
    """An environment to select build variants for (the running one, or one declared for a deployment).

    `python` and `free_threaded` are the target's CPython (`(3, 12)`, and whether it is a free-threaded
    build); None where a declared target does not say, which selects for the Python running the selection.
    """

    torch: tuple[int, int] | None
    cxx11_abi: bool | None
    backend: str
    backend_version: tuple[int, int] | None
    arch: str
    os: str
    macos: tuple[int, int] | None = None
    free_threaded: bool | None = None
    python: tuple[int, int] | None = None

    def describe(self) -> str:
        """Human text, e.g. `torch 2.10 (cxx11), CUDA 12.8, x86_64-linux, Python 3.12`."""
        if self.torch is None:
            torch = "no torch"
        else:
            torch = f"torch {self.torch[0]}.{self.torch[1]}"
            if self.cxx11_abi is not None:
                torch += " (cxx11)" if self.cxx11_abi else " (cxx98)"
        text = f"{torch}, {backend_label(self.backend, self.backend_version)}, {self.arch}-{self.os}"
        if self.macos is not None:
            text += f" (macOS {self.macos[0]}.{self.macos[1]})"
        python = "" if self.python is None else f" {self.python[0]}.{self.python[1]}"
        if self.free_threaded:
            text += f", free-threaded Python{python}"
        elif python:
            text += f", Python{python}"
        return text

    def python_facts(self) -> tuple[tuple[int, int], bool]:
        """(Python version, free-threaded) to select for: the declared ones, else the running interpreter's."""
        version = self.python or (sys.version_info[0], sys.version_info[1])
        return version, is_free_threaded_build() if self.free_threaded is None else self.free_threaded

    def spec(self) -> str | None:
        """The `parse_target` string of this target; None without torch.

        In the legacy grammar (`torch210-cxx11-cu128-x86_64-linux`) where the Python is not declared, else in
        kernels 0.19's (`torch-2.10-cxx11-cuda-12.8-cpython-3.12-abi3-x86_64-linux`).
        """
        if self.torch is None:
            return None
        abi = "" if self.cxx11_abi is None else ("-cxx11" if self.cxx11_abi else "-cxx98")
        system = f"{self.arch}-{self.os}"
        if self.python is None:
            backend = backend_variant_str(self.backend, self.backend_version)
            return f"torch{self.torch[0]}{self.torch[1]}{abi}-{backend}-{system}"
        backend = backend_variant_str(self.backend, self.backend_version, dotted=True)
        python = f"cpython-{self.python[0]}.{self.python[1]}-{'abi3t' if self.free_threaded else 'abi3'}"
        return f"torch-{self.torch[0]}.{self.torch[1]}{abi}-{backend}-{python}-{system}"


_TARGET = r"torch(\d)(\d+)(?:-(cxx11|cxx98))?-([^-]+)-([^-]+)-([^-]+)"
ARCH_ALIASES = {"arm64": "aarch64", "amd64": "x86_64", "x64": "x86_64"}
OSES = ("linux", "darwin", "windows")
_TARGET_FORMAT = (
    "A target is written like a build variant name, torch<MAJOR><MINOR>[-cxx11|-cxx98]-<backend>-<arch>-<os>, "
    "e.g. torch210-cxx11-cu128-x86_64-linux, torch213-cxx11-cpu-aarch64-linux or torch210-metal-aarch64-darwin; "
    f"<backend> is {', '.join(n for n, b in BACKENDS.items() if not b.prefix)}, or "
    f"{', '.join(_BY_PREFIX)} followed by <MAJOR><MINOR>. Or in the grammar of kernels 0.19, which also "
    "names the Python: torch-<X.Y>[-cxx11|-cxx98]-<backend>[-<X.Y>][-cpython-<X.Y>-abi3|abi3t]-<arch>-<os>, "
    "e.g. torch-2.10-cxx11-cuda-12.8-cpython-3.12-abi3-x86_64-linux (abi3t: a free-threaded Python)."
)


def _invalid_target(spec: str, why: str) -> VariantError:
    return VariantError(f"Invalid target {spec!r}: {why}. {_TARGET_FORMAT}")


def _split_target(
    spec: str,
) -> tuple[tuple[int, int], str | None, str, list[str], list[str] | None, str, str]:
    """A target string's parts: torch version, C++ ABI tag, backend (legacy text or new parts), Python parts, arch, OS."""
    m = re.fullmatch(_TARGET, spec)
    if m:
        major, minor, abi, backend_text, arch, os = m.groups()
        return (int(major), int(minor)), abi, backend_text, [], None, arch, os
    parts = spec.split("-")
    torch = parse_dotted(parts[1]) if len(parts) >= 5 and parts[0] == "torch" else None
    if torch is None:
        raise _invalid_target(spec, "it is not of the form of a build variant")
    rest = parts[2:-2]
    abi = rest.pop(0) if rest and rest[0] in ("cxx11", "cxx98") else None
    python = None
    if "cpython" in rest:
        python = rest[rest.index("cpython") :]
        rest = rest[: rest.index("cpython")]
    return torch, abi, "", rest, python, parts[-2], parts[-1]


def _target_python(spec: str, parts: list[str]) -> tuple[tuple[int, int], bool]:
    """(version, free-threaded) of a target's `cpython-3.12-abi3` (abi3t: a free-threaded Python)."""
    version = parse_dotted(parts[1]) if len(parts) == 3 else None
    if version is None or parts[2] not in ("abi3", "abi3t"):
        raise _invalid_target(
            spec, f"expected cpython-<X.Y>-abi3 or cpython-<X.Y>-abi3t, got {'-'.join(parts)!r}"
        )
    free_threaded = parts[2] == "abi3t"
    check_python(version, free_threaded, f"Invalid target {spec!r}")
    return version, free_threaded


def check_python(version: tuple[int, int], free_threaded: bool, where: str) -> None:
    """VariantError if no CPython is this: kernel builds are for CPython 3, free-threaded ones from 3.13."""
    if version[0] != 3:
        raise VariantError(
            f"{where}: kernel builds are for CPython 3, not Python {version[0]}.{version[1]}; "
            "name a CPython 3 version such as 3.12."
        )
    if free_threaded and version < FREE_THREADED_MIN_PYTHON:
        raise VariantError(
            f"{where}: free-threaded CPython starts at 3.13, not {version[0]}.{version[1]}; "
            "drop the free-threading or name a Python >= 3.13."
        )


def parse_target(spec: str) -> Target:
    """Parse a variant-like target such as `torch210-cxx11-cu128-x86_64-linux`; VariantError if malformed.

    kernels 0.19's grammar is read too, and its `cpython-3.12-abi3` (or `abi3t`, free-threaded) part, if
    any, declares the target's Python.
    """
    spec = spec.strip()
    torch, abi, backend_text, backend_parts, python_parts, arch, os = _split_target(spec)
    try:
        backend, backend_version = (
            parse_backend(backend_text) if backend_text else parse_backend_parts(backend_parts)
        )
    except ValueError:
        unknown = backend_text or "-".join(backend_parts)
        raise _invalid_target(spec, f"unknown backend {unknown!r}") from None
    arch = ARCH_ALIASES.get(arch.lower(), arch)
    if os not in OSES:
        raise _invalid_target(spec, f"unknown OS {os!r}, expected one of {', '.join(OSES)}")
    if abi is not None and os != "linux":
        raise VariantError(
            f"Invalid target {spec!r}: the C++ ABI tag -{abi} only applies to Linux; drop it from the target."
        )
    python, free_threaded = _target_python(spec, python_parts) if python_parts is not None else (None, None)
    return Target(
        torch=torch,
        cxx11_abi=(abi != "cxx98") if os == "linux" else None,
        backend=backend,
        backend_version=backend_version,
        arch=arch,
        os=os,
        macos=METAL_MIN_MACOS if os == "darwin" else None,
        free_threaded=free_threaded,
        python=python,
    )


def this_machine() -> tuple[str, str]:
    """(arch, os) of this machine, named as in variants (as kernels does)."""
    cpu = platform.machine()
    os = platform.system().lower()
    if os == "darwin" and cpu == "arm64":
        cpu = "aarch64"
    elif os == "windows" and cpu == "AMD64":
        cpu = "x86_64"
    return cpu, os


@functools.cache
def is_free_threaded_build() -> bool:
    """Whether this Python is a free-threaded build (`Py_GIL_DISABLED`), as kernels decides (cached)."""
    # No free-threaded builds before 3.13: no sysconfig import needed there.
    if sys.version_info < FREE_THREADED_MIN_PYTHON:
        return False
    import sysconfig

    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def _macos_version() -> tuple[int, int] | None:
    """(major, minor) of the running macOS, None if unknown."""
    release = platform.mac_ver()[0]
    return _major_minor(release) if release else None


def _major_minor(text: str) -> tuple[int, int] | None:
    """(major, minor) from the start of a version string like `12.8` or `6.3.42131-fa1d`, as the regex
    `(\\d+)(\\.(\\d+))?` reads it (a regex would cost every fresh load its compilation)."""
    major = "".join(itertools.takewhile(str.isdecimal, text))
    rest = text[len(major) :]
    minor = "".join(itertools.takewhile(str.isdecimal, rest[1:])) if rest[:1] == "." else ""
    return (int(major), int(minor or 0)) if major else None


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


if TYPE_CHECKING:  # only annotations name it: a `Literal` costs every fresh load 0.04 ms to make
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


def rules_for(version: str) -> Rules:
    """The rules family of a kernels version (`0.19.1`): 0.17 up to 0.17.x, 0.18, 0.19 from 0.19 on."""
    major, _, rest = version.partition(".")
    minor = rest.partition(".")[0]
    if not (major.isdecimal() and minor.isdecimal()):
        return NEWEST_RULES
    found = (int(major), int(minor))
    return max(OLDEST_RULES, min(found, NEWEST_RULES))


@functools.cache
def installed_rules() -> Rules:
    """The rules of the installed kernels release, found without importing it (cached); the newest if none.

    Read from its `kernels-X.Y.Z.dist-info` folder (a directory listing, far cheaper than
    `importlib.metadata`), or from `kernels.__version__` where it is imported already.
    """
    kernels = sys.modules.get("kernels")
    version = getattr(kernels, "__version__", None)
    if isinstance(version, str):
        return rules_for(version)
    try:
        spec = importlib.util.find_spec("kernels")
    except (ImportError, ValueError):
        return NEWEST_RULES
    if spec is None or not spec.submodule_search_locations:
        return NEWEST_RULES
    package = Path(next(iter(spec.submodule_search_locations)))
    try:
        names = os.listdir(package.parent)
    except OSError:
        names = []
    for name in names:
        if name.startswith("kernels-") and name.endswith(".dist-info"):
            return rules_for(name.removeprefix("kernels-").removesuffix(".dist-info"))
    # An install without its dist-info next to it (a source checkout): 0.19 keeps its modules apart.
    return NEWEST_RULES if (package / "_internals").is_dir() else (0, 18)
