"""The environment a build variant is selected for: torch version and C++ ABI, backend, CPU, OS.

A target is either declared (`parse_target`, `target_from_options`) or detected from the
running interpreter (`detect_target`) without importing torch, which would cost ~1.4 s.

The verified quick load imports this module in every fresh process, so its import stays cheap: its
records are `NamedTuple`s (a frozen dataclass costs 0.5 ms to create, five of them were most of a
load's overhead), their annotations are evaluated at import rather than left as strings (each string
costs `NamedTuple` a compile), and no regex is compiled at import.
"""

import functools
import importlib.util
import platform
import re
import sys
from pathlib import Path
from typing import Literal, NamedTuple

from kernel_lock import env
from kernel_lock.errors import VariantError


class Backend(NamedTuple):
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
_TARGET = r"torch(\d)(\d+)(?:-(cxx11|cxx98))?-([^-]+)-([^-]+)-([^-]+)"
_ARCH_ALIASES = {"arm64": "aarch64", "amd64": "x86_64", "x64": "x86_64"}
_OSES = ("linux", "darwin", "windows")
# Metal builds need macOS 26 (kernels' `_METAL_MIN_MACOS_VERSION`); assumed for declared darwin targets.
METAL_MIN_MACOS = (26, 0)
_TARGET_FORMAT = (
    "A target is written like a build variant name, torch<MAJOR><MINOR>[-cxx11|-cxx98]-<backend>-<arch>-<os>, "
    "e.g. torch210-cxx11-cu128-x86_64-linux, torch213-cxx11-cpu-aarch64-linux or torch210-metal-aarch64-darwin; "
    f"<backend> is {', '.join(n for n, b in BACKENDS.items() if not b.prefix)}, or "
    f"{', '.join(_BY_PREFIX)} followed by <MAJOR><MINOR>."
)


def parse_backend(text: str) -> tuple[str, tuple[int, int] | None]:
    """Parse a variant's backend part (`cu128`, `rocm71`, `cpu`, ...) into (name, version); ValueError if unknown."""
    if text in BACKENDS and not BACKENDS[text].prefix:
        return text, None
    for prefix, backend in _BY_PREFIX.items():
        digits = text[len(prefix) :]
        # Same grouping as kernels: the last digit is the minor version (`cu128` is 12.8, `xpu20253` 2025.3).
        if text.startswith(prefix) and len(digits) >= 2 and digits.isdecimal():
            return backend.name, (int(digits[:-1]), int(digits[-1]))
    raise ValueError(f"unknown backend {text!r}")


def backend_variant_str(backend: str, version: tuple[int, int] | None) -> str:
    """The backend part of a variant name: `cu128` for CUDA 12.8, `cpu` for CPU."""
    if version is None:
        return backend
    return f"{BACKENDS[backend].prefix}{version[0]}{version[1]}"


def backend_label(backend: str, version: tuple[int, int] | None) -> str:
    """Human name of a backend, e.g. `CUDA 12.8`, `CPU`."""
    label = BACKENDS[backend].label if backend in BACKENDS else backend
    return label if version is None else f"{label} {version[0]}.{version[1]}"


class Target(NamedTuple):
    """An environment to select build variants for (the running one, or one declared for a deployment)."""

    torch: tuple[int, int] | None
    cxx11_abi: bool | None
    backend: str
    backend_version: tuple[int, int] | None
    arch: str
    os: str
    macos: tuple[int, int] | None = None
    free_threaded: bool = (
        False  # a free-threaded Python before 3.15, which cannot load stable-ABI (arch) builds
    )

    def describe(self) -> str:
        """Human text, e.g. `torch 2.10 (cxx11), CUDA 12.8, x86_64-linux`."""
        if self.torch is None:
            torch = "no torch"
        else:
            torch = f"torch {self.torch[0]}.{self.torch[1]}"
            if self.cxx11_abi is not None:
                torch += " (cxx11)" if self.cxx11_abi else " (cxx98)"
        text = f"{torch}, {backend_label(self.backend, self.backend_version)}, {self.arch}-{self.os}"
        if self.macos is not None:
            text += f" (macOS {self.macos[0]}.{self.macos[1]})"
        if self.free_threaded:
            text += ", free-threaded Python"
        return text

    def spec(self) -> str | None:
        """The `parse_target` string of this target, e.g. `torch210-cxx11-cu128-x86_64-linux`; None without torch."""
        if self.torch is None:
            return None
        abi = "" if self.cxx11_abi is None else ("-cxx11" if self.cxx11_abi else "-cxx98")
        backend = backend_variant_str(self.backend, self.backend_version)
        return f"torch{self.torch[0]}{self.torch[1]}{abi}-{backend}-{self.arch}-{self.os}"


