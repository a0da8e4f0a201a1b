"""Resolve requirements to locked kernels: version -> branch `vN` -> commit -> variant hashes.

Per repo: the refs (with the `kernel-status.toml` redirect check alongside),
one recursive listing of `build/` at the commit, then every variant's
`metadata.json` at once (its `kernel-depends`, publisher digest and provenance),
from which the variant hashes are computed (`kernel_lock.lock.hashes`). Repos are
resolved concurrently, level by level of the dependency graph.
"""

from __future__ import annotations

import dataclasses
import threading
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kernel_lock.core.hashing import DEFAULT_HASH_TYPE, HashType
from kernel_lock.core.lockfile import InvalidLockData, Lock, LockedKernel, RequiredBy, Trust, kernel_key
from kernel_lock.core.requirement import Dependency, is_hex, is_repo_id, stated_requirement
from kernel_lock.core.signers import Signing, policy_problems
from kernel_lock.errors import (
    HubError,
    KernelLockNotice,
    KernelLockWarning,
    NoSuchVersion,
    ResolutionError,
    UntrustedPublisher,
)
from kernel_lock.lock import _provenance
from kernel_lock.lock.hashes import BUNDLE, Blobs, list_variants, lock_variants
from kernel_lock.lock.hashes import MetadataCache as MetadataCache
from kernel_lock.lock.hashes import split_variant_path as split_variant_path
from kernel_lock.lock.redirects import accept_redirect, follow_redirects, redirect_accepted
from kernel_lock.lock.signatures import Verifiers, check_signatures, unsigned_notice
from kernel_lock.project.config import trust_granted

if TYPE_CHECKING:
    from kernel_lock.hub.client import Hub, Refs

MAX_WORKERS = 32
SIDE_WORKERS = 64


@dataclass
class _Node:
    """A resolved (repo, requirement): its entry, and per variant the requirements its metadata declares."""

    entry: LockedKernel
    needs: dict[str, list[tuple[str, Dependency]]]


@dataclass(frozen=True)
class Pin:
    """The requirements a pinned commit applies to: one requirement of a repo, or, with neither `version`
    nor `revision`, every requirement of it (as a legacy lock, which names repos only, pins them)."""

    repo_id: str
    version: int | None = None
    revision: str | None = None

    @classmethod
    def of(cls, repo_id: str, dep: Dependency) -> Pin:
        """The pin of exactly this requirement."""
        return cls(repo_id, dep.version, dep.revision)


@dataclass(frozen=True)
class LockRequest:
    """What a lock run re-resolves instead of keeping from the previous lock, and how.

    `upgrade_all` / `upgrade` (repo ids): move to the head of their branch.
    `pins`: the commit to lock a requirement at instead of its branch head (see
    `Pin`), as when importing another tool's lock or re-hashing at the locked commits. `hash_type`: the hash type
    of the new lock; a kept entry of another type is re-hashed at its commit.
    `signing`: who may sign each kernel's variants (default: the `kernels` library's
    signers, signatures optional); a kept entry whose recorded signers no longer
    satisfy it is resolved again. `redirects`: the redirects to another
    organization's repository that pyproject.toml accepts (repo id -> target).
    """

    upgrade_all: bool = False
    upgrade: frozenset[str] = frozenset()
    pins: Mapping[Pin, str] = field(default_factory=dict)
    hash_type: HashType = DEFAULT_HASH_TYPE
    signing: Signing = field(default_factory=Signing)
    redirects: Mapping[str, str] = field(default_factory=dict)

    def pin(self, repo_id: str, dep: Dependency) -> str | None:
        """The commit a requirement is pinned to, if any (a per-requirement pin wins)."""
        return self.pins.get(Pin.of(repo_id, dep)) or self.pins.get(Pin(repo_id))

    def keeps(self, old: LockedKernel | None, repo_id: str, dep: Dependency, allowlist: set[str]) -> bool:
        """Whether the previous lock's entry for a requirement stays as it is (no request)."""
        return (
            old is not None
            and not self.upgrade_all
            and repo_id not in self.upgrade
            and old.hash_type == self.hash_type
            and (
                old.trust != "trust-remote-code"
                or trust_granted(repo_id, old.repo_id, dep.trust_remote_code, allowlist)
            )
            and redirect_accepted(repo_id, old.repo_id, self.redirects)
            and not policy_problems(old.variants, old.signed_by, self.signing.policy(repo_id))
        )


