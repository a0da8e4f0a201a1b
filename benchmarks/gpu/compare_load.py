"""The fast-mode verified load of several kernel-lock source trees, side by side on one GPU machine.

A before/after of a change to the load path, on the machine the targets are set for: the CUDA kernel of
`run_gpu.py` is built once, locked and synced once (with this checkout), and then each tree's
`get_kernel` and a bare import of the same files run in fresh processes, interleaved, as
`children/load.py` times them (torch imported first; the load call alone, and with the import of the
loader). A tree is a folder holding a `kernel_lock` package, e.g. from
`git archive d5159bd kernel_lock | tar -x -C trees/before`; byte-compile it first, as `pip install` does.

    python3 benchmarks/gpu/compare_load.py [--repeats 11] [--full-repeats N] [--json out.json] TREE [TREE ...]

Also prints, per tree, the self time of each module the load call imports (`-X importtime`, median of
`--import-runs`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _gpu import build_extension, log, run_env
from run_gpu import CUDA_SRC, MODULE, REPO, variant_files

CHILD = Path(__file__).resolve().parent / "children" / "load.py"
IMPORTTIME = (
    "import sys, torch\ntorch.cuda.init()\nfrom kernel_lock import get_kernel\nprint('MARK', file=sys.stderr)\n"
    "get_kernel(sys.argv[1], lockfile=sys.argv[2])\n"
)


def synced_kernel(work: Path) -> tuple[Path, Path, dict[str, str]]:
    """Build, publish, lock and sync the kernel; its lockfile, its variant folder, and the offline environment."""
    from kernel_lock.core.target import detect_target
    from kernel_lock.testing import LocalHub

    variant = detect_target().spec()
    assert variant is not None, "torch is needed"
    so = build_extension(work, MODULE, CUDA_SRC, ["silu_and_mul"])
    project = work / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        f'[project]\nname = "gpu"\nversion = "0"\n\n[tool.kernels.dependencies]\n"{REPO}" = 1\n'
    )
    env = run_env(work / "hf-cache", PYTHONPATH=os.environ.get("PYTHONPATH", ""))
    with LocalHub() as hub:
        hub.set_organization("gpu-org", trusted_kernel_publisher=True)
        repo = hub.create_repo(REPO)
        sha = repo.commit(
            variant_files(variant, so.read_bytes()), branch="v1", lfs=lambda p: p.endswith(".so")
        )
        repo.create_branch("main", sha)
        env["HF_ENDPOINT"] = hub.url
        for step in ("lock", "sync"):
            cmd = [sys.executable, "-m", "kernel_lock", step, "--project", str(project), "--json"]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=True)
    vdir = Path(json.loads(proc.stdout)["variants"][0]["path"])
    offline = dict(env, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9", KERNEL_LOCK_VERIFY="fast")
    return project / "kernels.lock", vdir, offline


def load(
    tree: str | None, vdir: Path, lockfile: Path, env: dict[str, str], mode: str = "fast"
) -> dict[str, float]:
    """One fresh process: the tree's verified load in `mode` (tree None: a bare import of the same files)."""
    args = ["unverified", str(vdir)] if tree is None else ["verified", str(vdir), REPO, str(lockfile)]
    child_env = env if tree is None else dict(env, PYTHONPATH=f"{tree}{os.pathsep}{env['PYTHONPATH']}")
    child_env = dict(child_env, KERNEL_LOCK_VERIFY=mode)
    proc = subprocess.run(
        [sys.executable, str(CHILD), *args],
        env=child_env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["ok"], "the kernel computed a wrong result"
    return result


def import_self_times(tree: str, lockfile: Path, env: dict[str, str], runs: int) -> dict[str, float]:
    """Median self time (µs) of each module the load call imports, over `runs` fresh processes."""
    child_env = dict(env, PYTHONPATH=f"{tree}{os.pathsep}{env['PYTHONPATH']}")
    times: dict[str, list[int]] = {}
    for _ in range(runs):
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", IMPORTTIME, REPO, str(lockfile)],
            env=child_env,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        for line in proc.stderr.split("MARK\n", 1)[-1].splitlines():
            if line.startswith("import time:"):
                self_us, _, name = line.removeprefix("import time:").split("|")
                times.setdefault(name.strip(), []).append(int(self_us))
    return {name: statistics.median(v) for name, v in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("trees", nargs="+", help="folders that hold a kernel_lock package")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--full-repeats", type=int, default=0, help="also time full mode this many times")
    parser.add_argument(
        "--import-runs", type=int, default=5, help="fresh processes for the import times (0: none)"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import torch

    lockfile, vdir, env = synced_kernel(Path(tempfile.mkdtemp(prefix="compare-load-")))
    names = [*args.trees, None]
    calls: dict[str | None, list[float]] = {name: [] for name in names}
    with_import: dict[str | None, list[float]] = {name: [] for name in names}
    for i in range(args.repeats):
        for tree in names[i % len(names) :] + names[: i % len(names)]:  # the order rotates by round
            result = load(tree, vdir, lockfile, env)
            calls[tree].append(result["load_s"] * 1000)
            with_import[tree].append((result["load_s"] + result["lib_import_s"]) * 1000)
        log(f"round {i + 1}: " + ", ".join(f"{tree or 'bare'} {calls[tree][-1]:.2f} ms" for tree in names))
    full: dict[str, list[float]] = {tree: [] for tree in args.trees}
    for _ in range(args.full_repeats):
        for tree in args.trees:
            full[tree].append(load(tree, vdir, lockfile, env, mode="full")["load_s"] * 1000)
    bare = statistics.median(calls[None])
    summary: dict[str, object] = {
        "machine": {
            "python": sys.version.split()[0],
            "torch": torch.__version__,
            "gpu": torch.cuda.get_device_name(0),
        },
        "repeats": args.repeats,
        "bare_import_ms": bare,
        "trees": {},
    }
    log(json.dumps(summary["machine"]))
    log(f"bare import of the same files: median {bare:.2f} ms")
    for tree in args.trees:
        call, total = statistics.median(calls[tree]), statistics.median(with_import[tree])
        modules = import_self_times(tree, lockfile, env, args.import_runs)
        summary["trees"][tree] = {  # type: ignore[index]
            "load_call_ms": call,
            "over_bare_ms": call - bare,
            "with_loader_import_ms": total,
            "all_load_calls_ms": calls[tree],
            "imports_self_us": modules,
            "full_mode_load_call_ms": statistics.median(full[tree]) if full[tree] else None,
        }
        log(
            f"{tree}: load call {call:.2f} ms, over bare {call - bare:.2f} ms; with the loader's import {total:.2f} ms"
        )
        if full[tree]:
            log(f"  full mode (every file hashed): load call {statistics.median(full[tree]):.2f} ms")
        log(f"  modules the call imports, self µs: {sum(modules.values()):.0f} in {len(modules)}")
        for name, us in modules.items():
            log(f"    {us:6.0f}  {name}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
