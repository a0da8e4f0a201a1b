"""kernels 0.19's zip layout (`build-layout: "zip"` in `metadata.json`): a variant is `metadata.json` and one
`<id>.zip`. It is locked, synced and verified like any variant (the zip is one file), and our loaders import
it from the verified archive's bytes, never from the file on disk as it is at import time.

The kernel is `kernels-community/zipped` from the local Hub's standard fixtures.
"""

from __future__ import annotations

import importlib
import json
import sys
import zipfile
from pathlib import Path

import pytest

from kernel_lock.cache.verify import check_variant
from kernel_lock.core.cache_layout import variant_dir
from kernel_lock.core.lockfile import LockedKernel, read_lock
from kernel_lock.errors import VerificationError
from kernel_lock.load import _registry as registry
from kernel_lock.load._fast import quick_get_kernel
from kernel_lock.load._verified_import import locked_files
from kernel_lock.load.locked import LockedLayerRepository, get_kernel
from kernel_lock.testing.fixtures import CPU_VARIANT, zip_archive

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch", reason="the fixture kernel computes with torch (marker `torch`)")

REPO = "kernels-community/zipped"
VARIANT = "torch-cpu"
KERNEL_MODULES = ("_zipped_",)


@pytest.fixture
def synced(hub_env, make_project, cli, monkeypatch) -> tuple[Path, LockedKernel]:
    root = make_project(f'"{REPO}" = 1')
    assert cli("lock", "--project", str(root)).exit_code == 0
    result = cli("sync", "--project", str(root))
    assert result.exit_code == 0, result.stderr
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    lockfile = root / "kernels.lock"
    entry = read_lock(lockfile).find(REPO)
    assert entry is not None
    return lockfile, entry


def _zip(entry: LockedKernel) -> Path:
    vdir = variant_dir(entry.repo_id, entry.commit, VARIANT)
    [archive] = vdir.glob("*.zip")
    return archive


def test_a_zip_layout_variant_is_locked_synced_and_verified(synced, cli) -> None:
    lockfile, entry = synced
    assert VARIANT in entry.variants
    vdir = variant_dir(entry.repo_id, entry.commit, VARIANT)
    names = sorted(p.name for p in vdir.iterdir())
    assert names == sorted(["metadata.json", _zip(entry).name])
    assert json.loads((vdir / "metadata.json").read_text())["build-layout"] == "zip"
    assert cli("verify", "--project", str(lockfile.parent)).exit_code == 0
    assert cli("verify", "--project", str(lockfile.parent), "--full").exit_code == 0
    assert cli("lock", "--project", str(lockfile.parent), "--check").exit_code == 0


@pytest.mark.parametrize("how", ["quick", "full", "layer"])
def test_our_loaders_import_it_from_the_archive(synced, how: str) -> None:
    lockfile, entry = synced
    if how == "quick":
        kernel = quick_get_kernel(lockfile, REPO)
    elif how == "full":
        kernel = get_kernel(REPO, lockfile=lockfile, target=CPU_VARIANT)
    else:
        layer = LockedLayerRepository(REPO, layer_name="ReLU", lockfile=lockfile).load()
        kernel = sys.modules[layer.__module__.split(".")[0]]
    assert kernel is not None
    assert kernel.__file__ == str(_zip(entry) / "__init__.py")
    assert kernel.layers.__file__ == str(_zip(entry) / "layers.py")
    x = torch.tensor([-1.0, 2.0])
    out = torch.empty_like(x)
    kernel.relu(out, x)
    assert out.tolist() == [0.0, 2.0]
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(f"{kernel.__name__}.not_in_the_archive")


@pytest.mark.parametrize("mode", ["fast", "full"])
def test_a_tampered_archive_is_refused(synced, cli, monkeypatch, mode: str) -> None:
    """The zip's blob rewritten with planted code in `__init__.py`: verify and every loader refuse it."""
    lockfile, entry = synced
    monkeypatch.setenv("KERNEL_LOCK_VERIFY", mode)
    archive = _zip(entry)
    with zipfile.ZipFile(archive) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    members["__init__.py"] = b"raise SystemExit('planted code ran')\n"
    archive.write_bytes(zip_archive(members))
    assert cli("verify", "--project", str(lockfile.parent)).exit_code != 0
    assert quick_get_kernel(lockfile, REPO) is None
    for call in (
        lambda: get_kernel(REPO, lockfile=lockfile),
        lambda: get_kernel(REPO, lockfile=lockfile, target=CPU_VARIANT),
    ):
        with pytest.raises(VerificationError, match=archive.name):
            call()


def test_an_archive_swapped_between_the_check_and_the_import_is_refused(synced) -> None:
    """The check passed (its result in hand), then the zip changes before it is read: the loader hashes the
    bytes it imports from, so the planted archive is refused, not imported."""
    _, entry = synced
    check = check_variant(entry, VARIANT)
    assert check.ok and check.record is not None
    archive = _zip(entry)
    archive.unlink()
    archive.write_bytes(zip_archive({"__init__.py": b"raise SystemExit('planted code ran')\n"}))
    files = locked_files(check.record)
    with pytest.raises(VerificationError, match=rf"{archive.name}: content changed"):
        registry.import_variant(check.path, where=f"{REPO} variant {VARIANT}", files=files)


@pytest.mark.kernels
def test_under_enforcement_kernels_loads_it_from_the_verified_archive(synced) -> None:
    """kernels 0.19 reads the zip layout itself; under enforce() the import is ours, from the checked bytes."""
    kernels = pytest.importorskip("kernels")
    import kernel_lock
    import kernel_lock.enforcement as enforcement
    from kernel_lock.testing.upstream import kernels_module

    if not hasattr(kernels_module("importer"), "_zip_spec"):
        pytest.skip(f"kernels {kernels.__version__} has no zip layout (0.19 and later)")
    lockfile, entry = synced
    kernel_lock.enforce(lockfile)
    try:
        kernel = kernels.get_kernel(REPO, version=1)
    finally:
        enforcement.disable()
    assert kernel.__file__ == str(_zip(entry) / "__init__.py")
    out = torch.empty(2)
    kernel.relu(out, torch.tensor([-1.0, 2.0]))
    assert out.tolist() == [0.0, 2.0]
