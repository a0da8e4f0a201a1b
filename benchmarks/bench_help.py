"""Command-line start-up benchmark: `kernel-lock --help` vs `kernels --help` (kernels 0.17.2), plus
`kernel-lock lock --check --project DIR` on an up-to-date project.

The project declares one kernel (`bench-org/bigkernel = 1`) on the local Hub (`kernel_lock.testing.LocalHub`);
it is locked with `kernel-lock lock`, then the Hub is stopped: `lock --check` runs with `HF_HUB_OFFLINE=1` and
must answer "up to date" (exit 0) without it. `python -c pass` is timed as the interpreter floor.

Every command runs as a fresh process (the console scripts in the venv's bin/), interleaved round by round
(order rotated), and its wall time from spawn to exit is taken. Reported: min / median / max.

Target: median wall of `kernel-lock --help` <= 1/4 of the median wall of `kernels --help`.
Exit status 1 when the target is missed (then `-X importtime` of `kernel-lock --help` is printed), 2 when a
command failed.

    .venv/bin/python benchmarks/bench_help.py [--repeat 15] [--json out.json]
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BIN = (
    Path(sys.executable).parent
    if (Path(sys.executable).parent / "kernel-lock").exists()
    else ROOT / ".venv" / "bin"
)
PYTHON = str(BIN / "python")
KERNEL_LOCK = str(BIN / "kernel-lock")
KERNELS = str(BIN / "kernels")
REPO = "bench-org/bigkernel"
TARGET = 0.25


PYCACHE: Path | None = (
    None  # set in main(): where commands keep bytecode (None: the caller's settings as they are)
)


def env_for(cache: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "HUGGINGFACE_", "KERNELS_", "KERNEL_LOCK_"))
    }
    if PYCACHE is not None:
        # Installed packages come with bytecode; an editable checkout under PYTHONDONTWRITEBYTECODE=1 would make
        # kernel-lock (and only it) compile its modules from source on every start. Keep every module's .pyc
        # in a scratch tree instead (nothing is written into the repository or site-packages).
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(PYCACHE)
    env.update(
        HF_HUB_CACHE=str(cache),
        HF_HOME=str(cache.parent / "hf-home"),
        HF_HUB_USER_AGENT_ORIGIN="bench",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        NO_COLOR="1",
        **extra,
    )
    return env


def run(cmd: list[str], env: dict[str, str], what: str) -> tuple[float, subprocess.CompletedProcess[str]]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(
            f"\n{what} failed (exit {proc.returncode}).\n--- stdout ---\n{proc.stdout[-3000:]}\n"
            f"--- stderr ---\n{proc.stderr[-3000:]}\n"
        )
        raise SystemExit(2)
    return wall, proc


def stat(values: list[float]) -> dict[str, Any]:
    return {
        "values": values,
        "min": min(values),
        "median": statistics.median(values),
        "max": max(values),
        "n": len(values),
    }


def loadavg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=15, help="runs of each command (default 15, >= 10)")
    ap.add_argument("--json", metavar="PATH", help="write every figure to PATH")
    ap.add_argument(
        "--as-is",
        action="store_true",
        help="keep the caller's bytecode settings (default: commands byte-compile into a scratch "
        "PYTHONPYCACHEPREFIX, as installed packages would be)",
    )
    args = ap.parse_args()

    from kernel_lock.testing import LocalHub, repo_files

    global PYCACHE
    work = Path(tempfile.mkdtemp(prefix="kl-bench-help-"))
    PYCACHE = None if args.as_is else work / "pycache"
    try:
        cache = work / "hub-cache"
        project = work / "project"
        project.mkdir()
        (project / "pyproject.toml").write_text(
            f'[project]\nname = "bench-help"\nversion = "0.0.0"\n\n[tool.kernels.dependencies]\n"{REPO}" = 1\n'
        )
        hub = LocalHub()
        hub.set_organization("bench-org", trusted_kernel_publisher=True)
        repo = hub.create_repo(REPO, repo_type="kernel")
        commit = repo.commit(
            repo_files(["torch-cpu", "torch213-cxx11-cpu-x86_64-linux"], name="bigkernel"), branch="v1"
        )
        repo.create_branch("main", commit)
        with hub:
            run(
                [KERNEL_LOCK, "lock", "--project", str(project)],
                env_for(cache, HF_ENDPOINT=hub.url),
                "kernel-lock lock",
            )
        offline = env_for(cache, HF_HUB_OFFLINE="1", HF_ENDPOINT="http://127.0.0.1:9")

        cases: dict[str, list[str]] = {
            "python -c pass": [PYTHON, "-c", "pass"],
            "kernel-lock --help": [KERNEL_LOCK, "--help"],
            "kernels --help": [KERNELS, "--help"],
            "kernel-lock lock --check": [KERNEL_LOCK, "lock", "--check", "--project", str(project)],
            "kernel-lock lock (up to date)": [KERNEL_LOCK, "lock", "--project", str(project)],
        }
        # warm-up (page cache, .pyc): two untimed runs each; also check what they print
        for name, cmd in [*cases.items(), *cases.items()]:
            _, proc = run(cmd, offline, name)
            if name == "kernel-lock lock (up to date)" and "Unchanged" not in proc.stdout:
                sys.stderr.write(f"lock did not leave the lock unchanged: {proc.stdout}{proc.stderr}\n")
                return 2
            if name == "kernel-lock lock --check" and "up to date" not in proc.stdout:
                sys.stderr.write(f"lock --check did not report up to date: {proc.stdout}{proc.stderr}\n")
                return 2
            if name.endswith("--help") and "Usage" not in proc.stdout and "usage" not in proc.stdout:
                sys.stderr.write(f"{name} printed no usage: {proc.stdout[:500]}\n")
                return 2

        names = list(cases)
        walls: dict[str, list[float]] = {n: [] for n in names}
        print(f"bench_help: {args.repeat} runs each, interleaved; {os.cpu_count()} CPUs, load {loadavg()}")
        for i in range(args.repeat):
            k = i % len(names)
            for name in names[k:] + names[:k]:
                walls[name].append(run(cases[name], offline, name)[0])

        stats = {n: stat(v) for n, v in walls.items()}
        width = max(map(len, names))
        print(f"\n{'command'.ljust(width)}  wall ms: median   (min .. max)")
        print(f"{'-' * width}  ------------------------------")
        for n in names:
            s = stats[n]
            print(
                f"{n.ljust(width)}  {s['median'] * 1e3:8.1f}  ({s['min'] * 1e3:.1f} .. {s['max'] * 1e3:.1f})"
            )
        floor = stats["python -c pass"]["median"]
        ratio = stats["kernel-lock --help"]["median"] / stats["kernels --help"]["median"]
        ratio_net = (stats["kernel-lock --help"]["median"] - floor) / (
            stats["kernels --help"]["median"] - floor
        )
        check_ratio = stats["kernel-lock lock --check"]["median"] / stats["kernels --help"]["median"]
        met = ratio <= TARGET
        print(
            f"\nkernel-lock --help / kernels --help (medians): {ratio:.3f}   target <= {TARGET}: "
            f"{'met' if met else 'MISSED'}"
        )
        print(
            f"  the same, interpreter start-up (python -c pass) subtracted from both: {ratio_net:.3f} (info)"
        )
        print(f"kernel-lock lock --check / kernels --help (medians): {check_ratio:.3f} (info)")

        importtime = None
        if not met:
            proc = subprocess.run(
                [
                    PYTHON,
                    "-X",
                    "importtime",
                    "-c",
                    "import sys; sys.argv=['kernel-lock','--help']; from kernel_lock.cli import main; main()",
                ],
                env=offline,
                capture_output=True,
                text=True,
            )
            rows = []
            for line in proc.stderr.splitlines():
                parts = (
                    [p.strip() for p in line[len("import time:") :].split("|")]
                    if line.startswith("import time:")
                    else []
                )
                if len(parts) == 3 and parts[1].isdigit():
                    rows.append((int(parts[1]), parts[2]))
            importtime = "\n".join(f"  {us:>9} us  {name}" for us, name in sorted(rows, reverse=True)[:25])
            print("\n-X importtime of `kernel-lock --help`, cumulative, top 25:\n" + importtime)
            print("\nTARGET MISSED")

        if args.json:
            Path(args.json).write_text(
                json.dumps(
                    {
                        "machine": {
                            "cpus": os.cpu_count(),
                            "python": platform.python_version(),
                            "platform": platform.platform(),
                            "loadavg_at_end": loadavg(),
                        },
                        "wall": stats,
                        "ratio_help": ratio,
                        "ratio_help_minus_interpreter": ratio_net,
                        "ratio_check_vs_kernels_help": check_ratio,
                        "target": TARGET,
                        "target_met": met,
                        "importtime": importtime,
                        "bytecode": "as is" if args.as_is else "PYTHONPYCACHEPREFIX in the scratch dir",
                    },
                    indent=2,
                )
                + "\n"
            )
            print(f"figures written to {args.json}")
        return 0 if met else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
