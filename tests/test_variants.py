"""Variant selection agrees with the installed kernels release (0.17, 0.18 or 0.19) over a grid of targets,
Python versions and free-threading; targets parse, detect and fail with useful messages."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packaging.version import Version

from kernel_lock.core import target as target_module
from kernel_lock.core.target import (
    Rules,
    Target,
    backend_variant_str,
    detect_target,
    installed_rules,
    is_free_threaded_build,
    parse_target,
    rules_for,
)
from kernel_lock.core.target_options import target_from_options
from kernel_lock.core.variants import (
    FREE_THREADED,
    NOT_A_VARIANT,
    Decision,
    describe_variant,
    parse_variant,
    rank_variants,
    select_variant,
)
from kernel_lock.errors import NoVariantFits, VariantError
from kernel_lock.testing.fixtures import CPU_VARIANT

pytestmark = pytest.mark.kernels
_WHY = "test_variants.py compares with the kernels library (marker `kernels`)"
kernels = pytest.importorskip("kernels", reason=_WHY)


def _kernels_module(name: str) -> ModuleType:
    """A kernels module wherever the installed release keeps it (0.19 moved them all under `_internals`)."""
    try:
        return importlib.import_module(f"kernels._internals.{name}")
    except ModuleNotFoundError:
        return importlib.import_module(f"kernels.{name}")


kernels_backends = _kernels_module("backends")
kernels_variants = _kernels_module("variants")
RULES: Rules = rules_for(kernels.__version__)
NEW_GRAMMAR = RULES >= (0, 19)

DATA = Path(__file__).parent / "data"
REAL_NAMES = (DATA / "real-variant-names.txt").read_text().split()
# Built with kernels 0.19.1's own classes from the real names (see data/README.md).
NEW_NAMES = (DATA / "new-grammar-variant-names.txt").read_text().split()
# Names the real list lacks: stable ABI, untagged and cxx98 torch, tvm-ffi, universal, CANN, older CUDA/ROCm,
# and the new grammar's other forms (stable ABI, tvm-ffi, MLX, SDKs, ROCm 7.14, Python minimums).
EXTRA_NAMES = [
    "torch-universal",
    "torch-npu",
    "torch-cann",
    "torch-metal",
    "torch-stable-abi28-cu126-x86_64-linux",
    "torch-stable-abi210-cu128-x86_64-linux",
    "torch-stable-abi210-cu130-aarch64-linux",
    "torch-stable-abi212-cpu-x86_64-linux",
    "torch-stable-abi29-cpu-aarch64-linux",
    "torch-stable-abi211-metal-aarch64-darwin",
    "torch-stable-abi210-cpu-x86_64-windows",
    "torch210-cu128-x86_64-linux",
    "torch210-cu124-x86_64-linux",
    "torch27-cxx98-cu118-x86_64-linux",
    "torch27-cxx11-cu118-x86_64-linux",
    "torch26-cxx98-cpu-x86_64-linux",
    "torch25-cxx11-rocm63-x86_64-linux",
    "torch28-cxx11-cu129-x86_64-linux",
    "torch210-cpu-x86_64-windows",
    "torch210-cu128-x86_64-windows",
    "torch210-cxx11-cann80-aarch64-linux",
    "torch210-cxx11-neuron-x86_64-linux",
    "torch211-cxx11-rocm714-x86_64-linux",
    "tvm-ffi01-cu128-x86_64-linux",
    "tvm-ffi01-cpu-x86_64-linux",
    "torch-stable-abi-2.11-cpu-cpython-3.9-abi3-x86_64-linux",
    "torch-stable-abi-2.10-cuda-12.8-cpython-3.12-abi3-x86_64-linux",
    "torch-stable-abi-2.12-cuda-13.0-cpython-3.15-abi3t-x86_64-linux",
    "torch-stable-abi-2.9-metal-cpython-3.10-abi3-aarch64-darwin",
    "torch-2.10-cuda-12.8-cpython-3.9-abi3-x86_64-linux",
    "torch-2.10-cxx98-cpu-cpython-3.9-abi3-x86_64-linux",
    "torch-2.10-cpu-cpython-3.13-abi3-x86_64-windows",
    "torch-2.11-cxx11-rocm-7.14-cpython-3.9-abi3-x86_64-linux",
    "torch-2.10-cxx11-cann-8.0-cpython-3.9-abi3-aarch64-linux",
    "torch-2.13-cxx11-cpu-cpython-3.16-abi3t-x86_64-linux",
    "tvm-ffi-0.1-cuda-12.8-cpython-3.9-abi3-x86_64-linux",
    "tvm-ffi-0.1-cpu-cpython-3.9-abi3-x86_64-linux",
    "mlx-metal",
    "mlx-cpu",
    "sdk",
    "sdk-cuda",
    "sdk-cpu",
    "sdk-metal",
    "sdk-cpython-3.12-abi3-x86_64-linux",
    "sdk-cpython-3.15-abi3t-aarch64-linux",
    "sdk-cuda-12.8-cpython-3.9-abi3-x86_64-linux",
    "sdk-cuda-12.6-cpython-3.15-abi3t-x86_64-linux",
    "sdk-rocm-7.1-cpython-3.9-abi3-x86_64-linux",
    "sdk-cpu-cpython-3.10-abi3-aarch64-linux",
    "sdk-metal-cpython-3.10-abi3-aarch64-darwin",
]
# Edge cases of kernels' parsers: some are not variants, some are odd spellings (`cu12` is CUDA 1.2), some
# parse in one grammar only (`torch-2x-...` is a noarch name before 0.19, nothing in 0.19).
ODD_NAMES = [
    "torch",
    "torch-",
    "foo",
    "torch2x-cpu-x86_64-linux",
    "torch210-cuda-x86_64-linux",
    "torch210-cpu-x86_64",
    "torch-stable-abi",
    "torch-stable-abi210",
    "tvm-ffi-cpu-x86_64-linux",
    "torch210-cxx11-cu12-x86_64-linux",
    "torch210-cpu-x86_64-linux-extra",
    "tvm-ffi0123-cu128-x86_64-linux",
    "torch2010-cu0128-x86_64-linux",
    "torch210-cxx11-rocm071-x86_64-linux",
    "torch-2x-cpu-x86_64-linux",
    "torch-2.10-cuda-12.8-x86_64-linux",
    "torch-2.10-cu128-cpython-3.9-abi3-x86_64-linux",
    "torch-2.10-cuda-12.8-cpython-3.12-abi3t-x86_64-linux",
    "torch-2.10-cuda-12.8-cpython-3.12-abi4-x86_64-linux",
    "torch-2.10-cuda-12-cpython-3.9-abi3-x86_64-linux",
    "torch-2.10-cpython-3.9-abi3-x86_64-linux",
    "torch-2.10-cpu-cpython-3-abi3-x86_64-linux",
    "torch-2.10-cpu-cpython-3.9-abi3-extra-x86_64-linux",
    "torch-stable-abi-2.x-cpu-cpython-3.9-abi3-x86_64-linux",
    "torch-stable-abi-2.11-cpu-x86_64-linux",
    "tvm-ffi-0.1-cu128-x86_64-linux",
    "mlx",
    "mlx-",
    "mlx-0.1-metal",
    "sdk-",
    "sdk-a-b",
    "sdk-cpython-3.12-abi3",
    "sdk-cu128-cpython-3.9-abi3-x86_64-linux",
    "sdk-x-cpython",
    # Arabic-Indic digits: decimal to Python, not to `packaging`, so kernels refuses them.
    "torch\u0662\u0661\u0660-cpu-x86_64-linux",
    "torch-\u0662.\u0661\u0660-cpu-cpython-3.9-abi3-x86_64-linux",
    "torch210-cu\u0661\u0662\u0668-x86_64-linux",
]
ALL_NAMES = REAL_NAMES + NEW_NAMES + EXTRA_NAMES + ODD_NAMES


def _variant_sets() -> list[list[str]]:
    rng = random.Random(0)
    mixed = REAL_NAMES + NEW_NAMES
    sets = [REAL_NAMES, mixed, ALL_NAMES, list(reversed(ALL_NAMES))]
    for size in (3, 8, 21, 34, 55):
        sets.append(rng.sample(ALL_NAMES, size))
    return sets


VARIANT_SETS = _variant_sets()
BACKENDS: list[tuple[str, tuple[int, int] | None, tuple[int, int] | None]] = [
    ("cpu", None, None),
    *[("cuda", v, None) for v in [(11, 8), (12, 4), (12, 6), (12, 8), (13, 0), (13, 2)]],
    *[("rocm", v, None) for v in [(6, 3), (7, 0), (7, 1), (7, 2), (7, 14)]],
    ("xpu", (2025, 3), None),
    ("xpu", (2026, 0), None),
    ("metal", None, (15, 5)),
    ("metal", None, (26, 0)),
    ("cann", (8, 0), None),
    ("neuron", None, None),
]
# (Python, free-threaded): too old for legacy names, the oldest kernel-lock runs on, common ones, the first
# free-threaded one, and 3.15, the first that loads abi3t (with and without a GIL).
PYTHONS = [
    ((3, 8), False),
    ((3, 10), False),
    ((3, 12), False),
    ((3, 13), True),
    ((3, 15), False),
    ((3, 15), True),
]


def _targets(backend: str, version: tuple[int, int] | None, macos: tuple[int, int] | None) -> list[Target]:
    """Every CPU, OS, torch and C++ ABI, each with one of `PYTHONS` (in turn), and a few with all of them."""
    targets = []
    for arch in ("x86_64", "aarch64"):
        for os in ("linux", "darwin", "windows"):
            abis: list[bool | None] = [True, False] if os == "linux" else [None]
            torches: list[tuple[int, int] | None] = [(2, minor) for minor in range(5, 14)] + [None]
            for torch in torches:
                for abi in abis if torch else [None]:
                    targets.append(Target(torch, abi, backend, version, arch, os, macos))
    cycled = [
        dataclasses.replace(
            t, python=PYTHONS[i % len(PYTHONS)][0], free_threaded=PYTHONS[i % len(PYTHONS)][1]
        )
        for i, t in enumerate(targets)
    ]
    every = [dataclasses.replace(t, python=p, free_threaded=ft) for t in targets[::11] for p, ft in PYTHONS]
    return cycled + every


def _kernels_parsed(names: list[str]) -> list[tuple[object, str]]:
    """(kernels variant, name) for each name kernels can parse (parsing is slow: do it once per set)."""
    parsed = []
    for name in names:
        try:
            parsed.append((kernels_variants.parse_variant(name), name))
        except ValueError:
            continue
    return parsed


KERNELS_PARSED = [_kernels_parsed(names) for names in VARIANT_SETS]


def _selected_backend(target: Target) -> object:
    """kernels' backend object for the target's backend (its `parse_backend` takes a list from 0.19 on)."""
    legacy = backend_variant_str(target.backend, target.backend_version)
    if target.backend == "rocm" and target.backend_version == (7, 14):
        return kernels_backends.ROCm(version=Version("7.14"))
    return kernels_backends.parse_backend([legacy] if NEW_GRAMMAR else legacy)


def _kernels_order(
    parsed: list[tuple[object, str]], target: Target, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[str], list[bool]]:
    """kernels' preference-sorted trace for `target`: variant names and accepted flags."""
    python, free_threaded = target.python_facts()
    system: dict[str, Any] = {}
    if NEW_GRAMMAR:
        # No MLX and no tvm-ffi here: kernel-lock selects neither.
        system = {
            "python_version": Version("{}.{}".format(*python)),
            "free_threaded": free_threaded,
            "has_mlx": False,
        }
    else:
        unsupported = free_threaded and python < (3, 15)
        monkeypatch.setattr(kernels_variants, "_is_unsupported_free_threaded_build", lambda: unsupported)
    name_of = {id(variant): name for variant, name in parsed}
    _, trace = kernels_variants._resolve_variant_for_system(
        variants=[variant for variant, _ in parsed],
        selected_backend=_selected_backend(target),
        cpu=target.arch,
        os=target.os,
        torch_version=Version("{}.{}".format(*target.torch)) if target.torch else None,
        torch_cxx11_abi=target.cxx11_abi,
        tvm_ffi_version=None,
        macos_version=Version("{}.{}".format(*target.macos)) if target.macos else None,
        **system,
    )
    return [name_of[id(d.variant)] for d in trace], [
        isinstance(d, kernels_variants.VariantAccepted) for d in trace
    ]


