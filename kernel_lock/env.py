"""Every environment variable kernel-lock reads, in one place.

Each is read when asked for, not at import, because tests and `kernel_lock.enforce` change the
environment of a running process. Paths are expanded (`~`, `$VAR`) as `huggingface_hub` expands its own.
"""

from __future__ import annotations

import os
from pathlib import Path

TARGET = "KERNEL_LOCK_TARGET"
"""A target spec (e.g. `torch213-cxx11-cpu-x86_64-linux`) that replaces detection of this machine."""
LOCK_FILE = "KERNEL_LOCK_FILE"
"""The `kernels.lock` that `get_kernel` reads when no lockfile is passed."""
VERIFY = "KERNEL_LOCK_VERIFY"
"""How a synced variant is verified: `fast` (trust recorded fingerprints) or `full` (hash every file)."""
ENFORCE = "KERNEL_LOCK_ENFORCE"
"""`1` (or true/yes/on): `kernel-lock run`'s start-up hook answers every kernel load from the lock."""
STRICT = "KERNEL_LOCK_STRICT"
"""`0` (or false/no/off): under enforcement, a kernel that fails verification loads unverified, with a warning."""
RECORD = "KERNEL_LOCK_RECORD"
"""A file: the start-up hook records every kernel request there instead of enforcing."""
HUB_ENDPOINT = "HF_ENDPOINT"
"""The Hub or mirror to talk to (huggingface_hub's setting)."""
LOCAL_KERNELS = "LOCAL_KERNELS"
"""The `kernels` library's `repo=path:...` overrides: load kernels from local folders (refused under enforcement)."""
ALL_LATEST = "UNSTABLE_KERNELS_ALL_LATEST"
"""`kernels` 0.19's switch to load every kernel's newest version over requests and pins (refused under enforcement)."""


def _get(name: str) -> str | None:
    """The variable's value; unset and empty are both None."""
    return os.environ.get(name) or None


def _flag(name: str, default: bool) -> bool:
    """A yes/no variable: 1/true/yes/on or 0/false/no/off (any case); unset or anything else is `default`."""
    value = (_get(name) or "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return default


def kernels_override(name: str) -> str | None:
    """The value of a `kernels` override (`LOCAL_KERNELS`, `ALL_LATEST`) when `kernels` would act on it, else None.

    `kernels` reads `LOCAL_KERNELS` whenever it is set, and `UNSTABLE_KERNELS_ALL_LATEST` only when it is
    1/on/yes/true (any case).
    """
    value = os.environ.get(name)
    if name == ALL_LATEST:
        return value if (value or "").upper() in ("1", "ON", "YES", "TRUE") else None
    return value or None


def _path(value: str) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(value)))


def _optional_path(name: str) -> Path | None:
    """The path a variable names (`~` and `$VARS` expanded), None where it is unset or empty."""
    value = _get(name)
    return _path(value) if value else None


def declared_target() -> str | None:
    """`KERNEL_LOCK_TARGET`: the target spec to select variants for instead of this machine."""
    return _get(TARGET)


def lock_file() -> Path | None:
    """`KERNEL_LOCK_FILE`: the lockfile for `get_kernel`, if set."""
    return _optional_path(LOCK_FILE)


def verify_mode() -> str | None:
    """`KERNEL_LOCK_VERIFY`, as written (validated by `kernel_lock.cache.verify.verify_mode`)."""
    return _get(VERIFY)


def enforce() -> bool:
    """`KERNEL_LOCK_ENFORCE`: whether the start-up hook enforces the lock (default no)."""
    return _flag(ENFORCE, False)


def strict() -> bool:
    """`KERNEL_LOCK_STRICT`: whether enforcement refuses a kernel that fails verification (default yes)."""
    return _flag(STRICT, True)


def record_file() -> Path | None:
    """`KERNEL_LOCK_RECORD`: where the start-up hook records kernel requests, if set."""
    return _optional_path(RECORD)


def hub_endpoint() -> str | None:
    """`HF_ENDPOINT`: the Hub URL, if set (else huggingface_hub's default)."""
    return _get(HUB_ENDPOINT)


def hub_cache() -> Path:
    """The Hugging Face hub cache: `HF_HUB_CACHE`, `HUGGINGFACE_HUB_CACHE`, else `$HF_HOME/hub`.

    `HF_HOME` defaults to `$XDG_CACHE_HOME/huggingface`, and that to `~/.cache/huggingface`, as in
    `huggingface_hub.constants`.
    """
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        value = _get(name)
        if value:
            return _path(value)
    home = _get("HF_HOME") or os.path.join(
        _get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface"
    )
    return _path(home) / "hub"


def force_color() -> bool:
    """Whether `FORCE_COLOR` asks for colour even where the output is not a terminal (as uv and pip read it)."""
    return bool(_get("FORCE_COLOR"))


def no_color() -> bool:
    """Whether `NO_COLOR` asks for output without colour (https://no-color.org)."""
    return bool(_get("NO_COLOR"))
