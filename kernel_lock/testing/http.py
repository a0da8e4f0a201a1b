"""The HTTP side of a `LocalHub`: the request handler, answers and their faults, the request log record."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

from kernel_lock.testing.faults import Answer

if TYPE_CHECKING:
    from kernel_lock.testing.server import LocalHub


@dataclass(frozen=True)
class RequestRecord:
    """One request as the hub saw it (header names lower-cased; status 0: reset without an answer).

    `faults` names the kinds of the injected faults that hit it (empty: answered as it is).
    """

    method: str
    path: str
    query: dict[str, str]
    status: int
    bytes_sent: int
    headers: dict[str, str] = field(default_factory=dict)
    started: float = 0.0
    duration: float = 0.0
    faults: tuple[str, ...] = ()


@dataclass
class _Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    chunked: bool = False

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> _Response:
        body = json.dumps(payload).encode()
        return cls(status, {"Content-Type": "application/json; charset=utf-8", **(headers or {})}, body)

    @classmethod
    def error(
        cls, status: int, message: str, code: str | None = None, commit: str | None = None
    ) -> _Response:
        headers = {"X-Error-Message": message}
        if code is not None:
            headers["X-Error-Code"] = code
        if commit is not None:
            headers["X-Repo-Commit"] = commit
        return cls.json({"error": message}, status, headers)


def _repo_not_found() -> _Response:
    # The Hub answers 401 to unauthenticated callers for missing (or private) repositories.
    return _Response.error(401, "Repository not found", "RepoNotFound")


def _revision_not_found(revision: str) -> _Response:
    return _Response.error(404, f"Invalid rev id: {revision}", "RevisionNotFound")


def _entry_not_found(commit: str) -> _Response:
    return _Response.error(404, "Entry not found", "EntryNotFound", commit)


def _content(data: bytes, headers: dict[str, str], range_header: str | None) -> _Response:
    """A 200 (or 206/416 for a `Range` request) carrying `data`."""
    headers = {"Accept-Ranges": "bytes", **headers}
    total = len(data)
    match = re.fullmatch(r"bytes=(\d*)-(\d*)", (range_header or "").strip())
    if range_header is None or match is None or match.groups() == ("", ""):
        return _Response(200, headers, data)
    first, last = match.groups()
    if first == "":
        start, end = max(total - int(last), 0), total - 1
    else:
        start, end = int(first), min(int(last), total - 1) if last else total - 1
    if start >= total or start > end:
        return _Response(416, {**headers, "Content-Range": f"bytes */{total}"})
    return _Response(206, {**headers, "Content-Range": f"bytes {start}-{end}/{total}"}, data[start : end + 1])


def _answered(response: _Response, answer: Answer) -> _Response:
    """`response` with a hostile answer's status, headers and body put over it."""
    headers = {k: v for k, v in response.headers.items() if answer.headers.get(k, "") is not None}
    headers.update({k: v for k, v in answer.headers.items() if v is not None})
    return _Response(
        answer.status if answer.status is not None else response.status,
        headers,
        answer.body if answer.body is not None else response.body,
        answer.chunked,
    )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, hub: LocalHub, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.hub = hub

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up mid-request (a refused download closes early) is not an error of the hub."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "LocalHub/1.0"
    timeout = 60
    disable_nagle_algorithm = True  # as real Hub front ends do; else small answers wait for a delayed ACK
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.hub._track(self.connection, add=True)

    def finish(self) -> None:
        self.server.hub._track(self.connection, add=False)
        with contextlib.suppress(OSError):
            super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log (see `LocalHub.requests`)."""

    def do_GET(self) -> None:
        """Serve a GET request."""
        self._handle("GET")

    def do_HEAD(self) -> None:
        """Serve a HEAD request."""
        self._handle("HEAD")

    def do_POST(self) -> None:
        """Serve a POST request."""
        self._handle("POST")

    def _handle(self, method: str) -> None:
        hub = self.server.hub
        started = time.monotonic()
        split = urlsplit(self.path)
        path = unquote(split.path)
        query = {key: values[-1] for key, values in parse_qs(split.query, keep_blank_values=True).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body_in = self.rfile.read(length) if length else b""
        headers_in = {key.lower(): value for key, value in self.headers.items()}

        if hub.latency > 0:
            hub._hold(hub.latency)
        faults = hub._take_faults(method, path)
        for fault in faults:
            if fault.kind == "stall":
                hub._hold(fault.seconds)
        kinds = {fault.kind: fault for fault in faults}

        def record(status: int, sent: int) -> RequestRecord:
            # Logged before the answer leaves, so a client that has its answer always finds it in the log.
            entry = RequestRecord(
                method,
                path,
                query,
                status,
                sent,
                headers_in,
                started,
                time.monotonic() - started,
                faults=tuple(sorted(kinds)),
            )
            hub._log(entry)
            return entry

        if "reset" in kinds:
            record(0, 0)
            self._reset()
            return
        if "status" in kinds:
            fault = kinds["status"]
            extra = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
            response = _Response.json({"error": f"Injected fault: HTTP {fault.status}"}, fault.status, extra)
        else:
            try:
                default_host = {"host": f"127.0.0.1:{self.server.server_address[1]}"}
                response = hub._route(method, split.path, query, body_in, {**default_host, **headers_in})
            except Exception as exc:  # a server bug must answer 500, not kill the connection silently
                response = _Response.error(500, f"{type(exc).__name__}: {exc}")
        if "wrong_commit" in kinds:
            response.headers["X-Repo-Commit"] = "0" * 40
        for answer in hub._take(hub._answers, method, path):
            response = _answered(response, answer)
        body = response.body
        if "corrupt" in kinds and body:
            middle = len(body) // 2
            body = body[:middle] + bytes([body[middle] ^ 0xFF]) + body[middle + 1 :]
        payload = b"" if method == "HEAD" else body[: len(body) // 2] if "truncate" in kinds else body

        entry = record(response.status, len(payload))
        try:
            self.send_response(response.status)
            for key, value in response.headers.items():
                self.send_header(key, value)
            if response.chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if response.chunked and method != "HEAD":
                for start in range(0, len(payload), 1 << 16):
                    piece = payload[start : start + (1 << 16)]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.write(b"0\r\n\r\n")
            else:
                self.wfile.write(payload)
        except OSError:
            self.close_connection = True
            hub._replace_log(entry, dataclasses.replace(entry, bytes_sent=0))
            return
        if "truncate" in kinds and method != "HEAD":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    def _reset(self) -> None:
        """Close the socket without answering (RST where the platform allows it)."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)
        self.connection.close()
