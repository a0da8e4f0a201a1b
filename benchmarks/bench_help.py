"""Command-line start-up benchmark: `kernel-lock --help` vs `kernels --help` (kernels 0.17.2), plus
`kernel-lock lock --check` and `kernel-lock lock` on an up-to-date project.

The project declares one kernel (`bench-org/bigkernel = 1`) on the local Hub (`kernel_lock.testing.LocalHub`);
it is locked with `kernel-lock lock`, then the Hub is stopped: `lock --check` and `lock` run with
`HF_HUB_OFFLINE=1` and must answer "up to date" / leave the lock unchanged (exit 0) without it. `python -c
pass` is timed as the interpreter floor.

Every command runs as a fresh process (the console scripts in the venv's bin/), interleaved round by round
(order rotated), and its wall time from spawn to exit is taken. Reported: median (min .. max).

Target: median wall of `kernel-lock --help` <= 1/4 of the median wall of `kernels --help`.
Exit status 1 when the target is missed (then `-X importtime` of `kernel-lock --help` is printed), 2 when a
command failed.

    .venv/bin/python benchmarks/bench_help.py [--repeat 15] [--json out.json]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as bench

REPO = "bench-org/bigkernel"
TARGET = 0.25
NOOP_LOCK = "kernel-lock lock (up to date)"
CHECK = "kernel-lock lock --check"
EXPECTED_OUTPUT = {
    NOOP_LOCK: "unchanged",
    CHECK: "up to date",
    "kernel-lock --help": "Usage",
    "kernels --help": "usage",
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=15, help="runs of each command (default 15, >= 10)")
    ap.add_argument("--json", metavar="PATH", help="write every figure to PATH")
    bench.add_bytecode_option(ap)
    args = ap.parse_args()

    from kernel_lock.testing import LocalHub, repo_files

    work = bench.tempdir("kl-bench-help-")
    pycache = None if args.as_is else work / "pycache"
    try:
        cache = work / "hub-cache"
        project = bench.write_project(work / "project", {REPO: 1})
        hub = LocalHub()
        hub.set_organization("bench-org", trusted_kernel_publisher=True)
        repo = hub.create_repo(REPO, repo_type="kernel")
        commit = repo.commit(
            repo_files(["torch-cpu", "torch213-cxx11-cpu-x86_64-linux"], name="bigkernel"), branch="v1"
        )
        repo.create_branch("main", commit)
        with hub:
            lock = [bench.KERNEL_LOCK, "lock", "--project", str(project)]
            bench.run_checked(lock, bench.hub_env(hub.url, cache, pycache=pycache), "kernel-lock lock")
        offline = bench.offline_env(cache, pycache=pycache)

        cases: dict[str, list[str]] = {
            "python -c pass": [bench.PYTHON, "-c", "pass"],
            "kernel-lock --help": [bench.KERNEL_LOCK, "--help"],
            "kernels --help": [bench.KERNELS, "--help"],
            CHECK: [bench.KERNEL_LOCK, "lock", "--check", "--project", str(project)],
            NOOP_LOCK: lock,
        }
        # warm-up (page cache, .pyc): two untimed runs each; also check what they print
        for name, cmd in [*cases.items(), *cases.items()]:
            run = bench.run_checked(cmd, offline, name)
            expected = EXPECTED_OUTPUT.get(name)
            if expected and expected.lower() not in run.stdout.lower():
                sys.stderr.write(f"{name} did not print {expected!r}: {run.stdout[:500]}{run.stderr[:500]}\n")
                return 2

        names = list(cases)
        walls: dict[str, list[float]] = {n: [] for n in names}
        print(f"bench_help: {args.repeat} runs each, interleaved; load {bench.loadavg()}")
        for i in range(args.repeat):
            k = i % len(names)
            for name in names[k:] + names[:k]:
                walls[name].append(bench.run_checked(cases[name], offline, name).wall)

        stats = {n: bench.Stat(v) for n, v in walls.items()}
        print(
            "\n"
            + bench.table([[n, stats[n].ms()] for n in names], ["command", "wall ms: median (min .. max)"])
        )
        floor = stats["python -c pass"].median
        help_ours, help_theirs = stats["kernel-lock --help"].median, stats["kernels --help"].median
        ratio = help_ours / help_theirs
        ratio_net = (help_ours - floor) / (help_theirs - floor)
        check_ratio = stats[CHECK].median / help_theirs
        noop_vs_check = stats[NOOP_LOCK].median / stats[CHECK].median
        met = ratio <= TARGET
        print(
            f"\nkernel-lock --help / kernels --help (medians): {ratio:.3f}   target <= {TARGET}: "
            f"{'met' if met else 'MISSED'}"
        )
        print(
            f"  the same, interpreter start-up (python -c pass) subtracted from both: {ratio_net:.3f} (info)"
        )
        print(f"kernel-lock lock --check / kernels --help (medians): {check_ratio:.3f} (info)")
        print(f"up-to-date kernel-lock lock / lock --check (medians): {noop_vs_check:.3f} (info)")

        top_imports = None
        if not met:
            code = "import sys; sys.argv=['kernel-lock','--help']; from kernel_lock.cli import main; main()"
            rows = bench.importtime(
                bench.run_timed([bench.PYTHON, "-X", "importtime", "-c", code], offline).stderr
            )
            top = sorted(((cumulative, name) for _, cumulative, name in rows), reverse=True)[:25]
            top_imports = "\n".join(f"  {us:>9} us  {name}" for us, name in top)
            print("\n-X importtime of `kernel-lock --help`, cumulative, top 25:\n" + top_imports)
            print("\nTARGET MISSED")

        bench.dump_json(
            args.json,
            {
                "machine": {**bench.machine_info(), "loadavg_at_end": bench.loadavg()},
                "wall": {n: s.as_json() for n, s in stats.items()},
                "ratio_help": ratio,
                "ratio_help_minus_interpreter": ratio_net,
                "ratio_check_vs_kernels_help": check_ratio,
                "ratio_noop_lock_vs_check": noop_vs_check,
                "target": TARGET,
                "target_met": met,
                "importtime": top_imports,
                "bytecode": "as is" if args.as_is else "PYTHONPYCACHEPREFIX in the scratch dir",
            },
        )
        return 0 if met else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
