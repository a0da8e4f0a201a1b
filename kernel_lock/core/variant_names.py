"""Build-variant names in both grammars of `kernels`, parsed into `Variant`s and described in words.

Mirrors kernels' `parse_variant` without importing kernels, torch or packaging: 0.17 and 0.18 read only
the legacy grammar (`torch210-cxx11-cu128-x86_64-linux`); 0.19 also reads its new grammar
(`torch-2.10-cxx11-cuda-12.8-cpython-3.9-abi3-x86_64-linux`, `mlx-metal`, `sdk…`). Which grammar is
read follows a kernels release family (`Rules`). Cheap to import: every verified load needs it.
"""

from __future__ import annotations

import functools
from typing import Literal

from kernel_lock.core._record import Record
from kernel_lock.core.target import (
    backend_label,
    dotted,
    is_digits,
    parse_backend,
    parse_backend_parts,
    parse_dotted,
)
from kernel_lock.errors import VariantError

Framework = Literal["torch", "torch-stable-abi", "tvm-ffi", "noarch", "mlx", "sdk"]
PythonAbi = Literal["abi3", "abi3t"]
# A kernels release family, (major, minor): the rules selection follows.
Rules = tuple[int, int]
NEWEST_RULES: Rules = (0, 19)
OLDEST_RULES: Rules = (0, 17)
# The Python of a legacy name's compiled parts (kernels 0.19 reads them as `cpython-3.9-abi3`).
LEGACY_PYTHON = (3, 9)
# abi3t (PEP 803) needs Python 3.15.
ABI3T_MIN_PYTHON = (3, 15)


class Variant(Record, kw_only=False):
    """A parsed build variant name.

    For noarch variants (`torch-cpu`, `mlx-metal`, `sdk-cuda`) `backend` is the text after the framework.
    `python` and `abi` are the minimum Python and the stable ABI of compiled parts (`(3, 9)`, `abi3` for
    legacy names); None without compiled parts. `backend` is "" for a backend-agnostic SDK.
    """

    name: str
    framework: Framework
    version: tuple[int, int] | None
    cxx11_abi: bool | None
    backend: str
    backend_version: tuple[int, int] | None
    arch: str | None
    os: str | None
    python: tuple[int, int] | None = None
    abi: PythonAbi | None = None
    legacy: bool = True


def _not_a_variant(name: str) -> VariantError:
    return VariantError(
        f"{name!r} is not a build variant name: expected a name such as torch210-cxx11-cu128-x86_64-linux, "
        "torch-2.10-cxx11-cuda-12.8-cpython-3.9-abi3-x86_64-linux, torch-stable-abi210-cu128-x86_64-linux, "
        "torch-cpu or torch-universal."
    )


def _legacy_version(text: str, prefix: str) -> tuple[int, int] | None:
    """`torch210` as (2, 10): one digit of major version after `prefix`, the rest minor, as kernels reads it."""
    digits = text.removeprefix(prefix)
    if text == digits or len(digits) < 2 or not is_digits(digits):
        return None
    return int(digits[0]), int(digits[1:])


def _cxx_abi(parts: list[str], at: int) -> tuple[bool | None, list[str]]:
    """The optional C++ ABI tag at `parts[at]` (`cxx11` True, `cxx98` False, else None) and the parts after it."""
    if len(parts) > at and parts[at] in ("cxx11", "cxx98"):
        return parts[at] == "cxx11", parts[at + 1 :]
    return None, parts[at:]


def _legacy_backend(text: str, rules: Rules) -> tuple[str, tuple[int, int] | None]:
    """A legacy backend (`cu128`); kernels 0.19 reads `rocm714` as ROCm 7.14, earlier ones as 71.4."""
    if rules >= (0, 19) and text == "rocm714":
        return "rocm", (7, 14)
    return parse_backend(text)


def _python(parts: list[str]) -> tuple[tuple[int, int], PythonAbi] | None:
    """`["cpython", "3.12", "abi3"]` as ((3, 12), "abi3"); None if not one (abi3t needs Python 3.15)."""
    if len(parts) != 3 or parts[0] != "cpython":
        return None
    version = parse_dotted(parts[1])
    if version is None or parts[2] not in ("abi3", "abi3t"):
        return None
    if parts[2] == "abi3t" and version < ABI3T_MIN_PYTHON:
        return None
    return version, "abi3" if parts[2] == "abi3" else "abi3t"


def _compiled(
    name: str,
    framework: Framework,
    version: tuple[int, int] | None,
    cxx11_abi: bool | None,
    rest: list[str],
    *,
    legacy: bool,
    rules: Rules,
) -> Variant:
    """A variant with compiled parts: `rest` holds its backend, Python (new grammar) and system parts."""
    if version is None or len(rest) < 2:
        raise _not_a_variant(name)
    backend_parts, (arch, os) = rest[:-2], rest[-2:]
    python: tuple[tuple[int, int], PythonAbi] | None = (LEGACY_PYTHON, "abi3")
    if not legacy:
        python = (
            _python(backend_parts[backend_parts.index("cpython") :]) if "cpython" in backend_parts else None
        )
        backend_parts = backend_parts[: backend_parts.index("cpython")] if python else []
    if python is None or not backend_parts:
        raise _not_a_variant(name)
    try:
        if legacy and len(backend_parts) != 1:
            raise ValueError(backend_parts)
        backend, backend_version = (
            _legacy_backend(backend_parts[0], rules) if legacy else parse_backend_parts(backend_parts)
        )
    except ValueError:
        raise _not_a_variant(name) from None
    return Variant(name, framework, version, cxx11_abi, backend, backend_version, arch, os, *python, legacy)


