"""Routing of a `LocalHub`: the Hub API paths, `resolve` downloads and the CDN, answered from its repos."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode

from kernel_lock.testing.git import _EPOCH, _File, _iso
from kernel_lock.testing.http import (
    _content,
    _entry_not_found,
    _repo_not_found,
    _Response,
    _revision_not_found,
)
from kernel_lock.testing.repo import HubRepo

HUB_EXPAND_PAGE_SIZE = 50
_REPO_TYPES = {"models": "model", "kernels": "kernel", "datasets": "dataset", "spaces": "space"}
_URL_PREFIXES = {"kernels": "kernel", "datasets": "dataset", "spaces": "space"}


class Routes:
    """The request routing of `LocalHub` (a mixin): each Hub endpoint it serves, from the hub's repos and orgs."""

    _lock: threading.RLock
    _repos: dict[tuple[str, str], HubRepo]
    _orgs: dict[str, dict[str, Any]]
    _lfs_objects: dict[str, bytes]
    tree_page_size: int

    def _route(
        self, method: str, raw_path: str, query: dict[str, str], body: bytes, headers: dict[str, str]
    ) -> _Response:
        segments = [unquote(s) for s in raw_path.strip("/").split("/")]
        host = headers["host"]
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
