"""A real threaded HTTP server on 127.0.0.1 that serves Hub repositories the way huggingface.co does.

The real `huggingface_hub` client (2.x and 1.3x) talks to it unchanged through `HF_ENDPOINT`: refs, repo
info, paginated tree listings with LFS metadata, paths-info, commits, organization overviews, and
`resolve` downloads (LFS files redirect to a CDN-like URL on another host name of the same server).
Faults and latency can be injected per request for reliability tests and benchmarks.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import json
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from kernel_lock.testing.faults import Answer, Fault, FaultKind

__all__ = [
    "Answer",
    "Fault",
    "FaultKind",
    "HubRepo",
    "LocalHub",
    "RequestRecord",
    "default_lfs_rule",
    "git_blob_id",
    "lfs_pointer",
]

LFS_SIZE_THRESHOLD = 10 * 1024 * 1024
LFS_SUFFIXES = (".so", ".bin", ".safetensors", ".pt")
HUB_TREE_PAGE_SIZE = 1000
HUB_EXPAND_PAGE_SIZE = 50
_REPO_TYPES = {"models": "model", "kernels": "kernel", "datasets": "dataset", "spaces": "space"}
_URL_PREFIXES = {"kernels": "kernel", "datasets": "dataset", "spaces": "space"}
_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z: commit dates are deterministic
_AUTHOR = "kernel-lock <kernel-lock@localhost>"
_HEX40 = re.compile(r"[0-9a-f]{40}")
_Pending = TypeVar("_Pending", Fault, Answer)


def git_blob_id(data: bytes) -> str:
    """Git blob object id (SHA-1) of `data`, as the Hub lists it in `oid`."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(data: bytes) -> bytes:
    """The Git LFS pointer file that git stores in place of `data`."""
    digest = hashlib.sha256(data).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{digest}\nsize {len(data)}\n".encode()


def default_lfs_rule(path: str, data: bytes) -> bool:
    """Files ending in .so/.bin/.safetensors/.pt, or larger than 10 MiB, are stored in LFS."""
    return path.endswith(LFS_SUFFIXES) or len(data) > LFS_SIZE_THRESHOLD


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


@dataclass(frozen=True)
class _File:
    data: bytes
    lfs: bool

    @cached_property
    def oid(self) -> str:
        return git_blob_id(lfs_pointer(self.data) if self.lfs else self.data)

    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @cached_property
    def lfs_info(self) -> dict[str, Any]:
        return {"oid": self.sha256, "size": len(self.data), "pointerSize": len(lfs_pointer(self.data))}


@dataclass(frozen=True)
class _Commit:
    sha: str
    parent: str | None
    message: str
    date: int
    files: dict[str, _File]
    trees: dict[str, str]  # directory path ("" for the root) -> git tree id

    def node(self, path: str) -> _File | str | None:
        """The file at `path`, the tree id of the directory at `path`, or None."""
        if path in self.files:
            return self.files[path]
        return self.trees.get(path)


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _check_path(path: str) -> None:
    parts = path.split("/")
    if not path or "\\" in path or any(part in ("", ".", "..") for part in parts):
        raise ValueError(f"invalid file path in commit: {path!r}")


def _build_trees(files: dict[str, _File]) -> dict[str, str]:
    """Git tree ids of every directory, computed exactly as git does (mode, name, binary id; git order)."""
    children: dict[str, dict[str, tuple[str, str]]] = {"": {}}
    for path in files:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            children.setdefault("/".join(parts[:depth]), {})
    trees: dict[str, str] = {}
    for directory in sorted(children, key=lambda d: -1 if d == "" else d.count("/"), reverse=True):
        entries: dict[str, tuple[str, str]] = {}
        prefix = f"{directory}/" if directory else ""
        for path, file in files.items():
            if path.startswith(prefix) and "/" not in path[len(prefix) :]:
                entries[path[len(prefix) :]] = ("100644", file.oid)
        for sub, oid in trees.items():
            if sub.startswith(prefix) and sub and "/" not in sub[len(prefix) :]:
                entries[sub[len(prefix) :]] = ("40000", oid)
        ordered = sorted(entries.items(), key=lambda item: item[0] + ("/" if item[1][0] == "40000" else ""))
        body = b"".join(
            f"{mode} {name}".encode() + b"\0" + bytes.fromhex(oid) for name, (mode, oid) in ordered
        )
        trees[directory] = hashlib.sha1(b"tree %d\0" % len(body) + body).hexdigest()
    return trees