def _sdk(name: str, rest: list[str]) -> Variant:
    """`sdk`, `sdk-<backend>`, `sdk-cpython-…-<arch>-<os>` or `sdk-<backend>[-X.Y]-cpython-…-<arch>-<os>`."""
    if "cpython" not in rest:
        if len(rest) > 1:
            raise _not_a_variant(name)
        return Variant(name, "sdk", None, None, rest[0] if rest else "", None, None, None, legacy=False)
    if len(rest) < 2:
        raise _not_a_variant(name)
    head, (arch, os) = rest[:-2], rest[-2:]
    at = head.index("cpython") if "cpython" in head else len(head)
    python = _python(head[at:])
    if python is None:
        raise _not_a_variant(name)
    try:
        backend, backend_version = parse_backend_parts(head[:at]) if head[:at] else ("", None)
    except ValueError:
        raise _not_a_variant(name) from None
    return Variant(name, "sdk", None, None, backend, backend_version, arch, os, *python, legacy=False)


@functools.cache
def parse_variant(name: str, rules: Rules = NEWEST_RULES) -> Variant:
    """Parse a build variant name as kernels of the `rules` family does (cached); VariantError if not one."""
    parts = name.split("-")
    new = rules >= (0, 19)
    if new and parts[0] == "sdk":
        return _sdk(name, parts[1:])
    if name.startswith("torch-stable-abi"):
        if new and len(parts) > 3 and parts[2] == "abi":
            version = parse_dotted(parts[3])
            return _compiled(name, "torch-stable-abi", version, None, parts[4:], legacy=False, rules=rules)
        version = _legacy_version("-".join(parts[:3]), "torch-stable-abi")
        return _compiled(name, "torch-stable-abi", version, None, parts[3:], legacy=True, rules=rules)
    if new and parts[0] == "torch" and len(parts) >= 2 and parts[1][:1].isdigit():
        cxx11_abi, rest = _cxx_abi(parts, 2)
        return _compiled(name, "torch", parse_dotted(parts[1]), cxx11_abi, rest, legacy=False, rules=rules)
    if parts[0] == "torch":
        return Variant(name, "noarch", None, None, "-".join(parts[1:]), None, None, None)
    if new and parts[0] == "mlx" and len(parts) >= 2 and not parts[1][:1].isdigit():
        return Variant(name, "mlx", None, None, "-".join(parts[1:]), None, None, None)
    if parts[0].startswith("torch"):
        cxx11_abi, rest = _cxx_abi(parts, 1)
        version = _legacy_version(parts[0], "torch")
        return _compiled(name, "torch", version, cxx11_abi, rest, legacy=True, rules=rules)
    if parts[0] == "tvm" and len(parts) >= 2 and parts[1].startswith("ffi"):
        if new and len(parts) > 2 and parts[1] == "ffi":
            return _compiled(
                name, "tvm-ffi", parse_dotted(parts[2]), None, parts[3:], legacy=False, rules=rules
            )
        # `tvm-ffi01`: kernels' `(\d+?)(\d+)` reads one digit of major version, the rest minor.
        version = _legacy_version(parts[1], "ffi")
        return _compiled(name, "tvm-ffi", version, None, parts[2:], legacy=True, rules=rules)
    raise _not_a_variant(name)


def describe_variant(name: str) -> str:
    """The environment a variant is built for, in words: `torch >= 2.10, CUDA 12.8, x86_64-linux`."""
    try:
        v = parse_variant(name)
    except VariantError:
        return "an unknown environment"
    if v.framework in ("noarch", "mlx") or (v.framework == "sdk" and v.python is None):
        what = {"noarch": "", "mlx": "MLX ", "sdk": "SDK "}[v.framework]
        if v.backend in ("universal", ""):
            return f"any environment{' (' + what.strip() + ')' if what else ''}"
        return f"any environment with the {v.backend} backend{' (' + what.strip() + ')' if what else ''}"
    parts = []
    if v.framework != "sdk":
        assert v.version is not None
        framework = {"torch": "torch ", "torch-stable-abi": "torch >= ", "tvm-ffi": "tvm-ffi "}[v.framework]
        parts.append(f"{framework}{dotted(v.version)}")
    parts.append(backend_label(v.backend, v.backend_version) if v.backend else "any backend")
    if not v.legacy and v.python is not None:
        free = ", free-threaded or not" if v.abi == "abi3t" else ""
        parts.append(f"Python >= {dotted(v.python)} ({v.abi}{free})")
    parts.append(f"{v.arch}-{v.os}")
    return ", ".join(parts)
