"""Resolve requirements to locked kernels: version -> branch `vN` -> commit -> variant hashes.

Everything a lock needs comes from two round trips per repo: the refs (with the
`kernel-status.toml` redirect check alongside), then one recursive listing of
`build/` at the commit, from which every variant hash is computed. Repos are
resolved concurrently.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from kernel_lock import tomlread
from kernel_lock.cache import RECORD_DIR, repo_dir, unwritable_paths
from kernel_lock.config import COMMIT_RE, Dependency, is_repo_id, same_publisher, trust_granted
from kernel_lock.errors import HubError, KernelLockWarning, NoSuchVersion, ResolutionError, UntrustedPublisher
from kernel_lock.fsutil import atomic_write
from kernel_lock.hashing import git_blob_sha1, is_ignored, variant_hash
from kernel_lock.lockfile import Lock, LockedKernel, RequiredBy, Trust, is_variant_name, kernel_key
from kernel_lock.signatures import BUNDLE_NAME, METADATA_NAME, Verifiers, check_signatures, unsigned_notice
from kernel_lock.signers import Signing, policy_problems

if TYPE_CHECKING:
    from kernel_lock.hub import Hub, Refs, TreeEntry

STATUS_FILE = "kernel-status.toml"
MAX_REDIRECTS = 8
MAX_WORKERS = 32
SIDE_WORKERS = 64


class Redirect(BaseModel):
    """A `kernel-status.toml` of kind `redirect`: the repo moved to `destination`."""

    model_config = ConfigDict(extra="ignore")

    kind: str
    destination: str
    revision: str = "main"


@dataclass
class _Node:
    """A resolved (repo, requirement): its entry, and per variant the requirements its metadata declares."""

    entry: LockedKernel
    needs: dict[str, list[tuple[str, Dependency]]]


def lock_dependencies(
    dependencies: Mapping[str, Dependency],
    *,
    hub: Hub,
    previous: Lock | None = None,
    upgrade: bool | Iterable[str] = False,
    trusted_repos: Iterable[str] = (),
    redirects: Mapping[str, str] | None = None,
    pins: Mapping[str, str] | None = None,
    signing: Signing | None = None,
) -> Lock:
    """The lock for `dependencies` and every kernel they depend on, keeping unchanged entries of `previous`.

    Direct and transitive kernels are resolved level by level, each level
    concurrently; an entry of `previous` for the same (repo, requirement) is
    reused without a request unless it is upgraded. `pins` (key -> commit, or
    repo id -> commit) fixes the commit of a requirement instead of taking the
    head of its branch, as when importing another tool's lock. `signing` says
    who may sign each kernel's variants (default: the `kernels` library's
    signers, signatures optional); every variant that carries a signature is
    verified, and a kept entry whose recorded signers no longer satisfy it is
    resolved again.
    """
    upgrade_all = upgrade is True
    upgrade_some = set() if isinstance(upgrade, bool) else set(upgrade)
    allowlist = set(trusted_repos)
    prior = previous.by_key() if previous else {}
    nodes: dict[str, _Node] = {}
    fresh: set[str] = set()
    direct = {kernel_key(repo, dep) for repo, dep in dependencies.items()}
    wanted: dict[str, tuple[str, Dependency, str | None]] = {
        kernel_key(repo, dep): (repo, dep, None) for repo, dep in dependencies.items()
    }
    signing = signing or Signing()
    context = _Context(hub, allowlist, dict(pins or {}), signing, dict(redirects or {}))
    with (
        context.side,
        ThreadPoolExecutor(max_workers=MAX_WORKERS, thread_name_prefix="kernel-lock-resolve") as pool,
    ):
        while wanted:
            futures: dict[str, Future[_Node]] = {}
            for key, (repo, dep, parent) in wanted.items():
                old = prior.get(key)
                if (
                    old is not None
                    and not upgrade_all
                    and repo not in upgrade_some
                    and (
                        old.trust != "trust-remote-code"
                        or trust_granted(repo, old.repo_id, dep.trust_remote_code, allowlist)
                    )
                    and (
                        old.repo_id == repo
                        or same_publisher(repo, old.repo_id)
                        or context.redirects.get(repo) == old.repo_id
                    )
                    and not policy_problems(old.variants, old.signed_by, signing.policy(repo))
                ):
                    nodes[key] = _Node(old, _prior_needs(previous, old))
                else:
                    futures[key] = pool.submit(_resolve_node, repo, dep, parent, context)
            nodes.update(_results_or_first_failure(futures, pool, context))
            fresh.update(futures)
            wanted = {}
            for key, node in list(nodes.items()):
                for requirements in node.needs.values():
                    for repo, dep in requirements:
                        dkey = kernel_key(repo, dep)
                        if dkey not in nodes and dkey not in wanted:
                            wanted[dkey] = (repo, dep, key)
    _refuse_cycles(nodes)
    for key in sorted(fresh):
        notice = unsigned_notice(nodes[key].entry)
        if notice:
            warnings.warn(notice, KernelLockWarning, stacklevel=2)
    required_by: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for key, node in nodes.items():
        for variant, requirements in node.needs.items():
            for repo, dep in requirements:
                required_by[kernel_key(repo, dep)][key].add(variant)
    entries = [
        node.entry.model_copy(
            update={
                "direct": key in direct,
                "required_by": [
                    RequiredBy(kernel=k, variants=sorted(v)) for k, v in sorted(required_by[key].items())
                ],
            }
        )
        for key, node in nodes.items()
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
    """What every resolution of one lock run shares: the Hub, the trust opt-ins, one org-trust answer per org."""

    def __init__(
        self, hub: Hub, allowlist: set[str], pins: dict[str, str], signing: Signing, redirects: dict[str, str]
    ) -> None:
        self.hub = hub
        self.allowlist = allowlist
        self.redirects = redirects
        self.pins = pins
        self.signing = signing
        self.verifiers = Verifiers()
        self._verifier: Future[Any] | None = None
        self._orgs: dict[str, Future[bool]] = {}
        self._lock = threading.Lock()
        self.side = ThreadPoolExecutor(max_workers=SIDE_WORKERS, thread_name_prefix="kernel-lock-side")

    def prepare_verifier(self) -> None:
        """Build the signature verifier in the background (importing sigstore takes a while) while the
        metadata and bundles download; the first caller starts it, the others find it underway."""
        with self._lock:
            if self._verifier is None:
                self._verifier = self.side.submit(self.verifiers.get, self.signing.trusted_root)

    def org_trusted(self, repo_id: str) -> Future[bool]:
        """Whether the repo's organization is a trusted kernel publisher (asked once per org, in the background)."""
        org = repo_id.split("/", 1)[0]
        with self._lock:
            if org not in self._orgs:
                self._orgs[org] = self.side.submit(self.hub.org_is_trusted, org)
            return self._orgs[org]


