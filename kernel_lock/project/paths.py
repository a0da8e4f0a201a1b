"""Where a project's files are: the project root (the nearest folder holding a `pyproject.toml`, as uv finds
its project), its `pyproject.toml` and its own `kernels.lock`. Which lock a load uses is
`kernel_lock.load.find.find_lockfile`.
"""

from __future__ import annotations

import os
from pathlib import Path

PYPROJECT = "pyproject.toml"
LOCKFILE = "kernels.lock"


def find_project_root(project: str | os.PathLike[str] | None) -> Path:
    """The directory given, or the nearest one upward from the working directory holding a `pyproject.toml`."""
    if project is not None:
        return Path(project).resolve()
    here = Path.cwd().resolve()
    for candidate in (here, *here.parents):
        if (candidate / PYPROJECT).is_file():
            return candidate
    return here


def project_lockfile(project: str | os.PathLike[str] | None) -> Path:
    """The project's own `kernels.lock`, beside its `pyproject.toml` (see `find_project_root`); it may not exist yet."""
    return find_project_root(project) / LOCKFILE