def _compared(decisions: list[Decision]) -> list[Decision]:
    """Our decisions as kernels' trace lists them: without unparsed names, and before 0.19 without the
    compiled variants a free-threaded Python before 3.15 drops (kernels leaves them out; we say why)."""
    return [d for d in decisions if d.why not in ("not-a-variant", "free-threaded")]


@pytest.mark.parametrize(("backend", "version", "macos"), BACKENDS, ids=lambda x: str(x))
def test_agrees_with_kernels(
    backend: str,
    version: tuple[int, int] | None,
    macos: tuple[int, int] | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for target in _targets(backend, version, macos):
        for names, parsed in zip(VARIANT_SETS, KERNELS_PARSED, strict=True):
            expected_names, expected_accepted = _kernels_order(parsed, target, monkeypatch)
            decisions = _compared(rank_variants(names, target, rules=RULES))
            context = f"{target} {names}"
            assert [d.variant for d in decisions] == expected_names, context
            assert [d.accepted for d in decisions] == expected_accepted, context
            if any(expected_accepted):
                assert select_variant(names, target, rules=RULES) == expected_names[0], context
            else:
                with pytest.raises(VariantError):
                    select_variant(names, target, rules=RULES)


def test_same_names_parse_as_in_kernels() -> None:
    for name in ALL_NAMES:
        try:
            kernels_variants.parse_variant(name)
            kernels_ok = True
        except ValueError:
            kernels_ok = False
        try:
            parse_variant(name, RULES)
            ours_ok = True
        except VariantError as e:
            assert name in str(e)
            ours_ok = False
        assert ours_ok == kernels_ok, name


NAME_PARTS = sorted({part for name in ALL_NAMES for part in name.split("-")} | {"", "3", "abi", "ffi"})


@settings(max_examples=400, deadline=None, derandomize=True)
@given(name=st.lists(st.sampled_from(NAME_PARTS), min_size=1, max_size=10).map("-".join))
def test_generated_names_parse_and_rank_as_in_kernels(name: str) -> None:
    """Names assembled from the parts of real ones: parsed or refused as kernels does, and ranked alike."""
    try:
        parsed = kernels_variants.parse_variant(name)
    except ValueError:
        with pytest.raises(VariantError):
            parse_variant(name, RULES)
        return
    assert parse_variant(name, RULES).name == name
    names = [name, *REAL_NAMES[::7], *NEW_NAMES[::9]]
    target = parse_target("torch-2.10-cxx11-cuda-12.8-cpython-3.12-abi3-x86_64-linux")
    with pytest.MonkeyPatch.context() as monkeypatch:
        expected, _ = _kernels_order([(parsed, name), *_kernels_parsed(names[1:])], target, monkeypatch)
    assert [d.variant for d in _compared(rank_variants(names, target, rules=RULES))] == expected


def test_the_installed_release_s_rules_are_found_without_importing_it() -> None:
    """Selection follows the installed kernels; finding which costs no import (the quick load needs it)."""
    code = (
        "import json, sys\n"
        "from kernel_lock.core.target import installed_rules\n"
        "print(json.dumps({'rules': installed_rules(), 'kernels_imported': 'kernels' in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert json.loads(out) == {"rules": list(RULES), "kernels_imported": False}
    assert installed_rules() == RULES
    assert [rules_for(v) for v in ("0.16.1", "0.17.2", "0.18.3", "0.19.1", "0.20.0", "1.0", "dev")] == [
        (0, 17),
        (0, 17),
        (0, 18),
        (0, 19),
        (0, 19),
        (0, 19),
        (0, 19),
    ]


MIXED = [
    "torch-cpu",
    "torch210-cxx11-cu126-x86_64-linux",
    "torch-2.10-cxx11-cuda-12.8-cpython-3.9-abi3-x86_64-linux",
    "torch-stable-abi-2.11-cpu-cpython-3.9-abi3-x86_64-linux",
]


def test_a_repo_mixing_both_grammars_selects_as_each_release() -> None:
    """The issue's case: kernels 0.19 picks the new name, 0.17 and 0.18 do not read it so and pick the old one."""
    cuda = parse_target("torch-2.10-cxx11-cuda-12.8-cpython-3.12-abi3-x86_64-linux")
    assert (
        select_variant(MIXED, cuda, rules=(0, 19))
        == "torch-2.10-cxx11-cuda-12.8-cpython-3.9-abi3-x86_64-linux"
    )
    assert select_variant(MIXED, cuda, rules=(0, 17)) == "torch210-cxx11-cu126-x86_64-linux"
    cpu = parse_target("torch-2.11-cxx11-cpu-cpython-3.12-abi3-x86_64-linux")
    assert (
        select_variant(MIXED, cpu, rules=(0, 19)) == "torch-stable-abi-2.11-cpu-cpython-3.9-abi3-x86_64-linux"
    )
    assert select_variant(MIXED, cpu, rules=(0, 18)) == "torch-cpu"
    # Before 0.19, kernels reads the new torch name as a noarch build for a backend "2.10-cxx11-…".
    new = [d for d in rank_variants(MIXED, cpu, rules=(0, 17)) if d.variant.startswith("torch-2.10")]
    assert [(d.accepted, d.why) for d in new] == [(False, "backend")]


def test_the_new_grammar_parses_into_its_parts() -> None:
    """Not a noarch variant whose backend is the rest of the name (issue 20), but torch 2.10 on CUDA 12.8."""
    v = parse_variant("torch-2.10-cuda-12.8-cpython-3.9-abi3-x86_64-linux")
    assert (v.framework, v.version, v.cxx11_abi, v.backend, v.backend_version) == (
        "torch",
        (2, 10),
        None,
        "cuda",
        (12, 8),
    )
    assert (v.python, v.abi, v.arch, v.os, v.legacy) == ((3, 9), "abi3", "x86_64", "linux", False)
    stable = parse_variant("torch-stable-abi-2.11-cpu-cpython-3.9-abi3-x86_64-linux")
    assert (stable.framework, stable.version, stable.backend) == ("torch-stable-abi", (2, 11), "cpu")
    tvm = parse_variant("tvm-ffi-0.1-xpu-2025.3-cpython-3.15-abi3t-x86_64-linux")
    assert (tvm.framework, tvm.version, tvm.cxx11_abi, tvm.backend, tvm.backend_version) == (
        "tvm-ffi",
        (0, 1),
        None,
        "xpu",
        (2025, 3),
    )
    assert parse_variant("mlx-metal").framework == "mlx" and parse_variant("sdk-cuda").framework == "sdk"
    with pytest.raises(VariantError, match="not a build variant name"):
        parse_variant("torch-2.10-cuda-12.8-cpython-3.12-abi3t-x86_64-linux")  # abi3t needs Python 3.15
    assert describe_variant("torch-2.10-cxx11-cuda-12.8-cpython-3.12-abi3-x86_64-linux") == (
        "torch 2.10, CUDA 12.8, Python >= 3.12 (abi3), x86_64-linux"
    )
    assert describe_variant("torch210-cxx11-cu128-x86_64-linux") == "torch 2.10, CUDA 12.8, x86_64-linux"


def _why(name: str, target: Target) -> tuple[str | None, str | None]:
    (decision,) = rank_variants([name], target, rules=(0, 19))
    return decision.why, decision.reason


def test_a_rejection_says_why_the_python_does_not_fit() -> None:
    cuda = "torch-2.10-cxx11-cuda-12.8-cpython-{}-x86_64-linux"
    py310 = parse_target("torch-2.10-cxx11-cuda-12.8-cpython-3.10-abi3-x86_64-linux")
    why, reason = _why(cuda.format("3.12-abi3"), py310)
    assert why == "python-too-old" and reason == "built for Python >= 3.12, the target has Python 3.10"
    why, reason = _why(cuda.format("3.15-abi3t"), py310)
    assert why == "python-too-old" and "abi3t" in str(reason) and "3.15" in str(reason)
    threaded = dataclasses.replace(py310, python=(3, 13), free_threaded=True)
    for name in (cuda.format("3.9-abi3"), "torch210-cxx11-cu128-x86_64-linux"):
        why, reason = _why(name, threaded)
        assert why == "abi3-on-free-threaded" and "free-threaded Python cannot load" in str(reason)
        assert "abi3t" in str(reason)
    assert _why(cuda.format("3.15-abi3t"), threaded)[0] == "python-too-old"
    assert _why(cuda.format("3.15-abi3t"), dataclasses.replace(threaded, python=(3, 15))) == (None, None)
    assert _why(cuda.format("3.15-abi3t"), dataclasses.replace(py310, python=(3, 15))) == (
        None,
        None,
    )  # a GIL 3.15 too
    assert _why("torch-cuda", threaded) == (None, None)  # noarch has no compiled parts
    before = rank_variants(["torch210-cxx11-cu128-x86_64-linux"], threaded, rules=(0, 17))
    assert [(d.why, d.reason) for d in before] == [("free-threaded", FREE_THREADED)]
    with pytest.raises(NoVariantFits) as info:
        select_variant([cuda.format("3.12-abi3")], py310, repo_id="org/k", rules=(0, 19))
    assert "Python >= 3.12, the target has Python 3.10" in str(info.value)
    assert "Python 3.10" in info.value.target


def test_unparseable_names_are_rejected_last() -> None:
    target = parse_target("torch213-cxx11-cpu-x86_64-linux")
    decisions = rank_variants(["junk", "torch213-cxx11-cpu-x86_64-linux", "torch-cpu", "torch-cpu"], target)
    assert [d.variant for d in decisions] == ["torch213-cxx11-cpu-x86_64-linux", "torch-cpu", "junk"]
    assert decisions[-1] == Decision("junk", False, NOT_A_VARIANT, "not-a-variant")


def test_no_match_error_lists_every_variant() -> None:
    target = parse_target("torch213-cxx11-cu126-x86_64-linux")
    names = [
        "torch213-cxx11-cu130-x86_64-linux",
        "torch212-cxx11-cu126-x86_64-linux",
        "torch213-cxx11-cu126-aarch64-linux",
        "torch-rocm",
        "tvm-ffi01-cu126-x86_64-linux",
        "nonsense",
    ]
    with pytest.raises(VariantError) as info:
        select_variant(names, target, repo_id="kernels-community/activation")
    message = str(info.value)
    assert "kernels-community/activation" in message and target.describe() in message
    for decision in rank_variants(names, target):
        assert f"  - {decision.variant}: {decision.reason}" in message
    assert "CUDA 13.0" in message and "torch 2.12" in message and "aarch64" in message
    assert "only supports torch" in message and NOT_A_VARIANT in message
    assert "--variant NAME" in message and "--target" in message
    with pytest.raises(VariantError, match="no build variants"):
        select_variant([], target)


def test_metal_needs_macos_26() -> None:
    names = ["torch210-metal-aarch64-darwin", "torch-metal"]
    old = Target((2, 10), None, "metal", None, "aarch64", "darwin", (15, 5))
    assert select_variant(names, old) == "torch-metal"
    assert "macOS 26.0" in str(rank_variants(names, old)[1].reason)
    assert rank_variants(names, old)[1].why == "macos"
    assert (
        select_variant(names, parse_target("torch210-metal-aarch64-darwin"))
        == "torch210-metal-aarch64-darwin"
    )


@pytest.mark.parametrize(
    "spec",
    [
        "torch210-cxx11-cu128-x86_64-linux",
        "torch213-cxx11-cpu-x86_64-linux",
        "torch210-metal-aarch64-darwin",
        "torch211-cxx11-rocm71-x86_64-linux",
        "torch213-cxx98-cpu-aarch64-linux",
        "torch213-cxx11-xpu20260-x86_64-linux",
        "torch210-cpu-x86_64-windows",
        "torch210-cxx11-cann80-aarch64-linux",
        "torch-2.10-cxx11-cuda-12.8-cpython-3.12-abi3-x86_64-linux",
        "torch-2.13-cpu-cpython-3.13-abi3t-aarch64-darwin",
        "torch-2.11-cxx98-rocm-7.14-cpython-3.15-abi3-x86_64-linux",
        "torch-2.13-xpu-2026.0-cpython-3.10-abi3-x86_64-windows",
    ],
)
def test_parse_target_round_trips(spec: str) -> None:
    target = parse_target(spec)
    assert target.spec() == spec
    assert parse_target(target.spec() or "") == target


def test_parse_target_fields() -> None:
    cuda = Target((2, 10), True, "cuda", (12, 8), "x86_64", "linux")
    assert parse_target("torch210-cxx11-cu128-x86_64-linux") == cuda
    assert parse_target("torch210-cu128-x86_64-linux") == cuda
    metal = Target((2, 10), None, "metal", None, "aarch64", "darwin", (26, 0))
    assert parse_target("torch210-metal-aarch64-darwin") == metal
    assert parse_target("torch213-cxx11-xpu20253-x86_64-linux").backend_version == (2025, 3)
    assert (
        parse_target("torch210-cxx11-cu128-x86_64-linux").describe()
        == "torch 2.10 (cxx11), CUDA 12.8, x86_64-linux"
    )
    new = parse_target("torch-2.10-cuda-12.8-cpython-3.12-abi3-x86_64-linux")
    assert new == dataclasses.replace(cuda, python=(3, 12), free_threaded=False)
    assert new.describe() == "torch 2.10 (cxx11), CUDA 12.8, x86_64-linux, Python 3.12"
    threaded = parse_target("torch-2.13-cxx11-cpu-cpython-3.14-abi3t-x86_64-linux")
    assert (threaded.python, threaded.free_threaded) == ((3, 14), True)
    assert threaded.describe().endswith(", free-threaded Python 3.14")
    # Without a Python part, the target's Python is the one that selects.
    undeclared = parse_target("torch-2.10-cuda-12.8-x86_64-linux")
    assert undeclared == cuda and undeclared.spec() == "torch210-cxx11-cu128-x86_64-linux"
    assert undeclared.python_facts() == (tuple(sys.version_info[:2]), is_free_threaded_build())


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("torch2x-foo", "not of the form"),
        ("torch210-cxx11-foo-x86_64-linux", "unknown backend 'foo'"),
        ("torch210-cxx11-cpu-x86_64-beos", "unknown OS 'beos'"),
        ("torch210-cxx11-metal-aarch64-darwin", "only applies to Linux"),
        ("torch-cpu", "not of the form"),
        ("torch-stable-abi210-cu128-x86_64-linux", "not of the form"),
        ("torch-2.10-cu128-cpython-3.12-abi3-x86_64-linux", "unknown backend 'cu128'"),
        ("torch-2.10-cuda-12.8-cpython-3.12-x86_64-linux", "expected cpython-<X.Y>-abi3"),
        ("torch-2.10-cuda-12.8-cpython-3.x-abi3-x86_64-linux", "expected cpython-<X.Y>-abi3"),
        ("torch-2.10-cuda-12.8-cpython-3.12-abi3t-x86_64-linux", "free-threaded CPython starts at 3.13"),
        ("torch-2.10-cuda-12.8-cpython-2.7-abi3-x86_64-linux", "for CPython 3"),
        ("torch-2.10-metal-cpython-3.12-abi3-x86_64-beos", "unknown OS 'beos'"),
    ],
)
def test_parse_target_errors(spec: str, expected: str) -> None:
    with pytest.raises(VariantError, match=expected) as info:
        parse_target(spec)
    assert spec in str(info.value)
    message = str(info.value)
    assert "torch210-cxx11-cu128-x86_64-linux" in message or "drop" in message or "such as 3.12" in message


