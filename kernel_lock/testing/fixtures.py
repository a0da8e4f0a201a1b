"""Realistic kernel repository contents for the local Hub, modelled on real `kernels-community` repos.

Every function returns bytes only (nothing here imports torch or kernels). The generated kernel package is
pure Python (torch on CPU), so it imports and runs anywhere; the stand-in `.so` is never imported.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from kernel_lock.lock.digest import publisher_digest
from kernel_lock.testing.server import HubRepo, LocalHub

__all__ = [
    "ACTIVATION_VARIANTS",
    "CPU_VARIANT",
    "RELU_V1_FIRST_VARIANTS",
    "RELU_V1_VARIANTS",
    "RELU_V2_VARIANTS",
    "ZIPPED_VARIANTS",
    "HubFixtures",
    "backend_of",
    "is_noarch",
    "kernel_id",
    "populate",
    "provenance_of",
    "repo_files",
    "variant_files",
]

CPU_VARIANT = "torch213-cxx11-cpu-x86_64-linux"
"""The build, in these repos, for the torch the tests install (2.13, CPU, x86_64 Linux); the target tests select for."""

RELU_V1_FIRST_VARIANTS: tuple[str, ...] = (
    "torch-universal",
    "torch212-cxx11-cpu-x86_64-linux",
    "torch212-cxx11-cu126-x86_64-linux",
    "torch212-cxx11-cu130-x86_64-linux",
    "torch212-metal-aarch64-darwin",
)
RELU_V1_VARIANTS: tuple[str, ...] = (
    *RELU_V1_FIRST_VARIANTS,
    "torch-cpu",
    CPU_VARIANT,
    "torch213-cxx11-cpu-aarch64-linux",
    "torch213-cxx11-cu126-x86_64-linux",
    "torch213-cxx11-cu130-x86_64-linux",
    "torch213-cxx11-cu132-aarch64-linux",
    "torch-stable-abi210-cu128-x86_64-linux",
    "torch213-cxx11-rocm72-x86_64-linux",
    "torch213-cxx11-xpu20260-x86_64-linux",
    "torch213-metal-aarch64-darwin",
    "torch213-cpu-aarch64-darwin",
)
RELU_V2_VARIANTS: tuple[str, ...] = (
    "torch-cpu",
    CPU_VARIANT,
    "torch213-cxx11-cu126-x86_64-linux",
    "torch213-cxx11-cu130-x86_64-linux",
    "torch-stable-abi210-cu128-x86_64-linux",
    "torch213-cxx11-rocm72-x86_64-linux",
    "torch213-metal-aarch64-darwin",
)
ACTIVATION_VARIANTS: tuple[str, ...] = (
    "torch-cpu",
    "torch212-cxx11-cu126-x86_64-linux",
    CPU_VARIANT,
    "torch213-cxx11-cu126-x86_64-linux",
    "torch213-cxx11-cu130-aarch64-linux",
    "torch213-cxx11-cu130-x86_64-linux",
    "torch213-metal-aarch64-darwin",
)
ZIPPED_VARIANTS: tuple[str, ...] = ("torch-cpu",)  # `build-layout: "zip"`: metadata.json and `<id>.zip`
LEGACY_MODEL_VARIANTS: tuple[str, ...] = (
    "torch-universal",
    "torch210-cxx11-cu128-x86_64-linux",
    "torch210-cxx11-cpu-x86_64-linux",
)

_NOARCH_BACKENDS = {
    "universal": "cpu",
    "cpu": "cpu",
    "cuda": "cuda",
    "rocm": "rocm",
    "xpu": "xpu",
    "metal": "metal",
}
BUILDER_VERSION = "0.12.1"
BUILDER_COMMIT = "5d2c1e8a0b7f4c3d9e6a1b2c3d4e5f60718293a4"
_CUDA_ARCHS = ["7.5", "8.0", "8.6", "8.9", "9.0", "10.0", "12.0"]
_ROCM_ARCHS = ["gfx90a", "gfx942"]

_INIT_PY = '''"""{name}: activation kernels (local-Hub fixture, variant {variant}).

Pure-Python stand-in for a compiled kernel: it computes with torch on any device.
"""

import torch

from . import layers
from ._ops import add_op_namespace_prefix, ops

KERNEL_ID = "{kernel_id}"
VARIANT = "{variant}"
VERSION = {version}


def relu(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Write relu(x) into `out` and return it."""
    ops.relu(out, x)
    return out


