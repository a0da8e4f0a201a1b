"""Build variants: their names in both grammars of `kernels`, and selection with the same rules and
preference order as the installed `kernels` release.

Mirrors kernels' `parse_variant`, `_check_variants` and `_sort_variants` without importing kernels, torch or
packaging. Their rules changed between releases, so parsing and selection follow a release family
(`Rules`): 0.17 and 0.18 read only the legacy grammar (`torch210-cxx11-cu128-x86_64-linux`), 0.19 also its
new one (`torch-2.10-cxx11-cuda-12.8-cpython-3.9-abi3-x86_64-linux`, `mlx-metal`, `sdk…`); 0.18 runs ROCm
x.z builds on ROCm x.y (z <= y); 0.19 selects by the Python version and free-threading too. tvm-ffi and
MLX variants parse but are never selected: kernel-lock only supports torch kernels. Cheap to import, like
`kernel_lock.core.target`: every verified load needs it.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

from kernel_lock.core._record import Record
from kernel_lock.core.target import (
    BACKENDS,
    METAL_MIN_MACOS,
    NEWEST_RULES,
    Rules,
    Target,
    backend_label,
    backend_variant_str,
    dotted,
    installed_rules,
    is_digits,
    parse_backend,
    parse_backend_parts,
    parse_dotted,
)
from kernel_lock.errors import NoVariantFits, VariantError

if TYPE_CHECKING:  # only annotations name them: a `Literal` costs every fresh load 0.04 ms to make
    Framework = Literal["torch", "torch-stable-abi", "tvm-ffi", "noarch", "mlx", "sdk"]
    PythonAbi = Literal["abi3", "abi3t"]
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


# Why a variant does not fit, as data (the reason text says it for people).
Rejection = Literal[
    "not-a-variant",
    "free-threaded",  # kernels < 0.19: no compiled variant on a free-threaded Python before 3.15
    "abi3-on-free-threaded",
    "python-too-old",
    "cpu",
    "os",
    "torch",
    "cxx11-abi",
    "stable-abi",
    "framework",  # tvm-ffi or MLX: kernel-lock only loads torch kernels
    "backend",
    "macos",
]
NOT_A_VARIANT = "not a build variant name"
FREE_THREADED = "arch kernel not supported on free-threaded Python <3.15"


class Decision(Record, kw_only=False):
    """Whether a variant fits a target, and if not, why (`why` as data, `reason` for people)."""

    variant: str
    accepted: bool
    reason: str | None
    why: Rejection | None = None


def _python_rejection(v: Variant, t: Target) -> tuple[Rejection, str] | None:
    """Why `t`'s Python cannot load `v`'s compiled parts (kernels 0.19's `_python_mismatch`), None if it can."""
    assert v.python is not None
    python, free_threaded = t.python_facts()
    if v.abi == "abi3" and free_threaded:
        return (
            "abi3-on-free-threaded",
            "built for the abi3 stable ABI, which a free-threaded Python cannot load "
            "(it needs an abi3t build, for Python >= 3.15)",
        )
    if python < v.python:
        what = "the abi3t ABI needs" if v.abi == "abi3t" else "built for"
        return (
            "python-too-old",
            f"{what} Python >= {dotted(v.python)}, the target has Python {dotted(python)}",
        )
    return None


def _backend_key(backend: str, version: tuple[int, int] | None, rules: Rules) -> object:
    """What kernels compares backends by: their legacy names before 0.19 (ROCm 7.14 and 71.4 are both
    `rocm714`), name and version from 0.19 on."""
    return backend_variant_str(backend, version) if rules < (0, 19) else (backend, version)


def _backend_rejection(v: Variant, t: Target, rules: Rules) -> tuple[Rejection, str] | None:
    """Why `v`'s backend does not run on `t`'s (kernels' `_backend_mismatch`), None if it does."""
    built_for = backend_label(v.backend, v.backend_version)
    target_backend = backend_label(t.backend, t.backend_version)
    # CUDA x.y runs CUDA x.z builds with z <= y; from kernels 0.18 on, ROCm too.
    compatible = ("cuda", "rocm") if rules >= (0, 18) else ("cuda",)
    if t.backend == v.backend and v.backend in compatible:
        assert v.backend_version is not None and t.backend_version is not None
        if v.backend_version[0] != t.backend_version[0] or v.backend_version[1] > t.backend_version[1]:
            runs = f"{t.backend_version[0]}.0 to {dotted(t.backend_version)}"
            return "backend", f"built for {built_for}, which {target_backend} cannot run (it runs {runs})"
    elif _backend_key(v.backend, v.backend_version, rules) != _backend_key(
        t.backend, t.backend_version, rules
    ):
        return "backend", f"built for {built_for}, the target's backend is {target_backend}"
    elif v.backend == "metal" and (t.macos is None or t.macos < METAL_MIN_MACOS):
        macos = "unknown" if t.macos is None else dotted(t.macos)
        return (
            "macos",
            f"Metal builds need macOS {dotted(METAL_MIN_MACOS)} or later, the target's macOS is {macos}",
        )
    return None


def _framework_rejection(v: Variant, t: Target) -> tuple[Rejection, str] | None:
    """Why `v`'s framework does not fit `t`'s torch, None if it does."""
    assert v.version is not None
    target_torch = "no torch" if t.torch is None else f"torch {dotted(t.torch)}"
    if v.framework == "torch":
        if v.version != t.torch:
            return "torch", f"built for torch {dotted(v.version)}, the target has {target_torch}"
        if v.cxx11_abi is not None and v.cxx11_abi != t.cxx11_abi:
            target_abi = "no C++ ABI tag" if t.cxx11_abi is None else ("cxx11" if t.cxx11_abi else "cxx98")
            built = "cxx11" if v.cxx11_abi else "cxx98"
            return "cxx11-abi", f"built for the {built} C++ ABI, the target's torch has {target_abi}"
    elif v.framework == "torch-stable-abi":
        if t.torch is None or v.version > t.torch:
            stable = dotted(v.version)
            return (
                "stable-abi",
                f"torch stable ABI {stable} needs torch >= {stable}, the target has {target_torch}",
            )
    elif v.framework == "tvm-ffi":
        return "framework", "tvm-ffi build: kernel-lock only supports torch kernels"
    return None


def _noarch_rejection(v: Variant, t: Target, rules: Rules) -> tuple[Rejection, str] | None:
    """Why a noarch variant (`torch-cpu`, `mlx-metal`, `sdk-cuda`) does not fit `t`, None if it does."""
    if v.framework == "mlx":
        return "framework", "MLX build: kernel-lock only supports torch kernels"
    backend = BACKENDS.get(t.backend)
    # Before 0.19, a CANN target loads `torch-npu`; 0.19 looks for `torch-cann`.
    wanted = (backend.noarch if backend and rules < (0, 19) else None) or t.backend
    if v.framework == "sdk":
        if v.name == "sdk" or v.backend == wanted:  # `sdk` fits any backend (`sdk-` names the backend "")
            return None
        return "backend", f"SDK for the {v.backend!r} backend; the target needs {wanted!r}"
    if v.backend in (wanted, "universal"):
        return None
    return "backend", f"noarch build for {v.backend!r}; the target needs {wanted!r} or 'universal'"


def _rejection(v: Variant, t: Target, rules: Rules) -> tuple[Rejection, str] | None:
    """Why `v` does not fit `t` (None if it does), checked in the order of kernels' `_check_variants`."""
    if v.python is None:
        return _noarch_rejection(v, t, rules)
    if rules < (0, 19):
        python, free_threaded = t.python_facts()
        if free_threaded and python < ABI3T_MIN_PYTHON:
            return "free-threaded", FREE_THREADED
    else:
        found = _python_rejection(v, t)
        if found:
            return found
    if (v.arch, v.os) != (t.arch, t.os):
        built_for = f"built for {backend_label(v.backend, v.backend_version)} on {v.arch}-{v.os}"
        return ("cpu" if v.arch != t.arch else "os"), f"{built_for}, the target is {t.arch}-{t.os}"
    if v.framework != "sdk":
        found = _framework_rejection(v, t)
        if found:
            return found
    elif not v.backend:
        return None
    return _backend_rejection(v, t, rules)


def _sort_key(v: Variant, accepted: bool, rules: Rules) -> tuple[int, ...]:
    """kernels' `_sort_variants` key: stable ABI (newest first), torch (untagged first), tvm-ffi, SDK, noarch.

    Within one, the newest backend minor version first (CUDA, ROCm, XPU and CANN have versions), then
    (0.19) abi3 before abi3t and the highest Python first. Before 0.19, tvm-ffi and noarch tie.
    """
    decision = 0 if accepted else 1
    backend = -v.backend_version[1] if v.backend_version is not None else 0
    if rules < (0, 19):
        if v.python is None:
            return (decision, 2, 0, 0, 1 if v.backend == "universal" else 0)
    elif v.framework in ("noarch", "mlx"):
        return (decision, 4, 0, 0, 1 if v.backend == "universal" else 0, 0, 0)
    elif v.framework == "sdk" and v.python is None:
        return (decision, 6 if v.name == "sdk" else 5, 0, 0, 0, 0, 0, 0)
    if v.framework == "torch-stable-abi":
        assert v.version is not None
        framework = (0, -v.version[0], -v.version[1])
    elif v.framework == "torch":
        framework = (1, 0, 0 if v.cxx11_abi is None else 1)
    elif v.framework == "tvm-ffi":
        framework = (2, 0, 0)
    else:  # a compiled SDK; backend-agnostic ones after those for a backend
        framework, backend = (3, 0, 0), (backend if v.backend else 1)
    if rules < (0, 19):
        return (decision, *framework, backend)
    assert v.python is not None
    return (decision, *framework, backend, 0 if v.abi == "abi3" else 1, -v.python[0], -v.python[1])


def rank_variants(variants: Iterable[str], target: Target, *, rules: Rules | None = None) -> list[Decision]:
    """Every variant's decision: accepted ones in kernels' preference order, then rejected ones with reasons.

    `rules`: the kernels release family to follow; by default the installed one's (`installed_rules`).
    Ties keep the order of `variants` (kernels' order there is its listing's).
    """
    rules = installed_rules() if rules is None else rules
    ranked: list[tuple[tuple[int, ...], Decision]] = []
    unparsed: list[Decision] = []
    for name in dict.fromkeys(variants):
        try:
            v = parse_variant(name, rules)
        except VariantError:
            unparsed.append(Decision(name, False, NOT_A_VARIANT, "not-a-variant"))
            continue
        found = _rejection(v, target, rules)
        decision = Decision(name, True, None) if found is None else Decision(name, False, found[1], found[0])
        ranked.append((_sort_key(v, found is None, rules), decision))
    ranked.sort(key=lambda item: item[0])
    return [decision for _, decision in ranked] + unparsed


def select_variant(
    variants: Iterable[str], target: Target, *, repo_id: str = "", rules: Rules | None = None
) -> str:
    """The preferred variant for `target`; VariantError listing every variant's rejection if none fits."""
    decisions = rank_variants(variants, target, rules=rules)
    if decisions and decisions[0].accepted:
        return decisions[0].variant
    raise NoVariantFits(
        repo_id,
        target.describe(),
        [(d.variant, d.reason or "") for d in decisions],
        suggestions=nearest_targets([d.variant for d in decisions], target, rules=rules),
    )


def nearest_targets(
    variants: Iterable[str], target: Target, *, rules: Rules | None = None, limit: int = 3
) -> list[str]:
    """Targets (as `--target` specs) that one of `variants` fits, nearest to `target` first, never `target`.

    For each build, `target` with only its torch changed if that fits, else the build's own environment;
    nearest: the same system, then the same backend, then the closest torch and backend versions.
    """
    rules = installed_rules() if rules is None else rules
    ranked: dict[str, tuple[int, ...]] = {}
    for name in variants:
        try:
            v = parse_variant(name)
        except VariantError:
            continue
        if v.framework not in ("torch", "torch-stable-abi") or v.version is None:
            continue
        abi = v.cxx11_abi if v.framework == "torch" else (None if v.backend == "metal" else True)
        own = Target(
            v.version,
            abi,
            v.backend,
            v.backend_version,
            v.arch or "",
            v.os or "",
            macos=METAL_MIN_MACOS if v.backend == "metal" else None,
        )
        other_torch = dataclasses.replace(
            target, torch=v.version, cxx11_abi=target.cxx11_abi if abi is None else abi
        )
        fits = next((t for t in (other_torch, own) if t != target and _rejection(v, t, rules) is None), None)
        spec = fits.spec() if fits else None
        if fits is None or spec is None:
            continue
        torch = target.torch or (0, 0)
        versions = (fits.backend_version, target.backend_version)
        ranked[spec] = (
            (fits.arch, fits.os) != (target.arch, target.os),
            fits.backend != target.backend,
            abs((v.version[0] - torch[0]) * 100 + v.version[1] - torch[1]),
            abs(versions[0][1] - versions[1][1]) if versions[0] and versions[1] else 0,
        )
    return sorted(ranked, key=lambda spec: (ranked[spec], spec))[:limit]
