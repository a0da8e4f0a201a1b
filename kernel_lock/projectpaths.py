"""Where a project's files are: the project root, its `pyproject.toml` and its `kernels.lock`.

No pydantic: `kernel-lock run` and the loaders find the lock with this alone.
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
