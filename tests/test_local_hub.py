"""Fidelity tests of `kernel_lock.testing.LocalHub` with the real clients (huggingface_hub, kernels CLI)."""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.hf_api import RepoFile, RepoFolder
from packaging.version import Version

from kernel_lock.testing import (
    Fault,
    HubFixtures,
    LocalHub,
    git_blob_id,
    lfs_pointer,
    repo_files,
    variant_files,
)
from kernel_lock.testing.fixtures import CPU_VARIANT, RELU_V1_VARIANTS

RELU = "kernels-community/relu"
CUDA_VARIANT = "torch213-cxx11-cu126-x86_64-linux"
KERNELS_CLI = Path(sys.executable).with_name("kernels")


def _so_path(hub_fixtures: HubFixtures, variant: str, revision: str = "v1") -> str:
    return next(
        p
        for p in hub_fixtures.relu.files(revision)
        if p.startswith(f"build/{variant}/") and p.endswith(".so")
    )


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, dict(response.headers), response.read()


# -- huggingface_hub API ---------------------------------------------------------------------------------------


def test_list_repo_refs_through_default_endpoint(hub_env: LocalHub, hub_fixtures: HubFixtures) -> None:
    refs = HfApi().list_repo_refs(RELU, repo_type="kernel")
    assert {b.name: b.target_commit for b in refs.branches} == hub_fixtures.relu.branches
    assert {t.name: t.target_commit for t in refs.tags} == {"v1.0.0": hub_fixtures.relu_v1_first}
    assert refs.branches[0].ref.startswith("refs/heads/")
    assert hub_fixtures.relu_v1 != hub_fixtures.relu_v1_first
    assert HfApi().kernel_info(RELU, revision="v1").sha == hub_fixtures.relu_v1


def test_tree_recursive_has_git_and_lfs_metadata(hub_env: LocalHub, hub_fixtures: HubFixtures) -> None:
    files = hub_fixtures.relu.files("v1")
    entries = list(HfApi().list_repo_tree(RELU, repo_type="kernel", revision="v1", recursive=True))
    listed = {e.path: e for e in entries if isinstance(e, RepoFile)}
    assert set(listed) == set(files)
    for path, entry in listed.items():
        data = files[path]
        assert entry.size == len(data)
        if path.endswith(".so"):
            assert entry.lfs is not None and entry.lfs.sha256 == hashlib.sha256(data).hexdigest()
            assert entry.lfs.size == len(data) and entry.lfs.pointer_size == len(lfs_pointer(data))
            assert entry.blob_id == git_blob_id(lfs_pointer(data))
        else:
            assert entry.lfs is None and entry.blob_id == git_blob_id(data)
    folders = {e.path for e in entries if isinstance(e, RepoFolder)}
    assert {"build", f"build/{CPU_VARIANT}", f"build/{CPU_VARIANT}/relu"} <= folders
    build = list(
        HfApi().list_repo_tree(RELU, path_in_repo="build", repo_type="kernel", revision="refs/heads/v1")
    )
    assert all(isinstance(e, RepoFolder) for e in build)
    assert sorted(e.path.split("/")[-1] for e in build) == sorted(RELU_V1_VARIANTS)
    sub = list(
        HfApi().list_repo_tree(RELU, path_in_repo=f"build/{CPU_VARIANT}", repo_type="kernel", revision="v1")
    )
    direct = {p for p in files if p.startswith(f"build/{CPU_VARIANT}/") and p.count("/") == 2}
    assert {e.path for e in sub} == direct | {f"build/{CPU_VARIANT}/relu"}
    with pytest.raises(EntryNotFoundError):
        list(HfApi().list_repo_tree(RELU, path_in_repo="nope", repo_type="kernel", revision="v1"))


