"""`kernel-lock sync` and `kernel-lock verify` against the local Hub, with a cache of the test's own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kernel_lock import env
from kernel_lock.core.cache_layout import hub_cache_dir, record_path, variant_dir
from kernel_lock.core.lockfile import read_lock
from kernel_lock.testing import Fault
from kernel_lock.testing.fixtures import CPU_VARIANT

RELU = '"kernels-community/relu" = 1'
ACTIVATION = '"kernels-community/activation" = 1'
CUDA_TARGET = "torch213-cxx11-cu128-x86_64-linux"


@pytest.fixture
def locked(hub_env, make_project, cli) -> Path:
    root = make_project(RELU, ACTIVATION)
    assert cli("lock", "--project", str(root)).exit_code == 0
    hub_env.clear_log()
    return root


def synced_variants() -> set[tuple[str, str]]:
    """(repo, variant) pairs present in the cache's snapshots."""
    found = set()
    for repo in hub_cache_dir().glob("kernels--*"):
        for vdir in repo.glob("snapshots/*/build/*"):
            found.add((repo.name.removeprefix("kernels--").replace("--", "/"), vdir.name))
    return found


def test_sync_for_the_default_target(locked, cli) -> None:
    run = cli("sync", "--project", str(locked), "--json")
    assert run.exit_code == 0, run.stderr
    assert {(v["repo-id"], v["variant"], v["status"]) for v in run.json()["variants"]} == {
        ("kernels-community/relu", CPU_VARIANT, "ok"),
        ("kernels-community/activation", CPU_VARIANT, "ok"),
    }
    assert synced_variants() == {
        ("kernels-community/relu", CPU_VARIANT),
        ("kernels-community/activation", CPU_VARIANT),
    }
    assert cli("verify", "--project", str(locked)).exit_code == 0


@pytest.mark.torch  # without torch, detection would depend on this machine's CUDA libraries
def test_sync_for_the_detected_environment(locked, cli, monkeypatch) -> None:
    from kernel_lock.core.target import detect_target
    from kernel_lock.core.variants import select_variant

    monkeypatch.delenv(env.TARGET)
    lock = read_lock(locked / "kernels.lock")
    expected = {(e.repo_id, select_variant(e.variants, detect_target())) for e in lock.kernel}
    run = cli("sync", "--project", str(locked), "--json")
    assert run.exit_code == 0, run.stderr
    assert {(v["repo-id"], v["variant"]) for v in run.json()["variants"]} == expected
    assert synced_variants() == expected