def _resolve_node(repo_id: str, dep: Dependency, parent: str | None, context: _Context) -> _Node:
    """Resolve a requirement, decide trust, and read what each variant's metadata says it depends on."""
    hub = context.hub
    context.org_trusted(repo_id)
    target, refs = follow_redirects(repo_id, hub, context.side)
    ref, commit = _pick_commit(target, dep, refs)
    commit = context.pins.get(kernel_key(repo_id, dep)) or context.pins.get(repo_id) or commit
    _notice_newer_version(repo_id, dep, refs)
    trusted = context.org_trusted(target)
    tree = hub.tree(target, commit, "build")
    if any(e.path.endswith(f"/{BUNDLE_NAME}") for e in tree):
        context.prepare_verifier()
    variants = variant_hashes(target, commit, tree)
    _accept_redirect(repo_id, target, context.redirects)
    trust = _trust(repo_id, target, dep, parent, trusted.result(), context.allowlist)
    try:
        entry = LockedKernel(
            repo_id=target,
            redirected_from=repo_id if target != repo_id else None,
            version=dep.version,
            revision=dep.revision,
            ref=ref,
            commit=commit,
            trust=trust,
            variants=variants,
        )
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise HubError(
            f"The Hub's answers for {repo_id} at {commit[:12]} do not make a valid lock entry "
            f"({'.'.join(map(str, first['loc']))}: {first['msg']}). Refusing to lock it; tell its publisher."
        ) from None
    metadata, bundles = _fetch_small_files(entry, tree, (METADATA_NAME, BUNDLE_NAME), context)
    lfs_bundles = {
        e.path.split("/")[1] for e in tree if e.lfs is not None and e.path.endswith(f"/{BUNDLE_NAME}")
    }
    signed_by = check_signatures(
        entry,
        metadata,
        {**bundles, **dict.fromkeys(lfs_bundles)},
        listed_files(target, commit, tree),
        context.signing.policy(repo_id),
        lambda: context.verifiers.get(context.signing.trusted_root),
    )
    return _Node(entry.model_copy(update={"signed_by": signed_by}), _variant_needs(entry, metadata))


