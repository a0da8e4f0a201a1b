"""Migration notices for projects coming from older `kernels` setups that the config alone cannot show."""

from __future__ import annotations

import os
import re
from pathlib import Path

FUNCTION_REPOSITORIES = re.compile(
    r"\b(LockedFuncRepository|LocalFuncRepository|FuncRepository|use_kernel_func_from_hub)\b"
)
_SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "build", "dist", "site-packages", "__pycache__"}
MAX_FILES = 5000


def function_repository_uses(root: Path) -> list[str]:
    """`file:line` of each use of the function-repository API (removed in kernels 0.17) in the project's sources."""
    found: list[str] = []
    scanned = 0
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
        for name in sorted(f for f in files if f.endswith(".py")):
            scanned += 1
            if scanned > MAX_FILES:
                return found
            path = Path(directory) / name
            try:
                text = path.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if not FUNCTION_REPOSITORIES.search(text):
                continue
            for number, line in enumerate(text.splitlines(), 1):
                if FUNCTION_REPOSITORIES.search(line):
                    found.append(f"{path.relative_to(root)}:{number}")
    return found


def function_repository_notice(root: Path) -> str | None:
    """The migration notice for a project that still uses function repositories, if it does."""
    uses = function_repository_uses(root)
    if not uses:
        return None
    shown = ", ".join(uses[:5]) + (f" and {len(uses) - 5} more" if len(uses) > 5 else "")
    return (
        f"This project still uses function repositories ({shown}), which kernels 0.17 removed. Expose each "
        f"function as a layer instead: a stateless torch.nn.Module in the kernel's `layers` module, loaded with "
        f"LockedLayerRepository(repo, layer_name=...) and kernelize, with @use_kernel_forward_from_hub on the "
        f"module it replaces (the kernels 0.16 migration)."
    )