def test_declared_cuda_target_without_importing_torch(locked, hub_env) -> None:
    code = (
        "import sys; from kernel_lock.cache.sync import sync_project; from kernel_lock.core.target import parse_target;"
        f"r = sync_project({str(locked)!r}, target=parse_target({CUDA_TARGET!r}));"
        "print(sorted((c.repo_id, c.variant) for c in r.checks)); assert 'torch' not in sys.modules"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # A target describes an environment: relu's stable-ABI build wins over its torch 2.13 + CUDA 12.6 one,
    # and CUDA 12.8 accepts activation's 12.6 build.
    assert synced_variants() == {
        ("kernels-community/relu", "torch-stable-abi210-cu128-x86_64-linux"),
        ("kernels-community/activation", "torch213-cxx11-cu126-x86_64-linux"),
    }


def test_several_variants_and_all_variants(locked, cli) -> None:
    names = ["torch-cpu", CPU_VARIANT]
    run = cli("sync", "--project", str(locked), "--variant", names[0], "--variant", names[1])
    assert run.exit_code == 0, run.stderr
    lock = read_lock(locked / "kernels.lock")
    expected = {(k.repo_id, n) for k in lock.kernel for n in names if n in k.variants}
    assert synced_variants() == expected
    run = cli("sync", "--project", str(locked), "--all-variants", "--json")
    assert run.exit_code == 0, run.stderr
    every = {(k.repo_id, v) for k in lock.kernel for v in k.variants}
    assert synced_variants() == every
    assert all(v["status"] == "ok" for v in run.json()["variants"]) and len(run.json()["variants"]) == len(
        every
    )
    assert cli("verify", "--project", str(locked), "--all-variants", "--full").exit_code == 0


def test_unknown_variant_is_an_input_error(locked, cli) -> None:
    run = cli("sync", "--project", str(locked), "--variant", "torch99-nope")
    assert run.exit_code == 2 and "Locked variants:" in run.stderr


def test_noop_sync_makes_no_request_even_offline(locked, hub_env, cli, monkeypatch) -> None:
    assert cli("sync", "--project", str(locked)).exit_code == 0
    hub_env.clear_log()
    run = cli("sync", "--project", str(locked), "--json")
    assert run.exit_code == 0 and run.json()["downloaded-files"] == 0
    assert hub_env.requests == []
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    proc = subprocess.run(
        [sys.executable, "-m", "kernel_lock", "sync", "--project", str(locked)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert hub_env.requests == []


def test_stale_lock_fails_with_locked_and_is_used_as_is_with_frozen(locked, make_project, cli) -> None:
    before = (locked / "kernels.lock").read_bytes()
    make_project(RELU)
    run = cli("sync", "--project", str(locked), "--locked", "--variant", "torch-cpu")
    assert run.exit_code == 1 and "does not match" in run.stderr
    assert synced_variants() == set() and (locked / "kernels.lock").read_bytes() == before
    assert cli("sync", "--project", str(locked), "--frozen", "--variant", "torch-cpu").exit_code == 0
    assert len(synced_variants()) == 2, "frozen: the stale lock's two kernels, as they are"
    assert (locked / "kernels.lock").read_bytes() == before
    both = cli("sync", "--project", str(locked), "--locked", "--frozen")
    assert both.exit_code == 2 and "not both" in both.stderr


def test_corrupted_bytes_are_refused_then_repaired(locked, hub_env, cli) -> None:
    hub_env.add_fault(Fault(kind="corrupt", match=r"relu/resolve/.*/layers\.py$", count=None))
    run = cli("sync", "--project", str(locked))
    assert run.exit_code == 4
    assert "layers.py: content changed (expected " in run.stderr and "kernels-community/relu" in run.stderr
    lock = read_lock(locked / "kernels.lock")
    relu = lock.find("kernels-community/relu")
    assert not (variant_dir(relu.repo_id, relu.commit, CPU_VARIANT) / "layers.py").exists()
    assert cli("verify", "--project", str(locked)).exit_code == 4
    hub_env.clear_faults()
    assert cli("sync", "--project", str(locked)).exit_code == 0
    assert cli("verify", "--project", str(locked), "--full").exit_code == 0


def test_a_failed_sync_names_each_failed_variant_in_fields(locked, hub_env) -> None:
    from kernel_lock.cache.sync import sync_project
    from kernel_lock.errors import SyncFailed

    hub_env.add_fault(Fault(kind="corrupt", match=r"relu/resolve/.*/layers\.py$", count=None))
    with pytest.raises(SyncFailed) as raised:
        sync_project(locked, variants=[CPU_VARIANT])
    (failure,) = raised.value.failures
    assert "kernels-community/relu variant " + CPU_VARIANT in str(failure)
    assert "layers.py: content changed" in str(failure)


def test_corrupted_lfs_file_is_refused(locked, hub_env, cli) -> None:
    hub_env.add_fault(Fault(kind="corrupt", match=r"\.so$", count=None))
    run = cli("sync", "--project", str(locked), "--variant", CPU_VARIANT)
    assert run.exit_code == 4 and ".abi3.so: content changed" in run.stderr


def test_hub_listing_that_disagrees_with_the_lock(locked, hub_fixtures, cli) -> None:
    from huggingface_hub import HfApi

    relu = read_lock(locked / "kernels.lock").find("kernels-community/relu")
    assert relu is not None and relu.hash_type == "sha256"
    listed = HfApi().list_repo_tree(
        relu.repo_id, "build", recursive=True, revision=relu.commit, repo_type="kernel"
    )
    entries = [
        {"type": "file", "path": e.path, "oid": e.blob_id, "size": e.size}
        | (
            {"lfs": {"oid": e.lfs.sha256, "size": e.lfs.size, "pointerSize": e.lfs.pointer_size}}
            if e.lfs
            else {}
        )
        for e in listed
        if hasattr(e, "lfs")
    ]
    entries.append({"type": "file", "path": f"build/{CPU_VARIANT}/evil.py", "oid": "1" * 40, "size": 3})
    hub_fixtures.relu.override_tree(relu.commit, entries)
    run = cli("sync", "--project", str(locked))
    assert run.exit_code == 3 and "nothing was downloaded" in run.stderr


def test_killed_sync_then_sync_ends_verified(locked, hub_env) -> None:
    hub_env.latency = 0.05
    env = dict(os.environ)
    proc = subprocess.Popen(
        [sys.executable, "-m", "kernel_lock", "sync", "--project", str(locked), "--all-variants"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 30
    while time.time() < deadline and sum(r.path.count("/resolve/") for r in hub_env.requests) < 10:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # The kill landed mid-sync: downloads had started, the process died of the signal, and the cache
    # does not verify yet.
    assert sum(r.path.count("/resolve/") for r in hub_env.requests) >= 10, "no download had started"
    assert proc.returncode == -signal.SIGKILL, "the sync had finished before the kill"
    hub_env.latency = 0
    interrupted = subprocess.run(
        [sys.executable, "-m", "kernel_lock", "verify", "--project", str(locked), "--all-variants"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert interrupted.returncode == 4, interrupted.stdout + interrupted.stderr
    done = subprocess.run(
        [sys.executable, "-m", "kernel_lock", "sync", "--project", str(locked), "--all-variants"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    verify = subprocess.run(
        [sys.executable, "-m", "kernel_lock", "verify", "--project", str(locked), "--all-variants", "--full"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_verify_names_changed_deleted_and_added_files(locked, cli) -> None:
    assert cli("sync", "--project", str(locked)).exit_code == 0
    relu = read_lock(locked / "kernels.lock").find("kernels-community/relu")
    vdir = variant_dir(relu.repo_id, relu.commit, CPU_VARIANT)
    layers = vdir / "layers.py"
    data = bytearray(layers.read_bytes())
    data[0] ^= 1
    os.unlink(layers)  # a snapshot file is a symlink into blobs/; write a real file in its place
    layers.write_bytes(bytes(data))
    (vdir / "metadata.json").unlink()
    (vdir / "extra.py").write_text("print('hi')\n")
    run = cli("verify", "--project", str(locked), "--json")
    assert run.exit_code == 4
    [relu_check] = [v for v in run.json()["variants"] if v["repo-id"] == "kernels-community/relu"]
    problems = "\n".join(relu_check["problems"])
    assert "layers.py: content changed" in problems
    assert "metadata.json: missing" in problems
    assert "extra.py: extra file" in problems
    assert relu_check["status"] == "corrupt"
    assert cli("sync", "--project", str(locked)).exit_code == 0
    assert cli("verify", "--project", str(locked), "--full").exit_code == 0


def test_sync_record_is_authenticated_by_the_lock(locked, cli) -> None:
    assert cli("sync", "--project", str(locked)).exit_code == 0
    relu = read_lock(locked / "kernels.lock").find("kernels-community/relu")
    path = record_path(relu.repo_id, relu.commit, CPU_VARIANT)
    path.write_text(path.read_text().replace(relu.variants[CPU_VARIANT], "sha256-" + "0" * 64))
    run = cli("verify", "--project", str(locked))
    assert run.exit_code == 4 and "does not reproduce the lock's variant hash" in run.stdout


def test_kernel_lock_target_declares_the_default_environment(locked, cli, monkeypatch) -> None:
    monkeypatch.setenv(env.TARGET, CUDA_TARGET)
    run = cli("sync", "--project", str(locked), "--json")
    assert run.exit_code == 0, run.stderr
    assert {v["variant"] for v in run.json()["variants"]} == {
        "torch-stable-abi210-cu128-x86_64-linux",
        "torch213-cxx11-cu126-x86_64-linux",
    }


def test_a_lock_made_elsewhere_syncs_each_file_with_one_request(locked, cli, hub_env) -> None:
    import shutil
    from collections import Counter

    shutil.rmtree(hub_cache_dir())  # the lock was made on another machine: nothing of it in this cache
    hub_env.clear_log()
    assert cli("sync", "--project", str(locked)).exit_code == 0
    gets = Counter(r.path for r in hub_env.requests if r.method == "GET" and "/resolve/" in r.path)
    assert any(path.endswith("/metadata.json") for path in gets)
    assert gets and set(gets.values()) == {1}, {p: n for p, n in gets.items() if n > 1}
    assert cli("verify", "--project", str(locked), "--full").exit_code == 0
