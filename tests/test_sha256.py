"""SHA-256 end to end: locked from the listing, the publisher digest or the bytes; synced, verified, upgraded."""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter

import pytest

from kernel_lock.core.cache_layout import hub_cache_dir, read_record, record_path
from kernel_lock.core.lockfile import read_lock
from kernel_lock.lock.digest import publisher_digest
from kernel_lock.testing import LocalHub, git_blob_id, variant_files
from kernel_lock.testing.fixtures import BUILDER_VERSION, CPU_VARIANT, RELU_V1_FIRST_VARIANTS

ACTIVATION = '"kernels-community/activation" = 1'
RELU = '"kernels-community/relu" = 1'
REPO = "kernels-community/crafted"


def file_gets(hub: LocalHub) -> list[str]:
    """Paths of the `build/` files (not metadata.json) the Hub served since its log was cleared."""
    return [
        r.path
        for r in hub.requests
        if r.method == "GET"
        and "/resolve/" in r.path
        and "/build/" in r.path
        and not r.path.endswith("/metadata.json")
    ]


def publish(hub: LocalHub, files: dict[str, bytes]) -> str:
    """A repo `kernels-community/crafted` whose v1 holds `build/<CPU>/` with these files."""
    repo = hub.create_repo(REPO, repo_type="kernel")
    sha = repo.commit(
        {f"build/{CPU_VARIANT}/{p}": data for p, data in files.items()}, branch="v1", message="build"
    )
    repo.create_branch("main", sha)
    return sha


def with_digest(files: dict[str, bytes], digest_files: dict[str, bytes], **extra: object) -> dict[str, bytes]:
    """`files` whose metadata.json carries the digest of `digest_files` (and `extra` top-level keys)."""
    metadata = json.loads(files["metadata.json"])
    metadata["digest"] = publisher_digest(digest_files).to_dict()
    metadata.update(extra)
    return {**files, "metadata.json": json.dumps(metadata).encode()}


def test_with_digests_lock_makes_the_same_requests_as_git_lfs_concat(hub_env, make_project, cli) -> None:
    root = make_project(ACTIVATION)
    assert cli("lock", "--project", str(root), "--hash-type", "git_lfs_concat").exit_code == 0
    legacy = sorted((r.method, r.path) for r in hub_env.requests)
    (root / "kernels.lock").unlink()
    for cached in hub_cache_dir().glob("kernels--*/.kernel-lock"):  # metadata cached from the first run
        for f in cached.rglob("*.json"):
            f.unlink()
    hub_env.clear_log()
    run = cli("lock", "--project", str(root))
    assert run.exit_code == 0, run.stderr
    assert sorted((r.method, r.path) for r in hub_env.requests) == legacy
    assert file_gets(hub_env) == []
    [entry] = read_lock(root / "kernels.lock").kernel
    assert entry.hash_type == "sha256"


def test_without_digest_small_files_are_fetched_once_per_blob(
    hub_env, hub_fixtures, make_project, cli
) -> None:
    # relu at two commits (the second through a redirect), whose undigested variants share their files
    root = make_project(
        '"kernels-community/relu" = { revision = "v1.0.0" }', '"kernels-community/old-relu" = 1'
    )
    run = cli("lock", "--project", str(root))
    assert run.exit_code == 0, run.stderr
    fetched = file_gets(hub_env)
    files = {
        **hub_fixtures.relu.files(hub_fixtures.relu_v1_first),
        **hub_fixtures.relu.files(hub_fixtures.relu_v1),
    }
    undigested = {
        git_blob_id(data)
        for path, data in files.items()
        if path.startswith("build/")
        and path.split("/")[1] in RELU_V1_FIRST_VARIANTS
        and not path.endswith((".so", "/metadata.json"))
    }
    blob_of = {path: git_blob_id(data) for path, data in files.items()}
    assert Counter(blob_of[p.split("/resolve/", 1)[1].split("/", 1)[1]] for p in fetched) == Counter(
        undigested
    )
    assert (
        len(fetched)
        == len(undigested)
        < sum(
            1
            for p in files
            if p.startswith("build/") and p.split("/")[1] in RELU_V1_FIRST_VARIANTS and p.endswith(".py")
        )
    )
    hub_env.clear_log()
    assert cli("lock", "--project", str(root), "--upgrade").exit_code == 0
    assert file_gets(hub_env) == [], "blob hashes are kept on disk: content-addressed, never stale"


