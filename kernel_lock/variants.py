"""Build-variant selection with the same rules and preference order as `kernels.variants`.

Mirrors kernels' `parse_variant`, `_check_variants` and `_sort_variants` (kernels 0.17.2), without
importing kernels, torch or packaging. tvm-ffi variants parse but are never selected: kernel-lock
only supports torch kernels. Cheap to import, like `kernel_lock.target` (see there): every verified
load needs it.
"""

import functools
from collections.abc import Iterable
from typing import Literal, NamedTuple

from kernel_lock.errors import NoVariantFits, VariantError
from kernel_lock.target import (
    BACKENDS,
    METAL_MIN_MACOS,
    Target,
    backend_label,
    backend_variant_str,
    parse_backend,
)

NOT_A_VARIANT = "not a build variant name"
FREE_THREADED = "arch kernel not supported on free-threaded Python <3.15"
Framework = Literal["torch", "torch-stable-abi", "tvm-ffi", "noarch"]


class Variant(NamedTuple):
    """A parsed build variant name; `framework` is `torch`, `torch-stable-abi`, `tvm-ffi` or `noarch`.

    For noarch variants (`torch-cpu`, `torch-universal`) `backend` is the text after `torch-`.
    """

    name: str
    framework: Framework
    version: tuple[int, int] | None
    cxx11_abi: bool | None
    backend: str
    backend_version: tuple[int, int] | None
    arch: str | None
    os: str | None


class Decision(NamedTuple):
    """Whether a variant fits a target, and if not, why."""

    variant: str
    accepted: bool
    reason: str | None


def _not_a_variant(name: str) -> VariantError:
    return VariantError(
        f"{name!r} is not a build variant name: expected a name such as torch210-cxx11-cu128-x86_64-linux, "
        "torch-stable-abi210-cu128-x86_64-linux, torch-cpu or torch-universal."
    )


def _arch_variant(
    name: str,
    framework: Framework,
    framework_text: str,
    abi: str | None,
    rest: list[str],
) -> Variant:
    """A variant for one framework version (`torch210`, starting with `framework`), backend, CPU and OS (`rest`)."""
    digits = framework_text.removeprefix(framework)
    # One digit of major version, the rest minor, as kernels reads `torch210` (2.10).
    if len(digits) < 2 or not digits.isdecimal() or len(rest) != 3:
        raise _not_a_variant(name)
    try:
        backend, backend_version = parse_backend(rest[0])
    except ValueError:
        raise _not_a_variant(name) from None
    cxx11_abi = None if abi is None else abi == "cxx11"
    version = (int(digits[0]), int(digits[1:]))
    return Variant(name, framework, version, cxx11_abi, backend, backend_version, rest[1], rest[2])


@functools.cache
def parse_variant(name: str) -> Variant:
    """Parse a build variant name as kernels does (cached); VariantError if it is not one."""
    parts = name.split("-")
    if name.startswith("torch-stable-abi"):
        return _arch_variant(name, "torch-stable-abi", "-".join(parts[:3]), None, parts[3:])
    if parts[0] == "torch":
        return Variant(name, "noarch", None, None, "-".join(parts[1:]), None, None, None)
    if parts[0].startswith("torch"):
        abi = parts[1] if len(parts) >= 2 and parts[1] in ("cxx11", "cxx98") else None
        return _arch_variant(name, "torch", parts[0], abi, parts[2:] if abi else parts[1:])
    if parts[0] == "tvm" and len(parts) >= 2 and parts[1].startswith("ffi"):
        return _arch_variant(name, "tvm-ffi", f"tvm-{parts[1]}", None, parts[2:])
    raise _not_a_variant(name)


def describe_variant(name: str) -> str:
    """The environment a variant is built for, in words: `torch >= 2.10, CUDA 12.8, x86_64-linux`."""
    try:
        v = parse_variant(name)
    except VariantError:
        return "an unknown environment"
    if v.framework == "noarch":
        return (
            f"any environment with the {v.backend} backend" if v.backend != "universal" else "any environment"
        )
    assert v.version is not None
    torch = {"torch": "torch ", "torch-stable-abi": "torch >= ", "tvm-ffi": "tvm-ffi "}[v.framework]
    return f"{torch}{_dotted(v.version)}, {backend_label(v.backend, v.backend_version)}, {v.arch}-{v.os}"


