"""What a lock run changed: the change summary (`lock_changes`) and `LockResult`, what `lock_project` did."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from kernel_lock.core.lockfile import Lock, LockedKernel


@dataclass(frozen=True)
class Change:
    """One kernel's line of a change summary: `relu v1 (e25d292) -> v2 (97406b2)`."""

    repo_id: str
    change: Literal["added", "removed", "updated", "commit-moved"]
    before: str | None
    after: str | None
    direct: bool
    detail: str | None = None  # what changed where the requirement and commit did not

    def __str__(self) -> str:
        mark = {"added": "+", "removed": "-", "updated": "~", "commit-moved": "~"}[self.change]
        text = f"{mark} {self.repo_id}{'' if self.direct else ' (dependency)'}"
        if self.before == self.after:
            return f"{text} {self.after} ({self.detail})"
        if self.before and self.after:
            return f"{text} {self.before} \N{RIGHTWARDS ARROW} {self.after}"
        return f"{text} {self.before or self.after}"


def _label(entry: LockedKernel) -> str:
    """`v2 (97406b2)` or `main (97406b2)`: an entry's requirement and short commit."""
    requirement = f"v{entry.version}" if entry.version is not None else str(entry.revision)
    return f"{requirement} ({entry.commit[:7]})"


def entry_changed(old: LockedKernel, new: LockedKernel) -> bool:
    """Whether an entry changed beyond its `required-by` (which follows the other kernels, not this one)."""
    return dataclasses.replace(old, required_by=[]) != dataclasses.replace(new, required_by=[])


def _same_requirement_change(old: LockedKernel, new: LockedKernel) -> str | None:
    """What changed in an entry whose requirement and commit did not (None where they did)."""
    if _label(old) != _label(new):
        return None
    if old.direct != new.direct:
        return "now required directly" if new.direct else "now only a dependency"
    if old.hash_type != new.hash_type:
        return f"hashes now {new.hash_type}"
    return "entry rewritten at the same commit"


def lock_changes(before: Lock | None, after: Lock) -> list[Change]:
    """Every entry that was added, removed, re-required or moved to another commit, by repo."""
    old = before.by_key() if before else {}
    new = after.by_key()
    changes = [
        Change(
            new[k].requested_repo,
            "commit-moved" if new[k].commit != old[k].commit else "updated",
            _label(old[k]),
            _label(new[k]),
            new[k].direct,
            _same_requirement_change(old[k], new[k]),
        )
        for k in sorted(set(old) & set(new))
        if entry_changed(old[k], new[k])
    ]
    gone = [old[k] for k in sorted(set(old) - set(new))]
    came = [new[k] for k in sorted(set(new) - set(old))]
    for entry in came:
        was = [e for e in gone if e.requested_repo == entry.requested_repo and e.direct == entry.direct]
        if len(was) == 1:
            gone.remove(was[0])
            changes.append(
                Change(entry.requested_repo, "updated", _label(was[0]), _label(entry), entry.direct)
            )
        else:
            changes.append(Change(entry.requested_repo, "added", None, _label(entry), entry.direct))
    changes += [Change(e.requested_repo, "removed", _label(e), None, e.direct) for e in gone]
    return sorted(changes, key=lambda c: (not c.direct, c.repo_id, c.change))


@dataclass
class LockResult:
    """What `lock_project` did."""

    lock: Lock
    path: Path
    written: bool
    previous: Lock | None = None
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    def changes(self) -> list[Change]:
        """The change summary of this lock against the previous one."""
        return lock_changes(self.previous, self.lock)