def test_digest_that_lists_a_file_the_listing_lacks_is_refused(hub_env, make_project, cli) -> None:
    files = variant_files(CPU_VARIANT, name="crafted")
    publish(hub_env, with_digest(files, {**files, "ghost.py": b"x = 1\n"}))
    root = make_project(f'"{REPO}" = 1')
    run = cli("lock", "--project", str(root))
    assert run.exit_code == 4 and "Missing file: ghost.py" in run.stderr and CPU_VARIANT in run.stderr
    assert not (root / "kernels.lock").exists()


def test_digest_that_misses_a_listed_file_is_refused(hub_env, make_project, cli) -> None:
    files = variant_files(CPU_VARIANT, name="crafted")
    publish(hub_env, with_digest({**files, "extra.py": b"import os\n"}, files))
    root = make_project(f'"{REPO}" = 1')
    run = cli("lock", "--project", str(root))
    assert run.exit_code == 4 and "Unknown file: extra.py" in run.stderr
    assert not (root / "kernels.lock").exists()
    assert cli("lock", "--project", str(root), "--json").json()["error"]["code"] == "digest-mismatch"


def test_lfs_file_whose_listing_and_digest_disagree_is_refused(hub_env, make_project, cli) -> None:
    files = variant_files("torch213-cxx11-cu126-x86_64-linux", name="crafted")
    so = next(p for p in files if p.endswith(".so"))
    doctored = with_digest(files, {**files, so: files[so] + b"\0"})
    repo = hub_env.create_repo(REPO, repo_type="kernel")
    sha = repo.commit(
        {f"build/{CPU_VARIANT}/{p}": d for p, d in doctored.items()}, branch="v1", message="build"
    )
    repo.create_branch("main", sha)
    root = make_project(f'"{REPO}" = 1')
    for hash_type in ("sha256", "git_lfs_concat"):  # the digest is cross-checked whatever the hash type
        run = cli("lock", "--project", str(root), "--hash-type", hash_type)
        assert run.exit_code == 4 and f"File hash mismatch for {so}" in run.stderr
    assert not (root / "kernels.lock").exists()


@pytest.mark.parametrize(
    "digest",
    [{"algorithm": "md5", "files": {}}, {"algorithm": "sha256", "files": {"__init__.py": "short"}}],
)
def test_malformed_digest_is_refused_at_lock(hub_env, make_project, cli, digest) -> None:
    files = variant_files(CPU_VARIANT, name="crafted", digest=False)
    metadata = {**json.loads(files["metadata.json"]), "digest": digest}
    publish(hub_env, {**files, "metadata.json": json.dumps(metadata).encode()})
    run = cli("lock", "--project", str(make_project(f'"{REPO}" = 1')))
    assert run.exit_code == 4 and "digest is malformed" in run.stderr and "tell its publisher" in run.stderr


def colliding_repo(hub: LocalHub) -> dict[str, bytes]:
    """A commit whose `__init__.py` (as listed and served, blob ids agreeing) is not what the digest says.

    What a SHA-1 collision would let a Hub do: serve other bytes under the blob id the lock trusted.
    """
    good = variant_files(CPU_VARIANT, name="crafted")
    evil = {**good, "__init__.py": good["__init__.py"] + b"import os  # injected\n"}
    served = {**evil, "metadata.json": good["metadata.json"]}
    publish(hub, served)
    return served


def test_python_whose_bytes_differ_from_the_digest_is_refused_at_sync(hub_env, make_project, cli) -> None:
    colliding_repo(hub_env)
    root = make_project(f'"{REPO}" = 1')
    assert cli("lock", "--project", str(root)).exit_code == 0
    run = cli("sync", "--project", str(root), "--variant", CPU_VARIANT)
    assert run.exit_code == 4 and "__init__.py: content changed" in run.stderr
    vdir = next(hub_cache_dir().glob(f"kernels--kernels-community--crafted/snapshots/*/build/{CPU_VARIANT}"))
    assert not (vdir / "__init__.py").exists(), "the bad file was removed"


