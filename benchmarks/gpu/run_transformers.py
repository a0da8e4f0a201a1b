"""transformers' own kernel loading, locked: a tiny Llama on CUDA with `use_kernels=True`, under `kernel-lock run`.

Run through benchmarks/gpu/run.sh on the GPU machine. Builds a CUDA `Silu`/`SiluAndMul` activation with nvcc
and publishes it on a local Hub as `kernels-community/activation` v1 (the variant this machine selects, plus
decoys), next to the two other kernels transformers' default mapping asks for on CUDA for a Llama
(`kernels-community/liger-kernels` v3 `LigerRMSNorm`, `kernels-community/rotary` v2, pure torch). Then
`kernel-lock lock` and `sync`, and, with the Hub still up so that any request would be seen:

- `kernel-lock run -- python child.py`: a Llama built from a config (no weights) on CUDA, its logits without
  kernels, then `model.set_use_kernels(True)` (the default mapping; nothing changed in transformers or
  kernels): which forwards were replaced, by which kernel module, and the logits again;
- the same after one byte of the CUDA `.so` is flipped: refused, no kernel module imported;
- start-up time of the model load: `kernel-lock run` vs `kernels` alone from a warm cache, `HF_HUB_OFFLINE=1`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHILDREN = HERE / "children"
sys.path.insert(0, str(HERE.parent.parent))

from _gpu import build_extension, kernel_variant_files, log, run_env  # noqa: E402

from kernel_lock.testing.transformers_kernels import kernel_repo_files  # noqa: E402

ACTIVATION = "kernels-community/activation"
MODULE = "_activation_cuda_silu"
DECOYS = ["torch210-cxx11-cu128-x86_64-linux", "torch212-cxx11-cu130-x86_64-linux", "torch-cpu"]

CUDA_SRC = r"""
#include <torch/extension.h>
#include <ATen/cuda/CUDAContext.h>

__global__ void silu_kernel(float* __restrict__ out, const float* __restrict__ x, int64_t n) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i < n) { float a = x[i]; out[i] = a / (1.0f + __expf(-a)); }
}

__global__ void silu_and_mul_kernel(float* __restrict__ out, const float* __restrict__ x, int64_t d, int64_t n) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  if (i >= n) return;
  int64_t row = i / d, col = i % d;
  float a = x[row * 2 * d + col];
  out[i] = a / (1.0f + __expf(-a)) * x[row * 2 * d + d + col];
}

static void check(const torch::Tensor& out, const torch::Tensor& x) {
  TORCH_CHECK(x.is_cuda() && out.is_cuda(), "CUDA tensors expected");
  TORCH_CHECK(x.scalar_type() == torch::kFloat && out.scalar_type() == torch::kFloat, "float32 expected");
  TORCH_CHECK(x.is_contiguous() && out.is_contiguous(), "contiguous tensors expected");
}

