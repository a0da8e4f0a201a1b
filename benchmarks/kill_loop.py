"""Crash safety: SIGKILL `kernel-lock lock` and `kernel-lock sync` at random points, then run them normally.

Against a `LocalHub` in this process (with latency, to widen the windows), each iteration starts one command as a
subprocess, kills it with SIGKILL at a point chosen by a seeded RNG (after a random number of the hub requests it
makes, plus a random delay, so kills spread over start-up, downloads, hashing and the final writes), checks the
invariants, then runs the command again normally:

- lock: the pyproject changes every iteration; after the kill `kernels.lock` is byte-for-byte the old lock or the
  new one, never a mix; the normal run then writes exactly the new lock.
- sync (`--all-variants`, on a cache that is wiped or damaged first): after the kill, no variant passes the fast
  (fingerprint) check that loads use unless it also passes a full re-hash; the normal run exits 0 and
  `kernel-lock verify --all-variants --full` exits 0.

    python benchmarks/kill_loop.py --kills 50 --seed 0          # prints a summary; exit 1 if an invariant broke
    python benchmarks/kill_loop.py --kills 50 --json

Leftover `.kernels.lock.*.tmp` files (a killed atomic write cannot clean up after itself) are counted, not failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kernel_lock.cache.verify import check_variant  # noqa: E402
from kernel_lock.core.lockfile import parse_lock, read_lock  # noqa: E402
from kernel_lock.testing import LocalHub, populate  # noqa: E402

STATES = {
    "A": ('"kernels-community/relu" = 1', '"kernels-community/activation" = 1'),
    "B": (
        '"kernels-community/relu" = { revision = "v1.0.0" }',
        '"kernels-community/activation" = 1',
        '"kernels-community/old-relu" = 2',
    ),
}


def write_pyproject(root: Path, state: str) -> None:
    deps = "\n".join(STATES[state])
    (root / "pyproject.toml").write_text(
        f'[project]\nname = "p"\nversion = "0.1.0"\n\n[tool.kernels.dependencies]\n{deps}\n'
    )


class Loop:
    def __init__(self, hub: LocalHub, work: Path, rng: random.Random) -> None:
        self.hub = hub
        self.work = work
        self.rng = rng
        self.cache = work / "hf-cache"
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "KERNELS_CACHE")
        }
        self.env.update(
            HF_ENDPOINT=hub.url,
            HF_HUB_CACHE=str(self.cache),
            HF_HOME=str(work / "hf-home"),
            HF_HUB_DISABLE_TELEMETRY="1",
            HF_HUB_USER_AGENT_ORIGIN="kernel-lock-kill-loop",
            HF_HUB_DISABLE_XET="1",
            HF_HUB_DISABLE_PROGRESS_BARS="1",
            PYTHONPATH=str(ROOT),
        )
        self.project = work / "proj"
        self.project.mkdir()
        self.stats: Counter[str] = Counter()
        self.violations: list[str] = []

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "kernel_lock", *args, "--project", str(self.project)],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if check and proc.returncode != 0:
            self.violations.append(
                f"`kernel-lock {' '.join(args)}` exited {proc.returncode}: {proc.stderr.strip()[-500:]}"
            )
        return proc

    def killed(self, *args: str, requests: int) -> tuple[bool, int]:
        """Start a command and SIGKILL it after `requests` hub requests plus a random delay; (killed?, requests seen)."""
        self.hub.clear_log()
        proc = subprocess.Popen(
            [sys.executable, "-m", "kernel_lock", *args, "--project", str(self.project)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while proc.poll() is None and len(self.hub.requests) < requests and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(self.rng.uniform(0, 0.08))
        was_running = proc.poll() is None
        if was_running:
            proc.send_signal(signal.SIGKILL)
        proc.wait()
        return was_running, len(self.hub.requests)

    def calibrate(self) -> dict[str, int]:
        """How many hub requests an uninterrupted lock (A -> B) and sync (empty cache) make."""
        expected = {}
        lock_requests = 0
        for i, state in enumerate(
            ("A", "B", "A")
        ):  # both directions re-resolve relu (its requirement changes)
            write_pyproject(self.project, state)
            self.hub.clear_log()
            self.run("lock")
            expected[state] = (self.project / "kernels.lock").read_bytes()
            if i:  # the transitions the loop makes, not the first lock from nothing
                lock_requests = max(lock_requests, len(self.hub.requests))
        self.hub.clear_log()
        self.run("sync", "--all-variants")
        sync_requests = len(self.hub.requests)
        self.expected_locks = expected
        self.state = "A"
        return {"lock": max(lock_requests, 1), "sync": max(sync_requests, 1)}

    def lock_iteration(self, budget: int) -> None:
        old = (self.project / "kernels.lock").read_bytes()
        new_state = "B" if self.state == "A" else "A"
        write_pyproject(self.project, new_state)
        new = self.expected_locks[new_state]
        was_running, _ = self.killed("lock", requests=self.rng.randint(0, budget - 1))
        self.stats["kills_lock" if was_running else "finished_before_kill_lock"] += 1
        now = (self.project / "kernels.lock").read_bytes()
        if now == old:
            self.stats["lock_after_kill_old"] += 1
        elif now == new:
            self.stats["lock_after_kill_new"] += 1
        else:
            self.violations.append(
                f"kernels.lock after a kill is neither the old nor the new lock:\n{now[:300]!r}"
            )
        try:
            parse_lock(now.decode(), where="kernels.lock")
        except Exception as exc:
            self.violations.append(f"kernels.lock after a kill does not parse: {exc}")
        self.stats["lock_tmp_files_left"] = len(list(self.project.glob(".kernels.lock.*.tmp")))
        self.run("lock")
        if (self.project / "kernels.lock").read_bytes() != new:
            self.violations.append("the normal lock run after a kill did not write the expected lock")
        self.state = new_state

    def damage_cache(self, iteration: int) -> str:
        if iteration % 3 == 0 or not self.cache.exists():
            shutil.rmtree(self.cache, ignore_errors=True)
            return "wiped"
        files = sorted(
            p for p in self.cache.glob("kernels--*/snapshots/*/build/*/**/*") if p.is_file() or p.is_symlink()
        )
        records = sorted(self.cache.glob("kernels--*/.kernel-lock/*/*.json"))
        for path in self.rng.sample(files, min(len(files), self.rng.randint(1, 20))):
            if self.rng.random() < 0.5:
                path.unlink()
            else:
                path.unlink()
                path.write_bytes(b"tampered\n")
        for path in self.rng.sample(records, min(len(records), self.rng.randint(0, 3))):
            path.unlink()
        return "damaged"

    def sync_iteration(self, iteration: int, budget: int) -> None:
        self.stats["sync_cache_" + self.damage_cache(iteration)] += 1
        was_running, _ = self.killed("sync", "--all-variants", requests=self.rng.randint(0, budget - 1))
        self.stats["kills_sync" if was_running else "finished_before_kill_sync"] += 1
        lock = read_lock(self.project / "kernels.lock")
        for entry in lock.kernel:
            for variant in entry.variants:
                fast = check_variant(entry, variant, cache=self.cache, mode="fast")
                if fast.ok:
                    self.stats["variants_ok_after_kill"] += 1
                    if not check_variant(entry, variant, cache=self.cache, mode="full").ok:
                        self.violations.append(
                            f"{entry.repo_id} {variant} passes the fast check but not a full re-hash after a kill"
                        )
                else:
                    self.stats["variants_not_ok_after_kill"] += 1
        self.run("sync", "--all-variants")
        verify = self.run("verify", "--all-variants", "--full")
        if verify.returncode == 0:
            self.stats["verify_full_ok_after_resync"] += 1


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--kills", type=int, default=50, help="SIGKILLs to land (alternating lock and sync); default 50"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.02, help="hub latency per request, seconds")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    started = time.monotonic()
    hub = LocalHub(latency=args.latency)
    populate(hub)
    hub.start()
    hub._server.handle_error = lambda request, client_address: None
    work = Path(tempfile.mkdtemp(prefix="kernel-lock-kill-loop-"))
    try:
        loop = Loop(hub, work, rng)
        budget = loop.calibrate()
        iterations = 0
        while (
            loop.stats["kills_lock"] + loop.stats["kills_sync"] < args.kills and iterations < 3 * args.kills
        ):
            if iterations % 2 == 0:
                loop.lock_iteration(budget["lock"])
            else:
                loop.sync_iteration(iterations, budget["sync"])
            iterations += 1
            if loop.violations:
                break
        summary = {
            "iterations": iterations,
            "seed": args.seed,
            "latency_s": args.latency,
            "calibrated_requests": budget,
            "kills_survived": loop.stats["kills_lock"] + loop.stats["kills_sync"]
            if not loop.violations
            else 0,
            **dict(sorted(loop.stats.items())),
            "violations": loop.violations,
            "seconds": round(time.monotonic() - started, 1),
        }
    finally:
        hub.stop()
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        for key, value in summary.items():
            if key != "violations":
                print(f"{key:32} {value}")
        for violation in summary["violations"]:
            print(f"VIOLATION: {violation}")
        print(
            "OK: every kill left the old or new lock and a cache that ends verified"
            if not summary["violations"]
            else "FAILED"
        )
    return summary


if __name__ == "__main__":
    sys.exit(1 if main()["violations"] else 0)
