"""All Hub access of kernel-lock, through `huggingface_hub`, with errors translated to ours.

One `Hub` holds one `HfApi` client; its methods are safe to call from many
threads. Every failed request goes through one classifier (`_classify.classify`):
transient failures (connection errors, 408/429/5xx) are retried with bounded
backoff, honouring `Retry-After`; anything else becomes a `ResolutionError`,
`MalformedReply` or `HubError` that names the repo and what failed and keeps
the Hub's request id.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kernel_lock import env
from kernel_lock.errors import (
    HubError,
    HubOffline,
    KernelLockError,
    MalformedReply,
    RepoNotFound,
    ResolutionError,
)
from kernel_lock.hub._classify import Fail, Retry, StatusError, classify, request_id_of, sleep_before_retry

if TYPE_CHECKING:
    from huggingface_hub import HfApi

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

MAX_ATTEMPTS = 5
MAX_PAGES = 10_000
MAX_ENTRIES = 2_000_000


class LfsInfo(BaseModel):
    """The `lfs` part of a tree entry."""

    model_config = ConfigDict(extra="ignore")

    oid: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)


class TreeEntry(BaseModel):
    """One entry of a Hub tree listing (`/api/kernels/{repo}/tree/{rev}/{path}`)."""

    model_config = ConfigDict(extra="ignore")

    type: str
    path: str
    oid: str = ""
    size: int = Field(0, ge=0)
    lfs: LfsInfo | None = None

    @model_validator(mode="after")
    def _file_has_blob_id(self) -> TreeEntry:
        if self.type == "file" and not re.fullmatch(r"[0-9a-f]{40}", self.oid):
            raise ValueError(f"file {self.path!r} has no git blob id (oid {self.oid!r})")
        return self

    @property
    def file_hash(self) -> str:
        """The hash `git_lfs_concat` uses: the LFS sha256, else the git blob sha1."""
        return self.lfs.oid if self.lfs else self.oid


class GitRef(BaseModel):
    """A branch or tag in the Hub's refs answer."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    name: str
    target_commit: str = Field(alias="targetCommit", pattern=r"^[0-9a-f]{40}$")


class Refs(BaseModel):
    """Branches and tags of a repo (`/api/kernels/{repo}/refs`)."""

    model_config = ConfigDict(extra="ignore")

    branches: list[GitRef]
    tags: list[GitRef] = []

    @property
    def branch_heads(self) -> dict[str, str]:
        """Branch name -> commit."""
        return {b.name: b.target_commit for b in self.branches}

    @property
    def tag_commits(self) -> dict[str, str]:
        """Tag name -> commit."""
        return {t.name: t.target_commit for t in self.tags}

    def versions(self) -> dict[int, str]:
        """Major versions (branches `vN`) -> commit."""
        return {int(b.name[1:]): b.target_commit for b in self.branches if re.fullmatch(r"v\d+", b.name)}


class OrganizationOverview(BaseModel):
    """The part of `/api/organizations/{org}/overview` that kernel-lock reads."""

    model_config = ConfigDict(extra="ignore")

    trusted_kernel_publisher: bool = Field(False, alias="trustedKernelPublisher")