def _dotted(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


def _rejection(v: Variant, t: Target) -> str | None:
    """Why `v` does not fit `t` (None if it does), checked in the order of kernels' `_check_variants`."""
    if t.free_threaded and v.framework != "noarch":
        return FREE_THREADED
    if v.framework == "noarch":
        backend = BACKENDS.get(t.backend)
        wanted = (backend.noarch if backend else None) or t.backend
        if v.backend in (wanted, "universal"):
            return None
        return f"noarch build for {v.backend!r}; the target needs {wanted!r} or 'universal'"
    if (v.arch, v.os) != (t.arch, t.os):
        built_for = backend_label(v.backend, v.backend_version)
        return f"built for {built_for} on {v.arch}-{v.os}, the target is {t.arch}-{t.os}"
    target_torch = "no torch" if t.torch is None else f"torch {_dotted(t.torch)}"
    assert v.version is not None
    if v.framework == "torch":
        if v.version != t.torch:
            return f"built for torch {_dotted(v.version)}, the target has {target_torch}"
        if v.cxx11_abi is not None and v.cxx11_abi != t.cxx11_abi:
            target_abi = "no C++ ABI tag" if t.cxx11_abi is None else ("cxx11" if t.cxx11_abi else "cxx98")
            return f"built for the {'cxx11' if v.cxx11_abi else 'cxx98'} C++ ABI, the target's torch has {target_abi}"
    elif v.framework == "torch-stable-abi":
        if t.torch is None or v.version > t.torch:
            stable = _dotted(v.version)
            return f"torch stable ABI {stable} needs torch >= {stable}, the target has {target_torch}"
    else:
        return "tvm-ffi build: kernel-lock only supports torch kernels"
    built_for = backend_label(v.backend, v.backend_version)
    target_backend = backend_label(t.backend, t.backend_version)
    if t.backend == "cuda" and v.backend == "cuda":
        assert v.backend_version is not None and t.backend_version is not None
        if v.backend_version[0] != t.backend_version[0] or v.backend_version[1] > t.backend_version[1]:
            runs = f"{t.backend_version[0]}.0 to {_dotted(t.backend_version)}"
            return f"built for {built_for}, which {target_backend} cannot run (it runs {runs})"
    elif backend_variant_str(v.backend, v.backend_version) != backend_variant_str(
        t.backend, t.backend_version
    ):
        return f"built for {built_for}, the target's backend is {target_backend}"
    elif v.backend == "metal" and (t.macos is None or t.macos < METAL_MIN_MACOS):
        macos = "unknown" if t.macos is None else _dotted(t.macos)
        return f"Metal builds need macOS {_dotted(METAL_MIN_MACOS)} or later, the target's macOS is {macos}"
    return None


def _sort_key(v: Variant, accepted: bool) -> tuple[int, ...]:
    """kernels' `_sort_variants` key: stable ABI (newest first), torch (untagged first), tvm-ffi, noarch, universal."""
    decision = 0 if accepted else 1
    if v.framework == "noarch":
        return (decision, 2, 0, 0, 1 if v.backend == "universal" else 0)
    assert v.version is not None
    if v.framework == "torch-stable-abi":
        framework = (0, -v.version[0], -v.version[1])
    elif v.framework == "torch":
        framework = (1, 0, 0 if v.cxx11_abi is None else 1)
    else:
        framework = (2, 0, 0)
    # Only CUDA, ROCm, XPU and CANN have versions; kernels orders them by minor version alone.
    backend = -v.backend_version[1] if v.backend_version is not None else 0
    return (decision, *framework, backend)


def rank_variants(variants: Iterable[str], target: Target) -> list[Decision]:
    """Every variant's decision: accepted ones in kernels' preference order, then rejected ones with reasons."""
    ranked: list[tuple[Variant, Decision]] = []
    unparsed: list[Decision] = []
    for name in dict.fromkeys(variants):
        try:
            v = parse_variant(name)
        except VariantError:
            unparsed.append(Decision(name, False, NOT_A_VARIANT))
            continue
        reason = _rejection(v, target)
        ranked.append((v, Decision(name, reason is None, reason)))
    ranked.sort(key=lambda item: _sort_key(item[0], item[1].accepted))
    return [decision for _, decision in ranked] + unparsed


def select_variant(variants: Iterable[str], target: Target, *, repo_id: str = "") -> str:
    """The preferred variant for `target`; VariantError listing every variant's rejection if none fits."""
    decisions = rank_variants(variants, target)
    if decisions and decisions[0].accepted:
        return decisions[0].variant
    raise NoVariantFits(
        repo_id,
        target.describe(),
        [(d.variant, d.reason or "") for d in decisions],
        suggestions=nearest_targets(variants, target),
    )


def nearest_targets(variants: Iterable[str], target: Target, limit: int = 3) -> list[str]:
    """Targets (as `--target` specs) that one of `variants` fits, nearest to `target` first, never `target`.

    For each build, `target` with only its torch changed if that fits, else the build's own environment;
    nearest: the same system, then the same backend, then the closest torch and backend versions.
    """
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
        other_torch = target._replace(torch=v.version, cxx11_abi=target.cxx11_abi if abi is None else abi)
        fits = next((t for t in (other_torch, own) if t != target and _rejection(v, t) is None), None)
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
