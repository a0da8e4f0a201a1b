"""Build-variant selection with the same rules and preference order as the installed `kernels` release.

Mirrors kernels' `_check_variants` and `_sort_variants` without importing kernels, torch or packaging.
Their rules changed between releases, so selection follows a release family (`Rules`): 0.18 runs ROCm
x.z builds on ROCm x.y (z <= y); 0.19 selects by the Python version and free-threading too. Names are
parsed by `kernel_lock.core.variant_names`. tvm-ffi and MLX variants parse but are never selected:
kernel-lock only supports torch kernels. Cheap to import, like `kernel_lock.core.target` (see there):
every verified load needs it.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Literal

from kernel_lock.core._record import Record
from kernel_lock.core.target import (
    BACKENDS,
    METAL_MIN_MACOS,
    Target,
    backend_label,
    backend_variant_str,
    dotted,
)
from kernel_lock.core.variant_names import (
    ABI3T_MIN_PYTHON,
    NEWEST_RULES,
    OLDEST_RULES,
    Rules,
    Variant,
    parse_variant,
)
from kernel_lock.errors import NoVariantFits, VariantError

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