class Hub:
    """A client for one Hub endpoint (`HF_ENDPOINT`, else huggingface.co).

    `huggingface_hub` and its HTTP client are imported on the first request, not here: an up-to-date
    `kernel-lock lock` makes none, and importing them is most of what it would otherwise spend.
    """

    def __init__(self, endpoint: str | None = None, token: str | None = None) -> None:
        self._endpoint = endpoint
        self._token = token

    @functools.cached_property
    def api(self) -> HfApi:
        """The `huggingface_hub` client, created on first use."""
        from huggingface_hub import HfApi

        from kernel_lock import __version__

        return HfApi(
            endpoint=self._endpoint or env.hub_endpoint(),
            token=self._token,
            library_name="kernel-lock",
            library_version=__version__,
        )

    @property
    def endpoint(self) -> str:
        """The Hub's base URL."""
        return str(self.api.endpoint)

    def refs(self, repo_id: str) -> Refs:
        """Branches and tags of a kernel repo."""
        url = f"{self.endpoint}/api/kernels/{repo_id}/refs"
        return self._parse(
            Refs, self.call(repo_id, "list its refs", lambda: _json(self._get(url), "refs")), repo_id, "refs"
        )

    def tree(
        self, repo_id: str, revision: str, path: str = "build", *, recursive: bool = True
    ) -> list[TreeEntry]:
        """Every entry under `path` at `revision` (recursively by default), following pagination."""
        from urllib.parse import quote

        url = f"{self.endpoint}/api/kernels/{repo_id}/tree/{quote(revision, safe='')}/{quote(path)}"

        def fetch() -> list[Any]:
            items: list[Any] = []
            seen: set[str] = set()
            page_url: str | None = url
            params: dict[str, str] | None = {"recursive": str(recursive).lower(), "expand": "false"}
            while page_url:
                if page_url in seen or len(seen) >= MAX_PAGES or len(items) > MAX_ENTRIES:
                    raise HubError(
                        f"The Hub at {self.endpoint} keeps paginating the listing of {repo_id} at {revision} "
                        f"({len(seen)} pages, {len(items)} entries, or a page that links back). Refusing it."
                    )
                seen.add(page_url)
                response = self._get(page_url, params=params)
                page = _json(response, f"listing of {repo_id}")
                if not isinstance(page, list):
                    raise MalformedReply(
                        f"The Hub at {self.endpoint} sent a listing page of {repo_id} at {revision} that is not a "
                        f"JSON list",
                        request_id=request_id_of(response),
                    )
                items.extend(page)
                page_url, params = response.links.get("next", {}).get("url"), None
            return items

        raw = self.call(repo_id, f"list {path}/ at {revision}", fetch, missing_path_ok=True)
        return [self._parse(TreeEntry, item, repo_id, f"tree listing at {revision}") for item in raw]

    def read_file(self, repo_id: str, revision: str, path: str) -> bytes | None:
        """The bytes of a small file at `revision` (one GET), or None if the repo has no such file or revision."""
        from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

        url = self.file_url(repo_id, revision, path)

        def fetch() -> bytes | None:
            try:
                return bytes(self._get(url, follow_redirects=True).content)
            except (EntryNotFoundError, RevisionNotFoundError):
                return None

        return self.call(repo_id, f"download {path} at {revision}", fetch)

    def history(self, repo_id: str, revision: str) -> frozenset[str]:
        """The ids of every commit on the history of `revision` (a branch, tag or commit), as the Hub lists them."""

        def fetch() -> list[str]:
            commits = self.api.list_repo_commits(repo_id, repo_type="kernel", revision=revision)
            return [c.commit_id for c in commits]

        try:
            ids = self.call(repo_id, f"list the commits of {revision}", fetch)
        except (KeyError, TypeError, AttributeError, ValueError, RecursionError):
            ids = None
        if ids is None or not all(isinstance(i, str) and re.fullmatch(r"[0-9a-f]{40}", i) for i in ids):
            raise MalformedReply(
                f"The Hub at {self.endpoint} sent a malformed list of the commits of {repo_id} at {revision}"
            )
        return frozenset(ids)

    def file_url(self, repo_id: str, revision: str, path: str) -> str:
        """The `resolve` URL of a file of a kernel repo at `revision` on this endpoint."""
        from huggingface_hub import hf_hub_url

        return hf_hub_url(repo_id, path, repo_type="kernel", revision=revision, endpoint=self.endpoint)

    @contextlib.contextmanager
    def stream(self, url: str, *, headers: dict[str, str]) -> Iterator[Any]:
        """One streamed GET (redirects followed, our headers and timeout); an error status raises `StatusError`.

        The body of an error is not read: its status and headers say all the classifier needs.
        """
        from huggingface_hub import constants
        from huggingface_hub.utils import get_session

        with get_session().stream(
            "GET",
            url,
            headers={**self._headers(), **headers},
            follow_redirects=True,
            timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT,
        ) as response:
            if response.status_code >= 400:
                raise StatusError(response)
            yield response

    def org_is_trusted(self, org: str) -> bool:
        """Whether the Hub marks this organization a trusted kernel publisher (an unknown org is not)."""
        from huggingface_hub.errors import HfHubHTTPError

        url = f"{self.endpoint}/api/organizations/{org}/overview"

        def fetch() -> Any:
            try:
                return _json(self._get(url), "organization overview")
            except HfHubHTTPError as exc:
                if exc.response is not None and exc.response.status_code in (401, 404):
                    return {}
                raise

        return self._parse(
            OrganizationOverview,
            self.call(org, "read the organization overview", fetch),
            org,
            "organization overview",
        ).trusted_kernel_publisher

    def _headers(self) -> dict[str, str]:
        from huggingface_hub.utils import build_hf_headers

        return build_hf_headers(
            token=self.api.token, library_name="kernel-lock", library_version=self.api.library_version
        )

    def _get(self, url: str, *, params: dict[str, str] | None = None, follow_redirects: bool = False) -> Any:
        """One GET with the client's headers and a timeout; HTTP errors raised as `huggingface_hub` classifies them."""
        from huggingface_hub import constants
        from huggingface_hub.utils import get_session, hf_raise_for_status

        response = get_session().get(
            url,
            params=params,
            headers=self._headers(),
            follow_redirects=follow_redirects,
            timeout=constants.HF_HUB_DOWNLOAD_TIMEOUT,
        )
        hf_raise_for_status(response)
        return response

    def _parse(self, model: type[M], data: Any, repo_id: str, what: str) -> M:
        """Validate a Hub answer, or say the Hub sent something malformed."""
        try:
            return model.model_validate(data)
        except (ValidationError, TypeError) as exc:
            first = exc.errors(include_url=False)[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
            raise MalformedReply(
                f"The Hub at {self.endpoint} sent a malformed {what} for {repo_id} ({first})"
            ) from None

    def call(
        self,
        repo_id: str,
        what: str,
        fn: Callable[[], T],
        *,
        missing_path_ok: bool = False,
        attempts: int = MAX_ATTEMPTS,
    ) -> T:
        """Run one Hub request with bounded retries; every failure is classified (`classify`) and becomes ours."""
        for attempt in range(1, attempts + 1):
            try:
                return fn()
            except KernelLockError:
                raise
            except Exception as exc:
                decision = classify(exc)
                if isinstance(decision, Retry) and attempt < attempts:
                    sleep_before_retry(attempt, decision.retry_after)
                    continue
                failure = decision.otherwise if isinstance(decision, Retry) else decision
                if failure.kind == "bug":
                    raise
                if failure.kind == "entry-not-found" and missing_path_ok:
                    return []  # type: ignore[return-value]
                raise self._error(failure, repo_id, what, attempt) from None
        raise AssertionError("unreachable")

    def _error(self, failure: Fail, repo_id: str, what: str, attempt: int) -> KernelLockError:
        """Our error for a failure the classifier gave up on, with the Hub's request id."""
        rid = failure.request_id
        seen = f" (request id {rid})" if rid else ""
        if failure.kind == "offline":
            return HubOffline(what, repo_id, self.endpoint)
        trying = f"while trying to {what} of {repo_id} on {self.endpoint}{seen}"
        if failure.kind == "revision-not-found":
            how = f"Check the branch, tag or commit in pyproject.toml (`kernel-lock versions {repo_id}` lists versions)."
            return ResolutionError(f"Revision not found {trying}. {how}", request_id=rid)
        if failure.kind == "repo-not-found":
            return self._not_found(repo_id, rid)
        if failure.kind == "entry-not-found":
            return ResolutionError(f"Not found {trying}.", request_id=rid)
        if failure.kind == "malformed":
            return MalformedReply(
                f"The Hub at {self.endpoint} sent a malformed reply when asked to {what} of {repo_id} "
                f"({failure.detail}){seen}",
                request_id=rid,
            )
        if failure.kind == "unreachable":
            return HubError(
                f"Cannot reach the Hub at {self.endpoint} to {what} of {repo_id} ({failure.detail}) after "
                f"{attempt} attempts. Check your network and HF_ENDPOINT."
            )
        return HubError(
            f"The Hub at {self.endpoint} failed to {what} of {repo_id} (HTTP {failure.status}) after {attempt} "
            f"attempt(s){seen}. Try again later, or check HF_ENDPOINT and HF_TOKEN.",
            request_id=rid,
        )

    def closest_kernel(self, repo_id: str) -> str | None:
        """The kernel repo of the same organization whose id is closest to `repo_id` (a typo's likely
        meaning), where the Hub lists the organization's kernels (`/api/kernels?author=ORG`); else None."""
        import difflib

        org, name = repo_id.split("/", 1)
        try:
            listed = self._get(f"{self.endpoint}/api/kernels", params={"author": org, "limit": "1000"}).json()
            names = [
                item["id"] for item in listed if isinstance(item, dict) and isinstance(item.get("id"), str)
            ]
        except Exception:  # a suggestion is a courtesy: no listing, no suggestion
            return None
        others = {n.split("/", 1)[1]: n for n in names if n != repo_id and n.startswith(f"{org}/")}
        close = difflib.get_close_matches(name, list(others), n=1, cutoff=0.7)  # names only: the org matches
        return others[close[0]] if close else None

    def _not_found(self, repo_id: str, request_id: str | None) -> ResolutionError:
        """Explain a missing kernel repo, telling apart one that exists as a model-type repo."""
        try:
            self.api.repo_info(repo_id, repo_type="model")
        except Exception:
            return RepoNotFound(repo_id, self.endpoint, self.closest_kernel(repo_id), request_id=request_id)
        return ResolutionError(
            f"{repo_id} is a model-type repository; kernel-lock supports only kernel-type repositories. "
            f"Ask its publisher to move it to a kernel repository (huggingface.co/kernels/...), "
            f"or depend on the kernel repository that replaces it.",
            request_id=request_id,
        )


def _json(response: Any, what: str) -> Any:
    """The JSON body of an answer, or `MalformedReply` (with the request id) when it is not JSON, has a key
    twice in one object or nests too deeply to read (`kernel_lock.core.jsonread`)."""
    from kernel_lock.core import jsonread

    try:
        return jsonread.loads(response.content)
    except jsonread.MalformedJSON as exc:
        raise MalformedReply(
            f"The Hub sent a {what} that is not JSON ({exc.reason}, at {response.url})",
            request_id=request_id_of(response),
        ) from None