def test_legacy_lock_verifies_python_by_the_publisher_digest(hub_env, make_project, cli) -> None:
    colliding_repo(hub_env)
    root = make_project(f'"{REPO}" = 1')
    assert cli("lock", "--project", str(root), "--hash-type", "git_lfs_concat").exit_code == 0
    # git_lfs_concat pins __init__.py by its git blob id, which the served bytes match: sync takes them ...
    assert cli("sync", "--project", str(root), "--variant", CPU_VARIANT).exit_code == 0
    assert cli("verify", "--project", str(root), "--variant", CPU_VARIANT).exit_code == 0
    # ... and `verify --full` checks them by SHA-256 against the publisher's digest, as `kernels` reports it.
    run = cli("verify", "--project", str(root), "--variant", CPU_VARIANT, "--full", "--json")
    assert run.exit_code == 4
    [variant] = run.json()["variants"]
    [problem] = variant["problems"]
    good = variant_files(CPU_VARIANT, name="crafted")["__init__.py"]
    expected = base64.b64encode(hashlib.sha256(good).digest()).decode()
    assert problem.startswith(
        f"__init__.py: publisher digest: File hash mismatch for __init__.py: expected: {expected}, got: "
    )


def test_git_lfs_concat_lock_keeps_working_until_upgrade(hub_env, make_project, cli) -> None:
    root = make_project(ACTIVATION, RELU)
    assert cli("lock", "--project", str(root), "--hash-type", "git_lfs_concat").exit_code == 0
    legacy = read_lock(root / "kernels.lock")
    assert {k.hash_type for k in legacy.kernel} == {"git_lfs_concat"}
    assert cli("sync", "--project", str(root), "--all-variants").exit_code == 0
    assert cli("verify", "--project", str(root), "--all-variants", "--full").exit_code == 0
    hub_env.clear_log()
    assert cli("lock", "--project", str(root)).exit_code == 0
    assert hub_env.requests == [] and read_lock(root / "kernels.lock") == legacy, (
        "a plain lock keeps the type"
    )
    assert cli("lock", "--check", "--project", str(root)).exit_code == 1, "lock --check asks for sha256"
    assert cli("lock", "--check", "--project", str(root), "--hash-type", "git_lfs_concat").exit_code == 0
    assert cli("lock", "--project", str(root), "-P", "kernels-community/relu").exit_code == 0
    assert {k.hash_type for k in read_lock(root / "kernels.lock").kernel} == {"git_lfs_concat"}

    assert cli("lock", "--project", str(root), "--upgrade").exit_code == 0
    upgraded = read_lock(root / "kernels.lock")
    assert {k.hash_type for k in upgraded.kernel} == {"sha256"}
    assert [(k.key, k.commit) for k in upgraded.kernel] == [(k.key, k.commit) for k in legacy.kernel]
    assert cli("lock", "--check", "--project", str(root)).exit_code == 0
    hub_env.clear_log()
    assert cli("sync", "--project", str(root), "--all-variants").exit_code == 0
    assert cli("verify", "--project", str(root), "--all-variants", "--full").exit_code == 0
    relu = upgraded.find("kernels-community/relu")
    assert relu is not None
    record = read_record(record_path(relu.repo_id, relu.commit, CPU_VARIANT))
    assert record is not None and record.hash_type == "sha256"
    assert all(e.sha256 is not None for e in record.manifest)


def test_explicit_hash_type_converts_at_the_locked_commits(hub_env, hub_fixtures, make_project, cli) -> None:
    root = make_project(RELU)
    assert cli("lock", "--project", str(root), "--hash-type", "git_lfs_concat").exit_code == 0
    hub_fixtures.relu.commit(variant_files_tree("moved"), branch="v1", message="newer build")
    assert cli("lock", "--project", str(root), "--hash-type", "sha256").exit_code == 0
    [entry] = read_lock(root / "kernels.lock").kernel
    assert (entry.hash_type, entry.commit) == ("sha256", hub_fixtures.relu_v1), "converted, not moved"


def variant_files_tree(seed: str) -> dict[str, bytes]:
    return {f"build/torch-cpu/{p}": d for p, d in variant_files("torch-cpu", seed=seed).items()}


