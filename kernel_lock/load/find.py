"""Which `kernels.lock` a load uses: the one rule (`find_lockfile`) that the loaders, enforcement and
`kernel-lock run` all ask.

A lock is looked for from a folder up to its project root (the nearest folder holding a `pyproject.toml`, as
uv finds its project) and never above it, and is used only where no one but this user and root can change it
(`first_shared`). No pydantic, and nothing of `kernel_lock.project` unless a project is named or searched:
every fresh load asks this first.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from kernel_lock import env
from kernel_lock.core.fsutil import first_shared
from kernel_lock.errors import LockfileError


def find_lockfile(
    lockfile: str | os.PathLike[str] | None = None,
    *,
    project: str | os.PathLike[str] | None = None,
    starts: Sequence[Path] | None = None,
) -> Path | None:
    """The lock to use, the first of:

    1. `lockfile`, as given;
    2. `project`'s own lock (`project_lockfile`);
    3. `KERNEL_LOCK_FILE`;
    4. the `kernels.lock` nearest above each of `starts` (the working directory where not given), looking no
       higher than its project root, and used only where no one but this user and root can change it
       (`lock_above`; a `LockfileError` where someone else could).

    None where none is found. A lock named (1 to 3) is the user's choice and is not checked.
    """
    if lockfile is not None:
        return Path(lockfile)
    if project is not None:
        from kernel_lock.project.paths import project_lockfile

        return project_lockfile(project)
    from_env = env.lock_file()
    if from_env is not None:
        return from_env
    for start in [Path.cwd().resolve()] if starts is None else starts:
        found = lock_above(start)
        if found is not None:
            return found
    return None


def lock_above(start: Path) -> Path | None:
    """The `kernels.lock` nearest above `start` (a folder), looking no higher than its project root.

    Without a `pyproject.toml` above, only `start` itself is looked at: a lock planted higher up (in a shared
    folder above the project, say) is never found. A `LockfileError` where the lock found is one that
    someone other than this user and root could change (`checked_lock`).
    """
    from kernel_lock.project.paths import LOCKFILE, PYPROJECT

    folders = (start, *start.parents)
    root = next((f for f in folders if (f / PYPROJECT).is_file()), start)
    for candidate in folders[: folders.index(root) + 1]:
        if (candidate / LOCKFILE).is_file():
            return checked_lock(candidate / LOCKFILE)
    return None


def checked_lock(lockfile: Path) -> Path:
    """`lockfile`, after checking that no one but this user and root can change it or rename it away: in a
    folder others can write, only a lock in a sticky folder (like `/tmp`) that is ours is used."""
    shared = first_shared(lockfile.parent, lockfile)
    if shared is not None:
        raise LockfileError(
            f"Found {lockfile}, but {shared} can be changed by users other than you and root, so anyone of them "
            f"could choose the code it loads. Refusing to use it. Move the project to a folder only you can write "
            f"(or make the lock yours and not group- or world-writable), or pass lockfile=... / set KERNEL_LOCK_FILE."
        )
    return lockfile
