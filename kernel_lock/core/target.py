"""The environment a build variant is selected for: torch version and C++ ABI, backend, CPU, OS, Python.

A target is either declared (`parse_target`, `target_from_options`) or detected from the
running interpreter (`kernel_lock.core.detect`) without importing torch, which would cost ~1.4 s.

The verified quick load imports this module in every fresh process, so its import stays cheap: its
values are `Record`s (`kernel_lock.core._record`), and no regex is compiled at import.
"""

from __future__ import annotations

import functools
import platform
import re
import sys

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
_TARGET = r"torch(\d)(\d+)(?:-(cxx11|cxx98))?-([^-]+)-([^-]+)-([^-]+)"
_ARCH_ALIASES = {"arm64": "aarch64", "amd64": "x86_64", "x64": "x86_64"}
_OSES = ("linux", "darwin", "windows")
# Metal builds need macOS 26 (kernels' `_METAL_MIN_MACOS_VERSION`); assumed for declared darwin targets.
METAL_MIN_MACOS = (26, 0)
# Free-threaded CPython exists from 3.13 (PEP 703).
FREE_THREADED_MIN_PYTHON = (3, 13)
_TARGET_FORMAT = (
    "A target is written like a build variant name, torch<MAJOR><MINOR>[-cxx11|-cxx98]-<backend>-<arch>-<os>, "
    "e.g. torch210-cxx11-cu128-x86_64-linux, torch213-cxx11-cpu-aarch64-linux or torch210-metal-aarch64-darwin; "
    f"<backend> is {', '.join(n for n, b in BACKENDS.items() if not b.prefix)}, or "
    f"{', '.join(_BY_PREFIX)} followed by <MAJOR><MINOR>. Or in the grammar of kernels 0.19, which also "
    "names the Python: torch-<X.Y>[-cxx11|-cxx98]-<backend>[-<X.Y>][-cpython-<X.Y>-abi3|abi3t]-<arch>-<os>, "
    "e.g. torch-2.10-cxx11-cuda-12.8-cpython-3.12-abi3-x86_64-linux (abi3t: a free-threaded Python)."
)


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
    arch = _ARCH_ALIASES.get(arch.lower(), arch)
    if os not in _OSES:
        raise _invalid_target(spec, f"unknown OS {os!r}, expected one of {', '.join(_OSES)}")
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
    python: str | None = None,
    free_threaded: bool | None = None,
    **backends: str | bool | None,
) -> Target:
    """Build a target from CLI options (`--torch 2.10 --cuda 12.8 ...`); arch/os default to this machine.

    `python` (`3.12`) and `free_threaded` declare the target's Python; where only one is given, the
    version defaults to this interpreter's and free-threading to off. Neither: the Python that selects.

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
    here = this_machine()
    os = (os or ("darwin" if metal else here[1])).lower()
    if os not in _OSES:
        raise VariantError(f"Invalid --os {os!r}: expected one of {', '.join(_OSES)}.")
    arch = arch or ("aarch64" if metal and here[1] != "darwin" else here[0])
    arch = _ARCH_ALIASES.get(arch.lower(), arch)
    if os != "linux" and cxx11_abi is not None:
        raise VariantError(
            f"The C++ ABI option only applies to Linux targets, not {os}: drop it or pass --os linux."
        )
    python_version = None
    if python is not None or free_threaded:
        python_version = (
            _parse_version_option(python, "--python", "3.12")
            if python is not None
            else (sys.version_info[0], sys.version_info[1])
        )
        free_threaded = bool(free_threaded)
        check_python(python_version, free_threaded, "Invalid --python/--free-threaded")
    return Target(
        torch=_parse_version_option(torch, "--torch", "2.10") if torch is not None else None,
        cxx11_abi=(True if cxx11_abi is None else cxx11_abi) if os == "linux" else None,
        backend=backend,
        backend_version=backend_version,
        arch=arch,
        os=os,
        macos=METAL_MIN_MACOS if os == "darwin" else None,
        free_threaded=free_threaded if python_version is not None else None,
        python=python_version,
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
