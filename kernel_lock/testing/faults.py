"""What a misbehaving Hub does to requests: network faults (`Fault`) and hostile answers (`Answer`).

A `LocalHub` applies both per request whose (decoded) path matches a regex: faults model a flaky network or
server (error statuses, stalls, resets, truncated or corrupted bodies); answers model a hostile Hub or mirror,
which can send any status, any headers and any body for any path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Answer", "Fault", "FaultKind"]

FaultKind = Literal["status", "stall", "reset", "truncate", "corrupt", "wrong_commit"]
_FAULT_KINDS: frozenset[str] = frozenset(("status", "stall", "reset", "truncate", "corrupt", "wrong_commit"))
_BODY_FAULTS: frozenset[str] = frozenset(("truncate", "corrupt"))


@dataclass(frozen=True)
class Fault:
    """A fault injected into requests whose (decoded) path matches the regex `match`.

    `count` matching requests are affected (None: every one). `truncate` and `corrupt` only apply to GET
    requests, since only those carry a body. A `stall` holds the request `seconds` before it is answered, or
    until `LocalHub.release` (or `stop`).
    """

    kind: FaultKind
    match: str = ""
    method: str | None = None
    count: int | None = 1
    status: int = 503
    retry_after: float | None = None
    seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in _FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; expected one of {sorted(_FAULT_KINDS)}")
        _check_rule("fault", self.match, self.count)

    def applies_to(self, method: str, path: str) -> bool:
        """Whether this fault matches a request (ignoring its remaining count)."""
        if self.kind in _BODY_FAULTS and method != "GET":
            return False
        return _matches(self.match, self.method, method, path)


@dataclass(frozen=True)
class Answer:
    """A hostile answer to requests whose (decoded) path matches the regex `match`.

    `status` and `body` replace the real ones when set; `headers` are set over the real ones (a value of
    None removes that header). The body is sent with a matching `Content-Length`, or `chunked` (no length
    declared, so only the client can stop it). `count` matching requests are answered so (None: every one).
    """

    match: str
    method: str | None = None
    status: int | None = None
    headers: dict[str, str | None] = field(default_factory=dict)
    body: bytes | None = None
    chunked: bool = False
    count: int | None = None

    def __post_init__(self) -> None:
        _check_rule("answer", self.match, self.count)

    def applies_to(self, method: str, path: str) -> bool:
        """Whether this answer matches a request (ignoring its remaining count)."""
        return _matches(self.match, self.method, method, path)


def _check_rule(what: str, match: str, count: int | None) -> None:
    """Refuse a rule that could never apply: a count below 1, or a `match` that is not a regex."""
    if count is not None and count < 1:
        raise ValueError(f"{what} count must be >= 1 or None, got {count}")
    re.compile(match)


def _matches(match: str, only_method: str | None, method: str, path: str) -> bool:
    """Whether a request's method and (decoded) path are those a rule names (any method where None)."""
    if only_method is not None and only_method.upper() != method:
        return False
    return re.search(match, path) is not None
