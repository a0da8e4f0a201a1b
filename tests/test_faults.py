"""Network faults injected by the local Hub: transient ones are retried and survived, persistent ones fail cleanly.

Bursts of 500/502/503/429 (with `Retry-After`), stalled answers, connection resets and truncated bodies hit the
refs, the `kernel-status.toml` probe, the tree listings and the file downloads (git files and LFS files on the
CDN host). A transient fault ends in success; a persistent one in exit 3 with a message naming the repo and what
failed. `lock` never writes a partial lock; `sync` never leaves a variant that a later load would accept without
verifying it. Set `KERNEL_LOCK_COUNTS=/path/file.jsonl` to collect the number of faults injected and survived.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from kernel_lock.cache.verify import check_variant
from kernel_lock.core.cache_layout import hub_cache_dir
from kernel_lock.core.lockfile import read_lock
from kernel_lock.hub.client import MAX_ATTEMPTS
from kernel_lock.testing import Fault, LocalHub
from kernel_lock.testing.fixtures import CPU_VARIANT

RELU = '"kernels-community/relu" = 1'
ACTIVATION = '"kernels-community/activation" = 1'
STATUSES = [500, 502, 503, 429]

COUNTS: Counter[str] = Counter()


class Injector:
    """Adds faults to a hub and counts how many requests each one hit (from the hub's pending-fault list)."""

    def __init__(self, hub: LocalHub) -> None:
        self.hub = hub
        self.added: list[Fault] = []

    def add(self, *faults: Fault) -> None:
        for fault in faults:
            assert fault.count is not None, "use add_persistent for faults without a count"
            self.hub.add_fault(fault)
            self.added.append(fault)

    def consumed(self) -> int:
        """How many requests the added faults hit so far (their counts, less what is still pending)."""
        left = sum(f.count or 0 for f in self.hub._faults)
        return sum(f.count or 0 for f in self.added) - left

    def survived(self) -> int:
        """Record every consumed fault as survived (call after a run that succeeded)."""
        n = self.consumed()
        COUNTS["faults_injected"] += n
        COUNTS["faults_survived"] += n
        return n


def faulted_requests(hub: LocalHub) -> int:
    """Requests in the log that an injected fault hit."""
    return sum(1 for r in hub.requests if r.faults)


@pytest.fixture
def project(hub_env, make_project) -> Path:
    return make_project(RELU, ACTIVATION)


@pytest.fixture
def locked(hub_env, project, cli) -> Path:
    assert cli("lock", "--project", str(project)).exit_code == 0
    hub_env.clear_log()
    return project


def assert_clean_error(run, code: int, *says: str) -> None:
    assert run.exit_code == code, (run.exit_code, run.stderr)
    assert any(line.startswith("error: ") for line in run.stderr.splitlines()), run.stderr
    assert "Traceback" not in run.stderr and "error: unexpected" not in run.stderr, run.stderr
    for text in says:
        assert text in run.stderr, run.stderr


def nothing_accepted(lockfile: Path) -> None:
    """No locked variant counts as synced unless every one of its files verifies in full (what a load relies on)."""
    for entry in read_lock(lockfile).kernel:
        for variant in entry.variants:
            fast = check_variant(entry, variant, mode="fast")
            if fast.ok:
                assert check_variant(entry, variant, mode="full").ok, (entry.repo_id, variant)


# -- lock: transient faults -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", STATUSES)
def test_lock_survives_status_bursts(hub_env, project, cli, status: int) -> None:
    faults = Injector(hub_env)
    faults.add(
        Fault("status", match=r"/refs$", count=2, status=status, retry_after=0),
        Fault("status", match=r"/tree/", count=2, status=status, retry_after=0),
        Fault("status", match=r"kernel-status\.toml$", count=2, status=status, retry_after=0),
    )
    run = cli("lock", "--project", str(project))
    assert run.exit_code == 0, run.stderr
    assert faults.survived() == 6
    assert sum(r.status == status for r in hub_env.requests) == 6
    assert cli("lock", "--check", "--project", str(project)).exit_code == 0
    lock = read_lock(project / "kernels.lock")
    assert {"kernels-community/relu", "kernels-community/activation"} <= {
        k.requested_repo for k in lock.kernel
    }


def test_lock_honours_retry_after(hub_env, project, cli) -> None:
    faults = Injector(hub_env)
    faults.add(Fault("status", match=r"relu/refs$", count=1, status=429, retry_after=1))
    run = cli("lock", "--project", str(project))
    assert run.exit_code == 0, run.stderr
    refs = [r for r in hub_env.requests if r.path.endswith("relu/refs")]
    assert [r.status for r in refs[:2]] == [429, 200]
    assert refs[1].started - refs[0].started >= 0.9, "Retry-After: 1 was not waited for"
    assert faults.survived() == 1


@pytest.mark.parametrize("kind", ["reset", "truncate", "stall"])
def test_lock_survives_resets_truncations_and_stalls(hub_env, project, cli, kind: str) -> None:
    faults = Injector(hub_env)
    faults.add(
        Fault(kind, match=r"/refs$", count=2, seconds=0.3),
        Fault(kind, match=r"/tree/", count=2, seconds=0.3),
        Fault(kind, match=r"kernel-status\.toml$", count=1, seconds=0.3),
    )
    run = cli("lock", "--project", str(project))
    assert run.exit_code == 0, run.stderr
    assert faults.survived() == 5
    assert cli("lock", "--check", "--project", str(project)).exit_code == 0


# -- lock: persistent faults -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fault", "says"),
    [
        (
            Fault("status", match=r"activation/tree/", count=None, status=503, retry_after=0),
            "(HTTP 503) after 5 attempt(s)",
        ),
        (Fault("status", match=r"activation/refs$", count=None, status=500), "(HTTP 500) after 5 attempt(s)"),
        (Fault("reset", match=r"activation/tree/", count=None), "Cannot reach the Hub"),
        (Fault("truncate", match=r"activation/refs$", count=None), "Cannot reach the Hub"),
    ],
    ids=["503-tree", "500-refs", "reset-tree", "truncate-refs"],
)
def test_persistent_fault_fails_lock_cleanly_and_keeps_the_old_lock(
    hub_env, make_project, cli, fault: Fault, says: str
) -> None:
    root = make_project(RELU)
    assert cli("lock", "--project", str(root)).exit_code == 0
    before = (root / "kernels.lock").read_bytes()
    mtime = (root / "kernels.lock").stat().st_mtime_ns
    make_project(RELU, ACTIVATION)
    # One answer more than the client may try: a client that retried past its bound gets through (and fails
    # this test) instead of hanging it.
    hub_env.add_fault(dataclasses.replace(fault, count=MAX_ATTEMPTS + 1))
    run = cli("lock", "--project", str(root))
    assert_clean_error(run, 3, "kernels-community/activation", says)
    assert (root / "kernels.lock").read_bytes() == before
    assert (root / "kernels.lock").stat().st_mtime_ns == mtime
    assert sorted(p.name for p in root.iterdir()) == ["kernels.lock", "pyproject.toml"], "no temp file left"
    faulted = faulted_requests(hub_env)
    assert faulted == MAX_ATTEMPTS, (
        "bounded retries: the Hub client gives up after its attempts, each one hit"
    )
    COUNTS["faults_injected"] += faulted
    COUNTS["persistent_faults_failed_cleanly"] += 1


