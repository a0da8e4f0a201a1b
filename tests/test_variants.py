"""Variant selection agrees with kernels 0.17.2; targets parse, detect and fail with useful messages."""

from __future__ import annotations

import ast
import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from kernel_lock import target as target_module
from kernel_lock.errors import VariantError
from kernel_lock.target import Target, backend_variant_str, detect_target, parse_target, target_from_options
from kernel_lock.variants import (
    FREE_THREADED,
    NOT_A_VARIANT,
    Decision,
    parse_variant,
    rank_variants,
    select_variant,
)

pytestmark = pytest.mark.kernels
_WHY = "test_variants.py compares with the kernels library (marker `kernels`)"
kernels_backends = pytest.importorskip("kernels.backends", reason=_WHY)
kernels_variants = pytest.importorskip("kernels.variants", reason=_WHY)

REAL_NAMES = (Path(__file__).parent / "data" / "real-variant-names.txt").read_text().split()
# Names the real list lacks: stable ABI, untagged and cxx98 torch, tvm-ffi, universal, CANN, older CUDA/ROCm.
EXTRA_NAMES = [
    "torch-universal",
    "torch-npu",
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
    "tvm-ffi01-cu128-x86_64-linux",
    "tvm-ffi01-cpu-x86_64-linux",
]
# Edge cases of kernels' parser: some are not variants, some are odd spellings (`cu12` is CUDA 1.2).
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
]
ALL_NAMES = REAL_NAMES + EXTRA_NAMES + ODD_NAMES


def _variant_sets() -> list[list[str]]:
    rng = random.Random(0)
    sets = [REAL_NAMES, ALL_NAMES, list(reversed(ALL_NAMES))]
    for size in (3, 8, 21, 34):
        sets.append(rng.sample(ALL_NAMES, size))
    return sets


VARIANT_SETS = _variant_sets()
BACKENDS: list[tuple[str, tuple[int, int] | None, tuple[int, int] | None]] = [
    ("cpu", None, None),
    *[("cuda", v, None) for v in [(11, 8), (12, 4), (12, 6), (12, 8), (13, 0), (13, 2)]],
    *[("rocm", v, None) for v in [(6, 3), (7, 0), (7, 1), (7, 2)]],
    ("xpu", (2025, 3), None),
    ("xpu", (2026, 0), None),
    ("metal", None, (15, 5)),
    ("metal", None, (26, 0)),
    ("cann", (8, 0), None),
    ("neuron", None, None),
]


def _targets(backend: str, version: tuple[int, int] | None, macos: tuple[int, int] | None) -> list[Target]:
    targets = []
    for arch in ("x86_64", "aarch64"):
        for os in ("linux", "darwin", "windows"):
            abis: list[bool | None] = [True, False] if os == "linux" else [None]
            torches: list[tuple[int, int] | None] = [(2, minor) for minor in range(5, 14)] + [None]
            for torch in torches:
                for abi in abis if torch else [None]:
                    targets.append(Target(torch, abi, backend, version, arch, os, macos))
    return targets


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


def _kernels_order(parsed: list[tuple[object, str]], target: Target) -> tuple[list[str], list[bool]]:
    """kernels' preference-sorted trace for `target`: variant names and accepted flags."""
    name_of = {id(variant): name for variant, name in parsed}
    _, trace = kernels_variants._resolve_variant_for_system(
        variants=[variant for variant, _ in parsed],
        selected_backend=kernels_backends.parse_backend(
            backend_variant_str(target.backend, target.backend_version)
        ),
        cpu=target.arch,
        os=target.os,
        torch_version=Version("{}.{}".format(*target.torch)) if target.torch else None,
        torch_cxx11_abi=target.cxx11_abi,
        tvm_ffi_version=None,
        macos_version=Version("{}.{}".format(*target.macos)) if target.macos else None,
    )
    return [name_of[id(d.variant)] for d in trace], [
        isinstance(d, kernels_variants.VariantAccepted) for d in trace
    ]


@pytest.mark.parametrize(("backend", "version", "macos"), BACKENDS, ids=lambda x: str(x))
def test_agrees_with_kernels(
    backend: str, version: tuple[int, int] | None, macos: tuple[int, int] | None
) -> None:
    for target in _targets(backend, version, macos):
        for names, parsed in zip(VARIANT_SETS, KERNELS_PARSED, strict=False):
            expected_names, expected_accepted = _kernels_order(parsed, target)
            decisions = [d for d in rank_variants(names, target) if d.reason != NOT_A_VARIANT]
            context = f"{target} {names}"
            assert [d.variant for d in decisions] == expected_names, context
            assert [d.accepted for d in decisions] == expected_accepted, context
            if any(expected_accepted):
                assert select_variant(names, target) == expected_names[0], context
            else:
                with pytest.raises(VariantError):
                    select_variant(names, target)


