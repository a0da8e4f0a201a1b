"""Git objects as the Hub lists them: blob ids, LFS pointers, commits and tree ids computed as git does."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
LFS_SUFFIXES = (".so", ".bin", ".safetensors", ".pt", ".zip")
_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z: commit dates are deterministic
_AUTHOR = "kernel-lock <kernel-lock@localhost>"
_HEX40 = re.compile(r"[0-9a-f]{40}")


def git_blob_id(data: bytes) -> str:
    """Git blob object id (SHA-1) of `data`, as the Hub lists it in `oid`."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    """The Git LFS pointer file that git stores in place of `data`."""
    digest = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{digest}\nsize {len(data)}\n".encode()


def default_lfs_rule(path: str, data: bytes) -> bool:
    """Files ending in .so/.bin/.safetensors/.pt/.zip, or larger than 10 MiB, are stored in LFS."""
    return path.endswith(LFS_SUFFIXES) or len(data) > LFS_SIZE_THRESHOLD


@dataclass(frozen=True)
class _File:
    data: bytes
    lfs: bool

    @cached_property
    def oid(self) -> str:
        return git_blob_id(lfs_pointer(self.data) if self.lfs else self.data)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @cached_property
    def lfs_info(self) -> dict[str, Any]:
        return {"oid": self.sha256, "size": len(self.data), "pointerSize": len(lfs_pointer(self.data))}


@dataclass(frozen=True)
class _Commit:
    sha: str
    parent: str | None
    message: str
    date: int
    files: dict[str, _File]
    trees: dict[str, str]  # directory path ("" for the root) -> git tree id

    def node(self, path: str) -> _File | str | None:
        """The file at `path`, the tree id of the directory at `path`, or None."""
        if path in self.files:
            return self.files[path]
        return self.trees.get(path)


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _check_path(path: str) -> None:
    parts = path.split("/")
    if not path or "\\" in path or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid file path in commit: {path!r}")


def _build_trees(files: dict[str, _File]) -> dict[str, str]:
    """Git tree ids of every directory, computed exactly as git does (mode, name, binary id; git order)."""
    children: dict[str, dict[str, tuple[str, str]]] = {"": {}}
    for path in files:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            children.setdefault("/".join(parts[:depth]), {})
    trees: dict[str, str] = {}
    for directory in sorted(children, key=lambda d: -1 if d == "" else d.count("/"), reverse=True):
        entries: dict[str, tuple[str, str]] = {}
        prefix = f"{directory}/" if directory else ""
        for path, file in files.items():
            if path.startswith(prefix) and "/" not in path[len(prefix) :]:
                entries[path[len(prefix) :]] = ("100644", file.oid)
        for sub, oid in trees.items():
            if sub.startswith(prefix) and sub and "/" not in sub[len(prefix) :]:
                entries[sub[len(prefix) :]] = ("40000", oid)
        ordered = sorted(entries.items(), key=lambda item: item[0] + ("/" if item[1][0] == "40000" else ""))
        body = b"".join(
            f"{mode} {name}".encode() + b"\0" + bytes.fromhex(oid) for name, (mode, oid) in ordered
        )
        trees[directory] = hashlib.sha1(b"tree %d\0" % len(body) + body).hexdigest()
    return trees