def test_hub_persistently_down_for_a_first_lock_writes_nothing(hub_env, project, cli) -> None:
    hub_env.add_fault(Fault("reset", match=r"", count=None))
    run = cli("lock", "--project", str(project))
    assert_clean_error(run, 3, "Cannot reach the Hub")
    assert not (project / "kernels.lock").exists()
    assert sorted(p.name for p in project.iterdir()) == ["pyproject.toml"]
    COUNTS["faults_injected"] += faulted_requests(hub_env)
    COUNTS["persistent_faults_failed_cleanly"] += 1


def test_stalled_tree_listing_is_abandoned_and_retried(hub_env, project) -> None:
    hub_env.add_fault(Fault("stall", match=r"relu/tree/", count=1, seconds=60))
    env = dict(os.environ, HF_HUB_ETAG_TIMEOUT="1", HF_HUB_DOWNLOAD_TIMEOUT="1")
    proc = subprocess.run(
        [sys.executable, "-m", "kernel_lock", "lock", "--project", str(project)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    hub_env.wait_held(
        1, timeout=0
    )  # still stalled after lock is done: abandoned and asked again, not waited out
    hub_env.release()
    COUNTS["faults_injected"] += 1
    COUNTS["faults_survived"] += 1


# -- sync: transient faults ---------------------------------------------------------------------------------


def test_sync_survives_status_bursts_on_listings_and_downloads(hub_env, locked, cli) -> None:
    faults = Injector(hub_env)
    faults.add(
        Fault("status", match=r"/tree/", count=2, status=500, retry_after=0),
        Fault("status", match=r"/resolve/.*/layers\.py$", count=1, status=502, retry_after=0),
        Fault("status", match=r"/resolve/.*/__init__\.py$", count=1, status=503, method="GET", retry_after=0),
        Fault("status", match=r"^/cdn/", count=1, status=429, retry_after=0),
        Fault(
            "status", match=r"/resolve/.*/metadata\.json$", count=1, status=429, method="GET", retry_after=0
        ),
    )
    shutil.rmtree(hub_cache_dir())  # locked elsewhere: sync reads each metadata.json from the Hub
    run = cli("sync", "--project", str(locked))
    assert run.exit_code == 0, run.stderr
    assert faults.survived() == 6
    assert {r.status for r in hub_env.requests} >= {500, 502, 503, 429}
    assert cli("verify", "--project", str(locked), "--full").exit_code == 0


def test_sync_survives_resets_truncations_and_stalls(hub_env, locked, cli) -> None:
    faults = Injector(hub_env)
    faults.add(
        Fault("reset", match=r"/tree/", count=1),
        Fault("truncate", match=r"/tree/", count=1),
        Fault("reset", match=r"/resolve/.*/_ops\.py$", count=2),
        Fault("truncate", match=r"/resolve/.*/metadata\.json$", count=2),
        Fault("truncate", match=r"^/cdn/", count=2),
        Fault("stall", match=r"/resolve/.*/layers\.py$", count=2, seconds=0.3),
    )
    shutil.rmtree(hub_cache_dir())  # locked elsewhere: sync reads each metadata.json from the Hub
    run = cli("sync", "--project", str(locked), "--variant", CPU_VARIANT, "--variant", "torch-cpu")
    assert run.exit_code == 0, run.stderr
    assert faults.survived() == 10
    run = cli(
        "verify", "--project", str(locked), "--variant", CPU_VARIANT, "--variant", "torch-cpu", "--full"
    )
    assert run.exit_code == 0, run.stdout


def test_download_stalled_past_its_timeout_is_retried(hub_env, locked, cli, monkeypatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 1)
    monkeypatch.setattr(constants, "HF_HUB_DOWNLOAD_TIMEOUT", 1)
    faults = Injector(hub_env)
    faults.add(Fault("stall", match=r"/resolve/.*/layers\.py$", count=1, seconds=60))
    run = cli("sync", "--project", str(locked))
    assert run.exit_code == 0, run.stderr
    hub_env.wait_held(
        1, timeout=0
    )  # still stalled after sync is done: abandoned and asked again, not waited out
    assert faults.survived() == 1
    hub_env.release()
    assert cli("verify", "--project", str(locked), "--full").exit_code == 0


def test_download_failing_all_but_its_last_attempt_is_retried(hub_env, locked, cli) -> None:
    # One GET per attempt, MAX_ATTEMPTS (5) attempts per file: four failures in a row are survived.
    faults = Injector(hub_env)
    faults.add(
        Fault(
            "status", match=r"relu/resolve/.*/layers\.py$", method="GET", count=4, status=503, retry_after=0
        )
    )
    run = cli("sync", "--project", str(locked), "--variant", CPU_VARIANT)
    assert run.exit_code == 0, run.stderr
    assert faults.survived() == 4
    served = [r.status for r in hub_env.requests if r.path.endswith("/layers.py") and "relu" in r.path]
    assert served == [503, 503, 503, 503, 200]


def test_download_failing_every_attempt_fails_cleanly(hub_env, locked, cli) -> None:
    hub_env.add_fault(Fault("status", match=r"relu/resolve/.*/layers\.py$", count=None, status=503))
    run = cli("sync", "--project", str(locked), "--variant", CPU_VARIANT)
    assert_clean_error(run, 3, "kernels-community/relu", "layers.py", "(HTTP 503) after 5 attempt(s)")
    nothing_accepted(locked / "kernels.lock")
    COUNTS["faults_injected"] += faulted_requests(hub_env)
    COUNTS["persistent_faults_failed_cleanly"] += 1


# -- sync: persistent faults ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault("status", match=r"relu/tree/", count=None, status=502, retry_after=0),
        Fault("reset", match=r"relu/tree/", count=None),
        Fault("truncate", match=r"relu/tree/", count=None),
    ],
    ids=["502-tree", "reset-tree", "truncate-tree"],
)
def test_persistent_listing_fault_fails_sync_and_leaves_nothing_usable(
    hub_env, locked, cli, fault: Fault
) -> None:
    hub_env.add_fault(fault)
    run = cli("sync", "--project", str(locked))
    assert_clean_error(run, 3, "kernels-community/relu", f"list build/{CPU_VARIANT}")
    nothing_accepted(locked / "kernels.lock")
    verify = cli("verify", "--project", str(locked))
    assert verify.exit_code == 4
    assert "missing kernels-community/relu" in verify.stdout
    faulted = faulted_requests(hub_env)
    assert faulted >= 5, "the Hub client gives up only after five attempts, each hit by the fault"
    COUNTS["faults_injected"] += faulted
    COUNTS["persistent_faults_failed_cleanly"] += 1
    hub_env.clear_faults()
    assert cli("sync", "--project", str(locked)).exit_code == 0
    assert cli("verify", "--project", str(locked), "--full").exit_code == 0


