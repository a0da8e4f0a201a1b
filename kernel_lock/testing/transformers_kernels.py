"""Kernel repos that transformers' default kernel mapping asks for, as pure-torch builds for the local Hub.

transformers (5.x) maps Llama's `SiLU` to `kernels-community/activation` v1 (`Silu`), `RMSNorm` to
`kernels-community/liger-kernels` v3 (`LigerRMSNorm`) and `rotary_pos_emb` to `kernels-community/rotary` v2
(`apply_rotary_transformers`); `kernels-community/attention-test` v1 is an attention kernel (`flash_attn_forward`). The layers here compute exactly what the transformers layers do, so a
kernelized model's output can be compared with the original's. Importing a kernel appends its id to the
file named by `KERNEL_LOCK_TEST_MARKER`, if set: a test sees whether any of its code ran.
"""

from __future__ import annotations

import json

from kernel_lock.testing.fixtures import backend_of, kernel_id
from kernel_lock.testing.server import LocalHub

__all__ = ["MARKER_ENV", "TRANSFORMERS_KERNELS", "kernel_repo_files", "publish_transformers_kernels"]

MARKER_ENV = "KERNEL_LOCK_TEST_MARKER"

# repo -> (major version, layer source)
TRANSFORMERS_KERNELS: dict[str, tuple[int, str]] = {
    "kernels-community/activation": (
        1,
        '''
class Silu(nn.Module):
    """silu(x)."""

    can_torch_compile = True
    has_backward = False

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return F.silu(input)


class SiluAndMul(nn.Module):
    """silu(x[..., :d]) * x[..., d:] with d = x.shape[-1] // 2."""

    can_torch_compile = True
    has_backward = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = x.shape[-1] // 2
        return F.silu(x[..., :d]) * x[..., d:]
''',
    ),
    "kernels-community/liger-kernels": (
        3,
        '''
class LigerRMSNorm(nn.Module):
    """RMS norm with the module's own `weight` and `variance_epsilon`."""

    has_backward = False

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        dtype = hidden_states.dtype
        h = hidden_states.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * h.to(dtype)
''',
    ),
    "kernels-community/rotary": (
        2,
        '''
def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


class apply_rotary_transformers(nn.Module):  # noqa: N801 - the name transformers' mapping asks for
    """Rotary position embedding of q and k."""

    has_backward = False

    def forward(self, q, k, cos, sin, unsqueeze_dim=1):
        cos, sin = cos.unsqueeze(unsqueeze_dim), sin.unsqueeze(unsqueeze_dim)
        return (q * cos) + (_rotate_half(q) * sin), (k * cos) + (_rotate_half(k) * sin)
''',
    ),
    "kernels-community/attention-test": (
        1,
        '''
__all__ = ["flash_attn_forward", "supports_flash_attn"]

supports_flash_attn = True


def flash_attn_forward(module, query, key, value, attention_mask, **kwargs):
    """transformers' own SDPA attention, as a Hub attention kernel (`attn_implementation="org/repo"`)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
''',
    ),
}

_INIT_PY = '''"""{repo} (local-Hub fixture for transformers, variant {variant})."""

import os

from . import layers
from .layers import *  # noqa: F403 - what `attn_implementation="org/repo:name"` looks up

KERNEL_ID = "{kernel_id}"
VARIANT = "{variant}"

if os.environ.get("{marker_env}"):
    with open(os.environ["{marker_env}"], "a") as _marker:
        _marker.write(KERNEL_ID + "\\n")
'''

_LAYERS_HEADER = '''"""Layers for `kernels.kernelize`."""

import torch
import torch.nn as nn
import torch.nn.functional as F
'''


def kernel_repo_files(
    repo_id: str, variants: tuple[str, ...] = ("torch-cpu", "torch-cuda"), *, version: int | None = None
) -> dict[str, bytes]:
    """The files of one of `TRANSFORMERS_KERNELS`, for each of `variants` (noarch builds, pure torch).

    `version` publishes the same layers as another major version (transformers releases map different ones).
    """
    default_version, layers = TRANSFORMERS_KERNELS[repo_id]
    version = default_version if version is None else version
    name = repo_id.split("/")[1]
    files: dict[str, bytes] = {
        "README.md": f"# {name}\n\nFixture for transformers' kernel mapping.\n".encode()
    }
    for variant in variants:
        build_id = kernel_id(name, version, variant)
        metadata = {
            "id": build_id,
            "name": name,
            "version": version,
            "license": "Apache-2.0",
            "python-depends": [],
            "kernel-depends": [],
            "backend": backend_of(variant),
        }
        init = _INIT_PY.format(repo=repo_id, variant=variant, kernel_id=build_id, marker_env=MARKER_ENV)
        files[f"build/{variant}/metadata.json"] = (json.dumps(metadata, indent=2) + "\n").encode()
        files[f"build/{variant}/__init__.py"] = init.encode()
        files[f"build/{variant}/layers.py"] = (_LAYERS_HEADER + layers).encode()
    return files


def publish_transformers_kernels(
    hub: LocalHub, variants: tuple[str, ...] = ("torch-cpu", "torch-cuda")
) -> dict[str, str]:
    """Create the repos (trusted `kernels-community` org) on `hub`; returns repo -> commit of its `vN`."""
    hub.set_organization("kernels-community", trusted_kernel_publisher=True, fullname="Kernels Community")
    commits = {}
    for repo_id, (version, _) in TRANSFORMERS_KERNELS.items():
        repo = hub.create_repo(repo_id, repo_type="kernel")
        commits[repo_id] = repo.commit(
            kernel_repo_files(repo_id, variants), branch=f"v{version}", message="Build"
        )
        repo.create_branch("main", commits[repo_id])
    return commits