class HubRepo:
    """One repository on a `LocalHub`: commits, branches and tags, with real git object ids."""

    def __init__(self, hub: LocalHub, repo_id: str, repo_type: str) -> None:
        self.hub = hub
        self.repo_id = repo_id
        self.repo_type = repo_type
        self._commits: dict[str, _Commit] = {}
        self._branches: dict[str, str] = {}
        self._tags: dict[str, str] = {}
        self._tree_overrides: dict[str, list[dict[str, Any]]] = {}

    def __repr__(self) -> str:
        return f"HubRepo({self.repo_id!r}, repo_type={self.repo_type!r})"

    def commit(
        self,
        files: dict[str, bytes],
        *,
        branch: str = "main",
        lfs: Callable[[str], bool] | None = None,
        message: str = "Upload kernel build",
    ) -> str:
        """Commit `files` (the FULL tree) on top of `branch` (created if missing); return the commit sha."""
        stored: dict[str, _File] = {}
        for path, data in sorted(files.items()):
            _check_path(path)
            stored[path] = _File(bytes(data), lfs(path) if lfs is not None else default_lfs_rule(path, data))
        trees = _build_trees(stored)
        with self.hub._lock:
            parent = self._branches.get(branch)
            date = _EPOCH if parent is None else self._commits[parent].date + 3600
            header = f"tree {trees['']}\n" + (f"parent {parent}\n" if parent else "")
            header += f"author {_AUTHOR} {date} +0000\ncommitter {_AUTHOR} {date} +0000\n\n{message}\n"
            body = header.encode()
            sha = hashlib.sha1(b"commit %d\0" % len(body) + body).hexdigest()
            self._commits[sha] = _Commit(sha, parent, message, date, stored, trees)
            self._branches[branch] = sha
            for file in stored.values():
                if file.lfs:
                    self.hub._lfs_objects[file.sha256] = file.data
        return sha

    def create_branch(self, name: str, revision: str, *, force: bool = False) -> str:
        """Create branch `name` at `revision` (move it if `force`); return its commit sha."""
        with self.hub._lock:
            if name in self._branches and not force:
                raise ValueError(f"branch {name!r} already exists in {self.repo_id}")
            sha = self._require(revision).sha
            self._branches[name] = sha
        return sha

    def create_tag(self, name: str, revision: str) -> str:
        """Create tag `name` at `revision`; return its commit sha."""
        with self.hub._lock:
            if name in self._tags:
                raise ValueError(f"tag {name!r} already exists in {self.repo_id}")
            sha = self._require(revision).sha
            self._tags[name] = sha
        return sha

    @property
    def branches(self) -> dict[str, str]:
        """Branch name -> commit sha (a copy)."""
        with self.hub._lock:
            return dict(self._branches)

    @property
    def tags(self) -> dict[str, str]:
        """Tag name -> commit sha (a copy)."""
        with self.hub._lock:
            return dict(self._tags)

    def head(self, branch: str = "main") -> str:
        """The commit sha `branch` points at."""
        with self.hub._lock:
            if branch not in self._branches:
                raise KeyError(f"no branch {branch!r} in {self.repo_id}")
            return self._branches[branch]

    def files(self, revision: str = "main") -> dict[str, bytes]:
        """The full tree (path -> bytes) at `revision`."""
        return {path: file.data for path, file in self._require(revision).files.items()}

    def override_tree(self, commit: str, entries: list[dict[str, Any]]) -> None:
        """Serve `entries` (raw Hub JSON) as the tree listing and paths-info of `commit`; downloads are unchanged."""
        with self.hub._lock:
            self._tree_overrides[self._require(commit).sha] = [dict(entry) for entry in entries]

    def resolve(self, revision: str) -> str | None:
        """The commit sha a branch, tag, `refs/heads/..`, `refs/tags/..` or 40-hex sha names, or None."""
        commit = self._lookup(revision)
        return None if commit is None else commit.sha

    def _lookup(self, revision: str) -> _Commit | None:
        with self.hub._lock:
            for prefix, refs in (("refs/heads/", self._branches), ("refs/tags/", self._tags)):
                if revision.startswith(prefix) and revision[len(prefix) :] in refs:
                    return self._commits[refs[revision[len(prefix) :]]]
            if revision in self._branches:
                return self._commits[self._branches[revision]]
            if revision in self._tags:
                return self._commits[self._tags[revision]]
            return self._commits.get(revision) if _HEX40.fullmatch(revision) else None

    def _require(self, revision: str) -> _Commit:
        commit = self._lookup(revision)
        if commit is None:
            raise KeyError(f"unknown revision {revision!r} in {self.repo_id}")
        return commit

    def _entry(self, commit: _Commit, path: str, expand: bool) -> dict[str, Any]:
        node = commit.node(path)
        entry: dict[str, Any]
        if isinstance(node, _File):
            entry = {"type": "file", "oid": node.oid, "size": len(node.data), "path": path}
            if node.lfs:
                entry["lfs"] = dict(node.lfs_info)
        else:
            entry = {"type": "directory", "oid": node, "size": 0, "path": path}
        if expand:
            last = self._last_commit(commit, path)
            entry["lastCommit"] = {
                "id": last.sha,
                "title": last.message.splitlines()[0],
                "date": _iso(last.date),
            }
        return entry

    def _last_commit(self, commit: _Commit, path: str) -> _Commit:
        """The oldest ancestor-or-self of `commit` in an unbroken chain where `path` has the same object."""
        node = commit.node(path)
        key = node.oid if isinstance(node, _File) else node
        while commit.parent is not None:
            parent = self._commits[commit.parent]
            parent_node = parent.node(path)
            if (parent_node.oid if isinstance(parent_node, _File) else parent_node) != key:
                break
            commit = parent
        return commit

    def _listing(
        self, commit: _Commit, path: str, recursive: bool, expand: bool
    ) -> list[dict[str, Any]] | None:
        """Entries under directory `path` ("" = root) in Hub order, or None if it is not a directory."""
        override = self._tree_overrides.get(commit.sha)
        prefix = f"{path}/" if path else ""
        if override is not None:
            under = [e for e in override if str(e.get("path", "")).startswith(prefix)]
            if path and not under:
                return None
            return [e for e in under if recursive or "/" not in str(e["path"])[len(prefix) :]]
        if path not in commit.trees:
            return None
        names = set()
        for candidate in list(commit.files) + [d for d in commit.trees if d]:
            if candidate.startswith(prefix):
                rest = candidate[len(prefix) :]
                names.add(rest if recursive else rest.split("/")[0])

        def git_key(rel: str) -> list[str]:
            parts = rel.split("/")
            full = prefix + rel
            return [p + "/" for p in parts[:-1]] + [parts[-1] + ("/" if full in commit.trees else "")]

        return [self._entry(commit, prefix + rel, expand) for rel in sorted(names, key=git_key)]

    def _paths_info(self, commit: _Commit, paths: list[str], expand: bool) -> list[dict[str, Any]]:
        override = self._tree_overrides.get(commit.sha)
        result: list[dict[str, Any]] = []
        for path in dict.fromkeys(p.strip("/") for p in paths):
            if override is not None:
                result.extend(e for e in override if e.get("path") == path)
            elif path and commit.node(path) is not None:
                result.append(self._entry(commit, path, expand))
        return result

    def _history(self, commit: _Commit) -> list[_Commit]:
        chain = [commit]
        while chain[-1].parent is not None:
            chain.append(self._commits[chain[-1].parent])
        return chain


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

    def __init__(self, hub: LocalHub) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
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
            time.sleep(hub.latency)
        faults = hub._take_faults(method, path)
        for fault in faults:
            if fault.kind == "stall":
                time.sleep(fault.seconds)
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
                response = hub._route(method, split.path, query, body_in, headers_in)
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