def test_persistently_corrupted_file_fails_sync_and_is_not_left_usable(hub_env, locked, cli) -> None:
    hub_env.add_fault(Fault("corrupt", match=r"relu/resolve/.*/_ops\.py$", method="GET", count=None))
    run = cli("sync", "--project", str(locked), "--variant", CPU_VARIANT)
    assert_clean_error(run, 4, "kernels-community/relu", "_ops.py: content changed (expected ")
    nothing_accepted(locked / "kernels.lock")
    COUNTS["persistent_faults_failed_cleanly"] += 1
    COUNTS["faults_injected"] += 1
    hub_env.clear_faults()
    assert cli("sync", "--project", str(locked), "--variant", CPU_VARIANT).exit_code == 0
    assert cli("verify", "--project", str(locked), "--variant", CPU_VARIANT, "--full").exit_code == 0


def test_cache_of_a_failed_sync_is_only_files_that_verify(hub_env, locked, cli) -> None:
    """After a sync that failed half-way, every snapshot file present is byte-correct or absent, never accepted wrong."""
    hub_env.add_fault(Fault("corrupt", match=r"/resolve/.*/layers\.py$", count=None))
    hub_env.add_fault(Fault("corrupt", match=r"^/cdn/", count=None))
    run = cli("sync", "--project", str(locked), "--all-variants")
    assert run.exit_code == 4
    lock = read_lock(locked / "kernels.lock")
    from kernel_lock.core.cache_layout import variant_dir

    bad = 0
    for entry in lock.kernel:
        for variant in entry.variants:
            vdir = variant_dir(entry.repo_id, entry.commit, variant)
            assert not (vdir / "layers.py").exists(), "a corrupted file stayed in the cache"
            assert not check_variant(entry, variant).ok
            bad += 1
    assert bad > 10
    assert hub_cache_dir().is_dir()
    COUNTS["faults_injected"] += bad
    COUNTS["persistent_faults_failed_cleanly"] += 1