def test_tree_pagination_follows_cursor(hub_env: LocalHub) -> None:
    repo = hub_env.create_repo("kernels-community/big", repo_type="kernel")
    files = {f"build/torch-universal/f{i:04d}.py": b"x = %d\n" % i for i in range(1100)}
    sha = repo.commit(files)
    hub_env.clear_log()
    entries = list(HfApi().list_repo_tree("kernels-community/big", repo_type="kernel", recursive=True))
    assert sorted(e.path for e in entries if isinstance(e, RepoFile)) == sorted(files)
    assert len(entries) == len(files) + 2  # + build, build/torch-universal
    tree_calls = [r for r in hub_env.requests if "/tree/" in r.path]
    assert len(tree_calls) == 2 and "cursor" in tree_calls[1].query
    expanded = list(
        HfApi().list_repo_tree("kernels-community/big", repo_type="kernel", revision=sha, expand=True)
    )
    assert expanded[0].last_commit is not None and expanded[0].last_commit.oid == sha


def test_paths_info(hub_env: LocalHub, hub_fixtures: HubFixtures) -> None:
    so = _so_path(hub_fixtures, CUDA_VARIANT)
    infos = HfApi().get_paths_info(
        RELU, ["README.md", "build", so, "missing.txt"], repo_type="kernel", revision="v1"
    )
    by_path = {i.path: i for i in infos}
    assert set(by_path) == {"README.md", "build", so}
    assert isinstance(by_path["build"], RepoFolder)
    so_info = by_path[so]
    assert isinstance(so_info, RepoFile) and so_info.lfs is not None
    assert so_info.lfs.sha256 == hashlib.sha256(hub_fixtures.relu.files("v1")[so]).hexdigest()


# -- downloads ------------------------------------------------------------------------------------------------


def test_hf_hub_download_regular_and_lfs(hub_env: LocalHub, hub_fixtures: HubFixtures) -> None:
    files = hub_fixtures.relu.files("v1")
    meta = f"build/{CUDA_VARIANT}/metadata.json"
    path = hf_hub_download(RELU, meta, repo_type="kernel", revision="v1")
    assert Path(path).read_bytes() == files[meta]
    assert f"snapshots/{hub_fixtures.relu_v1}/" in path
    so = _so_path(hub_fixtures, CUDA_VARIANT)
    hub_env.clear_log()
    path = hf_hub_download(RELU, so, repo_type="kernel", revision="v1")
    assert Path(path).read_bytes() == files[so]
    assert Path(path).resolve().name == hashlib.sha256(files[so]).hexdigest()  # blob named by X-Linked-Etag
    head, get = hub_env.requests
    assert (head.method, head.status) == ("HEAD", 302) and head.path.endswith(so)
    assert (get.method, get.status, get.bytes_sent) == ("GET", 200, len(files[so])) and get.path.startswith(
        "/cdn/"
    )


def test_download_errors_are_classified(hub_env: LocalHub, hub_fixtures: HubFixtures) -> None:
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(RELU, "build/nope/metadata.json", repo_type="kernel", revision="v1")
    cache = Path(os.environ["HF_HUB_CACHE"]) / "kernels--kernels-community--relu"
    assert (cache / ".no_exist" / hub_fixtures.relu_v1 / "build" / "nope" / "metadata.json").exists()
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("kernels-community/nope", "README.md", repo_type="kernel")
    with pytest.raises(RepositoryNotFoundError):  # a kernel repo is not a model repo
        hf_hub_download(RELU, "README.md")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(RELU, "README.md", repo_type="kernel", revision="v9")
    with pytest.raises(RevisionNotFoundError):
        HfApi().list_repo_tree(RELU, repo_type="kernel", revision="0" * 40).__next__()
    with pytest.raises(RepositoryNotFoundError):
        HfApi().list_repo_refs("kernels-community/nope", repo_type="kernel")


def test_snapshot_download_allow_patterns(hub_env: LocalHub, hub_fixtures: HubFixtures) -> None:
    folder = snapshot_download(
        RELU, repo_type="kernel", revision="v1", allow_patterns=[f"build/{CUDA_VARIANT}/*"]
    )
    got = {p.relative_to(folder).as_posix(): p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}
    want = {p: d for p, d in hub_fixtures.relu.files("v1").items() if p.startswith(f"build/{CUDA_VARIANT}/")}
    assert got == want
    assert Path(folder).name == hub_fixtures.relu_v1