def test_same_names_parse_as_in_kernels() -> None:
    for name in ALL_NAMES:
        try:
            kernels_variants.parse_variant(name)
            kernels_ok = True
        except ValueError:
            kernels_ok = False
        try:
            parse_variant(name)
            ours_ok = True
        except VariantError as e:
            assert name in str(e)
            ours_ok = False
        assert ours_ok == kernels_ok, name


def test_unparseable_names_are_rejected_last() -> None:
    target = parse_target("torch213-cxx11-cpu-x86_64-linux")
    decisions = rank_variants(["junk", "torch213-cxx11-cpu-x86_64-linux", "torch-cpu", "torch-cpu"], target)
    assert [d.variant for d in decisions] == ["torch213-cxx11-cpu-x86_64-linux", "torch-cpu", "junk"]
    assert decisions[-1] == Decision("junk", False, NOT_A_VARIANT)


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


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("torch2x-foo", "not of the form"),
        ("torch210-cxx11-foo-x86_64-linux", "unknown backend 'foo'"),
        ("torch210-cxx11-cpu-x86_64-beos", "unknown OS 'beos'"),
        ("torch210-cxx11-metal-aarch64-darwin", "only applies to Linux"),
        ("torch-cpu", "not of the form"),
        ("torch-stable-abi210-cu128-x86_64-linux", "not of the form"),
    ],
)
def test_parse_target_errors(spec: str, expected: str) -> None:
    with pytest.raises(VariantError, match=expected) as info:
        parse_target(spec)
    assert spec in str(info.value)
    assert "torch210-cxx11-cu128-x86_64-linux" in str(info.value) or "drop it" in str(info.value)


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
        "from kernel_lock.target import detect_target; t = detect_target()\n"
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
    monkeypatch.setattr(target_module, "_machine", lambda: ("x86_64", "linux"))
    assert detect_target() == Target((2, 6), abi, backend, backend_version, "x86_64", "linux")


def test_detect_target_without_torch(monkeypatch: pytest.MonkeyPatch, fresh_detection: None) -> None:
    from kernels.backends import _get_cuda

    monkeypatch.setattr(target_module, "torch_dir", lambda: None)
    cuda = _get_cuda()
    target = detect_target()
    assert (target.torch, target.cxx11_abi) == (None, None)
    if cuda is None:
        assert (target.backend, target.backend_version) == ("cpu", None)
    else:
        assert (target.backend, target.backend_version) == ("cuda", (cuda.version.major, cuda.version.minor))


@pytest.mark.parametrize(("backend", "version", "macos"), [BACKENDS[0], BACKENDS[4], BACKENDS[-3]], ids=str)
def test_agrees_with_kernels_on_free_threaded_python(
    backend: str,
    version: tuple[int, int] | None,
    macos: tuple[int, int] | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """kernels 0.17.2 drops every arch variant on a free-threaded Python before 3.15; we reject them, saying so."""
    monkeypatch.setattr(kernels_variants, "_is_unsupported_free_threaded_build", lambda: True)
    for target in _targets(backend, version, macos)[::7]:
        threaded = target._replace(free_threaded=True)
        for names, parsed in zip(VARIANT_SETS, KERNELS_PARSED, strict=False):
            expected_names, expected_accepted = _kernels_order(parsed, threaded)
            decisions = [d for d in rank_variants(names, threaded) if d.reason != NOT_A_VARIANT]
            dropped = [d for d in decisions if d.reason == FREE_THREADED]
            assert all(parse_variant(d.variant).framework != "noarch" for d in dropped)
            kept = [d for d in decisions if d.reason != FREE_THREADED]
            assert [d.variant for d in kept] == expected_names, f"{threaded} {names}"
            assert [d.accepted for d in kept] == expected_accepted, f"{threaded} {names}"
    assert "free-threaded Python" in target._replace(free_threaded=True).describe()


@pytest.mark.torch
def test_detection_from_torch_s_files_agrees_with_the_imported_torch() -> None:
    """A process without torch (the CLI) reads its files; one with torch asks it: both see the same target."""
    import torch  # noqa: F401 - imported, so detect_target asks torch

    child = "import sys; from kernel_lock.target import detect_target; print(repr(tuple(detect_target())))"
    child += "; assert 'torch' not in sys.modules"
    proc = subprocess.run(
        [sys.executable, "-c", child], capture_output=True, text=True, timeout=60, check=True
    )
    assert ast.literal_eval(proc.stdout.strip()) == tuple(detect_target())
