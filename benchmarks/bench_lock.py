"""Side-by-side lock benchmark: `kernel-lock lock` vs `kernels lock` (kernels 0.17.2) on a Hub with latency.

20 kernels x 50 realistic variants on the local Hub (`kernel_lock.testing.LocalHub`) with 20 ms per request.
Measures, interleaved round by round:

  (a) wall time of `kernel-lock lock --project DIR` as a subprocess (fresh lock each time),
  (b) wall time of `kernels lock DIR` as a subprocess (fresh HF cache each time),
  (c) the resolve alone, timed inside a fresh resolver process after its imports:
      `lock_dependencies(deps, hub=Hub(url))`, with and without the `Hub(...)` construction,
      plus a warm second call in the same process, and a diagnostic run in this (the server's) interpreter.

Critical-path bound for kernel-lock: (refs || kernel-status.toml) then the recursive `build/` listing,
i.e. (1 + listing pages) round trips x latency.

Targets: kernel-lock lock wall >= 10x faster than kernels lock; in-process resolve <= 2x the bound.
Exit status 1 when a target is missed, 2 when a tool failed.

With --signed every variant carries a Sigstore bundle (private instance) that kernel-lock verifies at lock,
and the per-variant verification cost is printed.

    python benchmarks/bench_lock.py [--with-deps] [--signed] [--repeat 5] [--kernels-repeat 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common as bench

ORG = "bench-org"


def build_hub(
    n_kernels: int, n_variants: int, with_deps: bool, latency: float, signer=None, digest: bool = True
):
    """The bench Hub; with a `SigstoreInstance` as `signer`, every variant is signed by the default signer.

    Without `digest`, variants are built as older builders did, with no publisher digest in `metadata.json`.
    """
    from kernel_lock.core.signers import DEFAULT_SIGNERS
    from kernel_lock.testing import LocalHub, repo_files

    def sign(files):
        return signer.sign_variants(files, DEFAULT_SIGNERS[0]) if signer else files

    hub = LocalHub(latency=0.0)
    hub.set_organization(ORG, trusted_kernel_publisher=True, fullname="Bench Org")
    names = bench.variant_names(n_variants)
    repos = {}
    for i in range(n_kernels):
        depends = [(f"{ORG}/dep-{i:02d}", 1)] if with_deps else None
        repo = hub.create_repo(f"{ORG}/kernel-{i:02d}", repo_type="kernel")
        sha = repo.commit(
            sign(
                repo_files(
                    names,
                    name=f"kernel-{i:02d}",
                    so_size=1024,
                    kernel_depends=depends,
                    undigested=() if digest else names,
                )
            ),
            branch="v1",
            message="Build kernel v1",
        )
        repo.create_branch("main", sha)
        repos[repo.repo_id] = (repo, sha)
        if with_deps:
            dep = hub.create_repo(f"{ORG}/dep-{i:02d}", repo_type="kernel")
            dsha = dep.commit(
                sign(
                    repo_files(names, name=f"dep-{i:02d}", so_size=1024, undigested=() if digest else names)
                ),
                branch="v1",
                message="Build dep v1",
            )
            dep.create_branch("main", dsha)
            repos[dep.repo_id] = (dep, dsha)
    hub.start()
    hub.latency = latency
    return hub, repos, names


def critical_path(
    hub, repos, locked_ids, latency: float, reads_metadata: bool, levels: int, reads_files: bool = False
) -> dict:
    """Longest chain of dependent requests kernel-lock needs.

    Per repo: 1 (refs || kernel-status.toml [|| org overview]) + listing pages, + 1 when it reads the variants'
    `metadata.json` (all at once, after the listing), + 1 when it fetches small files to hash them (variants
    without a publisher digest: all at once, after the metadata). A kernel-depends chain `levels` deep repeats that.
    The "2-RTT design" bound is the shortest a lock can be: refs || status, then the listing.
    """
    chains = {}
    for repo_id in locked_ids:
        repo, sha = repos[repo_id]
        commit = repo._lookup(sha)
        entries = len(repo._listing(commit, "build", True, False) or [])
        pages = max(1, math.ceil(entries / hub.tree_page_size))
        chains[repo_id] = {
            "build_entries": entries,
            "listing_pages": pages,
            "round_trips": 1 + pages + (1 if reads_metadata else 0) + (1 if reads_files else 0),
        }
    per_level = max(c["round_trips"] for c in chains.values())
    minimal = max(1 + c["listing_pages"] for c in chains.values())
    return {
        "round_trips": per_level * levels,
        "bound_s": per_level * levels * latency,
        "two_rtt_round_trips": minimal,
        "two_rtt_bound_s": minimal * latency,
        "reads_metadata": reads_metadata,
        "reads_files": reads_files,
        "levels": levels,
        "per_repo": chains,
    }


def trust_instance(project: Path, signer) -> None:
    """Make `project` verify signatures with the private instance's trusted root."""
    signer.write_trusted_root(project / "trusted_root.json")
    text = (project / "pyproject.toml").read_text()
    text = text.replace(
        "[tool.kernels.dependencies]",
        '[tool.kernels]\ntrusted-root = "trusted_root.json"\n\n[tool.kernels.dependencies]',
    )
    (project / "pyproject.toml").write_text(text)