@dataclass
class DependencyGraph:
    """Resolved requirements by key, and the edges their variants' `kernel-depends` make."""

    nodes: dict[str, _Node] = field(default_factory=dict)

    def wanted(self) -> dict[str, tuple[str, Dependency, str]]:
        """Requirements some node needs that are not resolved yet: key -> (repo, requirement, first requirer)."""
        out: dict[str, tuple[str, Dependency, str]] = {}
        for key, node in self.nodes.items():
            for requirements in node.needs.values():
                for repo, dep in requirements:
                    dkey = kernel_key(repo, dep)
                    if dkey not in self.nodes and dkey not in out:
                        out[dkey] = (repo, dep, key)
        return out

    def required_by(self) -> dict[str, dict[str, set[str]]]:
        """key -> requiring key -> the requiring node's variants that need it."""
        edges: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for key, node in self.nodes.items():
            for variant, requirements in node.needs.items():
                for repo, dep in requirements:
                    edges[kernel_key(repo, dep)][key].add(variant)
        return edges

    def cycles(self) -> list[list[str]]:
        """Every dependency cycle found by a depth-first walk, each as a path that ends where it starts."""
        edges = {
            key: sorted({kernel_key(r, d) for reqs in node.needs.values() for r, d in reqs})
            for key, node in self.nodes.items()
        }
        state: dict[str, int] = {}
        found: list[list[str]] = []

        def visit(key: str, path: list[str]) -> None:
            state[key] = 1
            for nxt in edges.get(key, []):
                if state.get(nxt) == 1:
                    found.append([*path[path.index(nxt) :], nxt])
                elif nxt not in state:
                    visit(nxt, [*path, nxt])
            state[key] = 2

        for key in sorted(edges):
            if key not in state:
                visit(key, [key])
        return found


def lock_dependencies(
    dependencies: Mapping[str, Dependency],
    *,
    hub: Hub,
    previous: Lock | None = None,
    request: LockRequest | None = None,
    trusted_repos: Iterable[str] = (),
) -> Lock:
    """The lock for `dependencies` and every kernel they depend on, keeping unchanged entries of `previous`.

    Direct and transitive kernels are resolved level by level, each level
    concurrently: first a plan of what to keep and what to resolve (no I/O),
    then the requests. An entry of `previous` for the same (repo, requirement)
    is kept without a request unless `request` says otherwise. Every variant
    that carries a signature is verified.
    """
    request = request or LockRequest()
    allowlist = set(trusted_repos)
    prior = previous.by_key() if previous else {}
    graph = DependencyGraph()
    fresh_keys: set[str] = set()
    direct = {kernel_key(repo, dep) for repo, dep in dependencies.items()}
    wanted: dict[str, tuple[str, Dependency, str | None]] = {
        kernel_key(repo, dep): (repo, dep, None) for repo, dep in dependencies.items()
    }
    context = _Context(hub, allowlist, request)
    with (
        context.side,
        ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="kernel-lock-resolve") as pool,
    ):
        while wanted:
            kept, fresh = _plan(wanted, prior, previous, request, allowlist)
            graph.nodes.update(kept)
            futures = {
                key: pool.submit(_resolve_node, repo, dep, parent, context)
                for key, (repo, dep, parent) in fresh.items()
            }
            graph.nodes.update(_results_or_first_failure(futures, pool, context))
            fresh_keys.update(futures)
            wanted = dict(graph.wanted())
    cycles = graph.cycles()
    if cycles:
        raise ResolutionError(
            f"Kernel dependency cycle: {' -> '.join(cycles[0])}. Kernels cannot depend on each other in a "
            f"loop; tell their publishers."
        )
    for key in sorted(fresh_keys):
        notice = unsigned_notice(graph.nodes[key].entry)
        if notice:
            warnings.warn(notice, KernelLockNotice, stacklevel=2)
    required_by = graph.required_by()
    entries = [
        dataclasses.replace(
            node.entry,
            direct=key in direct,
            required_by=[
                RequiredBy(kernel=k, variants=sorted(v)) for k, v in sorted(required_by[key].items())
            ],
        )
        for key, node in graph.nodes.items()
        if key in direct or required_by[key]
    ]
    return Lock(kernel=sorted(entries, key=lambda k: (not k.direct, k.key)))


def _results_or_first_failure(
    futures: dict[str, Future[_Node]], pool: ThreadPoolExecutor, context: _Context
) -> dict[str, _Node]:
    """Every future's node, or the first failure raised at once, with the requests not yet started cancelled.

    A lock with thousands of unresolvable requirements stops at the first, instead of asking the Hub about
    every one of them.
    """
    done, _ = wait(futures.values(), return_when=FIRST_EXCEPTION)
    order = {future: index for index, future in enumerate(futures.values())}
    failed = sorted((f for f in done if f.exception() is not None), key=order.__getitem__)
    if failed:
        pool.shutdown(wait=False, cancel_futures=True)
        context.side.shutdown(wait=False, cancel_futures=True)
        raise failed[0].exception()  # type: ignore[misc]
    return {key: future.result() for key, future in futures.items()}