def parse_target(spec: str) -> Target:
    """Parse a variant-like target such as `torch210-cxx11-cu128-x86_64-linux`; VariantError if malformed."""
    m = re.fullmatch(_TARGET, spec.strip())
    if not m:
        raise VariantError(
            f"Invalid target {spec!r}: it is not of the form of a build variant. {_TARGET_FORMAT}"
        )
    major, minor, abi, backend_text, arch, os = m.groups()
    try:
        backend, backend_version = parse_backend(backend_text)
    except ValueError:
        raise VariantError(
            f"Invalid target {spec!r}: unknown backend {backend_text!r}. {_TARGET_FORMAT}"
        ) from None
    arch = _ARCH_ALIASES.get(arch.lower(), arch)
    if os not in _OSES:
        raise VariantError(
            f"Invalid target {spec!r}: unknown OS {os!r}, expected one of {', '.join(_OSES)}. {_TARGET_FORMAT}"
        )
    if abi is not None and os != "linux":
        raise VariantError(
            f"Invalid target {spec!r}: the C++ ABI tag -{abi} only applies to Linux; drop it from the target."
        )
    cxx11_abi = (abi != "cxx98") if os == "linux" else None
    return Target(
        torch=(int(major), int(minor)),
        cxx11_abi=cxx11_abi,
        backend=backend,
        backend_version=backend_version,
        arch=arch,
        os=os,
        macos=METAL_MIN_MACOS if os == "darwin" else None,
    )


def _parse_version_option(value: str, option: str, example: str) -> tuple[int, int]:
    """Parse `MAJOR.MINOR` (more parts allowed: `2.11.0a0+git1234`) from a CLI option, else VariantError."""
    m = re.fullmatch(r"(\d+)\.(\d+)(?:\.\w+)*(?:\+[\w.]+)?", value.strip())
    if not m:
        raise VariantError(
            f"Invalid version {value!r} for {option}: write it as MAJOR.MINOR, e.g. `{option} {example}`."
        )
    return int(m.group(1)), int(m.group(2))


def target_from_options(
    *,
    torch: str | None = None,
    arch: str | None = None,
    os: str | None = None,
    cxx11_abi: bool | None = None,
    **backends: str | bool | None,
) -> Target:
    """Build a target from CLI options (`--torch 2.10 --cuda 12.8 ...`); arch/os default to this machine.

    `backends` holds one value per backend of `BACKENDS`: a version text for a versioned one
    (`cuda="12.8"`), True for an unversioned one (`cpu=True`); exactly one must be given.
    """
    unknown = sorted(set(backends) - set(BACKENDS))
    if unknown:
        raise TypeError(f"unknown backend option(s): {', '.join(unknown)}")
    chosen = [(name, value) for name, value in backends.items() if value]
    if len(chosen) != 1:
        given = ", ".join(f"--{name}" for name, _ in chosen) or "none"
        unversioned = ", ".join(f"--{b.name}" for b in BACKENDS.values() if not b.prefix)
        versioned = ", ".join(f"--{b.name} {b.example}" for b in BACKENDS.values() if b.prefix)
        raise VariantError(
            f"A target needs exactly one backend option, got {given}: pass one of {unversioned}, or a "
            f"version with {versioned} (e.g. `--torch 2.10 --cuda 12.8`)."
        )
    backend, value = chosen[0]
    example = BACKENDS[backend].example
    if isinstance(value, str) and example is None:
        raise TypeError(f"--{backend} takes no version")
    backend_version = (
        _parse_version_option(value, f"--{backend}", example)
        if isinstance(value, str) and example is not None
        else None
    )
    metal = backend == "metal"
    here = _machine()
    os = (os or ("darwin" if metal else here[1])).lower()
    if os not in _OSES:
        raise VariantError(f"Invalid --os {os!r}: expected one of {', '.join(_OSES)}.")
    arch = arch or ("aarch64" if metal and here[1] != "darwin" else here[0])
    arch = _ARCH_ALIASES.get(arch.lower(), arch)
    if os != "linux" and cxx11_abi is not None:
        raise VariantError(
            f"The C++ ABI option only applies to Linux targets, not {os}: drop it or pass --os linux."
        )
    return Target(
        torch=_parse_version_option(torch, "--torch", "2.10") if torch is not None else None,
        cxx11_abi=(True if cxx11_abi is None else cxx11_abi) if os == "linux" else None,
        backend=backend,
        backend_version=backend_version,
        arch=arch,
        os=os,
        macos=METAL_MIN_MACOS if os == "darwin" else None,
    )


def _machine() -> tuple[str, str]:
    """(arch, os) of this machine, named as in variants (as kernels does)."""
    cpu = platform.machine()
    os = platform.system().lower()
    if os == "darwin" and cpu == "arm64":
        cpu = "aarch64"
    elif os == "windows" and cpu == "AMD64":
        cpu = "x86_64"
    return cpu, os


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


class TargetChoice(NamedTuple):
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


def unsupported_free_threaded() -> bool:
    """Whether this is a free-threaded Python without ABI3 support (before 3.15), as kernels 0.17.2's
    `_is_unsupported_free_threaded_build` decides: no arch (compiled) variant loads there."""
    # No free-threaded builds before 3.13, ABI3 support from 3.15: no sysconfig import needed there.
    if not (3, 13) <= sys.version_info[:2] < (3, 15):
        return False
    import sysconfig

    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


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
    arch, os = _machine()
    macos = _macos_version() if os == "darwin" else None
    free_threaded = unsupported_free_threaded()
    facts = _torch_facts(linux=os == "linux")
    backend: tuple[str, tuple[int, int] | None]
    if facts is None:
        runtime = _libcudart_version()
        backend = ("cpu", None) if runtime is None else ("cuda", runtime)
        return Target(None, None, backend[0], backend[1], arch, os, macos, free_threaded)
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
    return Target(torch_version, cxx11_abi, backend[0], backend[1], arch, os, macos, free_threaded)