def verification_cost(repo, sha, signer, rounds: int = 5) -> dict:
    """CPU per variant of verifying its signature (sigstore Verifier) and its listed files against the digest."""
    import tempfile

    from kernel_lock.core.signers import policy
    from kernel_lock.lock.signatures import Verifiers, Where, check_digest, verify_signature

    files = repo.files(sha)
    variants = sorted({p.split("/")[1] for p in files if p.endswith("/metadata.json.sigstore")})
    with tempfile.TemporaryDirectory() as tmp:
        root = signer.write_trusted_root(Path(tmp) / "trusted_root.json")
        start = time.perf_counter()
        verifier = Verifiers().get(root)
        build_s = time.perf_counter() - start
    listed = {v: {p.split("/", 2)[2]: None for p in files if p.startswith(f"build/{v}/")} for v in variants}
    pol = policy()
    times = []
    for _ in range(rounds):
        start = time.process_time()
        for v in variants:
            metadata = files[f"build/{v}/metadata.json"]
            where = Where(repo.repo_id, sha, v)
            verify_signature(metadata, files[f"build/{v}/metadata.json.sigstore"], pol, verifier, where)
            check_digest(where, metadata, listed[v])
        times.append((time.process_time() - start) / len(variants))
    return {
        "verifier_build_s": build_s,
        "per_variant_cpu_s": bench.Stat(times).as_json(),
        "variants": len(variants),
    }


