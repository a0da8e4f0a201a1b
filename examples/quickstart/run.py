"""kernel-lock quick start, on an embedded local Hub: lock, sync, verified load, and a refused tampered file.

Run it with `python examples/quickstart/run.py`. It needs no network: a `LocalHub`
on 127.0.0.1 serves a small example kernel (a pure-Python `torch-cpu` variant
plus an arch variant for this machine's torch), and the Hugging Face cache is a
temporary directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from kernel_lock.testing import LocalHub, repo_files

HERE = Path(__file__).resolve().parent
REPO = "kernels-community/activation"


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def cli(*args: str, env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `kernel-lock ARGS` as a user would, echoing the command and its output."""
    print("$ kernel-lock " + " ".join(args), flush=True)
    proc = subprocess.run(
        [sys.executable, "-m", "kernel_lock", *args], env=env, text=True, capture_output=True
    )
    print((proc.stdout + proc.stderr).rstrip(), flush=True)
    if check and proc.returncode != 0:
        sys.exit(f"kernel-lock {args[0]} failed with exit code {proc.returncode}")
    return proc


def publish(hub: LocalHub) -> None:
    """Publish the example kernel: a pure-Python CPU variant and one built for this machine's torch."""
    from kernel_lock.core.target import detect_target

    variants = ["torch-cpu"]
    spec = detect_target().spec()
    if spec:
        variants.append(spec)
    hub.set_organization("kernels-community", trusted_kernel_publisher=True)
    repo = hub.create_repo(REPO)
    commit = repo.commit(repo_files(variants, name="activation"), branch="v1", message="Build activation v1")
    repo.create_branch("main", commit)
    print(
        f"Local Hub at {hub.url} serves {REPO} (branch v1 @ {commit[:12]}) with variants: {', '.join(variants)}"
    )


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="kernel-lock-quickstart-"))
    project = work / "project"
    project.mkdir()
    shutil.copy(HERE / "pyproject.toml", project / "pyproject.toml")
    with LocalHub() as hub:
        publish(hub)
        env = dict(
            os.environ, HF_ENDPOINT=hub.url, HF_HUB_CACHE=str(work / "hf-cache"), HF_HUB_DISABLE_TELEMETRY="1"
        )
        env.pop("HF_HUB_OFFLINE", None)
        os.environ.update(HF_HUB_CACHE=env["HF_HUB_CACHE"])

        step("1. Lock: pin the version to a commit and hash every build variant")
        cli("lock", "--project", str(project), env=env)
        print((project / "kernels.lock").read_text())

        step("2. Sync: fetch the variant for this machine into the Hugging Face cache and verify it")
        cli("sync", "--project", str(project), env=env)
        requests_before = len(hub.requests)

    step("3. Load offline (the Hub is stopped, HF_HUB_OFFLINE=1) with the locked get_kernel")
    os.environ["HF_HUB_OFFLINE"] = "1"
    warnings.filterwarnings("ignore", message="Failed to initialize NumPy")  # torch's, when NumPy is absent
    import torch

    from kernel_lock import get_kernel

    activation = get_kernel(REPO, lockfile=project / "kernels.lock")
    x = torch.tensor([[-2.0, -0.5, 0.0, 0.5, 1.0, 2.0]])
    out = torch.empty_like(x)
    activation.relu(out, x)
    print(f"loaded {activation.__name__} (variant {activation.VARIANT})")
    print(f"relu({x.tolist()[0]}) = {out.tolist()[0]}")
    assert torch.equal(out, torch.relu(x)), "the kernel disagrees with torch.relu"

    step("4. Change one byte of a synced file: loading now refuses, before any kernel code runs")
    layers = Path(activation.__file__).parent / "layers.py"
    with open(layers, "r+b") as f:
        first = f.read(1)
        f.seek(0)
        f.write(bytes([first[0] ^ 0x20]))
    print(f"flipped one bit of {layers}")
    refused = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from kernel_lock import get_kernel; get_kernel({REPO!r}, lockfile={str(project / 'kernels.lock')!r})",
        ],
        env=dict(os.environ),
        text=True,
        capture_output=True,
    )
    last = refused.stderr.strip().splitlines()[-1] if refused.stderr.strip() else ""
    print(last)
    cli("verify", "--project", str(project), env=dict(env, HF_HUB_OFFLINE="1"), check=False)
    if refused.returncode == 0 or "VerificationError" not in last:
        print("FAILED: the tampered kernel was not refused", file=sys.stderr)
        return 1
    print(
        f"\nQuick start OK: locked, synced ({requests_before} requests), loaded offline, tampering refused."
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
