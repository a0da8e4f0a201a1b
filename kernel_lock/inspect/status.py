"""`kernel-lock status`: per locked kernel, what is required, locked, selected, synced and (optionally) newer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from kernel_lock.core.lockfile import LockedKernel, read_lock
from kernel_lock.core.signers import Signer
from kernel_lock.errors import NoVariantFits
from kernel_lock.project.config import load_project
from kernel_lock.project.paths import LOCKFILE, PYPROJECT, find_project_root

if TYPE_CHECKING:
    from kernel_lock.core.target import Target
    from kernel_lock.hub.client import Hub


@dataclass
class KernelStatus:
    """One row of `kernel-lock status`."""

    entry: LockedKernel
    variant: str | None = None
    variant_error: str | None = None
    sync: Literal["verified", "missing", "corrupt"] = "missing"
    problems: list[str] = field(default_factory=list)
    python_depends: list[str] = field(default_factory=list)
    python_missing: list[str] = field(default_factory=list)
    newer_version: int | None = None
    newer_commit: str | None = None

    @property
    def signer(self) -> Signer | None:
        """Who signed the selected variant's metadata, as the lock records it (None: unsigned or none selected)."""
        return self.entry.signed_by.get(self.variant) if self.variant else None

    def build(self) -> str | None:
        """How the selected variant was built, in words (None where its metadata.json did not say)."""
        for p in self.entry.provenance:
            if self.variant in p.variants:
                source = f" from {p.source_commit[:12]}" if p.source_commit else ""
                return f"kernel-builder {p.builder}{source}{' (dirty build)' if p.dirty else ''}"
        return None


@dataclass
class ProjectStatus:
    """`kernel-lock status` of a project: whether the lock matches pyproject.toml, and one row per kernel."""

    lockfile: Path
    differences: list[str] | None  # why the lock is stale; None where there is no pyproject.toml to compare
    rows: list[KernelStatus]

    @property
    def up_to_date(self) -> bool | None:
        return None if self.differences is None else not self.differences


def project_status(
    project: Path | None = None,
    *,
    target: Target | None = None,
    outdated: bool = False,
    hub: Hub | None = None,
) -> ProjectStatus:
    """The status of the lock and every locked kernel; `outdated` asks the Hub for newer versions and commits."""
    from kernel_lock.cache.verify import check_variant
    from kernel_lock.core.pydeps import missing, python_depends
    from kernel_lock.core.target import default_target
    from kernel_lock.core.variants import select_variant
    from kernel_lock.lock.project import lock_differences

    root = find_project_root(project)
    lock = read_lock(root / LOCKFILE)
    differences = lock_differences(load_project(root), lock) if (root / PYPROJECT).is_file() else None
    chosen = target or default_target()
    rows = []
    for entry in lock.kernel:
        row = KernelStatus(entry)
        try:
            row.variant = select_variant(entry.variants, chosen, repo_id=entry.repo_id)
        except NoVariantFits as exc:
            row.variant_error = exc.summary
        if row.variant:
            check = check_variant(entry, row.variant)
            row.sync = (
                "missing"
                if check.status == "missing"
                else "corrupt"
                if check.status == "corrupt"
                else "verified"
            )
            row.problems = [str(p) for p in check.problems if check.status == "corrupt"]
            if check.ok:
                row.python_depends = python_depends(check.path)
                row.python_missing = missing(row.python_depends)
        rows.append(row)
    if outdated:
        _add_newer(rows, hub)
    return ProjectStatus(root / LOCKFILE, differences, rows)


def _add_newer(rows: list[KernelStatus], hub: Hub | None) -> None:
    """Fill in newer majors, and newer commits on the locked branch, from the Hub (concurrently)."""
    from kernel_lock.hub.client import Hub

    client = hub or Hub()
    with ThreadPoolExecutor(max_workers=16) as pool:
        all_refs = list(pool.map(lambda r: client.refs(r.entry.repo_id), rows))
    for row, repo_refs in zip(rows, all_refs, strict=False):
        entry = row.entry
        newest = max(repo_refs.versions(), default=None)
        if entry.version is not None and newest is not None and newest > entry.version:
            row.newer_version = newest
        head = repo_refs.branch_heads.get(entry.ref)
        if head is not None and head != entry.commit:
            row.newer_commit = head