def test_provenance_is_locked_and_shown(hub_env, make_project, cli) -> None:
    root = make_project(ACTIVATION)
    assert cli("lock", "--project", str(root)).exit_code == 0
    [entry] = read_lock(root / "kernels.lock").kernel
    [build] = entry.provenance
    assert build.builder == BUILDER_VERSION and not build.dirty and build.source_commit
    assert build.variants == sorted(entry.variants)
    run = cli("status", "--project", str(root), "--json")
    [row] = run.json()["kernels"]
    assert row["provenance"] == [
        {
            "builder": BUILDER_VERSION,
            "builder-commit": build.builder_commit,
            "source-commit": build.source_commit,
            "dirty": False,
            "variants": build.variants,
        }
    ]


def test_dirty_build_is_a_warning_at_lock(hub_env, make_project, cli) -> None:
    publish(hub_env, variant_files(CPU_VARIANT, name="crafted", dirty=True))
    root = make_project(f'"{REPO}" = 1')
    run = cli("lock", "--project", str(root))
    assert run.exit_code == 0
    assert "dirty" in run.stderr and CPU_VARIANT in run.stderr
    [entry] = read_lock(root / "kernels.lock").kernel
    assert [b.dirty for b in entry.provenance] == [True]


def test_sha512_digest_checks_the_fetched_files_at_lock(hub_env, make_project, cli) -> None:
    """A SHA-512 digest gives no SHA-256: git files are fetched, and checked against it, at lock."""
    files = variant_files(CPU_VARIANT, name="crafted")
    sha512 = publisher_digest({p: d for p, d in files.items() if p != "metadata.json"}, "sha512")
    metadata = {**json.loads(files["metadata.json"]), "digest": sha512.to_dict()}
    publish(hub_env, {**files, "metadata.json": json.dumps(metadata).encode()})
    root = make_project(f'"{REPO}" = 1')
    run = cli("lock", "--project", str(root))
    assert run.exit_code == 0, run.stderr
    fetched = {p.rsplit(f"/{CPU_VARIANT}/", 1)[1] for p in file_gets(hub_env)}
    assert fetched == {p for p in files if p.endswith(".py")}
    assert cli("sync", "--project", str(root), "--variant", CPU_VARIANT).exit_code == 0
    assert cli("verify", "--project", str(root), "--variant", CPU_VARIANT, "--full").exit_code == 0


def test_sha512_digest_that_a_served_file_does_not_match_is_refused(hub_env, make_project, cli) -> None:
    files = variant_files(CPU_VARIANT, name="crafted")
    sha512 = publisher_digest({**files, "layers.py": b"other bytes\n"}, "sha512")
    metadata = {**json.loads(files["metadata.json"]), "digest": sha512.to_dict()}
    publish(hub_env, {**files, "metadata.json": json.dumps(metadata).encode()})
    root = make_project(f'"{REPO}" = 1')
    run = cli("lock", "--project", str(root))
    assert run.exit_code == 4 and "File hash mismatch for layers.py" in run.stderr
    assert not (root / "kernels.lock").exists()


def test_a_record_from_before_sha256_is_resynced_without_downloading(hub_env, make_project, cli) -> None:
    root = make_project(ACTIVATION)
    assert cli("lock", "--project", str(root), "--hash-type", "git_lfs_concat").exit_code == 0
    assert cli("sync", "--project", str(root), "--variant", CPU_VARIANT).exit_code == 0
    [entry] = read_lock(root / "kernels.lock").kernel
    path = record_path(entry.repo_id, entry.commit, CPU_VARIANT)
    old = json.loads(path.read_text())
    del old["hash_type"]
    for item in old["manifest"]:
        del item["sha256"]
    path.write_text(json.dumps(old))  # the record format an earlier kernel-lock wrote
    assert cli("verify", "--project", str(root), "--variant", CPU_VARIANT).exit_code == 4
    hub_env.clear_log()
    assert cli("sync", "--project", str(root), "--variant", CPU_VARIANT).exit_code == 0
    assert file_gets(hub_env) == [] and not any("/cdn/" in r.path for r in hub_env.requests)
    assert cli("verify", "--project", str(root), "--variant", CPU_VARIANT, "--full").exit_code == 0
