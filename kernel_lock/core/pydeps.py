"""The `python-depends` of a kernel variant: which Python packages it needs, and which are missing here.

A check, not an installer: `get_kernel` refuses a variant whose packages are
missing, `sync` warns, `status` shows them. An entry that names no distribution
(`"<2"`, `""`) can never be installed, so it counts as missing, never a crash.
"""

from __future__ import annotations

from pathlib import Path

from kernel_lock.core import jsonread

# A distribution name as PEP 508 allows it (the part of a requirement before any version, marker or extra).
_NAME = r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?"
# Names in `python-depends` that are not the distribution's own name (as in the `kernels` library's table).
DISTRIBUTIONS = {"tvm-ffi": "apache-tvm-ffi", "onednn": "onednn-devel"}


def python_depends(variant_dir: Path) -> list[str]:
    """The `python-depends` list of a synced (verified) variant's `metadata.json`."""
    try:
        return python_depends_of(jsonread.loads((variant_dir / "metadata.json").read_bytes()))
    except (OSError, jsonread.MalformedJSON):
        return []


def python_depends_of(metadata: object) -> list[str]:
    """The `python-depends` list of a variant's `metadata.json`, as `json` reads it."""
    value = metadata.get("python-depends") if isinstance(metadata, dict) else None
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def missing(requirements: list[str]) -> list[str]:
    """The requirements whose distribution is not installed in this environment."""
    if not requirements:
        return []  # a fresh load of a kernel without needs imports neither importlib.metadata nor re
    import importlib.metadata
    import re

    absent = []
    for requirement in requirements:
        name = re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0]
        if not re.fullmatch(_NAME, name):
            absent.append(requirement)
            continue
        try:
            importlib.metadata.distribution(DISTRIBUTIONS.get(name, name))
        except importlib.metadata.PackageNotFoundError:
            absent.append(requirement)
    return absent
