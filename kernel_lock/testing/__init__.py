"""Offline testing support: `LocalHub`, a real local Hugging Face Hub server, and realistic kernel fixtures.

Point the real `huggingface_hub` client at it with `HF_ENDPOINT=<hub.url>` (or the `hub_env` pytest fixture
from `kernel_lock.testing.pytest_plugin`). Importing this package imports neither torch nor kernels. It may
import any stage it needs; no module of kernel-lock imports it.
"""

from kernel_lock.testing.faults import Answer, Fault, FaultKind
from kernel_lock.testing.fixtures import HubFixtures, populate, repo_files, variant_files
from kernel_lock.testing.server import (
    HubRepo,
    LocalHub,
    RequestRecord,
    git_blob_id,
    lfs_pointer,
)

__all__ = [
    "Answer",
    "Fault",
    "FaultKind",
    "HubFixtures",
    "HubRepo",
    "LocalHub",
    "RequestRecord",
    "git_blob_id",
    "lfs_pointer",
    "populate",
    "repo_files",
    "variant_files",
]
