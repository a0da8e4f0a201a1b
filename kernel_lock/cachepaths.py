"""Where kernels live in the Hugging Face cache, and where kernel-lock keeps its records beside them.

No pydantic and nothing heavy: the quick load path (`kernel_lock.quickload`) needs only these.
"""

from __future__ import annotations

from pathlib import Path

from kernel_lock import env

__all__ = ["RECORD_DIR", "blob_path", "hub_cache_dir", "record_path", "repo_dir", "variant_dir"]

RECORD_DIR = ".kernel-lock"


def hub_cache_dir() -> Path:
    """The Hugging Face hub cache, resolved from the environment as `huggingface_hub` does."""
    return env.hub_cache()


def repo_dir(repo_id: str, cache: Path | None = None) -> Path:
    """The cache folder of a kernel repo: `kernels--{org}--{name}`."""
    return (cache or hub_cache_dir()) / ("kernels--" + repo_id.replace("/", "--"))


def variant_dir(repo_id: str, commit: str, variant: str, cache: Path | None = None) -> Path:
    """The snapshot folder of one variant at one commit."""
    return repo_dir(repo_id, cache) / "snapshots" / commit / "build" / variant


def blob_path(repo_id: str, name: str, cache: Path | None = None) -> Path:
    """Where a file's content lives, named by its hash (git blob id, or LFS sha256), as `huggingface_hub` names it."""
    return repo_dir(repo_id, cache) / "blobs" / name


def record_path(repo_id: str, commit: str, variant: str, cache: Path | None = None) -> Path:
    """Where the `VariantRecord` of a synced variant lives."""
    return repo_dir(repo_id, cache) / RECORD_DIR / commit / f"{variant}.json"