def server_span(records) -> float:
    """Server-side span of a batch of requests: first arrival to last answer."""
    if not records:
        return 0.0
    return max(r.started + r.duration for r in records) - min(r.started for r in records)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kernels", type=int, default=20, help="number of kernels (default 20)")
    parser.add_argument("--variants", type=int, default=50, help="variants per kernel (default 50)")
    parser.add_argument(
        "--latency", type=float, default=0.02, help="server latency per request, s (default 0.02)"
    )
    parser.add_argument("--repeat", type=int, default=5, help="rounds for kernel-lock (default 5)")
    parser.add_argument("--kernels-repeat", type=int, default=3, help="rounds for `kernels lock` (default 3)")
    parser.add_argument(
        "--with-deps", action="store_true", help="each kernel's variants kernel-depend on a dep repo"
    )
    bench.add_server_nodelay_option(parser)
    parser.add_argument(
        "--signed",
        action="store_true",
        help="every variant carries a Sigstore bundle (private instance) that kernel-lock verifies at lock",
    )
    parser.add_argument(
        "--no-digest",
        action="store_true",
        help="variants without a publisher digest (older builds): kernel-lock fetches their small files to hash them",
    )
    parser.add_argument("--json", metavar="PATH", help="write all figures as JSON to PATH")
    args = parser.parse_args()

    info = bench.machine_info()
    bench.apply_server_nodelay(args)
    t_setup = time.perf_counter()
    signer = None
    if args.signed:
        from kernel_lock.testing.sigstore_instance import SigstoreInstance

        signer = SigstoreInstance("bench")
    hub, repos, names = build_hub(
        args.kernels, args.variants, args.with_deps, args.latency, signer, not args.no_digest
    )
    setup_s = time.perf_counter() - t_setup
    url = hub.url
    direct = [f"{ORG}/kernel-{i:02d}" for i in range(args.kernels)]
    work = bench.tempdir("bench-lock-")
    kl_project = bench.write_project(work / "kl-project", dict.fromkeys(direct, 1))
    k_project = bench.write_project(work / "kernels-project", dict.fromkeys(direct, 1))
    if signer:
        trust_instance(kl_project, signer)
    print(
        f"Local Hub {url}: {len(repos)} repos x {len(names)} variants, latency {args.latency * 1000:.0f} ms, "
        f"setup {setup_s:.1f} s; mode {'with-deps' if args.with_deps else 'plain'}{', signed' if signer else ''}"
        f"{', no digest' if args.no_digest else ', with digests'}"
        f"{', server TCP_NODELAY (diagnostic)' if args.server_nodelay else ''}; "
        f"{info['cpus']} CPUs, load {info['loadavg_at_start']}"
    )

    kl_runs, kl_reqs, kl_kinds = [], [], {}
    child_runs, child_reqs, child_spans = [], [], []
    k_runs, k_reqs, k_kinds = [], [], {}
    same_runs, server_cpu = [], []
    rounds = max(args.repeat, args.kernels_repeat)
    try:
        for rnd in range(rounds):
            if rnd < args.repeat:
                # (a) kernel-lock lock, subprocess, fresh lock
                (kl_project / "kernels.lock").unlink(missing_ok=True)
                cache = bench.fresh_dir(work, "cache-kl")
                hub.clear_log()
                run = bench.run_timed(
                    [bench.KERNEL_LOCK, "lock", "--project", str(kl_project)], bench.hub_env(url, cache)
                )
                bench.check_ok(run, "kernel-lock lock")
                records = hub.requests
                kl_runs.append(run.wall)
                kl_reqs.append(len(records))
                kl_kinds = bench.count_by(records, bench.request_kind)

                # (c) resolve timed inside a fresh resolver process
                hub.clear_log()
                server_cpu0 = time.process_time()  # this process is idle but for the server's threads
                run = bench.run_timed(
                    [bench.PYTHON, str(bench.CHILDREN / "resolve_in_process.py"), str(kl_project), url],
                    bench.hub_env(url, bench.fresh_dir(work, "cache-c")),
                )
                server_cpu.append(time.process_time() - server_cpu0)  # cold + warm resolve of the child
                bench.check_ok(run, "in-process resolve")
                figures = json.loads(run.stdout.strip().splitlines()[-1])
                records = hub.requests
                first_call = [r for r in records if r.started < figures["mono_cold_end"]]
                child_runs.append(figures)
                child_reqs.append(len(first_call))
                child_spans.append(server_span(first_call))
            if rnd < args.kernels_repeat:
                # (b) kernels lock, subprocess, fresh HF cache
                (k_project / "kernels.lock").unlink(missing_ok=True)
                cache = bench.fresh_dir(work, "cache-k")
                hub.clear_log()
                run = bench.run_timed(
                    [bench.KERNELS, "lock", str(k_project)], bench.hub_env(url, cache), timeout=1800
                )
                bench.check_ok(run, "kernels lock")
                records = hub.requests
                k_runs.append(run.wall)
                k_reqs.append(len(records))
                k_kinds = bench.count_by(records, bench.request_kind)
                bad = [r for r in records if r.status >= 400 and "kernel-status" not in r.path]
                if bad:
                    print(
                        f"warning: kernels lock got {len(bad)} error answers, e.g. {bad[0].method} {bad[0].path} "
                        f"-> {bad[0].status}",
                        file=sys.stderr,
                    )
            print(
                f"  round {rnd + 1}/{rounds}: "
                + (
                    f"kernel-lock {kl_runs[-1]:.3f} s, resolve {child_runs[-1]['resolve'] * 1000:.0f} ms; "
                    if rnd < args.repeat
                    else ""
                )
                + (f"kernels lock {k_runs[-1]:.2f} s" if rnd < args.kernels_repeat else ""),
                flush=True,
            )

        # Diagnostic: resolve in this interpreter, which also runs the server (shared GIL).
        from kernel_lock.errors import KernelLockWarning
        from kernel_lock.hub.client import Hub
        from kernel_lock.lock.resolve import LockRequest, lock_dependencies
        from kernel_lock.project.config import load_project

        project = load_project(kl_project)
        warnings.simplefilter("ignore", KernelLockWarning)  # the unsigned-variants notice, once per kernel
        for i in range(3):
            # kernel-lock caches metadata.json under the HF cache: keep it out of the user's, and cold.
            os.environ["HF_HUB_CACHE"] = str(bench.fresh_dir(work, f"cache-same-{i}"))
            start = time.perf_counter()
            lock_dependencies(
                project.dependencies, hub=Hub(url), request=LockRequest(signing=project.signing())
            )
            same_runs.append(time.perf_counter() - start)
    finally:
        hub.stop()

    # Check what the tools wrote.
    from kernel_lock.core.lockfile import read_lock

    kl_lock = read_lock(kl_project / "kernels.lock")
    kl_locked = [k.repo_id for k in kl_lock.kernel]
    kl_variants = sum(len(k.variants) for k in kl_lock.kernel)
    kl_signed = sum(len(k.signed_by) for k in kl_lock.kernel)
    if signer and kl_signed != kl_variants:
        print(f"kernel-lock recorded {kl_signed} signers for {kl_variants} signed variants", file=sys.stderr)
        return 2
    cost = verification_cost(*repos[direct[0]], signer) if signer else None
    k_lock = json.loads((k_project / "kernels.lock").read_text()) if k_runs else []
    k_locked = [e["dependency"]["repo-id"] for e in k_lock] if isinstance(k_lock, list) else list(k_lock)
    if not set(direct) <= set(kl_locked) or kl_variants < len(direct) * len(names):
        print(
            f"kernel-lock's lock is incomplete: {len(kl_locked)} kernels, {kl_variants} variants",
            file=sys.stderr,
        )
        return 2

    reads_metadata = any("metadata.json" in k and k.startswith("GET") for k in kl_kinds)
    small_files = kl_kinds.get("GET resolve file", 0)
    levels = 2 if args.with_deps and any(r.startswith(f"{ORG}/dep-") for r in kl_locked) else 1
    cp = critical_path(hub, repos, kl_locked, args.latency, reads_metadata, levels, small_files > 0)
    kl = bench.Stat(kl_runs)
    k = bench.Stat(k_runs) if k_runs else None
    resolve = bench.Stat([f["resolve"] for f in child_runs])
    hub_and_resolve = bench.Stat([f["hub_and_resolve"] for f in child_runs])
    warm = bench.Stat([f["warm_resolve"] for f in child_runs])
    imports = bench.Stat([f["imports"] for f in child_runs])
    span = bench.Stat(child_spans)
    same = bench.Stat(same_runs)
    speedup = k.median / kl.median if k else float("nan")
    ratio = hub_and_resolve.median / cp["bound_s"]
    ratio_excl = resolve.median / cp["bound_s"]
    ratio_2rtt = hub_and_resolve.median / cp["two_rtt_bound_s"]
    k_seq_bound = (bench.Stat([float(x) for x in k_reqs]).median * args.latency) if k_reqs else float("nan")

    print("\n== Wall time (subprocess, interpreter start included) ==")
    rows = [
        [
            "kernel-lock lock",
            kl.fmt(),
            f"{bench.Stat([float(x) for x in kl_reqs]).median:.0f}",
            f"{len(kl_locked)}",
            f"{kl_variants}",
        ]
    ]
    if k:
        rows.append(
            [
                "kernels lock (0.17.2)",
                k.fmt(),
                f"{bench.Stat([float(x) for x in k_reqs]).median:.0f}",
                f"{len(k_locked)}",
                "0 (no hashes)",
            ]
        )
    print(bench.table(rows, ["tool", "wall", "requests", "kernels locked", "variant hashes"]))
    if k:
        print(
            f"speed-up kernel-lock vs kernels lock (medians): {speedup:.1f}x   "
            f"(kernels lock makes its {k_reqs[-1]} requests one after another: >= {k_seq_bound:.1f} s of latency)"
        )

    print("\n== Resolve inside the process (fresh resolver process, after imports) ==")
    rows = [
        ["Hub() + lock_dependencies (cold)", hub_and_resolve.fmt("ms", 1000, 1)],
        ["lock_dependencies only (cold)", resolve.fmt("ms", 1000, 1)],
        ["lock_dependencies, 2nd call (warm conns)", warm.fmt("ms", 1000, 1)],
        [
            "client CPU of the cold call (all threads)",
            bench.Stat([f["resolve_cpu"] for f in child_runs]).fmt("ms", 1000, 1),
        ],
        ["server CPU, cold + warm resolve (LocalHub)", bench.Stat(server_cpu).fmt("ms", 1000, 1)],
        ["server-side span of the cold call", span.fmt("ms", 1000, 1)],
        ["imports before timing", imports.fmt("ms", 1000, 1)],
        ["same interpreter as server (diagnostic)", same.fmt("ms", 1000, 1)],
    ]
    print(bench.table(rows, ["measurement", "time"]))
    per = next(iter(cp["per_repo"].values()))
    print(
        f"critical path: refs || kernel-status.toml, then build/ listing ({per['build_entries']} entries, "
        f"{per['listing_pages']} page(s) of {hub.tree_page_size})"
        + (", then every variant's metadata.json (kernel-lock reads them now)" if reads_metadata else "")
        + (f", x {levels} levels of kernel-depends" if levels > 1 else "")
        + f" = {cp['round_trips']} round trips x {args.latency * 1000:.0f} ms = {cp['bound_s'] * 1000:.0f} ms"
        + f"  (2-RTT design bound: {cp['two_rtt_bound_s'] * 1000:.0f} ms)"
    )
    print(
        f"ratio resolve / bound (medians): {ratio:.2f}x incl. Hub(), {ratio_excl:.2f}x excl. Hub(); "
        f"vs the 2-RTT bound {ratio_2rtt:.2f}x  (requests per cold resolve: {child_reqs[-1]})"
    )

    if cost:
        print(
            f"\nsignatures: {kl_signed} of {kl_variants} variants verified and recorded at lock; per variant "
            f"{cost['per_variant_cpu_s']['median'] * 1000:.2f} ms CPU (sigstore verify_artifact + digest check, "
            f"median of 5 x {cost['variants']}), verifier built once in {cost['verifier_build_s'] * 1000:.1f} ms"
        )

    print("\n== Requests by kind (last run of each tool) ==")
    kinds = sorted(set(kl_kinds) | set(k_kinds), key=lambda x: -(k_kinds.get(x, 0) + kl_kinds.get(x, 0)))
    print(
        bench.table(
            [[kind, str(kl_kinds.get(kind, 0)), str(k_kinds.get(kind, 0))] for kind in kinds],
            ["request", "kernel-lock", "kernels lock"],
        )
    )
    print(
        f"\nsmall files fetched by kernel-lock to hash them (variants without a publisher digest): {small_files}"
        f" (one per distinct git blob; {kl_variants} variants locked)"
    )
    if args.with_deps:
        print(
            f"\nwith-deps: kernels lock locked {len(k_locked)} repos; kernel-lock locked {len(kl_locked)}"
            + ("" if len(kl_locked) > len(direct) else " (direct only: it does not follow kernel-depends)")
        )

    targets = [
        (
            "kernel-lock lock >= 10x faster than kernels lock",
            k is not None and speedup >= 10,
            f"{speedup:.1f}x",
        ),
        ("in-process resolve (incl. Hub()) <= 2x critical-path bound", ratio <= 2.0, f"{ratio:.2f}x"),
    ]
    print("\n== Targets ==")
    print(
        bench.table(
            [[name, "MET" if ok else "MISSED", got] for name, ok, got in targets], ["target", "result", "got"]
        )
    )

    bench.dump_json(
        args.json,
        {
            "benchmark": "lock",
            "mode": "with-deps" if args.with_deps else "plain",
            "signed": bool(signer),
            "signature_verification": cost,
            "digest": not args.no_digest,
            "small_files_fetched": small_files,
            "machine": info,
            "kernels": args.kernels,
            "variants": len(names),
            "latency_s": args.latency,
            "repos_on_hub": len(repos),
            "kernel_lock_wall": kl.as_json(),
            "kernels_lock_wall": k.as_json() if k else None,
            "speedup": speedup,
            "kernel_lock_requests": kl_reqs,
            "kernels_lock_requests": k_reqs,
            "kernel_lock_request_kinds": kl_kinds,
            "kernels_lock_request_kinds": k_kinds,
            "resolve_in_process": resolve.as_json(),
            "hub_and_resolve_in_process": hub_and_resolve.as_json(),
            "warm_resolve": warm.as_json(),
            "resolve_cpu": bench.Stat([f["resolve_cpu"] for f in child_runs]).as_json(),
            "server_cpu_per_resolve": bench.Stat(server_cpu).as_json(),
            "server_nodelay": args.server_nodelay,
            "server_span": span.as_json(),
            "same_interpreter_resolve": same.as_json(),
            "critical_path": cp,
            "ratio_to_bound": ratio,
            "ratio_to_bound_excl_hub": ratio_excl,
            "ratio_to_two_rtt_bound": ratio_2rtt,
            "kernels_locked": {"kernel-lock": len(kl_locked), "kernels": len(k_locked)},
            "targets": {name: {"met": ok, "got": got} for name, ok, got in targets},
        },
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0 if all(ok for _, ok, _ in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
