"""The lock's own inputs: nothing written into a shared cache decides a hash in the lock.

An attacker who can write the Hugging Face cache (a team cache, say) but not the Hub plants, for a variant
without a publisher digest, what lock used to take on trust: blob id -> SHA-256 answers, copies of the
files by blob id, a snapshot and a record that agree with them. Lock must still pin what the Hub serves,
and sync and the load must then replace and refuse the planted files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernel_lock.cache.writes import write_record
from kernel_lock.core.cache_layout import (
    RECORD_DIR,
    Fingerprint,
    blob_path,
    manifest_hash,
    read_record,
    record_path,
    repo_dir,
    variant_dir,
)
from kernel_lock.core.hashing import variant_hash
from kernel_lock.core.lockfile import read_lock
from kernel_lock.core.verdict import take_snapshot
from kernel_lock.testing import LocalHub, git_blob_id, variant_files

REPO = "kernels-community/crafted"
VARIANT = "torch-universal"
EVIL = b"open(__import__('os').environ['PWNED'], 'w').write('attacker code ran')\n"


def publish(hub: LocalHub) -> tuple[str, dict[str, bytes]]:
    """`kernels-community/crafted` v1 with one universal variant whose metadata.json has no digest."""
    files = variant_files(VARIANT, name="crafted", digest=False)
    repo = hub.create_repo(REPO, repo_type="kernel")
    sha = repo.commit({f"build/{VARIANT}/{p}": d for p, d in files.items()}, branch="v1", message="build")
    repo.create_branch("main", sha)
    return sha, files


def honest_hash(files: dict[str, bytes]) -> str:
    return variant_hash((p, hashlib.sha256(d).hexdigest()) for p, d in files.items())


def plant(commit: str, files: dict[str, bytes], target: str) -> str:
    """Turn an honest synced cache into the attacker's: `target` holds EVIL everywhere lock or sync looks.

    The blob-hashes memo of earlier releases (honest blob id -> the attacker's hashes), lock's kept copy
    of the honest blob id and the blob of that id (both with the attacker's bytes), the snapshot's link
    re-pointed to a blob of the attacker's file, and a record that agrees (manifest, variant hash and
    fingerprints recomputed, so that sync and fast mode find it "verified"). The attacker's variant hash.
    """
    oid = git_blob_id(files[target])
    evil = files[target] + EVIL
    sums = {"sha256": hashlib.sha256(evil).hexdigest(), "sha512": hashlib.sha512(evil).hexdigest()}
    for path in (
        blob_path(REPO, oid),
        repo_dir(REPO) / RECORD_DIR / "blobs" / oid,
        blob_path(REPO, git_blob_id(evil)),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        path.write_bytes(evil)
    (repo_dir(REPO) / RECORD_DIR / "blob-hashes.json").write_text(json.dumps({oid: sums}))
    vdir = variant_dir(REPO, commit, VARIANT)
    link = vdir / target
    target_link = os.readlink(link).replace(oid, git_blob_id(evil))
    link.unlink()
    link.symlink_to(target_link)
    record = read_record(record_path(REPO, commit, VARIANT))
    assert record is not None
    manifest = [
        dataclasses.replace(e, sha256=sums["sha256"], size=len(evil), hash=git_blob_id(evil))
        if e.path == target
        else e
        for e in record.manifest
    ]
    forged = manifest_hash(manifest, "sha256")
    assert forged is not None
    seen = take_snapshot(REPO, commit, VARIANT).files
    stamps = {e.path: seen[e.path].stamp for e in manifest}
    verified = {p: Fingerprint.of(s) for p, s in stamps.items() if s is not None}
    assert verified.keys() == stamps.keys()
    write_record(
        record_path(REPO, commit, VARIANT),
        dataclasses.replace(record, manifest=manifest, variant_hash=forged, verified=verified),
    )
    return forged


def file_gets(hub: LocalHub) -> list[str]:
    """Paths of the `build/` files other than metadata.json that the Hub served since its log was cleared."""
    return [r.path for r in hub.requests if "/build/" in r.path and not r.path.endswith("/metadata.json")]


def load(root: Path, marker: Path) -> subprocess.CompletedProcess[str]:
    """Import the locked kernel through kernel-lock in a fresh interpreter."""
    code = f"import kernel_lock; kernel_lock.get_kernel({REPO!r}, version=1)"
    env = {**os.environ, "PWNED": str(marker)}
    return subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True)


@pytest.mark.torch  # the kernel it finally imports imports torch
@pytest.mark.parametrize("target", ["__init__.py", "_ops.py"])
def test_a_planted_cache_does_not_decide_the_lock(hub_env, make_project, cli, tmp_path, target) -> None:
    commit, files = publish(hub_env)
    root = make_project(f'"{REPO}" = {{ version = 1, trust-remote-code = true }}')
    # The attacker, with the same cache, syncs honestly, then plants.
    assert cli("lock", "--project", str(root)).exit_code == 0
    assert cli("sync", "--project", str(root), "--variant", VARIANT).exit_code == 0
    (root / "kernels.lock").unlink()
    forged = plant(commit, files, target)
    # The victim locks, syncs and loads.
    run = cli("lock", "--project", str(root))
    assert run.exit_code == 0, run.stderr
    [entry] = read_lock(root / "kernels.lock").kernel
    assert entry.variants[VARIANT] == honest_hash(files) != forged, "the lock pinned the planted hash"
    run = cli("sync", "--project", str(root), "--variant", VARIANT)
    assert run.exit_code == 0, run.stderr
    assert (variant_dir(REPO, commit, VARIANT) / target).read_bytes() == files[target]
    assert cli("verify", "--project", str(root), "--variant", VARIANT, "--full").exit_code == 0
    marker = tmp_path / "pwned"
    loaded = load(root, marker)
    assert loaded.returncode == 0, loaded.stderr
    assert not marker.exists(), "the attacker's code ran"


def test_planted_copies_that_do_not_match_are_refetched_and_good_ones_save_requests(
    hub_env, make_project, cli
) -> None:
    """Lock hashes kept bytes only when their git blob id is the listed one; others cost a request."""
    _, files = publish(hub_env)
    root = make_project(f'"{REPO}" = {{ version = 1, trust-remote-code = true }}')
    assert cli("lock", "--project", str(root)).exit_code == 0
    first = read_lock(root / "kernels.lock")
    kept = repo_dir(REPO) / RECORD_DIR / "blobs"
    assert {p.name for p in kept.iterdir()} == {
        git_blob_id(d) for p, d in files.items() if p != "metadata.json"
    }
    hub_env.clear_log()
    assert cli("lock", "--project", str(root), "--upgrade").exit_code == 0
    gets = file_gets(hub_env)
    assert gets == [], "kept copies that match their blob id need no request"
    (kept / git_blob_id(files["_ops.py"])).write_bytes(b"tampered")
    hub_env.clear_log()
    assert cli("lock", "--project", str(root), "--upgrade").exit_code == 0
    gets = file_gets(hub_env)
    assert [g.rsplit("/", 1)[1] for g in gets] == ["_ops.py"]
    assert read_lock(root / "kernels.lock") == first
    assert (kept / git_blob_id(files["_ops.py"])).read_bytes() == files["_ops.py"]


# --- a hand-edited lock: a pull-request commit, a weaker hash type ---


def locked_at(root: Path, commit: str, *, hash_type: str = "sha256") -> None:
    """Rewrite the project's lock as an attacker would: the entry moved to `commit`, its hashes recomputed."""
    from kernel_lock.core.lockfile import write_lock
    from kernel_lock.hub.client import Hub
    from kernel_lock.lock.resolve import LockRequest, Pin, lock_dependencies
    from kernel_lock.project.config import load_project

    project = load_project(root)
    request = LockRequest(pins={Pin(REPO): commit}, hash_type=hash_type, signing=project.signing())  # type: ignore[arg-type]
    forged = lock_dependencies(project.dependencies, hub=Hub(), request=request, trusted_repos=[REPO])
    [honest] = read_lock(root / "kernels.lock").kernel
    [entry] = forged.kernel
    assert entry.ref == honest.ref and entry.version == honest.version
    write_lock(root / "kernels.lock", forged)


def test_a_pull_request_commit_in_the_lock_is_refused_online(hub_env, make_project, cli, tmp_path) -> None:
    publish(hub_env)
    root = make_project(f'"{REPO}" = {{ version = 1, trust-remote-code = true }}')
    assert cli("lock", "--project", str(root)).exit_code == 0
    pr_files = {
        f"build/{VARIANT}/{p}": d for p, d in variant_files(VARIANT, name="crafted", digest=False).items()
    }
    pr_files[f"build/{VARIANT}/__init__.py"] += EVIL
    number, pull = hub_env.repo(REPO).open_pull_request(pr_files, base="v1")
    locked_at(root, pull)

    # The real client sees the pull request only by its ref, not on the branch.
    from huggingface_hub import HfApi

    on_v1 = {c.commit_id for c in HfApi().list_repo_commits(REPO, repo_type="kernel", revision="v1")}
    on_pr = {
        c.commit_id for c in HfApi().list_repo_commits(REPO, repo_type="kernel", revision=f"refs/pr/{number}")
    }
    assert pull in on_pr and pull not in on_v1 and on_v1 < on_pr

    assert cli("lock", "--check", "--project", str(root)).exit_code == 0, (
        "offline, the lock matches pyproject.toml"
    )
    check = cli("lock", "--check", "--online", "--project", str(root), "--json")
    assert check.exit_code == 4, check.stdout + check.stderr
    assert check.json()["error"]["code"] == "commit-not-on-ref"
    hub_env.clear_log()
    sync = cli("sync", "--locked", "--project", str(root), "--variant", VARIANT)
    assert sync.exit_code == 4 and "not on the history of v1" in sync.stderr, sync.stderr
    assert not [r for r in hub_env.requests if "/resolve/" in r.path], (
        "nothing of the pull request is fetched"
    )
    marker = tmp_path / "pwned"
    assert load(root, marker).returncode != 0 and not marker.exists()


def test_a_hash_type_downgrade_is_caught_by_lock_check(hub_env, make_project, cli) -> None:
    commit, _ = publish(hub_env)
    root = make_project(f'"{REPO}" = {{ version = 1, trust-remote-code = true }}')
    assert cli("lock", "--project", str(root)).exit_code == 0
    locked_at(root, commit, hash_type="git_lfs_concat")
    check = cli("lock", "--check", "--project", str(root))
    assert check.exit_code == 1 and "hashed with git_lfs_concat" in check.stderr, check.stderr
    assert cli("lock", "--check", "--project", str(root), "--hash-type", "git_lfs_concat").exit_code == 0