def _from_options(**given: Any) -> Target:
    """`target_from_options` with the options not given unset, as the CLI passes them."""
    unset: dict[str, Any] = {
        "torch": None,
        "cuda": None,
        "rocm": None,
        "xpu": None,
        "cpu": False,
        "metal": False,
        "arch": None,
        "os": None,
        "cxx11_abi": None,
        "python": None,
        "free_threaded": None,
    }
    return target_from_options(**{**unset, **given})


def test_target_from_options() -> None:
    cuda = _from_options(torch="2.10", cuda="12.8", arch="x86_64", os="linux")
    assert cuda == parse_target("torch210-cxx11-cu128-x86_64-linux")
    rocm = _from_options(torch="2.11.0+rocm7.1", rocm="7.1", arch="x86_64", os="linux", cxx11_abi=False)
    assert rocm.spec() == "torch211-cxx98-rocm71-x86_64-linux"
    metal = _from_options(torch="2.10", metal=True)
    assert metal == parse_target("torch210-metal-aarch64-darwin")
    xpu = _from_options(torch="2.13", xpu="2026.0", arch="AMD64", os="linux")
    assert xpu.spec() == "torch213-cxx11-xpu20260-x86_64-linux"
    here = detect_target()
    cpu = _from_options(torch="2.13", cpu=True)
    assert (cpu.arch, cpu.os) == (here.arch, here.os)
    nightly = _from_options(torch="2.11.0.dev20250101+cu128", cuda="12.8", arch="x86_64", os="linux")
    assert nightly.torch == (2, 11)
    no_torch = _from_options(cpu=True, arch="x86_64", os="linux")
    assert no_torch.torch is None and no_torch.spec() is None and "no torch" in no_torch.describe()
    py312 = _from_options(torch="2.10", cuda="12.8", arch="x86_64", os="linux", python="3.12")
    assert py312 == parse_target("torch-2.10-cxx11-cuda-12.8-cpython-3.12-abi3-x86_64-linux")
    threaded = _from_options(
        torch="2.13", cpu=True, arch="x86_64", os="linux", python="3.14", free_threaded=True
    )
    assert threaded.spec() == "torch-2.13-cxx11-cpu-cpython-3.14-abi3t-x86_64-linux"
    if sys.version_info >= (3, 13):
        here_threaded = _from_options(torch="2.13", cpu=True, free_threaded=True)
        assert (here_threaded.python, here_threaded.free_threaded) == (tuple(sys.version_info[:2]), True)
    else:  # --free-threaded alone declares this Python's version, which has no free-threaded build
        with pytest.raises(VariantError, match=r"free-threaded CPython starts at 3\.13"):
            _from_options(torch="2.13", cpu=True, free_threaded=True)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (
            {"torch": "2.10", "cuda": "twelve"},
            r"Invalid version 'twelve' for --cuda: write it as MAJOR\.MINOR, e\.g\. `--cuda 12\.8`",
        ),
        ({"torch": "two", "cpu": True}, "for --torch"),
        ({"torch": "2.10"}, "exactly one backend option, got none"),
        ({"torch": "2.10", "cpu": True, "cuda": "12.8"}, "got --cuda, --cpu"),
        ({"torch": "2.10", "cpu": True, "os": "beos"}, "Invalid --os 'beos'"),
        ({"torch": "2.10", "metal": True, "cxx11_abi": True}, "only applies to Linux"),
        (
            {"torch": "2.10", "cpu": True, "python": "3"},
            r"for --python: write it as MAJOR\.MINOR, e\.g\. `--python 3\.12`",
        ),
        (
            {"torch": "2.10", "cpu": True, "python": "3.12", "free_threaded": True},
            "free-threaded CPython starts at 3.13",
        ),
        ({"torch": "2.10", "cpu": True, "python": "2.7"}, "for CPython 3"),
    ],
)
def test_target_from_options_errors(given: dict[str, object], expected: str) -> None:
    with pytest.raises(VariantError, match=expected):
        _from_options(**given)