def test_model_type_repo_is_served_under_model_urls(hub_env: LocalHub, hub_fixtures: HubFixtures) -> None:
    repo_id = "kernels-community/legacy-model-kernel"
    assert HfApi().model_info(repo_id).sha == hub_fixtures.legacy_model_main
    path = hf_hub_download(repo_id, "README.md")
    assert Path(path).read_bytes() == hub_fixtures.legacy_model.files()["README.md"]
    with pytest.raises(RepositoryNotFoundError):
        HfApi().kernel_info(repo_id)


# -- fixtures -------------------------------------------------------------------------------------------------


@pytest.mark.torch
@pytest.mark.kernels
def test_fixture_kernel_imports_and_runs_on_cpu(tmp_path: Path) -> None:
    import torch
    from kernels._rust import Metadata

    files = variant_files(
        CUDA_VARIANT, kernel_depends=[("kernels-community/activation", 1)], python_depends=["einops"]
    )
    for rel, data in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    metadata = Metadata.from_bytes(files["metadata.json"])
    assert [d.repo_id for d in metadata.kernel_depends] == ["kernels-community/activation"]
    assert f"{metadata.id}.abi3.so" in files and len(files[f"{metadata.id}.abi3.so"]) == 4096
    spec = importlib.util.spec_from_file_location(metadata.id, tmp_path / "__init__.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[metadata.id] = module
    try:
        spec.loader.exec_module(module)
        x = torch.randn(4, 8)
        assert torch.equal(module.relu(torch.empty_like(x), x), torch.relu(x))
        expected = torch.nn.functional.silu(x[:, :4]) * x[:, 4:]
        assert torch.allclose(module.silu_and_mul(torch.empty(4, 4), x), expected)
        assert torch.allclose(module.layers.SiluAndMul()(x), expected)
        assert torch.equal(module.layers.ReLU()(x), torch.relu(x))
        assert module.VARIANT == CUDA_VARIANT
    finally:
        sys.modules.pop(metadata.id, None)
    for variant in RELU_V1_VARIANTS:
        Metadata.from_bytes(variant_files(variant)["metadata.json"])
    assert not any(p.endswith(".so") for p in variant_files("torch-universal"))
    assert repo_files(["torch-cpu"]) == repo_files(["torch-cpu"])  # deterministic


# -- kernels CLI (subprocess, HF_ENDPOINT) ---------------------------------------------------------------------


def _kernels(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(KERNELS_CLI), *args], cwd=cwd, env=dict(os.environ), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.kernels
def test_kernels_cli_versions_lock_download(
    hub_env: LocalHub, hub_fixtures: HubFixtures, tmp_path: Path
) -> None:
    versions = _kernels("versions", RELU, cwd=tmp_path)
    assert "Version 1:" in versions.stdout and "Version 2:" in versions.stdout
    assert CPU_VARIANT in versions.stdout

    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text(
        '[project]\nname = "demo"\nversion = "0.1.0"\n\n[tool.kernels.dependencies]\n"kernels-community/relu" = 1\n'
    )
    hub_env.clear_log()
    _kernels("lock", str(project), cwd=tmp_path)
    lock = json.loads((project / "kernels.lock").read_text())
    assert lock == [{"dependency": {"repo-id": RELU, "version": 1}, "lock": {"commit": hub_fixtures.relu_v1}}]
    paths = [r.path for r in hub_env.requests]
    assert paths[0] == "/api/organizations/kernels-community/overview"
    assert f"/api/kernels/{RELU}/refs" in paths
    assert sum(p.endswith("/metadata.json") for p in paths) == 2 * len(RELU_V1_VARIANTS)  # HEAD + GET each
    assert all(r.headers.get("user-agent", "").endswith("kernel-lock-tests") for r in hub_env.requests)

    _kernels("download", str(project), cwd=tmp_path)
    repo_cache = Path(os.environ["HF_HUB_CACHE"]) / "kernels--kernels-community--relu"
    snapshot = repo_cache / "snapshots" / hub_fixtures.relu_v1
    downloaded = {p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()}
    assert f"build/{CPU_VARIANT}/__init__.py" in downloaded
    assert f"build/{CPU_VARIANT}/layers.py" in downloaded


# -- faults, latency, log ---------------------------------------------------------------------------------------


def test_status_fault_then_success(local_hub: LocalHub) -> None:
    url = f"{local_hub.url}/api/kernels/{RELU}/refs"
    local_hub.add_fault(Fault("status", match=r"/refs$", status=503, retry_after=2))
    with pytest.raises(urllib.error.HTTPError) as error:
        _get(url)
    assert error.value.code == 503 and error.value.headers["Retry-After"] == "2"
    status, _, body = _get(url)
    assert status == 200 and "branches" in json.loads(body)
    assert [r.status for r in local_hub.requests] == [503, 200]


@pytest.mark.skipif(
    Version(huggingface_hub.__version__) < Version("2.4"),
    reason="huggingface_hub retries the first page of a listing in 2.4 (seen); 1.33 does not",
)
def test_status_fault_is_retried_by_the_client(hub_env: LocalHub, hub_fixtures: HubFixtures) -> None:
    hub_env.add_fault(Fault("status", match=r"/tree/", status=502, count=1))
    entries = list(HfApi().list_repo_tree(RELU, repo_type="kernel", revision="v1"))  # http_backoff retries
    assert {e.path for e in entries} == {"README.md", "build"}
    assert [r.status for r in hub_env.requests if "/tree/" in r.path] == [502, 200]


def test_corrupt_truncate_wrong_commit_reset(local_hub: LocalHub, hub_fixtures: HubFixtures) -> None:
    path = f"build/{CPU_VARIANT}/__init__.py"
    url = f"{local_hub.url}/kernels/{RELU}/resolve/v1/{path}"
    original = hub_fixtures.relu.files("v1")[path]

    local_hub.add_fault(Fault("corrupt", match=r"__init__\.py$"))
    _, headers, body = _get(url)
    assert len(body) == len(original) and body != original
    assert sum(a != b for a, b in zip(body, original, strict=False)) == 1
    assert _get(url)[2] == original

    local_hub.add_fault(Fault("wrong_commit", match=r"__init__\.py$"))
    assert _get(url)[1]["X-Repo-Commit"] == "0" * 40
    assert headers["X-Repo-Commit"] == hub_fixtures.relu_v1

    local_hub.add_fault(Fault("truncate", match=r"__init__\.py$"))
    connection = http.client.HTTPConnection("127.0.0.1", local_hub.port, timeout=10)
    connection.request("GET", f"/kernels/{RELU}/resolve/v1/{path}")
    response = connection.getresponse()
    assert int(response.headers["Content-Length"]) == len(original)
    with pytest.raises(http.client.IncompleteRead) as incomplete:
        response.read()
    assert incomplete.value.partial == original[: len(original) // 2]
    connection.close()

    local_hub.add_fault(Fault("reset", match=r"__init__\.py$", method="GET"))
    with pytest.raises((ConnectionError, http.client.HTTPException, urllib.error.URLError)):
        _get(url)
    assert local_hub.requests[-1].status == 0
    assert _get(url)[2] == original


def test_truncated_download_restarts_small_and_resumes_large(
    hub_env: LocalHub, hub_fixtures: HubFixtures
) -> None:
    so = _so_path(hub_fixtures, CUDA_VARIANT)
    hub_env.add_fault(Fault("truncate", match=r"^/cdn/"))
    path = hf_hub_download(RELU, so, repo_type="kernel", revision="v1")
    assert Path(path).read_bytes() == hub_fixtures.relu.files("v1")[so]
    assert [r.status for r in hub_env.requests if r.path.startswith("/cdn/")] == [
        200,
        200,
    ]  # < 10 MiB: from 0

    big = hub_env.create_repo("kernels-community/big-so", repo_type="kernel")
    files = repo_files([CUDA_VARIANT], name="big-so", so_size=24 * 1024 * 1024)
    big.commit(files)
    big_so = next(p for p in files if p.endswith(".so"))
    hub_env.clear_log()
    hub_env.add_fault(Fault("truncate", match=r"^/cdn/"))
    path = hf_hub_download("kernels-community/big-so", big_so, repo_type="kernel")
    assert Path(path).read_bytes() == files[big_so]
    cdn = [r for r in hub_env.requests if r.path.startswith("/cdn/")]
    assert [r.status for r in cdn] == [200, 206]
    assert cdn[1].headers["range"] == f"bytes={10 * 1024 * 1024}-"  # whole 10 MiB chunks were kept


def test_stall_and_latency_overlap(local_hub: LocalHub) -> None:
    """A stall or latency holds a request unanswered while others are served; held requests wait side by side."""
    refs = f"/api/kernels/{RELU}/refs"
    tree = f"/api/kernels/{RELU}/tree/v1"
    local_hub.add_fault(Fault("stall", match=r"/refs$", seconds=600))
    stalled = threading.Thread(target=_get, args=(local_hub.url + refs,), daemon=True)
    stalled.start()
    local_hub.wait_held(1)
    assert local_hub.requests == []  # held, not answered
    assert _get(local_hub.url + tree)[0] == 200  # served meanwhile
    local_hub.release()
    stalled.join()
    assert [(r.path, r.status, r.faults) for r in local_hub.requests] == [
        (tree, 200, ()),
        (refs, 200, ("stall",)),
    ]

    local_hub.clear_log()
    local_hub.latency = 600
    threads = [threading.Thread(target=_get, args=(local_hub.url + refs,), daemon=True) for _ in range(6)]
    for thread in threads:
        thread.start()
    local_hub.wait_held(6)  # all six held at once: concurrent requests wait in parallel, not in a queue
    assert local_hub.requests == []
    local_hub.latency = 0.0
    local_hub.release()
    for thread in threads:
        thread.join()
    assert [(r.path, r.status) for r in local_hub.requests] == [(refs, 200)] * 6


def test_request_log_and_range(local_hub: LocalHub, hub_fixtures: HubFixtures) -> None:
    path = f"build/{CPU_VARIANT}/layers.py"
    original = hub_fixtures.relu.files("v1")[path]
    status, headers, body = _get(f"{local_hub.url}/kernels/{RELU}/resolve/v1/{path}", {"Range": "bytes=10-"})
    assert status == 206 and body == original[10:]
    assert headers["Content-Range"] == f"bytes 10-{len(original) - 1}/{len(original)}"
    _get(f"{local_hub.url}/api/kernels/{RELU}/tree/v1?recursive=true")
    first, second = local_hub.requests
    assert (first.method, first.status, first.bytes_sent) == ("GET", 206, len(original) - 10)
    assert first.path == f"/kernels/{RELU}/resolve/v1/{path}"
    assert second.query == {"recursive": "true"}
    local_hub.clear_log()
    assert local_hub.requests == []


def test_override_tree_and_stop(hub_fixtures: HubFixtures) -> None:
    hub = LocalHub()
    repo = hub.create_repo("kernels-community/hostile", repo_type="kernel")
    sha = repo.commit({"build/torch-cpu/__init__.py": b"x = 1\n"}, message="one")
    assert sha == LocalHub().create_repo("a/b").commit(
        {"build/torch-cpu/__init__.py": b"x = 1\n"}, message="one"
    )
    fake = {"type": "file", "oid": "1" * 40, "size": 3, "path": "build/torch-cpu/__init__.py"}
    repo.override_tree(sha, [{"type": "directory", "oid": "2" * 40, "size": 0, "path": "build"}, fake])
    with hub:
        api = HfApi(endpoint=hub.url)
        listed = list(api.list_repo_tree("kernels-community/hostile", repo_type="kernel", recursive=True))
        assert [e.path for e in listed] == ["build", "build/torch-cpu/__init__.py"]
        assert isinstance(listed[1], RepoFile) and listed[1].blob_id == "1" * 40
        url = hub.url
    with pytest.raises(urllib.error.URLError):
        _get(f"{url}/api/kernels/kernels-community/hostile/refs")
