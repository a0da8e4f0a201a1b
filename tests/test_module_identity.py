"""A kernel's module comes from its own verified files: never another kernel's, never a module that was already there.

Two locked kernels whose metadata `id` is the same, or a kernel whose id names a module of the standard
library: `get_kernel` refuses the second, naming both, instead of handing back the module already in
`sys.modules` under that name.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from kernel_lock.errors import VerificationError
from kernel_lock.load.locked import get_kernel
from kernel_lock.testing import LocalHub, repo_files
from kernel_lock.testing.fixtures import CPU_VARIANT

pytestmark = pytest.mark.torch
pytest.importorskip("torch", reason="the fixture kernels import torch (marker `torch`)")

VARIANT = "torch-cpu"
KERNEL_MODULES = ("_dup",)


def publish(hub: LocalHub, repo_id: str, *, module_id: str | None = None) -> None:
    """A kernel repo with one variant; `module_id` overrides the `id` its metadata.json declares."""
    files = repo_files([VARIANT], name="dup")
    if module_id is not None:
        path = f"build/{VARIANT}/metadata.json"
        metadata = json.loads(files[path])
        metadata["id"] = module_id
        files[path] = json.dumps(metadata).encode()
    repo = hub.create_repo(repo_id)
    repo.create_branch("v1", repo.commit(files, branch="main"))


@pytest.fixture
def project(hub_env, make_project, cli) -> Path:
    publish(hub_env, "org-a/dup")
    publish(hub_env, "org-b/dup")
    publish(hub_env, "org-c/json", module_id="json")
    root = make_project(
        *(
            f'"{r}" = {{ version = 1, trust-remote-code = true }}'
            for r in ("org-a/dup", "org-b/dup", "org-c/json")
        )
    )
    assert cli("lock", "--project", str(root)).exit_code == 0
    assert cli("sync", "--project", str(root), "--variant", VARIANT).exit_code == 0
    return root


def test_two_kernels_with_one_module_id_are_refused_naming_both(project: Path) -> None:
    lock = project / "kernels.lock"
    first = get_kernel("org-a/dup", lockfile=lock, target=CPU_VARIANT)
    assert first.__file__ is not None and "kernels--org-a--dup" in first.__file__
    with pytest.raises(VerificationError) as raised:
        get_kernel("org-b/dup", lockfile=lock, target=CPU_VARIANT)
    message = str(raised.value)
    assert "org-b/dup variant torch-cpu" in message and "taken by org-a/dup variant torch-cpu" in message
    assert get_kernel("org-a/dup", lockfile=lock, target=CPU_VARIANT) is first, "the first kernel still loads"


def test_a_kernel_cannot_take_a_standard_library_name(project: Path) -> None:
    with pytest.raises(VerificationError) as raised:
        get_kernel("org-c/json", lockfile=project / "kernels.lock", target=CPU_VARIANT)
    message = str(raised.value)
    assert "org-c/json variant torch-cpu" in message and "the module 'json'" in message
    assert sys.modules["json"] is json, "the standard library module is left alone"