@pytest.mark.torch
def test_detect_target_matches_torch() -> None:
    import platform

    import torch

    target = detect_target()
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    assert target.torch == (major, minor)
    if target.os == "linux":
        assert target.cxx11_abi == torch.compiled_with_cxx11_abi()
    if torch.version.cuda is not None:
        assert target.backend == "cuda"
        assert target.backend_version == tuple(int(p) for p in torch.version.cuda.split(".")[:2])
    elif torch.version.hip is not None:
        assert target.backend == "rocm"
    elif platform.system() == "Darwin":
        assert target.backend == "metal"
    else:
        assert (target.backend, target.backend_version) == ("cpu", None)
    assert detect_target() is target


def test_detect_target_does_not_import_torch() -> None:
    code = (
        "import json, sys\n"
        "from kernel_lock.core.target import detect_target; t = detect_target()\n"
        "print(json.dumps({'torch_imported': 'torch' in sys.modules, 'kernels_imported': 'kernels' in sys.modules,"
        " 'spec': t.spec()}))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    result = json.loads(out)
    assert not result["torch_imported"] and not result["kernels_imported"]
    assert result["spec"] == detect_target().spec()


@pytest.fixture
def fresh_detection(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Detection as in a process that has not imported torch (the CLI): from torch's files, which tests fake."""
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    detect_target.cache_clear()
    yield
    detect_target.cache_clear()


@pytest.mark.parametrize(
    ("version_py", "cmake", "backend", "backend_version", "abi"),
    [
        ("cuda: Optional[str] = '12.8'\nhip: Optional[str] = None\n", "", "cuda", (12, 8), True),
        (
            "hip = '6.3.42131-fa1d09cfa'\n",
            'set(TORCH_CXX_FLAGS "-D_GLIBCXX_USE_CXX11_ABI=0")',
            "rocm",
            (6, 3),
            False,
        ),
        ("cuda = None\nhip = None\nxpu: Optional[str] = '20250300'\n", "", "xpu", (2025, 3), True),
    ],
)
def test_detect_target_reads_version_py(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fresh_detection: None,
    version_py: str,
    cmake: str,
    backend: str,
    backend_version: tuple[int, int],
    abi: bool,
) -> None:
    (tmp_path / "version.py").write_text(f"__version__ = '2.6.0+x'\n{version_py}")
    (tmp_path / "share/cmake/Torch").mkdir(parents=True)
    (tmp_path / "share/cmake/Torch/TorchConfig.cmake").write_text(cmake)
    monkeypatch.setattr(target_module, "torch_dir", lambda: tmp_path)
    monkeypatch.setattr(target_module, "this_machine", lambda: ("x86_64", "linux"))
    python = (sys.version_info[0], sys.version_info[1])
    expected = Target(
        (2, 6), abi, backend, backend_version, "x86_64", "linux", None, is_free_threaded_build(), python
    )
    assert detect_target() == expected


def test_detect_target_without_torch(monkeypatch: pytest.MonkeyPatch, fresh_detection: None) -> None:
    monkeypatch.setattr(target_module, "torch_dir", lambda: None)
    cuda = kernels_backends._get_cuda()
    target = detect_target()
    assert (target.torch, target.cxx11_abi) == (None, None)
    if cuda is None:
        assert (target.backend, target.backend_version) == ("cpu", None)
    else:
        assert (target.backend, target.backend_version) == ("cuda", (cuda.version.major, cuda.version.minor))


@pytest.mark.torch
def test_detection_from_torch_s_files_agrees_with_the_imported_torch() -> None:
    """A process without torch (the CLI) reads its files; one with torch asks it: both see the same target."""
    import torch  # noqa: F401 - imported, so detect_target asks torch

    child = (
        "import dataclasses, sys; from kernel_lock.core.target import detect_target; "
        "print(repr(dataclasses.astuple(detect_target())))"
    )
    child += "; assert 'torch' not in sys.modules"
    proc = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=60, check=True
    )
    assert ast.literal_eval(proc.stdout.strip()) == dataclasses.astuple(detect_target())


PY_VARIANTS = (
    "torch-cpu",
    "torch213-cxx11-cpu-x86_64-linux",
    "torch-2.13-cxx11-cpu-cpython-3.12-abi3-x86_64-linux",
    "torch-2.13-cxx11-cpu-cpython-3.15-abi3t-x86_64-linux",
)


@pytest.mark.parametrize(
    ("args", "env", "new_rules", "old_rules"),
    [
        (
            ["--target", "torch-2.13-cxx11-cpu-cpython-3.12-abi3-x86_64-linux"],
            {},
            PY_VARIANTS[2],
            PY_VARIANTS[1],
        ),
        (
            ["--torch", "2.13", "--cpu", "--os", "linux", "--arch", "x86_64", "--python", "3.10"],
            {},
            PY_VARIANTS[1],
            PY_VARIANTS[1],
        ),
        (
            [
                "--torch",
                "2.13",
                "--cpu",
                "--os",
                "linux",
                "--arch",
                "x86_64",
                "--python",
                "3.15",
                "--free-threaded",
            ],
            {},
            PY_VARIANTS[3],
            PY_VARIANTS[1],
        ),
        (
            [],
            {"KERNEL_LOCK_TARGET": "torch-2.13-cxx11-cpu-cpython-3.13-abi3t-x86_64-linux"},
            "torch-cpu",
            "torch-cpu",
        ),
    ],
)
def test_commands_select_for_the_declared_python(
    hub_env, make_project, cli, monkeypatch: pytest.MonkeyPatch, args, env, new_rules, old_rules
) -> None:
    """A Docker build stage whose Python is not the image's says so: `sync`, `status` and `env` select for it."""
    from kernel_lock.testing.fixtures import repo_files

    hub_env.create_repo("kernels-community/pyver", repo_type="kernel").commit(
        repo_files(PY_VARIANTS, name="pyver"), branch="v1", message="Build"
    )
    root = make_project('"kernels-community/pyver" = 1')
    assert cli("lock", "--project", str(root)).exit_code == 0
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    expected = new_rules if RULES >= (0, 19) else old_rules
    sync = cli("sync", "--project", str(root), *args, "--json")
    assert sync.exit_code == 0, sync.stderr
    status = cli("status", "--project", str(root), *args, "--json")
    assert [k["variant"] for k in status.json()["kernels"]] == [expected], status.stdout
    target = cli("env", *args, "--json").json()["target"]
    assert "Python 3.1" in target["description"] and "-cpython-3.1" in target["spec"]
    assert parse_target(target["spec"]).describe() == target["description"]


def test_versions_gives_each_rejection_s_reason_as_data(hub_env, cli) -> None:
    """`versions --json`: a build for a newer Python is rejected as `python-too-old`, not just in words."""
    from kernel_lock.testing.fixtures import repo_files

    hub_env.create_repo("kernels-community/pyver", repo_type="kernel").commit(
        repo_files(PY_VARIANTS, name="pyver"), branch="v1", message="Build"
    )
    args = ["--torch", "2.13", "--cpu", "--os", "linux", "--arch", "x86_64", "--python", "3.10"]
    run = cli("versions", "kernels-community/pyver", *args, "--json")
    assert run.exit_code == 0, run.stderr
    (version,) = run.json()["versions"]
    why = {d["variant"]: (d["status"], d["why"]) for d in version["decisions"]}
    if RULES >= (0, 19):
        assert why[PY_VARIANTS[2]] == ("rejected", "python-too-old")
        assert why[PY_VARIANTS[3]] == ("rejected", "python-too-old")
    assert why[PY_VARIANTS[1]] == ("preferred", None)
    assert why["torch-cpu"] == ("compatible", None)


def test_python_options_and_target_are_one_or_the_other(cli) -> None:
    run = cli("env", "--target", CPU_VARIANT, "--python", "3.12")
    assert run.exit_code != 0 and "Give either --target SPEC or --torch/--cuda/--python" in run.stderr
    run = cli("env", "--torch", "2.13", "--cpu", "--python", "3.12", "--free-threaded")
    assert run.exit_code != 0 and "free-threaded CPython starts at 3.13" in run.stderr
    assert "Traceback" not in run.stderr


@given(st.text(alphabet="0123456789.-+ax\u0663", max_size=12))
def test_a_version_s_major_and_minor_are_read_as_a_regex_reads_them(text: str) -> None:
    """Detection reads `torch.version` strings without compiling a regex; it reads what `(\\d+)(\\.(\\d+))?` does."""
    m = re.match(r"(\d+)(?:\.(\d+))?", text)
    assert target_module._major_minor(text) == ((int(m.group(1)), int(m.group(2) or 0)) if m else None)
