"""On a machine with a CUDA GPU: a kernel locked, synced for the detected environment and verified runs there."""

from __future__ import annotations

import pytest

from kernel_lock import env

pytestmark = [pytest.mark.gpu, pytest.mark.torch]


def test_a_locked_kernel_runs_on_the_gpu(hub_env, make_project, cli, monkeypatch) -> None:
    import torch

    from kernel_lock.core.lockfile import read_lock
    from kernel_lock.core.target import detect_target
    from kernel_lock.core.variants import select_variant
    from kernel_lock.load.locked import get_kernel

    monkeypatch.delenv(env.TARGET)  # this test is about this machine
    target = detect_target()
    assert torch.version.cuda is not None
    assert (target.backend, target.backend_version) == (
        "cuda",
        tuple(int(part) for part in torch.version.cuda.split(".")[:2]),
    )
    root = make_project('"kernels-community/relu" = 1')
    assert cli("lock", "--project", str(root)).exit_code == 0
    run = cli("sync", "--project", str(root))
    assert run.exit_code == 0, run.stderr
    entry = read_lock(root / "kernels.lock").find("kernels-community/relu")
    kernel = get_kernel("kernels-community/relu", lockfile=root / "kernels.lock")
    loaded = kernel.VARIANT
    assert loaded == select_variant(entry.variants, target, repo_id=entry.repo_id)
    by_hand = torch.tensor([[-2.0, -0.5, -0.0, 0.0, 0.25, 3.0]], device="cuda")
    out = torch.full_like(by_hand, float("nan"))  # a kernel that writes nothing leaves NaN, never a match
    assert kernel.relu(out, by_hand) is out
    assert out.device.type == "cuda"
    assert out.tolist() == [[0.0, 0.0, 0.0, 0.0, 0.25, 3.0]]
    x = torch.randn(64, 32, device="cuda", generator=torch.Generator("cuda").manual_seed(0))
    out = torch.full_like(x, float("nan"))
    kernel.relu(out, x)
    reference = [[max(value, 0.0) for value in row] for row in x.tolist()]  # on the CPU, in plain Python
    assert out.tolist() == reference