def _plan(
    wanted: Mapping[str, tuple[str, Dependency, str | None]],
    prior: Mapping[str, LockedKernel],
    previous: Lock | None,
    request: LockRequest,
    allowlist: set[str],
) -> tuple[dict[str, _Node], dict[str, tuple[str, Dependency, str | None]]]:
    """(entries kept from the previous lock, requirements to resolve) for one level; no I/O."""
    kept: dict[str, _Node] = {}
    fresh: dict[str, tuple[str, Dependency, str | None]] = {}
    for key, (repo, dep, parent) in wanted.items():
        old = prior.get(key)
        if old is not None and request.keeps(old, repo, dep, allowlist):
            kept[key] = _Node(old, _prior_needs(previous, old))
        else:
            fresh[key] = (repo, dep, parent)
    return kept, fresh


def _prior_needs(previous: Lock | None, entry: LockedKernel) -> dict[str, list[tuple[str, Dependency]]]:
    """What a kept entry's variants need, read back from the previous lock's `required-by` edges."""
    needs: dict[str, list[tuple[str, Dependency]]] = defaultdict(list)
    for dep_entry in previous.kernel if previous else []:
        for edge in dep_entry.required_by:
            if edge.kernel == entry.key:
                for variant in edge.variants:
                    needs[variant].append((dep_entry.requested_repo, dep_entry.requirement()))
    return dict(needs)


class _Context:
    """What every resolution of one lock run shares: the Hub, the request, one org-trust answer per org, blobs."""

    def __init__(self, hub: Hub, allowlist: set[str], request: LockRequest) -> None:
        self.hub = hub
        self.allowlist = allowlist
        self.request = request
        self._verifier: Future[Any] | None = None
        self._orgs: dict[str, Future[bool]] = {}
        self._lock = threading.Lock()
        self.side = ThreadPoolExecutor(max_workers=SIDE_WORKERS, thread_name_prefix="kernel-lock-side")
        self.blobs = Blobs(hub, self.side)
        self.verifiers = Verifiers()

    def prepare_verifier(self) -> None:
        """Build the signature verifier in the background (importing sigstore takes a while) while the
        metadata and bundles download; the first caller starts it, the others find it underway."""
        with self._lock:
            if self._verifier is None:
                self._verifier = self.side.submit(self.verifiers.get, self.request.signing.trusted_root)

    def org_trusted(self, repo_id: str) -> Future[bool]:
        """Whether the repo's organization is a trusted kernel publisher (asked once per org, in the background)."""
        org = repo_id.split("/", 1)[0]
        with self._lock:
            if org not in self._orgs:
                self._orgs[org] = self.side.submit(self.hub.org_is_trusted, org)
            return self._orgs[org]


def _resolve_node(repo_id: str, dep: Dependency, parent: str | None, context: _Context) -> _Node:
    """Resolve a requirement, decide trust, hash its variants and read what each depends on."""
    hub = context.hub
    context.org_trusted(repo_id)
    target, refs = follow_redirects(repo_id, hub, context.side)
    ref, commit = _pick_commit(target, dep, refs)
    commit = context.request.pin(repo_id, dep) or commit
    _notice_newer_version(repo_id, dep, refs)
    trusted = context.org_trusted(target)
    listing = list_variants(target, commit, hub.tree(target, commit, "build"))
    if any(BUNDLE in files for files in listing.values()):
        context.prepare_verifier()
    accept_redirect(repo_id, target, context.request.redirects)
    variants = lock_variants(
        target,
        commit,
        listing,
        hub=hub,
        pool=context.side,
        blobs=context.blobs,
        hash_type=context.request.hash_type,
    )
    trust = _trust(repo_id, target, dep, parent, trusted.result(), context.allowlist)
    try:
        entry = LockedKernel(
            repo_id=target,
            redirected_from=repo_id if target != repo_id else None,
            version=dep.version,
            revision=dep.revision,
            ref=ref,
            commit=commit,
            hash_type=context.request.hash_type,
            trust=trust,
            variants={name: v.hash for name, v in variants.items()},
            provenance=_provenance.group({name: v.provenance for name, v in variants.items()}),
        ).validated()
    except InvalidLockData as exc:
        raise HubError(
            f"The Hub's answers for {repo_id} at {commit[:12]} do not make a valid lock entry "
            f"({exc}). Refusing to lock it; tell its publisher."
        ) from None
    signed_by = check_signatures(
        entry,
        {name: v.metadata_bytes for name, v in variants.items() if v.metadata_bytes is not None},
        {name: v.bundle for name, v in variants.items() if BUNDLE in listing[name]},
        {
            name: {rel: e.lfs.oid if e.lfs else None for rel, e in files.items()}
            for name, files in listing.items()
        },
        context.request.signing.policy(repo_id),
        lambda: context.verifiers.get(context.request.signing.trusted_root),
    )
    entry = dataclasses.replace(entry, signed_by=signed_by)
    _warn_dirty(entry)
    needs = {}
    for name, variant in variants.items():
        requirements = _kernel_depends(entry, name, variant.metadata)
        if requirements:
            needs[name] = requirements
    return _Node(entry, needs)


