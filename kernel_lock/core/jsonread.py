"""The JSON reader for what kernel-lock did not write: a variant's `metadata.json`, the Hub's answers.

Two readers of one document must not see two documents. The standard library keeps the last of duplicate
keys where the `kernels` library's reader (serde) refuses the file, so `{"id": "a", "id": "b"}` would pass
our checks and then stop the load inside `kernels`; here a duplicate key, at any depth, is an error. So is
nesting deeper than the parser can follow (its `RecursionError`): hostile input is one more malformed
document for the caller, never a crash.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MalformedJSON", "loads"]


class MalformedJSON(ValueError):
    """Not JSON, a key twice in one object, or nested too deeply to read; `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        raise MalformedJSON(f"the key {twice!r} appears twice in one object")
    return obj


def loads(data: bytes | str) -> Any:
    """Parse JSON (bytes in UTF-8, -16 or -32, as `json.loads` reads them); any failure is `MalformedJSON`."""
    try:
        return json.loads(data, object_pairs_hook=_object)
    except MalformedJSON:
        raise
    except RecursionError:
        raise MalformedJSON("arrays or objects nested too deeply to read") from None
    except ValueError as exc:
        raise MalformedJSON(str(exc)) from None
