"""One repository on a `LocalHub`: commits, branches, tags and tree overrides, with real git object ids."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kernel_lock.testing.git import (
    _AUTHOR,
    _EPOCH,
    _HEX40,
    _build_trees,
    _check_path,
    _Commit,
    _File,
    _iso,
    default_lfs_rule,
)

if TYPE_CHECKING:
    from kernel_lock.testing.server import LocalHub


class HubRepo:
    """One repository on a `LocalHub`: commits, branches and tags, with real git object ids."""

    def __init__(self, hub: LocalHub, repo_id: str, repo_type: str) -> None:
        self.hub = hub
        self.repo_id = repo_id
        self.repo_type = repo_type
        self._commits: dict[str, _Commit] = {}
        self._branches: dict[str, str] = {}
        self._tags: dict[str, str] = {}
        self._pulls: list[str] = []  # the head of `refs/pr/N` at index N - 1
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

    def open_pull_request(
        self, files: dict[str, bytes], *, base: str = "main", message: str = "Open a pull request"
    ) -> tuple[int, str]:
        """Commit `files` (the full tree) on top of `base` as a new Hub pull request: (its number N, the sha).

        As on the Hub, the commit is reachable as `refs/pr/N` and by its sha, but on no branch's history,
        and the refs listing does not show it.
        """
        scratch = f"\0pull-request-{len(self._pulls) + 1}"
        self.create_branch(scratch, base)
        sha = self.commit(files, branch=scratch, message=message)
        with self.hub._lock:
            del self._branches[scratch]
            self._pulls.append(sha)
            return len(self._pulls), sha

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
            pull = revision.removeprefix("refs/pr/")
            if pull != revision and pull.isdecimal() and 0 < int(pull) <= len(self._pulls):
                return self._commits[self._pulls[int(pull) - 1]]
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
