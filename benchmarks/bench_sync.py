"""Side-by-side sync benchmark: cold `kernel-lock sync` vs `kernels download` vs bare `snapshot_download`.

20 kernels on the local Hub (`kernel_lock.testing.LocalHub`) with 20 ms per request. Each kernel has a few
variants; the one selected for `torch213-cxx11-cpu-x86_64-linux` holds a 25 MB `.so` (Git LFS) plus small
files, so the selected variants total 500 MB. Both tools lock first (kernel-lock and `kernels lock` write
different lock formats, so each gets its own project directory with the same dependencies). Then, round by
round, each with a fresh empty HF_HUB_CACHE:

  (1) cold `kernel-lock sync --target torch213-cxx11-cpu-x86_64-linux --project DIR`   (verification included)
  (2) `kernels download DIR`                                      (kernels 0.17.2, variant for this machine)
  (3) bare `huggingface_hub.snapshot_download(..., allow_patterns=["build/<variant>/*"])` of the same files,
      sequential over the 20 kernels and concurrent (thread pool of 20)
  (4) no-op `kernel-lock sync` with everything in place, with `--target` and with the detected environment

Every run is a subprocess timed from spawn to exit. After each run the cache is checked: every expected file
of every selected variant must be there with the right size (byte totals are printed). Before all that, the
server's raw throughput is measured with a plain GET loop, to tell whether the server is the bottleneck.

Targets: cold kernel-lock sync <= `kernels download`, and <= 1.15x the bare download (the faster of
sequential/concurrent); no-op sync < 0.5 s with zero requests. Exit 1 when a target is missed, 2 on failure.

    python benchmarks/bench_sync.py [--repeat 3] [--noop-repeat 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as bench

ORG = "bench-org"
TARGET = "torch213-cxx11-cpu-x86_64-linux"
OTHER_VARIANTS = (
    "torch-cpu",
    "torch212-cxx11-cpu-x86_64-linux",
    "torch213-cxx11-cu126-x86_64-linux",
    "torch213-cxx11-cu130-x86_64-linux",
    "torch213-metal-aarch64-darwin",
)


def build_hub(n_kernels: int, so_size: int, latency: float):
    from kernel_lock.testing import LocalHub, repo_files, variant_files

    hub = LocalHub(latency=0.0)
    hub.set_organization(ORG, trusted_kernel_publisher=True, fullname="Bench Org")
    expected: dict[str, tuple[str, dict[str, int]]] = {}
    for i in range(n_kernels):
        name = f"sync-{i:02d}"
        files = repo_files(OTHER_VARIANTS, name=name, so_size=4096)
        big = variant_files(TARGET, name=name, so_size=so_size)
        files.update({f"build/{TARGET}/{path}": data for path, data in big.items()})
        repo = hub.create_repo(f"{ORG}/{name}", repo_type="kernel")
        sha = repo.commit(files, branch="v1", message="Build v1")
        repo.create_branch("main", sha)
        expected[repo.repo_id] = (sha, {path: len(data) for path, data in big.items()})
    hub.start()
    hub.latency = latency
    return hub, expected


def landed(
    cache: Path, expected: dict[str, tuple[str, dict[str, int]]], variant: str = TARGET
) -> tuple[int, int, list[str]]:
    """(files found, bytes found, problems): each expected file of each selected variant, with its size."""
    files = size = 0
    problems = []
    for repo_id, (sha, wanted) in expected.items():
        vdir = cache / f"kernels--{repo_id.replace('/', '--')}" / "snapshots" / sha / "build" / variant
        for rel, n in wanted.items():
            path = vdir / rel
            try:
                got = path.stat().st_size
            except OSError:
                problems.append(f"{repo_id}: missing {rel}")
                continue
            if got != n:
                problems.append(f"{repo_id}: {rel} has {got} bytes, expected {n}")
                continue
            files += 1
            size += got
    return files, size, problems


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kernels", type=int, default=20, help="number of kernels (default 20)")
    parser.add_argument(
        "--so-mb", type=float, default=25.0, help="size of each selected .so in MB (default 25)"
    )
    parser.add_argument(
        "--latency", type=float, default=0.02, help="server latency per request, s (default 0.02)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="rounds of cold runs (default 3)")
    parser.add_argument("--noop-repeat", type=int, default=5, help="no-op sync runs of each kind (default 5)")
    bench.add_server_nodelay_option(parser)
    parser.add_argument("--json", metavar="PATH", help="write all figures as JSON to PATH")
    args = parser.parse_args()

    info = bench.machine_info()
    bench.apply_server_nodelay(args)
    t0 = time.perf_counter()
    hub, expected = build_hub(args.kernels, int(args.so_mb * 1_000_000), args.latency)
    url = hub.url
    want_files = sum(len(w) for _, w in expected.values())
    want_bytes = sum(sum(w.values()) for _, w in expected.values())
    print(
        f"Local Hub {url}: {args.kernels} kernels, selected variants {want_files} files / {want_bytes / 1e6:.1f} MB, "
        f"latency {args.latency * 1000:.0f} ms{', server TCP_NODELAY (diagnostic)' if args.server_nodelay else ''}; "
        f"setup {time.perf_counter() - t0:.1f} s; {info['cpus']} CPUs, load {info['loadavg_at_start']}",
        flush=True,
    )

    work = bench.tempdir("bench-sync-")
    deps = dict.fromkeys(expected, 1)
    kl_project = bench.write_project(work / "kl-project", deps)
    k_project = bench.write_project(work / "kernels-project", deps)
    results: dict[str, dict] = {}
    try:
        # Raw server throughput: a plain GET loop on the LFS objects (CDN URLs), sequential and 8-way.
        lfs_paths = []
        for repo_id, (sha, wanted) in expected.items():
            rel = next(p for p in wanted if p.endswith(".so"))
            data = hub.repo(repo_id).files(sha)[f"build/{TARGET}/{rel}"]
            import hashlib

            lfs_paths.append(f"/cdn/lfs/{hashlib.sha256(data).hexdigest()}/{rel}")
        throughput = {}
        for workers in (1, 8):
            run = bench.run_timed(
                [
                    bench.PYTHON,
                    str(bench.CHILDREN / "download_throughput.py"),
                    url,
                    str(workers),
                    "1",
                    *lfs_paths,
                ],
                bench.hub_env(url, None),
            )
            bench.check_ok(run, "throughput probe")
            t = json.loads(run.stdout.strip().splitlines()[-1])
            throughput[workers] = t["bytes"] / t["wall"] / 1e6
        print(
            f"server raw throughput (GET loop of the 20 x {args.so_mb:g} MB objects, in-process client "
            f"httpx2): 1 stream {throughput[1]:.0f} MB/s, 8 streams {throughput[8]:.0f} MB/s",
            flush=True,
        )

        # Lock with both tools (timed only for information).
        hub.clear_log()
        run = bench.run_timed(
            [bench.KERNEL_LOCK, "lock", "--project", str(kl_project)],
            bench.hub_env(url, bench.fresh_dir(work, "c-lock")),
        )
        bench.check_ok(run, "kernel-lock lock")
        run = bench.run_timed(
            [bench.KERNELS, "lock", str(k_project)], bench.hub_env(url, bench.fresh_dir(work, "c-lock"))
        )
        bench.check_ok(run, "kernels lock")
        k_lock = json.loads((k_project / "kernels.lock").read_text())
        assert {e["dependency"]["repo-id"] for e in k_lock} == set(expected), "kernels lock is incomplete"
        from kernel_lock.core.lockfile import read_lock

        kl_lock = read_lock(kl_project / "kernels.lock")
        assert {k.repo_id: k.commit for k in kl_lock.kernel} == {r: s for r, (s, _) in expected.items()}

        jobs = [f"{r}:{s}:{TARGET}" for r, (s, _) in expected.items()]
        tools = {
            "kernel-lock sync (cold)": lambda: [
                bench.KERNEL_LOCK,
                "sync",
                "--target",
                TARGET,
                "--project",
                str(kl_project),
            ],
            "kernels download": lambda: [bench.KERNELS, "download", str(k_project)],
            "bare snapshot_download, sequential": lambda: [
                bench.PYTHON,
                str(bench.CHILDREN / "bare_snapshot_download.py"),
                "sequential",
                *jobs,
            ],
            "bare snapshot_download, concurrent": lambda: [
                bench.PYTHON,
                str(bench.CHILDREN / "bare_snapshot_download.py"),
                "concurrent",
                *jobs,
            ],
        }
        for name in tools:
            results[name] = {"wall": [], "requests": [], "bytes": [], "kinds": {}}
        noop_cache = None
        for rnd in range(args.repeat):
            line = []
            for name, cmd in tools.items():
                cache = bench.fresh_dir(work, f"cache-{rnd}-{len(line)}")
                hub.clear_log()
                run = bench.run_timed(cmd(), bench.hub_env(url, cache), timeout=600)
                bench.check_ok(run, name)
                records = hub.requests
                files, size, problems = landed(cache, expected)
                if problems or files != want_files:
                    print(
                        f"{name}: the files did not land: {problems[:5]} ({len(problems)} problems)",
                        file=sys.stderr,
                    )
                    return 2
                res = results[name]
                res["wall"].append(run.wall)
                res["requests"].append(len(records))
                res["bytes"].append(size)
                res["kinds"] = bench.count_by(records, bench.request_kind)
                res["bytes_served"] = sum(r.bytes_sent for r in records)
                line.append(f"{name.split(' (')[0].split(',')[-1].strip()} {run.wall:.2f} s")
                if name.startswith("kernel-lock") and rnd == args.repeat - 1:
                    noop_cache = cache  # keep the last synced cache for the no-op runs
                else:
                    shutil.rmtree(cache, ignore_errors=True)
            print(f"  round {rnd + 1}/{args.repeat}: " + "; ".join(line), flush=True)

        # (4) no-op sync: everything is in place; wall time and requests.
        noop = {}
        for label, extra in (
            ("no-op sync --target", ["--target", TARGET]),
            ("no-op sync (detected env)", []),
        ):
            walls, reqs = [], []
            for _ in range(args.noop_repeat):
                hub.clear_log()
                run = bench.run_timed(
                    [bench.KERNEL_LOCK, "sync", *extra, "--project", str(kl_project)],
                    bench.hub_env(url, noop_cache),
                )
                bench.check_ok(run, label)
                walls.append(run.wall)
                reqs.append(len(hub.requests))
            noop[label] = {"wall": walls, "requests": reqs}
        files, size, problems = landed(noop_cache, expected)
        assert not problems and size == want_bytes
    finally:
        hub.stop()
        shutil.rmtree(work, ignore_errors=True)

    stats = {name: bench.Stat(r["wall"]) for name, r in results.items()}
    print(
        f"\n== Cold sync of {want_files} files / {want_bytes / 1e6:.0f} MB (subprocess wall, fresh cache each) =="
    )
    rows = []
    for name, r in results.items():
        st = stats[name]
        rows.append(
            [
                name,
                st.fmt(),
                f"{want_bytes / st.median / 1e6:.0f}",
                f"{bench.Stat([float(x) for x in r['requests']]).median:.0f}",
                f"{r['bytes'][-1] / 1e6:.1f} MB ok",
            ]
        )
    print(bench.table(rows, ["tool", "wall", "MB/s", "requests", "landed"]))
    print(
        f"server raw throughput: 1 stream {throughput[1]:.0f} MB/s, 8 streams {throughput[8]:.0f} MB/s "
        f"(=> >= {want_bytes / 1e6 / max(throughput.values()):.2f} s just to move {want_bytes / 1e6:.0f} MB)"
    )

    print("\n== Requests by kind (last cold run of each tool) ==")
    names = list(results)
    kinds = sorted({k for r in results.values() for k in r["kinds"]})
    print(
        bench.table(
            [[k, *(str(results[n]["kinds"].get(k, 0)) for n in names)] for k in kinds],
            ["request", *[n.replace("bare snapshot_download", "bare") for n in names]],
        )
    )

    print("\n== No-op kernel-lock sync (everything synced) ==")
    print(
        bench.table(
            [[label, bench.Stat(v["wall"]).fmt(), str(max(v["requests"]))] for label, v in noop.items()],
            ["run", "wall", "requests (max)"],
        )
    )

    kl = stats["kernel-lock sync (cold)"].median
    kd = stats["kernels download"].median
    bare = min(
        stats["bare snapshot_download, sequential"].median, stats["bare snapshot_download, concurrent"].median
    )
    targets = [
        ("cold kernel-lock sync <= kernels download", kl <= kd, f"{kl:.2f} s vs {kd:.2f} s ({kl / kd:.2f}x)"),
        (
            "cold kernel-lock sync <= 1.15x bare download (faster bare)",
            kl <= 1.15 * bare,
            f"{kl:.2f} s vs {bare:.2f} s ({kl / bare:.2f}x)",
        ),
    ]
    for label, v in noop.items():
        med = bench.Stat(v["wall"]).median
        targets.append((f"{label} < 0.5 s", med < 0.5, f"{med:.3f} s (median)"))
        targets.append((f"{label}: zero requests", max(v["requests"]) == 0, f"{max(v['requests'])} requests"))
    print("\n== Targets ==")
    print(
        bench.table(
            [[n, "MET" if ok else "MISSED", got] for n, ok, got in targets], ["target", "result", "got"]
        )
    )

    bench.dump_json(
        args.json,
        {
            "benchmark": "sync",
            "machine": info,
            "kernels": args.kernels,
            "latency_s": args.latency,
            "server_nodelay": args.server_nodelay,
            "selected_files": want_files,
            "selected_bytes": want_bytes,
            "server_throughput_MBps": throughput,
            "cold": {n: {**r, "stat": stats[n].as_json()} for n, r in results.items()},
            "noop": {label: {**v, "stat": bench.Stat(v["wall"]).as_json()} for label, v in noop.items()},
            "targets": {n: {"met": ok, "got": got} for n, ok, got in targets},
        },
    )
    return 0 if all(ok for _, ok, _ in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
