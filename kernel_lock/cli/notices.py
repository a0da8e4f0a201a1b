"""Notices that hold run after run (a newer version, unsigned builds) are shown once: which ones were shown.

A digest of each notice shown is kept in the Hugging Face cache (`.kernel-lock-notices`), next to what the
notice is about; a notice whose text changes (another count, another version) is new again. Where the cache
cannot be written, every notice is shown.
"""

from __future__ import annotations

import hashlib

SEEN_FILE = ".kernel-lock-notices"


def first_time(message: str) -> bool:
    """Whether `message` is shown here for the first time (and remember that it was)."""
    from kernel_lock.core.cache_layout import hub_cache_dir

    path = hub_cache_dir() / SEEN_FILE
    digest = hashlib.sha256(message.encode("utf-8")).hexdigest()[:32]
    try:
        seen = set(path.read_text(encoding="ascii").split())
    except (OSError, UnicodeDecodeError):
        seen = set()
    if digest in seen:
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_symlink():
            with open(path, "a", encoding="ascii") as f:
                f.write(digest + "\n")
    except OSError:
        pass
    return True