def _warn_dirty(entry: LockedKernel) -> None:
    """A warning naming the variants whose build had uncommitted changes (what was built is not in git)."""
    for build in entry.provenance:
        if build.dirty:
            warnings.warn(
                f"{entry.repo_id} at {entry.commit[:12]}: variant(s) {', '.join(build.variants)} were built from a "
                f"dirty tree (uncommitted changes in the kernel source or kernel-builder {build.builder}), so "
                f"their source commit does not say what was built. Ask the publisher for a clean build.",
                KernelLockWarning,
                stacklevel=2,
            )


def _notice_newer_version(repo_id: str, dep: Dependency, refs: Refs) -> None:
    """A notice (not an error) when a newer major version than the one required exists."""
    newest = max(refs.versions(), default=None)
    if dep.version is not None and newest is not None and newest > dep.version:
        warnings.warn(
            f"{repo_id}: version {dep.version} is locked, but version {newest} is available; "
            f"`kernel-lock add {repo_id} --version {newest}` moves to it (majors may change the API; "
            f"`kernel-lock versions {repo_id}` lists them).",
            KernelLockNotice,
            stacklevel=2,
        )


def _trust(
    repo_id: str, target: str, dep: Dependency, parent: str | None, trusted: bool, allowlist: set[str]
) -> Trust:
    """The trust decision recorded in the lock, or an error saying how to opt in.

    A `trust-remote-code` opt-in names a repository; it does not follow a redirect to another one.
    """
    if trusted:
        return "trusted-publisher"
    if trust_granted(repo_id, target, dep.trust_remote_code, allowlist):
        return "trust-remote-code"
    org = target.split("/", 1)[0]
    if target != repo_id and (dep.trust_remote_code or repo_id in allowlist):
        raise UntrustedPublisher(
            target,
            org,
            parent,
            how=f'add trust-remote-code = ["{target}"] under [tool.kernels] in pyproject.toml: the opt-in for '
            f"{repo_id}, which redirects to {target}, does not carry over to another repository",
        )
    raise UntrustedPublisher(repo_id, org, parent)


def _kernel_depends(
    entry: LockedKernel, variant: str, metadata: dict[str, Any]
) -> list[tuple[str, Dependency]]:
    """The `kernel-depends` requirements of one variant, refusing what cannot be loaded together."""
    where = f"build/{variant}/metadata.json of {entry.repo_id} at {entry.commit[:12]}"
    raw = metadata.get("kernel-depends") or []
    if not isinstance(raw, list):
        raise HubError(f"{where} has a malformed kernel-depends (not a list).")
    requirements: dict[str, Dependency] = {}
    for item in raw:
        repo = item.get("repo-id") if isinstance(item, dict) else None
        dep = (
            stated_requirement(item.get("version"), item.get("revision")) if isinstance(item, dict) else None
        )
        if not is_repo_id(repo) or dep is None:
            raise HubError(
                f"{where} has a malformed kernel-depends entry {item!r}; it needs 'repo-id' and a version."
            )
        other = requirements.get(repo)
        if other is not None and other != dep:
            raise ResolutionError(
                f"{entry.repo_id} variant {variant} asks for {repo} twice, at {other.describe()} and {dep.describe()}; "
                f"a kernel can import only one version of a dependency. Tell the publisher of {entry.repo_id}."
            )
        requirements[repo] = dep
    return sorted(requirements.items())


def _pick_commit(repo_id: str, dep: Dependency, refs: Refs) -> tuple[str, str]:
    """(ref, commit) for a requirement: branch `vN` for a version, else the branch, tag or commit named."""
    if dep.version is not None:
        versions = refs.versions()
        if dep.version not in versions:
            raise NoSuchVersion(repo_id, dep.version, sorted(versions))
        return f"v{dep.version}", versions[dep.version]
    revision = dep.revision or ""
    branches, tags = refs.branch_heads, refs.tag_commits
    if revision in branches:
        return revision, branches[revision]
    if revision in tags:
        return revision, tags[revision]
    if is_hex(revision, 40):
        return revision, revision
    raise ResolutionError(
        f"{repo_id} has no branch or tag {revision!r}. Branches: {', '.join(sorted(branches)) or 'none'}; "
        f"tags: {', '.join(sorted(tags)) or 'none'}. Use one of them or a full 40-hex commit."
    )
