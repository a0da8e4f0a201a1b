"""`kernel-lock versions`: the major versions of a kernel repo and the build variants of each."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kernel_lock.errors import KernelLockError

if TYPE_CHECKING:
    from kernel_lock.core.target import Target
    from kernel_lock.hub.client import Hub


@dataclass
class VersionInfo:
    """One major version: its branch head, its variants (sorted), and the one the target would load."""

    version: int
    commit: str
    variants: list[str]
    selected: str | None

    @property
    def unstable(self) -> bool:
        """Version 0 is for alpha/beta kernels, outside the API stability promise."""
        return self.version == 0


def list_versions(repo_id: str, *, hub: Hub, target: Target) -> tuple[str, list[VersionInfo]]:
    """(the repo that holds the kernel after redirects, its versions in order)."""
    from kernel_lock.core.variants import select_variant
    from kernel_lock.lock.redirects import follow_redirects

    with ThreadPoolExecutor(max_workers=8) as pool:
        repo, refs = follow_redirects(repo_id, hub, pool)
        versions = sorted(refs.versions().items())
        listings = pool.map(lambda item: hub.tree(repo, item[1], "build", recursive=False), versions)
        infos = []
        for (version, commit), listing in zip(versions, listings, strict=False):
            variants = sorted(e.path.split("/")[-1] for e in listing if e.type == "directory")
            try:
                selected: str | None = select_variant(variants, target, repo_id=repo)
            except KernelLockError:
                selected = None
            infos.append(VersionInfo(version, commit, variants, selected))
    return repo, infos