void silu(torch::Tensor out, torch::Tensor x) {
  check(out, x);
  int64_t n = out.numel();
  silu_kernel<<<(n + 255) / 256, 256, 0, at::cuda::getCurrentCUDAStream()>>>(out.data_ptr<float>(), x.data_ptr<float>(), n);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void silu_and_mul(torch::Tensor out, torch::Tensor x) {
  check(out, x);
  int64_t n = out.numel();
  silu_and_mul_kernel<<<(n + 255) / 256, 256, 0, at::cuda::getCurrentCUDAStream()>>>(
      out.data_ptr<float>(), x.data_ptr<float>(), x.size(-1) / 2, n);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}
"""

INIT_PY = f'''"""activation: real CUDA silu / silu_and_mul (built by benchmarks/gpu/run_transformers.py)."""
from . import {MODULE} as _C
from . import layers

VARIANT = "{{variant}}"
CALLS = [0]
'''

LAYERS_PY = '''"""Layers for kernels.kernelize, backed by the CUDA extension."""
import torch
import torch.nn as nn


class Silu(nn.Module):
    can_torch_compile = True
    has_backward = False

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        from . import _C, CALLS

        x = input.contiguous()
        out = torch.empty_like(x)
        _C.silu(out, x)
        CALLS[0] += 1
        return out


class SiluAndMul(nn.Module):
    can_torch_compile = True
    has_backward = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from . import _C, CALLS

        d = x.shape[-1] // 2
        out = torch.empty(x.shape[:-1] + (d,), dtype=x.dtype, device=x.device)
        _C.silu_and_mul(out, x.contiguous())
        CALLS[0] += 1
        return out
'''


def activation_files(variant: str, so_bytes: bytes) -> dict[str, bytes]:
    sources = {"__init__.py": INIT_PY.format(variant=variant), "layers.py": LAYERS_PY}
    return kernel_variant_files(
        variant,
        id_prefix="_activation_",
        name="activation",
        module=MODULE,
        so_bytes=so_bytes,
        sources=sources,
    )


def child(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[dict, float]:
    started = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    wall = time.perf_counter() - started
    lines = proc.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1]), wall
    except (IndexError, ValueError):
        return {"exit": proc.returncode, "stderr": proc.stderr[-3000:], "stdout": proc.stdout[-1000:]}, wall


def mapped_versions() -> dict[str, int]:
    """The major version of each kernel the installed transformers maps Llama's layers to on CUDA.

    transformers moves them between releases (5.25 maps RMSNorm to liger-kernels v4, 5.22 to v3).
    """
    from transformers.integrations import hub_kernels

    mapping = hub_kernels.get_kernel_mapping_transformers()
    versions = {}
    for layer in ("SiLU", "RMSNorm", "rotary_pos_emb"):
        repos = mapping[layer]["cuda"]
        repo = next(iter(repos.values())) if isinstance(repos, dict) else repos
        versions[repo._repo_id] = repo._version
    return versions


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("/tmp/kernel-lock-gpu"))
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument(
        "--device", choices=["cuda", "cpu"], default="cuda", help="cpu: a rehearsal, pure-torch kernels"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    import torch
    import transformers

    from kernel_lock.core.target import detect_target
    from kernel_lock.testing import LocalHub

    cuda = args.device == "cuda"
    variant = detect_target().spec() if cuda else "torch-cpu"
    summary: dict = {
        "machine": {
            "device": torch.cuda.get_device_name(0) if cuda else "cpu",
            "torch": torch.__version__,
            "transformers": transformers.__version__,
        },
        "variant": variant,
    }
    log(json.dumps(summary))
    work = Path(tempfile.mkdtemp(prefix="kernel-lock-tf-"))
    files: dict[str, bytes] = {}
    if cuda:
        so_bytes = build_extension(work, MODULE, CUDA_SRC, ["silu", "silu_and_mul"]).read_bytes()
        for name in [variant, *DECOYS]:
            files.update(activation_files(name, so_bytes if name == variant else os.urandom(4096)))
    else:
        files = kernel_repo_files(ACTIVATION, ("torch-cpu", "torch-cuda"))
    noarch = ("torch-cuda",) if cuda else ("torch-cpu",)
    project = work / "project"
    project.mkdir()
    versions = mapped_versions()
    summary["mapped_versions"] = versions
    (project / "pyproject.toml").write_text(
        '[project]\nname = "serve"\nversion = "0"\n\n[tool.kernels.dependencies]\n'
        + "".join(f'"{repo_id}" = {version}\n' for repo_id, version in versions.items())
    )
    (project / "child.py").write_bytes((CHILDREN / "transformers_model.py").read_bytes())
    cache = work / "hf-cache"
    env = run_env(cache, BENCH_DEVICE=args.device)
    kl = [sys.executable, "-m", "kernel_lock"]
    py = [sys.executable, "child.py"]
    with LocalHub() as hub:
        hub.set_organization("kernels-community", trusted_kernel_publisher=True)
        for repo_id, repo_files in (
            (ACTIVATION, files),
            *(
                (repo_id, kernel_repo_files(repo_id, noarch, version=versions[repo_id]))
                for repo_id in ("kernels-community/liger-kernels", "kernels-community/rotary")
            ),
        ):
            version = versions[repo_id]
            repo = hub.create_repo(repo_id, repo_type="kernel")
            sha = repo.commit(
                repo_files, branch=f"v{version}", lfs=lambda p: p.endswith(".so"), message="build"
            )
            repo.create_branch("main", sha)
        env["HF_ENDPOINT"] = hub.url
        for step in (["lock"], ["sync", "--json"]):
            proc = subprocess.run(
                [*kl, *step], env=env, cwd=project, capture_output=True, text=True, timeout=600
            )
            log(
                f"$ kernel-lock {' '.join(step)}: exit {proc.returncode}\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}"
            )
            if proc.returncode != 0:
                return 1
        summary["synced"] = [v["variant"] for v in json.loads(proc.stdout)["variants"]]

        hub.clear_log()
        summary["enforced_run"], _ = child([*kl, "run", "--", *py], env, project)
        summary["hub_requests_during_enforced_run"] = len(hub.requests)
        log(
            f"kernel-lock run, use_kernels=True: {summary['enforced_run']} ({len(hub.requests)} Hub requests)"
        )

        # kernels alone, online once to warm its cache, then offline: the start-up baseline
        hub.clear_log()
        summary["kernels_online"], _ = child(py, env, project)
        summary["hub_requests_kernels_online"] = len(hub.requests)
        log(f"kernels alone, online: {summary['kernels_online']} ({len(hub.requests)} Hub requests)")
        # kernels resolves LayerRepository(version=N) offline from refs/vN in the cache, which its own online
        # run never writes (it downloads by commit): write them, so that its offline load can run at all. And
        # huggingface_hub 2.x serves an offline snapshot only when the whole repo is in the cache: fetch it.
        from huggingface_hub import HfApi

        from kernel_lock.core.cache_layout import repo_dir
        from kernel_lock.core.lockfile import read_lock

        api = HfApi(endpoint=hub.url)
        for entry in read_lock(project / "kernels.lock").kernel:
            refs = repo_dir(entry.repo_id, cache) / "refs"
            refs.mkdir(parents=True, exist_ok=True)
            (refs / f"v{entry.version}").write_text(entry.commit)
            api.snapshot_download(
                entry.repo_id, repo_type="kernel", revision=entry.commit, cache_dir=str(cache)
            )
        offline = dict(env, HF_HUB_OFFLINE="1")
        walls: dict[str, list[float]] = {"kernel-lock run": [], "kernels offline": []}
        for i in range(args.repeats):
            order = [("kernel-lock run", [*kl, "run", "--", *py], env), ("kernels offline", py, offline)]
            for name, cmd, e in order if i % 2 == 0 else order[::-1]:
                result, wall = child(cmd, e, project)
                walls[name].append(wall)
                if not result.get("ok"):
                    log(f"{name}: {result}")
        summary["startup_wall_s"] = walls
        summary["startup_median_s"] = {k: statistics.median(v) for k, v in walls.items()}
        summary["startup_ratio"] = (
            summary["startup_median_s"]["kernel-lock run"] / summary["startup_median_s"]["kernels offline"]
        )
        log(
            f"start-up (median of {args.repeats}): {summary['startup_median_s']}, ratio {summary['startup_ratio']:.3f}"
        )

        vdir = Path(
            next(v["path"] for v in json.loads(proc.stdout)["variants"] if v["repo-id"] == ACTIVATION)
        )
        tampered_file = vdir / (f"{MODULE}.so" if cuda else "layers.py")
        size = tampered_file.stat().st_size
        with open(tampered_file, "r+b") as f:  # through the cache's symlink, into the blob
            f.seek(size // 2)
            byte = f.read(1)
            f.seek(size // 2)
            f.write(bytes([byte[0] ^ 0x01]))
        summary["tampered_file"] = tampered_file.name
        hub.clear_log()
        summary["tampered_run"], _ = child([*kl, "run", "--", *py], env, project)
        log(f"tampered {summary['tampered_file']} under kernel-lock run: {summary['tampered_run']}")

    run = summary["enforced_run"]
    tampered = summary["tampered_run"]
    summary["passed"] = bool(
        run.get("ok")
        and run.get("enforced") is True
        and run.get("variant") == variant
        and (run.get("cuda_kernel_calls") or 0) > (0 if cuda else -1)
        and run.get("norm_forward") == "LigerRMSNorm.forward"
        and summary["hub_requests_during_enforced_run"] == 0
        and "VerificationError" in tampered.get("error", "")
        and summary["tampered_file"] in tampered.get("error", "")
        and not any(m.startswith("_activation") for m in tampered.get("kernel_modules", []))
    )
    (args.out / f"transformers_{args.device}.json").write_text(json.dumps(summary, indent=2))
    log(f"TRANSFORMERS GPU RUN {'PASSED' if summary['passed'] else 'FAILED'}")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