def _notice_newer_version(repo_id: str, dep: Dependency, refs: Refs) -> None:
    """A notice (not an error) when a newer major version than the one required exists."""
    newest = max(refs.versions(), default=None)
    if dep.version is not None and newest is not None and newest > dep.version:
        warnings.warn(
            f"{repo_id}: version {dep.version} is locked, but version {newest} is available; "
            f"`kernel-lock add {repo_id} --version {newest}` moves to it (majors may change the API; "
            f"`kernel-lock versions {repo_id}` lists them).",
            KernelLockWarning,
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


def _accept_redirect(repo_id: str, target: str, redirects: Mapping[str, str]) -> None:
    """Refuse a redirect to another organization's repository unless pyproject.toml accepts exactly it.

    Within one organization the publisher controls both repositories; across organizations the redirect
    hands the project to another publisher, which the project must agree to (and which `lock --check` can
    then see, offline, in pyproject.toml).
    """
    if target == repo_id or same_publisher(repo_id, target) or redirects.get(repo_id) == target:
        return
    raise ResolutionError(
        f"{repo_id} redirects to {target} (through {STATUS_FILE}), a repository of another organization. "
        f"kernel-lock follows a redirect to another publisher only when pyproject.toml accepts it: add "
        f'"{repo_id}" = "{target}" under [tool.kernels.redirects], or depend on {target} directly.'
    )


def variant_files_named(tree: Iterable[TreeEntry], name: str) -> dict[str, str]:
    """Variant -> blob id of its regular (non-LFS) file `build/<variant>/<name>`, from a listing."""
    return {
        e.path.split("/")[1]: e.oid
        for e in tree
        if e.type == "file" and e.lfs is None and len(e.path.split("/")) == 3 and e.path.endswith(f"/{name}")
    }


def _fetch_small_files(
    entry: LockedKernel, tree: list[TreeEntry], names: tuple[str, ...], context: _Context
) -> list[dict[str, bytes]]:
    """Per name, each variant's file of that name (fetched concurrently, checked against the listing, cached
    by commit); variants without one are left out."""
    jobs = []
    for name in names:
        oids = variant_files_named(tree, name)
        cache = MetadataCache(entry.repo_id, entry.commit, name)
        fetched = {
            oid: context.side.submit(cache.get, variant, oid, context.hub)
            for variant, oid in sorted(oids.items(), reverse=True)
        }
        jobs.append((cache, oids, fetched))
    found = []
    for cache, oids, fetched in jobs:
        found.append({variant: fetched[oid].result() for variant, oid in sorted(oids.items())})
        cache.note_absent(set(entry.variants) - set(oids))
        cache.save()
    return found


def _variant_needs(
    entry: LockedKernel, metadata: dict[str, bytes]
) -> dict[str, list[tuple[str, Dependency]]]:
    """Per variant, the `kernel-depends` of its `metadata.json`."""
    needs = {}
    for variant, data in metadata.items():
        requirements = _kernel_depends(entry, variant, _parse_metadata(entry, variant, data))
        if requirements:
            needs[variant] = requirements
    return needs


class MetadataCache:
    """One small file of every variant of a commit (`metadata.json`, or its signature), checked against the
    listed blob ids, kept in one cache file; an empty entry records that a variant has no such file.

    A commit's files never change, so the cache needs no invalidation; a cached
    file that does not match its blob id (or a missing one) is fetched again.
    """

    def __init__(self, repo_id: str, commit: str, name: str = "metadata.json") -> None:
        self.repo_id = repo_id
        self.commit = commit
        self.name = name
        self.path = repo_dir(repo_id) / RECORD_DIR / commit / name
        try:
            cached = json.loads(self.path.read_bytes())
        except (OSError, ValueError, RecursionError):
            cached = {}
        self.files: dict[str, str] = (
            {k: v for k, v in cached.items() if isinstance(v, str)} if isinstance(cached, dict) else {}
        )
        self.changed = False

    def get(self, variant: str, oid: str, hub: Hub) -> bytes:
        """A variant's `metadata.json`, from the cache or the Hub; refused if it does not match `oid`."""
        cached = self.files.get(variant)
        if cached is not None and git_blob_sha1(cached.encode()) == oid:
            return cached.encode()
        data = hub.read_file(self.repo_id, self.commit, f"build/{variant}/{self.name}") or b""
        if git_blob_sha1(data) != oid:
            raise HubError(
                f"The Hub served build/{variant}/{self.name} of {self.repo_id} at {self.commit[:12]} with content "
                f"that does not match its own listing (blob {oid}). Refusing to lock from it."
            )
        try:
            self.files[variant] = data.decode("utf-8")
            self.changed = True
        except UnicodeDecodeError:
            pass
        return data

    def note_absent(self, variants: Iterable[str]) -> None:
        """Remember that these variants have no such file (kept as an empty entry)."""
        for variant in variants:
            if self.files.get(variant) != "":
                self.files[variant] = ""
                self.changed = True

    def save(self) -> None:
        """Write the cache if anything was fetched (best effort: it is only an optimisation)."""
        if not self.changed:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(self.path, json.dumps(self.files, sort_keys=True).encode(), durable=False)
        except OSError:
            pass


def _parse_metadata(entry: LockedKernel, variant: str, data: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise HubError(
            f"build/{variant}/metadata.json of {entry.repo_id} at {entry.commit[:12]} is not JSON ({exc})."
        ) from None
    return parsed if isinstance(parsed, dict) else {}


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
        fields = {k: item[k] for k in ("version", "revision") if isinstance(item, dict) and k in item}
        try:
            dep = Dependency.model_validate(fields)
        except ValidationError:
            dep = None
        if not is_repo_id(repo) or dep is None or (dep.version is None) == (dep.revision is None):
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


def _refuse_cycles(nodes: dict[str, _Node]) -> None:
    """Raise on a dependency cycle, naming it."""
    edges = {
        key: sorted({kernel_key(r, d) for reqs in node.needs.values() for r, d in reqs})
        for key, node in nodes.items()
    }
    state: dict[str, int] = {}

    def visit(key: str, path: list[str]) -> None:
        state[key] = 1
        for nxt in edges.get(key, []):
            if state.get(nxt) == 1:
                cycle = [*path[path.index(nxt) :], nxt]
                raise ResolutionError(
                    f"Kernel dependency cycle: {' -> '.join(cycle)}. Kernels cannot depend on each other in a "
                    f"loop; tell their publishers."
                )
            if nxt not in state:
                visit(nxt, [*path, nxt])
        state[key] = 2

    for key in sorted(edges):
        if key not in state:
            visit(key, [key])


def follow_redirects(repo_id: str, hub: Hub, side: ThreadPoolExecutor) -> tuple[str, Refs]:
    """The repo that finally holds the kernel, and its refs; the refs and status requests overlap."""
    chain = [repo_id]
    current = repo_id
    while True:
        refs_future = side.submit(hub.refs, current)
        try:
            status = hub.read_file(current, "main", STATUS_FILE)
            refs = refs_future.result()
        except ResolutionError as exc:
            if len(chain) == 1:
                raise
            raise ResolutionError(
                f"{repo_id} redirects ({' -> '.join(chain)}) through {STATUS_FILE} to a repository that cannot be "
                f"resolved: {exc} Depend on the repository that now holds the kernel, and tell the publisher of "
                f"{chain[-2]}."
            ) from None
        redirect = _parse_status(current, status)
        if redirect is None:
            return current, refs
        destination = redirect.destination
        if destination in chain:
            raise ResolutionError(
                f"{repo_id} redirects in a loop ({' -> '.join([*chain, destination])}) through "
                f"{STATUS_FILE}. Depend on the repository that really holds the kernel, and tell its publisher."
            )
        if len(chain) > MAX_REDIRECTS:
            raise ResolutionError(
                f"{repo_id} redirects more than {MAX_REDIRECTS} times ({' -> '.join(chain)})."
            )
        chain.append(destination)
        current = destination


def _parse_status(repo_id: str, content: bytes | None) -> Redirect | None:
    """The redirect in a `kernel-status.toml`, if the file exists and says so."""
    if content is None:
        return None
    try:
        data = tomlread.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, tomlread.TOMLDecodeError) as exc:
        raise HubError(
            f"{repo_id} has a malformed {STATUS_FILE} on main ({exc}); tell its publisher."
        ) from None
    if data.get("kind") != "redirect":
        return None
    try:
        redirect = Redirect.model_validate(data)
    except ValidationError:
        raise HubError(
            f"{repo_id} has a redirect {STATUS_FILE} without a destination; tell its publisher."
        ) from None
    if not is_repo_id(redirect.destination):
        raise HubError(
            f"{repo_id} redirects to {redirect.destination!r} in {STATUS_FILE}, which is not a repo id; "
            f"tell its publisher."
        )
    return redirect


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
    if COMMIT_RE.fullmatch(revision):
        return revision, revision
    raise ResolutionError(
        f"{repo_id} has no branch or tag {revision!r}. Branches: {', '.join(sorted(branches)) or 'none'}; "
        f"tags: {', '.join(sorted(tags)) or 'none'}. Use one of them or a full 40-hex commit."
    )


def variant_hashes(repo_id: str, commit: str, entries: Iterable[TreeEntry]) -> dict[str, str]:
    """Group a `build/` listing by variant and compute each variant's `git_lfs_concat` hash."""
    files: dict[str, dict[str, str]] = defaultdict(dict)
    for entry in entries:
        if entry.type == "directory":
            continue
        split = split_variant_path(repo_id, commit, entry.path)
        if split is None:
            continue
        variant, rel = split
        if not is_variant_name(variant):
            raise HubError(
                f"{repo_id} at {commit} has a build variant folder named {variant!r}, which is not a variant name. "
                f"Refusing to lock it."
            )
        if entry.type != "file":
            raise HubError(
                f"{repo_id} at {commit} lists {entry.path!r} as a {entry.type!r}; kernel variants may hold only "
                f"regular files. Refusing to lock it."
            )
        if rel in files[variant]:
            raise HubError(f"{repo_id} at {commit} lists {entry.path!r} twice. Refusing to lock it.")
        files[variant][rel] = entry.file_hash
    if not files:
        raise ResolutionError(f"{repo_id} has no build variants (no files under build/) at commit {commit}.")
    for variant, listed in sorted(files.items()):
        bad = unwritable_paths(sorted(p for p in listed if not is_ignored(p)))
        if bad:
            raise HubError(
                f"{repo_id} at {commit} lists files under build/{variant}/ that no cache can hold: "
                f"{', '.join(map(repr, bad[:5]))}{' ...' if len(bad) > 5 else ''} (a file where another needs "
                f"a folder, or a name over 255 bytes). Sync could not write them, so the lock refuses them; "
                f"tell the kernel's publisher."
            )
    return {name: variant_hash(fs.items()) for name, fs in sorted(files.items())}


def listed_files(repo_id: str, commit: str, tree: Iterable[TreeEntry]) -> dict[str, dict[str, str | None]]:
    """Variant -> relative path -> the LFS SHA-256 of each listed file (None for a git-stored one)."""
    files: dict[str, dict[str, str | None]] = defaultdict(dict)
    for entry in tree:
        split = split_variant_path(repo_id, commit, entry.path) if entry.type == "file" else None
        if split is not None:
            files[split[0]][split[1]] = entry.lfs.oid if entry.lfs else None
    return dict(files)


def split_variant_path(repo_id: str, commit: str, path: str) -> tuple[str, str] | None:
    """`build/<variant>/<rel>` -> (variant, rel); None for a file directly in `build/`.

    Paths that could escape a directory (absolute, `..`, backslash) are refused.
    """
    parts = path.split("/")
    unsafe = (
        "\\" in path
        or "\0" in path
        or path.startswith("/")
        or any(p in ("", ".", "..") for p in parts)
        or len(parts) < 2
        or parts[0] != "build"
    )
    if unsafe:
        raise HubError(
            f"{repo_id} at {commit} lists an unsafe or unexpected path {path!r} (absolute, '..', backslash, "
            f"or outside build/<variant>/). Refusing to lock it; the Hub or mirror may be compromised."
        )
    return (parts[1], "/".join(parts[2:])) if len(parts) > 2 else None