def silu_and_mul(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Write silu(x[..., :d]) * x[..., d:] into `out` (d = x.shape[-1] // 2) and return it."""
    ops.silu_and_mul(out, x)
    return out


__all__ = ["KERNEL_ID", "VARIANT", "VERSION", "add_op_namespace_prefix", "layers", "ops", "relu", "silu_and_mul"]
'''

_OPS_PY = '''"""Op namespace of {kernel_id} (a real build binds torch.ops.{kernel_id} from the compiled extension)."""

import torch
import torch.nn.functional as F


class _Ops:
    """The kernel's ops, computed with torch."""

    @staticmethod
    def relu(out: torch.Tensor, x: torch.Tensor) -> None:
        out.copy_(torch.relu(x))

    @staticmethod
    def silu_and_mul(out: torch.Tensor, x: torch.Tensor) -> None:
        d = x.shape[-1] // 2
        out.copy_(F.silu(x[..., :d]) * x[..., d:])


ops = _Ops()


def add_op_namespace_prefix(op_name: str) -> str:
    """Qualify `op_name` with this build's op namespace."""
    return f"{kernel_id}::{{op_name}}"
'''

_LAYERS_PY = '''"""Layer kernels (torch.nn.Module) for `kernels.kernelize`, computing exactly like the torch layers."""

import torch
import torch.nn as nn

from ._ops import ops


class ReLU(nn.Module):
    """relu(x)."""

    can_torch_compile = True
    has_backward = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.empty_like(x)
        ops.relu(out, x)
        return out


class SiluAndMul(nn.Module):
    """silu(x[..., :d]) * x[..., d:] with d = x.shape[-1] // 2."""

    can_torch_compile = True
    has_backward = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x.shape[-1] // 2
        out = torch.empty(x.shape[:-1] + (d,), dtype=x.dtype, device=x.device)
        ops.silu_and_mul(out, x)
        return out


__all__ = ["ReLU", "SiluAndMul"]
'''

_COMPAT_PY = '''"""Compatibility package: `import {name}` (variant directory on sys.path) re-exports the kernel."""

import importlib.util
import sys
from pathlib import Path


def _load_kernel():
    if "{kernel_id}" in sys.modules:
        return sys.modules["{kernel_id}"]
    spec = importlib.util.spec_from_file_location("{kernel_id}", Path(__file__).parent.parent / "__init__.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["{kernel_id}"] = module
    spec.loader.exec_module(module)
    return module


globals().update({{k: v for k, v in vars(_load_kernel()).items() if not k.startswith("__")}})
'''

_README = """---
library_name: kernels
license: apache-2.0
tags:
- kernels
---

# {name}

Activation kernels (`relu`, `silu_and_mul`) and layers (`ReLU`, `SiluAndMul`). Fixture repository
served by `kernel_lock.testing.LocalHub`.

```python
from kernels import get_kernel

{name} = get_kernel("kernels-community/{name}", version=1)
```
"""


def is_noarch(variant: str) -> bool:
    """Whether `variant` is a noarch build (`torch-universal`, `torch-cpu`, `torch-cuda`, ...): no compiled code."""
    parts = variant.split("-")
    return len(parts) == 2 and parts[0] == "torch"


def backend_of(variant: str) -> dict[str, Any]:
    """The `backend` object of `metadata.json` for a variant name."""
    parts = variant.split("-")
    if is_noarch(variant):
        return {"type": _NOARCH_BACKENDS.get(parts[1], "cpu")}
    for part in parts:
        if part == "cuda" or (part.startswith("cu") and part[2:].isdigit()):
            return {"type": "cuda", "archs": list(_CUDA_ARCHS)}
        if part.startswith("rocm"):
            return {"type": "rocm", "archs": list(_ROCM_ARCHS)}
        if part.startswith("xpu"):
            return {"type": "xpu"}
        if part == "metal":
            return {"type": "metal"}
    return {"type": "cpu"}


def kernel_id(name: str, version: int, variant: str, seed: str = "") -> str:
    """The build id (also the op namespace and `.so` stem), e.g. `_relu_1a2b3c4`."""
    digest = hashlib.sha1(f"{name}\0{version}\0{variant}\0{seed}".encode()).hexdigest()[:7]
    return f"_{name.replace('-', '_')}_{digest}"


def _pseudo_random(size: int, key: str) -> bytes:
    """`size` deterministic pseudo-random bytes behind an ELF-looking magic number."""
    magic = b"\x7fELF\x02\x01\x01\x00"
    return (magic + hashlib.shake_256(key.encode()).digest(max(size - len(magic), 0)))[:size]


def provenance_of(name: str, version: int, *, dirty: bool = False) -> dict[str, Any]:
    """The `provenance` object of `metadata.json`: the builder's version and git state, the kernel source's."""
    source = hashlib.sha1(f"source\0{name}\0{version}".encode()).hexdigest()
    return {
        "kernel-builder": {"version": BUILDER_VERSION, "commit": BUILDER_COMMIT, "dirty": False},
        "kernel": {"commit": source, "dirty": dirty},
    }


def variant_files(
    variant: str,
    *,
    name: str = "relu",
    version: int = 1,
    so_size: int = 4096,
    seed: str = "",
    kernel_depends: list[tuple[str, int]] | None = None,
    python_depends: list[str] | None = None,
    digest: bool = True,
    dirty: bool = False,
    layout: str = "files",
) -> dict[str, bytes]:
    """Files of one build variant, relative to `build/<variant>/` (metadata, package, compat dir, `.so`).

    With `digest` (the default) `metadata.json` carries the per-file SHA-256 digest and the provenance a
    current `kernels` builder writes; without, it is `metadata.json` as older builders wrote it. With
    `layout="zip"` (kernels 0.19's `build-layout: "zip"`) the package (no compat dir) is one `<id>.zip`.
    """
    build_id = kernel_id(name, version, variant, seed)
    python_name = name.replace("-", "_")
    metadata: dict[str, Any] = {
        "id": build_id,
        "name": name,
        "version": version,
        "license": "Apache-2.0",
        "python-depends": list(python_depends or []),
        "kernel-depends": [{"repo-id": repo_id, "version": v} for repo_id, v in (kernel_depends or [])],
        "backend": backend_of(variant),
    }
    fields = {"name": name, "variant": variant, "kernel_id": build_id, "version": version}
    files = {
        "__init__.py": _INIT_PY.format(**fields).encode(),
        "_ops.py": _OPS_PY.format(**fields).encode(),
        "layers.py": _LAYERS_PY.encode(),
        f"{python_name}/__init__.py": _COMPAT_PY.format(**fields).encode(),
    }
    if not is_noarch(variant):
        files[f"{build_id}.abi3.so"] = _pseudo_random(so_size, f"{build_id}:{seed}")
    if layout == "zip":
        metadata["build-layout"] = "zip"
        del files[f"{python_name}/__init__.py"]
        files = {f"{build_id}.zip": zip_archive(files)}
    if digest:
        metadata["digest"] = publisher_digest(files).to_dict()
        metadata["provenance"] = provenance_of(name, version, dirty=dirty)
    return {"metadata.json": (json.dumps(metadata, indent=2) + "\n").encode(), **files}


def zip_archive(files: dict[str, bytes]) -> bytes:
    """A deterministic zip of `files` (path -> bytes): stored, sorted, with a fixed date."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zf:
        for path in sorted(files):
            zf.writestr(zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0)), files[path])
    return out.getvalue()


def repo_files(
    variants: list[str] | tuple[str, ...], *, undigested: Collection[str] = (), **kw: Any
) -> dict[str, bytes]:
    """The full tree of a kernel repo: `build/<variant>/...` for each variant plus README.md (kw: `variant_files`).

    Variants named in `undigested` are built as older builders did, without a digest in `metadata.json`.
    """
    files = {"README.md": _README.format(name=kw.get("name", "relu")).encode()}
    for variant in variants:
        built = variant_files(variant, **{"digest": variant not in undigested, **kw})
        files.update({f"build/{variant}/{path}": data for path, data in built.items()})
    return files


@dataclass(frozen=True)
class HubFixtures:
    """The standard fixture set that `populate` creates, with the commits tests refer to."""

    relu: HubRepo
    activation: HubRepo
    old_relu: HubRepo
    legacy_model: HubRepo
    untrusted: HubRepo
    zipped: HubRepo
    relu_v1_first: str
    relu_v1: str
    relu_v2: str
    relu_tag: str
    activation_v1: str
    old_relu_main: str
    legacy_model_main: str
    untrusted_v1: str
    zipped_v1: str


def populate(hub: LocalHub) -> HubFixtures:
    """Create the standard repos and orgs on `hub` (deterministic: same shas on every run).

    Variants carry a publisher digest in `metadata.json` (as the current `kernels` builder writes it) except
    those of relu's first v1 commit (built before digests existed; the second commit keeps them as they were)
    and `torch-universal` of `my-org/untrusted-kernel`.

    - `kernels-community/relu` (kernel): branch v1 (2 commits; tag `v1.0.0` on the first), v2 (depends on
      activation v1), main = v2.
    - `kernels-community/activation` (kernel): branches v1 and main (same commit).
    - `kernels-community/old-relu` (kernel): main holds only a `kernel-status.toml` redirect to relu.
    - `kernels-community/legacy-model-kernel` (model type, no longer supported): main and v1.
    - `my-org/untrusted-kernel` (kernel) in an org with `trustedKernelPublisher` false: main and v1.
    - `kernels-community/zipped` (kernel): v1 and main, each variant in the zip layout (`<id>.zip`).
    """
    hub.set_organization("kernels-community", trusted_kernel_publisher=True, fullname="Kernels Community")
    hub.set_organization("my-org", trusted_kernel_publisher=False, fullname="My Org")

    relu = hub.create_repo("kernels-community/relu", repo_type="kernel")
    relu_v1_first = relu.commit(
        repo_files(RELU_V1_FIRST_VARIANTS, undigested=RELU_V1_FIRST_VARIANTS),
        branch="v1",
        message="Build relu v1",
    )
    relu.create_tag("v1.0.0", relu_v1_first)
    relu_v1 = relu.commit(
        repo_files(RELU_V1_VARIANTS, undigested=RELU_V1_FIRST_VARIANTS),
        branch="v1",
        message="Add torch 2.13 builds",
    )
    relu.create_branch("v2", relu_v1)
    v2_files = repo_files(RELU_V2_VARIANTS, version=2, kernel_depends=[("kernels-community/activation", 1)])
    relu_v2 = relu.commit(v2_files, branch="v2", message="Build relu v2")
    relu.create_branch("main", relu_v2)

    activation = hub.create_repo("kernels-community/activation", repo_type="kernel")
    activation_v1 = activation.commit(
        repo_files(ACTIVATION_VARIANTS, name="activation"), branch="v1", message="Build activation v1"
    )
    activation.create_branch("main", activation_v1)

    old_relu = hub.create_repo("kernels-community/old-relu", repo_type="kernel")
    redirect = b'kind = "redirect"\ndestination = "kernels-community/relu"\n'
    old_relu_main = old_relu.commit(
        {"kernel-status.toml": redirect}, message="Moved to kernels-community/relu"
    )

    legacy_model = hub.create_repo("kernels-community/legacy-model-kernel", repo_type="model")
    legacy_model_main = legacy_model.commit(
        repo_files(LEGACY_MODEL_VARIANTS, name="legacy-model-kernel"), message="Build (model-type repo)"
    )
    legacy_model.create_branch("v1", legacy_model_main)

    untrusted = hub.create_repo("my-org/untrusted-kernel", repo_type="kernel")
    untrusted_v1 = untrusted.commit(
        repo_files(
            ("torch-universal", "torch-cpu"), name="untrusted-kernel", undigested=("torch-universal",)
        ),
        branch="v1",
        message="Build",
    )
    untrusted.create_branch("main", untrusted_v1)

    zipped = hub.create_repo("kernels-community/zipped", repo_type="kernel")
    zipped_v1 = zipped.commit(
        repo_files(ZIPPED_VARIANTS, name="zipped", layout="zip"), branch="v1", message="Build (zip layout)"
    )
    zipped.create_branch("main", zipped_v1)

    return HubFixtures(
        relu=relu,
        activation=activation,
        old_relu=old_relu,
        legacy_model=legacy_model,
        untrusted=untrusted,
        zipped=zipped,
        relu_v1_first=relu_v1_first,
        relu_v1=relu_v1,
        relu_v2=relu_v2,
        relu_tag="v1.0.0",
        activation_v1=activation_v1,
        old_relu_main=old_relu_main,
        legacy_model_main=legacy_model_main,
        untrusted_v1=untrusted_v1,
        zipped_v1=zipped_v1,
    )
