"""What both GPU runs share: building the CUDA extension, a kernel variant's files, the environment of the runs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path


def log(message: str) -> None:
    print(message, flush=True)


def build_extension(work: Path, name: str, cuda_src: str, functions: list[str]) -> Path:
    """Compile the CUDA extension `name` (each function `void f(torch::Tensor out, torch::Tensor x)`) with nvcc
    through torch.utils.cpp_extension; return the .so."""
    from torch.utils.cpp_extension import load_inline

    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
    (work / "build").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    module = load_inline(
        name=name,
        cpp_sources=["\n".join(f"void {f}(torch::Tensor out, torch::Tensor x);" for f in functions)],
        cuda_sources=[cuda_src],
        functions=functions,
        build_directory=str(work / "build"),
        extra_cuda_cflags=["-O3"],
        verbose=False,
    )
    log(f"built {module.__file__} in {time.perf_counter() - started:.1f} s")
    return Path(module.__file__)


def kernel_variant_files(
    variant: str, *, id_prefix: str, name: str, module: str, so_bytes: bytes, sources: dict[str, str]
) -> dict[str, bytes]:
    """The files of one build variant: `metadata.json`, the Python `sources` (by name) and the extension."""
    metadata = {
        "id": f"{id_prefix}{variant.replace('-', '_').replace('.', '_')}",
        "name": name,
        "version": 1,
        "license": "Apache-2.0",
        "backend": {"type": "cuda"} if "-cu" in variant else {"type": "cpu"},
        "python-depends": [],
        "kernel-depends": [],
    }
    return {
        f"build/{variant}/metadata.json": json.dumps(metadata, indent=2).encode(),
        **{f"build/{variant}/{path}": text.encode() for path, text in sources.items()},
        f"build/{variant}/{module}.so": so_bytes,
    }


def run_env(cache: Path, **extra: str) -> dict[str, str]:
    """The environment of a run's processes: a cache of their own, online (the Hub is a local one)."""
    env = dict(
        os.environ,
        HF_HUB_CACHE=str(cache),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_USER_AGENT_ORIGIN="gpu-run",
        **extra,
    )
    env.pop("HF_HUB_OFFLINE", None)
    return env
