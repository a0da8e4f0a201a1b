"""A real CUDA kernel, locked, synced and loaded on a GPU machine (run through benchmarks/gpu/run.sh).

Builds a fused SiLU-and-mul CUDA extension with nvcc, publishes it on a local Hub
as the variant this machine's torch selects (plus decoys for other CUDA and torch
versions), then: `kernel-lock lock`, `kernel-lock sync` (detected environment),
verified `get_kernel` and `LockedLayerRepository` + `kernels.kernelize` offline,
output checked against plain torch on the GPU, the verified load timed against
an unverified import of the same files, and a tampered `.so` refused.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _gpu import build_extension, kernel_variant_files, log, run_env

CHILDREN = Path(__file__).resolve().parent / "children"
REPO = "gpu-org/silu-and-mul"
MODULE = "_gpu_silu_and_mul_k1"
DECOYS = [
    "torch210-cxx11-cu128-x86_64-linux",
    "torch211-cxx11-cu126-x86_64-linux",
    "torch211-cxx11-cu128-x86_64-linux",
    "torch212-cxx11-cu130-x86_64-linux",
    "torch211-cxx11-cpu-x86_64-linux",
    "torch211-cxx11-cu130-aarch64-linux",
]

CUDA_SRC = r"""
#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>

__global__ void silu_and_mul_kernel(float* __restrict__ out, const float* __restrict__ x, int64_t d, int64_t n) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i >= n) return;
  int64_t row = i / d, col = i % d;
  float a = x[row * 2 * d + col];
  float b = x[row * 2 * d + d + col];
  out[i] = a / (1.0f + __expf(-a)) * b;
}

void silu_and_mul(torch::Tensor out, torch::Tensor x) {
  TORCH_CHECK(x.is_cuda() && out.is_cuda(), "silu_and_mul: CUDA tensors expected");
  TORCH_CHECK(x.scalar_type() == torch::kFloat && out.scalar_type() == torch::kFloat, "float32 expected");
  TORCH_CHECK(x.is_contiguous() && out.is_contiguous(), "contiguous tensors expected");
  int64_t d = x.size(-1) / 2;
  int64_t n = out.numel();
  int threads = 256;
  int64_t blocks = (n + threads - 1) / threads;
  silu_and_mul_kernel<<<blocks, threads, 0, at::cuda::getCurrentCUDAStream()>>>(
      out.data_ptr<float>(), x.data_ptr<float>(), d, n);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}
