"""A target from the CLI's `--torch`/`--cuda`/`--python`/... options, built field by field."""

from __future__ import annotations

import re
import sys

from kernel_lock.core.target import (
    ARCH_ALIASES,
    BACKENDS,
    METAL_MIN_MACOS,
    OSES,
    Target,
    check_python,
    this_machine,
)
from kernel_lock.errors import VariantError


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
    if os not in OSES:
        raise VariantError(f"Invalid --os {os!r}: expected one of {', '.join(OSES)}.")
    arch = arch or ("aarch64" if metal and here[1] != "darwin" else here[0])
    arch = ARCH_ALIASES.get(arch.lower(), arch)
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
