"""Concurrency: several `kernel-lock sync` processes on one cache, two `lock` runs at once, syncs in many threads.

Every run must succeed and leave verified variants (`verify --full`), and the lock must be one complete, valid
file. Hub latency widens the windows in which runs overlap. (Loads in many threads of one process are covered by
tests/test_load.py.) Set `KERNEL_LOCK_COUNTS=/path/file.jsonl` to collect the number of concurrent runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import pytest

from kernel_lock.cache.sync import selected_variants, sync_project
from kernel_lock.cache.verify import VariantCheck
from kernel_lock.core.lockfile import read_lock
from kernel_lock.core.target import Target, parse_target
from kernel_lock.testing.fixtures import CPU_VARIANT

RELU = '"kernels-community/relu" = 1'
ACTIVATION = '"kernels-community/activation" = 1'
OLD_RELU = '"kernels-community/old-relu" = 2'
COUNTS: Counter[str] = Counter()


def run_all(commands: list[list[str]], timeout: float = 120) -> list[subprocess.CompletedProcess]:
    """Start every `kernel-lock` command at once (separate processes) and wait for all of them."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "kernel_lock", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in commands
    ]
    done = []
    for args, proc in zip(commands, procs, strict=False):
        out, err = proc.communicate(timeout=timeout)
        done.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    COUNTS["concurrent_runs"] += len(commands)
    return done


def verify_full(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kernel_lock", "verify", "--project", str(root), "--full", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def locked(hub_env, make_project, cli) -> Path:
    root = make_project(RELU, ACTIVATION, OLD_RELU)
    assert cli("lock", "--project", str(root)).exit_code == 0
    hub_env.clear_log()
    return root


def test_parallel_syncs_of_the_same_variants_share_one_cache(hub_env, locked) -> None:
    hub_env.latency = 0.01
    args = ["sync", "--project", str(locked), "--variant", CPU_VARIANT, "--variant", "torch-cpu"]
    results = run_all([args] * 4)
    for result in results:
        assert result.returncode == 0, result.stderr
    check = verify_full(locked, "--variant", CPU_VARIANT, "--variant", "torch-cpu")
    assert check.returncode == 0, check.stdout + check.stderr
    # The per-variant file lock serializes the work: each file is fetched by one process, not four.
    gets = Counter(r.path for r in hub_env.requests if r.method == "GET" and "/resolve/" in r.path)
    assert gets and max(gets.values()) == 1, gets.most_common(3)


def test_parallel_syncs_of_different_targets_share_one_cache(hub_env, locked) -> None:
    hub_env.latency = 0.01
    base = ["sync", "--project", str(locked)]
    variants = [
        "torch-cpu",
        "torch213-metal-aarch64-darwin",
        "torch213-cxx11-cu126-x86_64-linux",
        CPU_VARIANT,
    ]
    results = run_all(
        [
            [*base, *(f"--variant={v}" for v in variants)],
            [*base, "--target", "torch213-cxx11-cu128-x86_64-linux"],
            [*base, "--target", CPU_VARIANT],
            [*base, "--variant", "torch-cpu", "--variant", "torch213-metal-aarch64-darwin"],
        ]
    )
    for result in results:
        assert result.returncode == 0, result.stderr
    for args in (["--target", "torch213-cxx11-cu128-x86_64-linux"], [f"--variant={v}" for v in variants]):
        check = verify_full(locked, *args)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "ok kernels-community/relu" in check.stdout


def test_two_lock_runs_at_once_leave_one_complete_valid_lock(hub_env, make_project, cli, tmp_path) -> None:
    hub_env.latency = 0.02
    states = [(RELU, ACTIVATION), (RELU, ACTIVATION, OLD_RELU)]
    expected = {}
    for i, state in enumerate(states):  # the lock each state must end with, made serially elsewhere
        ref = make_project(*state, name=f"ref{i}")
        assert cli("lock", "--project", str(ref)).exit_code == 0
        expected[i] = (ref / "kernels.lock").read_bytes()
    root = make_project(*states[0], name="proj")
    for i, state in enumerate(states):
        make_project(*state, name="proj")
        results = run_all([["lock", "--project", str(root)]] * 2)
        for result in results:
            assert result.returncode == 0, result.stderr
        assert (root / "kernels.lock").read_bytes() == expected[i]
        assert sorted(p.name for p in root.iterdir()) == ["kernels.lock", "pyproject.toml"], (
            "no temp file left"
        )
        assert cli("lock", "--check", "--project", str(root)).exit_code == 0


def test_syncs_in_many_threads_of_one_process(hub_env, locked) -> None:
    hub_env.latency = 0.005
    targets = [parse_target("torch213-cxx11-cu128-x86_64-linux"), parse_target(CPU_VARIANT)] * 3
    lock = read_lock(locked / "kernels.lock")
    errors: list[BaseException] = []
    outcomes: list[tuple[Target, list[VariantCheck]]] = []

    def one(target: Target) -> None:
        try:
            outcomes.append((target, sync_project(locked, target=target).checks))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(t,)) for t in targets]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    COUNTS["concurrent_runs"] += len(threads)
    assert not errors, errors
    assert len(outcomes) == len(threads)
    for target, checks in outcomes:
        expected = {(e.repo_id, e.commit, variant) for e, variant in selected_variants(lock, target=target)}
        assert len(expected) == 3, "relu 1, activation and old-relu (relu 2) each have a variant for both"
        assert sorted((c.repo_id, c.commit, c.variant, c.status) for c in checks) == sorted(
            (*key, "ok") for key in expected
        )
    check = verify_full(locked, "--target", "torch213-cxx11-cu128-x86_64-linux")
    assert check.returncode == 0, check.stdout + check.stderr


def _slow_requested(config: pytest.Config) -> bool:
    markexpr = config.getoption("markexpr", default="") or ""
    if "not slow" in markexpr:
        return False
    return os.environ.get("KERNEL_LOCK_SLOW") == "1" or os.environ.get("CI") == "true" or "slow" in markexpr


@pytest.mark.slow
def test_kill_loop_50_sigkills(request: pytest.FixtureRequest) -> None:
    """50 SIGKILLs at seeded random points of `lock` and `sync` (benchmarks/kill_loop.py), each followed by a normal run.

    Takes minutes: runs in CI (CI=true), or with `-m slow` or KERNEL_LOCK_SLOW=1.
    """
    if not _slow_requested(request.config):
        pytest.skip(
            "slow: runs in CI; here with `pytest -m slow` or KERNEL_LOCK_SLOW=1 (or `python benchmarks/kill_loop.py`)"
        )
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    try:
        import kill_loop
    finally:
        sys.path.pop(0)
    summary = kill_loop.main(["--kills", "50", "--seed", "0", "--json"])
    assert summary["violations"] == []
    assert summary["kills_lock"] + summary["kills_sync"] >= 50
    assert (
        summary["verify_full_ok_after_resync"] == summary["sync_cache_wiped"] + summary["sync_cache_damaged"]
    )
    COUNTS["kills_survived"] += summary["kills_survived"]