"""

INIT_PY = f'''"""silu_and_mul: a real CUDA kernel (built by benchmarks/gpu/run_gpu.py)."""
import torch

from . import {MODULE} as _C
from . import layers

VARIANT = "{{variant}}"


def silu_and_mul(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    _C.silu_and_mul(out, x)
    return out
'''

LAYERS_PY = '''"""Layer kernels for kernels.kernelize."""
import torch
import torch.nn as nn


class SiluAndMul(nn.Module):
    can_torch_compile = False
    has_backward = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from . import silu_and_mul

        d = x.shape[-1] // 2
        out = torch.empty(x.shape[:-1] + (d,), dtype=x.dtype, device=x.device)
        return silu_and_mul(out, x.contiguous())
'''


def variant_files(variant: str, so_bytes: bytes) -> dict[str, bytes]:
    sources = {
        "__init__.py": INIT_PY.format(variant=variant),
        "layers.py": LAYERS_PY,
        "silu_and_mul/__init__.py": "from .. import *  # compatibility package\n",
    }
    return kernel_variant_files(
        variant,
        id_prefix="_gpu_silu_",
        name="silu-and-mul",
        module=MODULE,
        so_bytes=so_bytes,
        sources=sources,
    )


def run_child(script: Path, *args: str, env: dict[str, str]) -> dict:
    proc = subprocess.run(
        [sys.executable, str(script), *args], env=env, capture_output=True, text=True, timeout=600
    )
    if proc.returncode != 0:
        raise SystemExit(f"child failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("/tmp/kernel-lock-gpu"))
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import huggingface_hub
    import torch

    from kernel_lock.core.target import detect_target
    from kernel_lock.testing import LocalHub

    summary: dict = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "gpu": torch.cuda.get_device_name(0),
            "huggingface_hub": huggingface_hub.__version__,
        },
    }
    log(json.dumps(summary["machine"]))
    target = detect_target()
    expected_variant = target.spec()
    summary["detected_target"] = target.describe()
    summary["expected_variant"] = expected_variant
    log(f"detected target: {target.describe()} -> {expected_variant}")
    try:
        from kernel_lock.testing.upstream import kernels_module

        variants = kernels_module("variants")  # 0.19 keeps it under kernels._internals
        parse_variant, resolve_variant = variants.parse_variant, variants.resolve_variant
        names = [expected_variant, *DECOYS]
        best, _ = resolve_variant([parse_variant(n) for n in names])
        summary["kernels_library_choice"] = best.variant_str if best else None
        log(f"the kernels library would load: {summary['kernels_library_choice']}")
    except ImportError as exc:
        summary["kernels_library_choice"] = f"kernels not importable: {exc}"

    work = Path(tempfile.mkdtemp(prefix="kernel-lock-gpu-"))
    so = build_extension(work, MODULE, CUDA_SRC, ["silu_and_mul"])
    so_bytes = so.read_bytes()
    files: dict[str, bytes] = {}
    files.update(variant_files(expected_variant, so_bytes))
    rng = __import__("random").Random(0)
    for decoy in DECOYS:
        files.update(variant_files(decoy, bytes(rng.getrandbits(8) for _ in range(4096))))
    project = work / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "gpu"\nversion = "0"\n\n[tool.kernels.dependencies]\n"{REPO}" = 1\n'
    )
    cache = work / "hf-cache"
    env = run_env(cache, PYTHONPATH=os.environ.get("PYTHONPATH", ""))
    cli = [sys.executable, "-m", "kernel_lock"]
    with LocalHub() as hub:
        hub.set_organization("gpu-org", trusted_kernel_publisher=True)
        repo = hub.create_repo(REPO)
        sha = repo.commit(files, branch="v1", lfs=lambda p: p.endswith(".so"), message="real CUDA build")
        repo.create_branch("main", sha)
        env["HF_ENDPOINT"] = hub.url
        for step in (["lock", "--project", str(project)], ["sync", "--project", str(project), "--json"]):
            started = time.perf_counter()
            proc = subprocess.run([*cli, *step], env=env, capture_output=True, text=True, timeout=600)
            log(
                f"$ kernel-lock {' '.join(step)}  ({time.perf_counter() - started:.2f} s, exit {proc.returncode})"
            )
            log(proc.stdout[-3000:] + proc.stderr[-3000:])
            if proc.returncode != 0:
                return 1
        synced = json.loads(proc.stdout)["variants"]
    summary["synced_variant"] = synced[0]["variant"]
    vdir = Path(synced[0]["path"])
    lockfile = project / "kernels.lock"
    offline = dict(env, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")  # the Hub is gone

    log("verified get_kernel vs an unverified import of the same files, fresh processes:")
    timings: dict[str, list[float]] = {"verified": [], "unverified": [], "verified_full": []}
    with_import: dict[str, list[float]] = {mode: [] for mode in timings}  # plus `from kernel_lock import ...`
    checks = []
    for _i in range(args.repeats):
        for mode in ("unverified", "verified", "verified_full"):
            child_env = dict(offline, KERNEL_LOCK_VERIFY="full" if mode == "verified_full" else "fast")
            result = run_child(
                CHILDREN / "load.py",
                "unverified" if mode == "unverified" else "verified",
                str(vdir),
                REPO,
                str(lockfile),
                env=child_env,
            )
            timings[mode].append(result["load_s"])
            with_import[mode].append(result["load_s"] + result["lib_import_s"])
            checks.append(result["ok"] and result["variant"] == expected_variant)
    med = {k: statistics.median(v) for k, v in timings.items()}
    summary["load_seconds_median"] = med
    summary["load_seconds_all"] = timings
    summary["load_with_import_seconds_median"] = {k: statistics.median(v) for k, v in with_import.items()}
    summary["verified_over_unverified_ms"] = (med["verified"] - med["unverified"]) * 1000
    summary["verified_with_import_over_unverified_ms"] = (
        summary["load_with_import_seconds_median"]["verified"] - med["unverified"]
    ) * 1000
    summary["verified_over_unverified"] = med["verified"] / med["unverified"]
    summary["full_over_unverified"] = med["verified_full"] / med["unverified"]
    summary["output_matches_torch"] = all(checks)
    summary["so_bytes"] = len(so_bytes)
    for k, v in med.items():
        log(f"  {k:>14}: median {v * 1000:.1f} ms  (all: {', '.join(f'{t * 1000:.1f}' for t in timings[k])})")
    log(
        f"  verified/unverified = {summary['verified_over_unverified']:.3f}; full/unverified = {summary['full_over_unverified']:.3f}"
    )
    log(
        f"  verified - unverified = {summary['verified_over_unverified_ms']:.2f} ms; with the import of "
        f"kernel_lock: {summary['verified_with_import_over_unverified_ms']:.2f} ms"
    )
    log(f"  output equals torch's silu(x1)*x2 on the GPU in every run: {summary['output_matches_torch']}")

    try:
        summary["kernelize"] = run_child(CHILDREN / "kernelize.py", REPO, str(lockfile), env=offline)
    except SystemExit as exc:
        summary["kernelize"] = {"ok": False, "error": str(exc)[-2000:]}
    log(f"LockedLayerRepository + kernels.kernelize on cuda: {summary['kernelize']}")

    so_synced = vdir / f"{MODULE}.so"
    with open(so_synced, "r+b") as f:  # through the cache's symlink, into the blob
        f.seek(len(so_bytes) // 2)
        byte = f.read(1)
        f.seek(len(so_bytes) // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    summary["tampered"] = run_child(
        CHILDREN / "tampered.py", REPO, str(lockfile), env=dict(offline, KERNEL_LOCK_VERIFY="fast")
    )
    log(f"tampered .so: {summary['tampered']}")

    passed = (
        summary["synced_variant"] == expected_variant == summary["kernels_library_choice"]
        and summary["output_matches_torch"]
        and summary["kernelize"].get("ok") is True
        and summary["tampered"].get("refused") is True
        and not summary["tampered"].get("kernel_modules")
        and f"{MODULE}.so" in summary["tampered"].get("error", "")
    )
    summary["passed"] = passed
    (args.out / "gpu_run.json").write_text(json.dumps(summary, indent=2))
    log(f"GPU RUN {'PASSED' if passed else 'FAILED'}")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