class LocalHub:
    """An in-process Hugging Face Hub on 127.0.0.1 serving kernel and model repositories over real HTTP."""

    def __init__(self, *, latency: float = 0.0, tree_page_size: int = HUB_TREE_PAGE_SIZE) -> None:
        self.latency = latency
        self.tree_page_size = tree_page_size
        self._lock = threading.RLock()
        self._repos: dict[tuple[str, str], HubRepo] = {}
        self._orgs: dict[str, dict[str, Any]] = {}
        self._lfs_objects: dict[str, bytes] = {}
        self._faults: list[Fault] = []
        self._answers: list[Answer] = []
        self._log_records: list[RequestRecord] = []
        self._connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- content -------------------------------------------------------------------------------------

    def create_repo(self, repo_id: str, *, repo_type: str = "kernel") -> HubRepo:
        """Create an empty repository `org/name` of type "kernel" or "model" (also "dataset", "space")."""
        if repo_type not in _REPO_TYPES.values():
            raise ValueError(f"unsupported repo type {repo_type!r}")
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repo_id):
            raise ValueError(f"repo_id must look like 'org/name', got {repo_id!r}")
        with self._lock:
            if (repo_type, repo_id) in self._repos:
                raise ValueError(f"{repo_type} repository {repo_id} already exists")
            repo = HubRepo(self, repo_id, repo_type)
            self._repos[(repo_type, repo_id)] = repo
        return repo

    def repo(self, repo_id: str, *, repo_type: str = "kernel") -> HubRepo:
        """An existing repository (KeyError if missing)."""
        with self._lock:
            return self._repos[(repo_type, repo_id)]

    def set_organization(
        self, name: str, *, trusted_kernel_publisher: bool = False, fullname: str | None = None
    ) -> None:
        """Declare (or update) organization `name`, as `get_organization_overview` reports it."""
        with self._lock:
            self._orgs[name] = {
                "_id": hashlib.sha1(name.encode()).hexdigest()[:24],
                "name": name,
                "fullname": fullname or name,
                "avatarUrl": f"https://cdn-avatars.huggingface.co/{name}.png",
                "type": "org",
                "isVerified": trusted_kernel_publisher,
                "isFollowing": False,
                "numUsers": 1,
                "numModels": 0,
                "numSpaces": 0,
                "numDatasets": 0,
                "numFollowers": 0,
                "numPapers": 0,
                "trustedKernelPublisher": trusted_kernel_publisher,
            }

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> str:
        """Start serving on a free port of 127.0.0.1; return the endpoint URL."""
        with self._lock:
            if self._server is not None:
                return self.url
            self._server = _Server(self)
            self._thread = threading.Thread(
                target=self._server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name="LocalHub",
                daemon=True,
            )
            self._thread.start()
        return self.url

    def stop(self) -> None:
        """Stop serving and drop every open connection (idempotent)."""
        with self._lock:
            server, thread = self._server, self._thread
            self._server, self._thread = None, None
            connections = list(self._connections)
        if server is None:
            return
        server.shutdown()
        server.server_close()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> LocalHub:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The TCP port the hub listens on (RuntimeError if not started)."""
        if self._server is None:
            raise RuntimeError("LocalHub is not started; call start() or use it as a context manager")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The endpoint to use as HF_ENDPOINT, e.g. http://127.0.0.1:40123."""
        return f"http://127.0.0.1:{self.port}"

    # -- faults and log ------------------------------------------------------------------------------

    def add_fault(self, fault: Fault) -> None:
        """Inject `fault` into the next matching request(s)."""
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        """Remove every pending fault and hostile answer."""
        with self._lock:
            self._faults.clear()
            self._answers.clear()

    @property
    def requests(self) -> list[RequestRecord]:
        """Every request served since start (or the last `clear_log`), oldest first (a copy)."""
        with self._lock:
            return list(self._log_records)

    def clear_log(self) -> None:
        """Forget the request log."""
        with self._lock:
            self._log_records.clear()

    def _log(self, record: RequestRecord) -> None:
        with self._lock:
            self._log_records.append(record)

    def _replace_log(self, old: RequestRecord, new: RequestRecord) -> None:
        with self._lock:
            for index, record in enumerate(self._log_records):
                if record is old:
                    self._log_records[index] = new

    def _track(self, connection: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def add_answer(self, answer: Answer) -> None:
        """Answer the next matching request(s) with `answer`'s status, headers and body (a hostile Hub)."""
        with self._lock:
            self._answers.append(answer)

    def _take_faults(self, method: str, path: str) -> list[Fault]:
        return self._take(self._faults, method, path)

    def _take(self, pending: list[_Pending], method: str, path: str) -> list[_Pending]:
        """The pending faults or answers that match a request; each one's count goes down by one."""
        taken: list[_Pending] = []
        with self._lock:
            remaining: list[_Pending] = []
            for item in pending:
                if item.applies_to(method, path):
                    taken.append(item)
                    if item.count is None:
                        remaining.append(item)
                    elif item.count > 1:
                        remaining.append(dataclasses.replace(item, count=item.count - 1))
                else:
                    remaining.append(item)
            pending[:] = remaining
        return taken

    # -- routing -------------------------------------------------------------------------------------

    def _route(
        self, method: str, raw_path: str, query: dict[str, str], body: bytes, headers: dict[str, str]
    ) -> _Response:
        segments = [unquote(s) for s in raw_path.strip("/").split("/")]
        host = headers.get("host", f"127.0.0.1:{self.port}")
        range_header = headers.get("range")
        if segments[0] == "api":
            return self._route_api(method, raw_path, segments[1:], query, body, host)
        if segments[0] == "cdn" and len(segments) >= 3 and method in ("GET", "HEAD"):
            return self._serve_cdn(segments[2], segments[-1], range_header)
        repo_type = _URL_PREFIXES.get(segments[0], "model")
        rest = segments[1:] if segments[0] in _URL_PREFIXES else segments
        if len(rest) >= 5 and rest[2] == "resolve" and method in ("GET", "HEAD"):
            repo = self._find(repo_type, f"{rest[0]}/{rest[1]}")
            if repo is None:
                return _repo_not_found()
            return self._resolve(repo, rest[3], "/".join(rest[4:]), host, range_header)
        return _Response.error(404, "Sorry, we can't find the page you are looking for.")

    def _list(self, repo_type: str, author: str | None) -> _Response:
        """`/api/{kernels,models,...}?author=ORG`: the ids of the repos of a type (of one organization)."""
        with self._lock:
            ids = sorted(rid for (rtype, rid) in self._repos if rtype == repo_type)
        return _Response.json([{"id": rid} for rid in ids if author is None or rid.split("/")[0] == author])

    def _find(self, repo_type: str, repo_id: str) -> HubRepo | None:
        with self._lock:
            return self._repos.get((repo_type, repo_id))

    def _route_api(
        self, method: str, raw_path: str, segments: list[str], query: dict[str, str], body: bytes, host: str
    ) -> _Response:
        if len(segments) == 3 and segments[0] == "organizations" and segments[2] == "overview":
            with self._lock:
                org = self._orgs.get(segments[1])
            return _Response.json(org) if org is not None else _Response.error(404, "Organization not found")
        if len(segments) == 1 and segments[0] in _REPO_TYPES and method == "GET":
            return self._list(_REPO_TYPES[segments[0]], query.get("author"))
        if len(segments) < 3 or segments[0] not in _REPO_TYPES:
            return _Response.error(404, "Sorry, we can't find the page you are looking for.")
        repo = self._find(_REPO_TYPES[segments[0]], f"{segments[1]}/{segments[2]}")
        if repo is None:
            return _repo_not_found()
        action, args = (segments[3], segments[4:]) if len(segments) > 3 else ("", [])
        if method == "GET" and (action == "" or (action == "revision" and len(args) == 1)):
            return self._info(repo, args[0] if args else None, query)
        if method == "GET" and action == "refs" and not args:
            return self._refs(repo)
        if method == "GET" and action == "tree" and args:
            return self._tree(repo, args[0], "/".join(args[1:]), query, host, raw_path)
        if method == "POST" and action == "paths-info" and len(args) == 1:
            return self._paths_info(repo, args[0], body)
        if method == "GET" and action == "commits" and len(args) == 1:
            return self._commits(repo, args[0])
        return _Response.error(404, "Sorry, we can't find the page you are looking for.")

    def _info(self, repo: HubRepo, revision: str | None, query: dict[str, str]) -> _Response:
        commit = repo._lookup(revision or "main")
        if commit is None and revision is not None:
            return _revision_not_found(revision)
        org, _ = repo.repo_id.split("/")
        info: dict[str, Any] = {
            "_id": hashlib.sha1(f"{repo.repo_type}/{repo.repo_id}".encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": org,
            "private": False,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "createdAt": _iso(_EPOCH),
        }
        if commit is not None:
            info["sha"] = commit.sha
            info["lastModified"] = _iso(commit.date)
            blobs = query.get("blobs", "").lower() in ("1", "true")
            info["siblings"] = [self._sibling(path, f, blobs) for path, f in commit.files.items()]
        return _Response.json(info)

    @staticmethod
    def _sibling(path: str, file: _File, blobs: bool) -> dict[str, Any]:
        sibling: dict[str, Any] = {"rfilename": path}
        if blobs:
            sibling.update(size=len(file.data), blobId=file.oid)
            if file.lfs:
                pointer_size = file.lfs_info["pointerSize"]
                sibling["lfs"] = {"sha256": file.sha256, "size": len(file.data), "pointerSize": pointer_size}
        return sibling

    def _refs(self, repo: HubRepo) -> _Response:
        def refs(kind: str, mapping: dict[str, str]) -> list[dict[str, str]]:
            return [
                {"name": n, "ref": f"refs/{kind}/{n}", "targetCommit": s} for n, s in sorted(mapping.items())
            ]

        return _Response.json(
            {
                "branches": refs("heads", repo.branches),
                "converts": [],
                "tags": refs("tags", repo.tags),
                "pullRequests": [],
            }
        )

    def _tree(
        self, repo: HubRepo, revision: str, path: str, query: dict[str, str], host: str, raw_path: str
    ) -> _Response:
        commit = repo._lookup(revision)
        if commit is None:
            return _revision_not_found(revision)
        recursive = query.get("recursive", "").lower() in ("1", "true")
        expand = query.get("expand", "").lower() in ("1", "true")
        with self._lock:
            entries = repo._listing(commit, path.strip("/"), recursive, expand)
        if entries is None:
            return _entry_not_found(commit.sha)
        page_size = HUB_EXPAND_PAGE_SIZE if expand else self.tree_page_size
        cursor = query.get("cursor")
        try:
            offset = int(base64.urlsafe_b64decode(cursor.encode()).decode()) if cursor else 0
        except ValueError:
            return _Response.error(400, f"Invalid cursor: {cursor}")
        headers: dict[str, str] = {}
        if offset + page_size < len(entries):
            next_cursor = base64.urlsafe_b64encode(str(offset + page_size).encode()).decode()
            next_query = urlencode({**query, "cursor": next_cursor})
            headers["Link"] = f'<http://{host}{raw_path}?{next_query}>; rel="next"'
        return _Response.json(entries[offset : offset + page_size], headers=headers)

    def _paths_info(self, repo: HubRepo, revision: str, body: bytes) -> _Response:
        commit = repo._lookup(revision)
        if commit is None:
            return _revision_not_found(revision)
        try:
            payload = json.loads(body)
            paths, expand = list(payload.get("paths", [])), bool(payload.get("expand", False))
        except (ValueError, AttributeError):
            form = parse_qs(body.decode(), keep_blank_values=True)
            paths, expand = form.get("paths", []), form.get("expand", ["false"])[-1].lower() in ("1", "true")
        with self._lock:
            return _Response.json(repo._paths_info(commit, paths, expand))

    def _commits(self, repo: HubRepo, revision: str) -> _Response:
        commit = repo._lookup(revision)
        if commit is None:
            return _revision_not_found(revision)
        with self._lock:
            history = repo._history(commit)
        return _Response.json(
            [
                {
                    "id": c.sha,
                    "title": c.message.splitlines()[0],
                    "message": "\n".join(c.message.splitlines()[1:]).strip(),
                    "authors": [{"user": "kernel-lock", "avatar": ""}],
                    "date": _iso(c.date),
                }
                for c in history
            ]
        )

    def _resolve(
        self, repo: HubRepo, revision: str, path: str, host: str, range_header: str | None
    ) -> _Response:
        commit = repo._lookup(revision)
        if commit is None:
            return _revision_not_found(revision)
        file = commit.files.get(path)
        if file is None:
            return _entry_not_found(commit.sha)
        name = path.rsplit("/", 1)[-1]
        disposition = f"inline; filename*=UTF-8''{quote(name)}; filename=\"{name}\""
        if file.lfs:
            hostname, _, port = host.rpartition(":")
            cdn_host = "localhost" if hostname == "127.0.0.1" else "127.0.0.1"
            location = f"http://{cdn_host}:{port}/cdn/lfs/{file.sha256}/{quote(name)}"
            headers = {
                "Location": location,
                "X-Repo-Commit": commit.sha,
                "X-Linked-Etag": f'"{file.sha256}"',
                "X-Linked-Size": str(len(file.data)),
                "Content-Type": "text/plain; charset=utf-8",
                "Content-Disposition": disposition,
            }
            return _Response(302, headers, f"Found. Redirecting to {location}".encode())
        is_text = name.endswith((".py", ".json", ".md", ".toml", ".txt"))
        headers = {
            "X-Repo-Commit": commit.sha,
            "ETag": f'"{file.oid}"',
            "Content-Type": "text/plain; charset=utf-8" if is_text else "application/octet-stream",
            "Content-Disposition": disposition,
        }
        return _content(file.data, headers, range_header)

    def _serve_cdn(self, sha256: str, name: str, range_header: str | None) -> _Response:
        with self._lock:
            data = self._lfs_objects.get(sha256)
        if data is None:
            return _Response(404, {"Content-Type": "text/plain"}, b"NoSuchKey")
        headers = {
            "ETag": f'"{sha256}"',
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name)}; filename=\"{name}\"",
        }
        return _content(data, headers, range_header)
