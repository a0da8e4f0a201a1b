"""The `[tool.kernels]` table of `pyproject.toml`: what a project asks for.

Parsing is strict and explains itself: every mistake a user is likely to make
(no version, an old range specifier, a bad repo id, an unknown key) gets an
error that says what to write instead.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from kernel_lock.core import tomlread
from kernel_lock.core.requirement import REPO_ID_PATTERN, Dependency, is_repo_id
from kernel_lock.core.signers import Signer, Signing, policy
from kernel_lock.errors import ConfigError, KernelLockWarning, RangeSpecifierError
from kernel_lock.project.paths import LOCKFILE, PYPROJECT, find_project_root


def _repo_id(value: str) -> str:
    if not is_repo_id(value):
        raise ValueError("not a repo id 'org/name' (no '--' or '..')")
    return value


RepoId = Annotated[
    str, Field(pattern=REPO_ID_PATTERN, description="Hub repo id, `org/name`"), AfterValidator(_repo_id)
]


class KernelsConfig(BaseModel):
    """The `[tool.kernels]` table."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    dependencies: dict[RepoId, Annotated[int, Field(ge=0)] | Dependency] = Field(
        default_factory=dict,
        description="Kernel repos and their major version (or `{ version = N }`, `{ revision = R }`)",
    )
    trust_remote_code: list[RepoId] = Field(
        default_factory=list,
        alias="trust-remote-code",
        description="Repos (e.g. transitive kernel dependencies) allowed although their publisher is not trusted",
    )
    redirects: dict[RepoId, RepoId] = Field(
        default_factory=dict,
        description="Redirects to another organization's repository that the project accepts: old repo -> new repo",
    )
    signers: list[Signer] = Field(
        default_factory=list,
        description="Signers allowed for every kernel, besides the defaults (the kernels library's own)",
    )
    require_signature: bool = Field(
        False,
        alias="require-signature",
        description="Refuse to lock a variant without a valid signature from an allowed signer",
    )
    trusted_root: str | None = Field(
        None,
        alias="trusted-root",
        description="Sigstore trusted_root.json to verify signatures with (default: the production one in sigstore)",
    )


class Project(BaseModel):
    """A project directory: where its `pyproject.toml` and `kernels.lock` live, and what it asks for."""

    root: Path
    dependencies: dict[str, Dependency]
    trusted_repos: list[str] = []
    redirects: dict[str, str] = {}
    signers: tuple[Signer, ...] = ()
    require_signature: bool = False
    trusted_root: Path | None = None

    def signing(self) -> Signing:
        """Who may sign each kernel, whether it must be signed, and the trusted root to verify with."""
        per_repo = {
            repo_id: policy(
                (*self.signers, *dep.signers),
                required=self.require_signature if dep.require_signature is None else dep.require_signature,
            )
            for repo_id, dep in self.dependencies.items()
        }
        return Signing(
            default=policy(self.signers, required=self.require_signature),
            per_repo=per_repo,
            trusted_root=self.trusted_root,
        )

    @property
    def pyproject(self) -> Path:
        return self.root / PYPROJECT

    @property
    def lockfile(self) -> Path:
        return self.root / LOCKFILE


def load_project(project: str | os.PathLike[str] | None = None) -> Project:
    """Read and validate `[tool.kernels]` of the project's `pyproject.toml`."""
    root = find_project_root(project)
    path = root / PYPROJECT
    table = kernels_table(read_pyproject(path), where=path)
    if table is None:
        raise ConfigError(
            f"{path} has no [tool.kernels] table. Declare the kernels this project uses, e.g.\n"
            f'[tool.kernels.dependencies]\n"kernels-community/activation" = 1'
        )
    return project_from_table(root, table)


def read_pyproject(path: Path) -> str:
    """The text of a `pyproject.toml`; a missing or unreadable file is a `ConfigError` saying what to do."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"No {PYPROJECT} found in {path.parent}. Run kernel-lock in your project directory "
            f"or pass --project DIR; to start a project here, run `kernel-lock init`."
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read {path}: {exc}.") from None


def project_from_text(root: Path, text: str) -> Project:
    """The project a `pyproject.toml` text declares, validated (no dependencies where it has no table)."""
    return project_from_table(root, kernels_table(text, where=root / PYPROJECT) or {})


def read_project(root: Path, *, missing_ok: bool = False) -> tuple[Project, str]:
    """The project `root/pyproject.toml` declares, and the file's text (to edit it in place).

    The one reader of pyproject.toml for commands that edit it; `missing_ok` makes an absent file an
    empty project with empty text (for `import`, which may write the table).
    """
    path = root / PYPROJECT
    if missing_ok and not path.exists():
        return Project(root=root, dependencies={}), ""
    text = read_pyproject(path)
    return project_from_text(root, text), text


def kernels_table(text: str, *, where: Path) -> dict[str, Any] | None:
    """The `[tool.kernels]` table of `pyproject.toml` text (None if it has none); invalid TOML is a `ConfigError`."""
    try:
        data = tomlread.loads(text)
    except tomlread.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}. Fix the syntax and run again.") from None
    tool = data.get("tool")
    return tool.get("kernels") if isinstance(tool, dict) else None


def project_from_table(root: Path, table: Any) -> Project:
    """The project a `[tool.kernels]` table describes, validated."""
    where = str(root / PYPROJECT)
    dependencies = parse_kernels_table(table, where=where)
    trusted_root = table.get("trusted-root")
    if trusted_root is not None and (not isinstance(trusted_root, str) or not trusted_root.strip()):
        raise ConfigError(
            f"trusted-root in [tool.kernels] of {where} must be the path of a Sigstore trusted_root.json, "
            f'e.g. trusted-root = "sigstore/trusted_root.json".'
        )
    return Project(
        root=root,
        dependencies=dependencies,
        trusted_repos=parse_trust_list(table, where=where),
        redirects=parse_redirects(table, where=where),
        signers=parse_signers(table.get("signers", []), where=f"[tool.kernels] of {where}"),
        require_signature=parse_flag(table, "require-signature", where=f"[tool.kernels] of {where}"),
        trusted_root=root / trusted_root if trusted_root else None,
    )


def parse_signers(value: Any, *, where: str) -> tuple[Signer, ...]:
    """A `signers = [{ issuer = ..., workflow = ..., repository = ... }, ...]` list."""
    example = (
        'signers = [{ issuer = "https://token.actions.githubusercontent.com", '
        'workflow = "https://github.com/ORG/REPO/.github/workflows/build.yaml@refs/heads/main", '
        'repository = "https://github.com/ORG/REPO" }]'
    )
    if not isinstance(value, list):
        raise ConfigError(f"signers in {where} must be a list of tables, e.g. {example}.")
    signers = []
    for item in value:
        keys = set(item) if isinstance(item, dict) else set()
        valid = (
            isinstance(item, dict)
            and keys == {"issuer", "workflow", "repository"}
            and all(isinstance(v, str) and v.strip() for v in item.values())
        )
        if not valid:
            raise ConfigError(
                f"Invalid signer {item!r} in {where}: a signer has exactly the keys issuer, workflow and "
                f"repository, each a non-empty string, e.g. {example}."
            )
        signers.append(Signer(**item))
    return tuple(signers)


def parse_flag(table: dict[str, Any], key: str, *, where: str) -> bool:
    """A true/false setting (default false)."""
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise ConfigError(f"Invalid {key} {value!r} in {where}: write true or false.")
    return value


TABLE_KEYS = {
    "dependencies",
    "trust-remote-code",
    "redirects",
    "signers",
    "require-signature",
    "trusted-root",
}
DEPENDENCY_KEYS = {"version", "revision", "trust-remote-code", "signers", "require-signature"}


def parse_kernels_table(table: Any, *, where: str) -> dict[str, Dependency]:
    """Validate a `[tool.kernels]` table and return its dependencies, sorted by repo id."""
    if not isinstance(table, dict):
        raise ConfigError(f"[tool.kernels] in {where} must be a table, found {type(table).__name__}.")
    unknown = sorted(set(table) - TABLE_KEYS)
    if unknown:
        raise ConfigError(
            f"Unknown key(s) {', '.join(map(repr, unknown))} in [tool.kernels] of {where}. "
            f"The table accepts {', '.join(map(repr, sorted(TABLE_KEYS)))}."
        )
    deps = table.get("dependencies", {})
    if not isinstance(deps, dict):
        raise ConfigError(
            f"[tool.kernels.dependencies] in {where} must be a table mapping repo ids to versions."
        )
    parsed = {repo_id: parse_dependency(repo_id, value, where=where) for repo_id, value in deps.items()}
    return dict(sorted(parsed.items()))


def parse_trust_list(table: dict[str, Any], *, where: str) -> list[str]:
    """The `trust-remote-code = ["org/name", ...]` allowlist of `[tool.kernels]`."""
    value = table.get("trust-remote-code", [])
    if not isinstance(value, list) or not all(is_repo_id(v) for v in value):
        raise ConfigError(
            f"trust-remote-code in [tool.kernels] of {where} must be a list of repo ids, "
            f'e.g. trust-remote-code = ["my-org/my-kernel"].'
        )
    return sorted(set(value))


def parse_redirects(table: dict[str, Any], *, where: str) -> dict[str, str]:
    """The `[tool.kernels.redirects]` table: `"old-org/name" = "new-org/name"`, redirects to another organization
    that the project accepts."""
    value = table.get("redirects", {})
    valid = isinstance(value, dict) and all(
        is_repo_id(k) and is_repo_id(v) and k != v for k, v in value.items()
    )
    if not valid:
        raise ConfigError(
            f"[tool.kernels.redirects] in {where} must map a repo id to the repo id it redirects to, e.g. "
            f'"old-org/kernel" = "new-org/kernel".'
        )
    return dict(sorted(value.items()))


def same_publisher(repo_a: str, repo_b: str) -> bool:
    """Whether two repos belong to one organization (a redirect between them needs no acceptance)."""
    return repo_a.split("/", 1)[0] == repo_b.split("/", 1)[0]


def trust_granted(requested: str, target: str, opted_in: bool, allowlist: list[str] | set[str]) -> bool:
    """Whether pyproject.toml grants trust-remote-code to `target`, reached from `requested`.

    `opted_in` is the dependency's own `trust-remote-code = true`. An opt-in names a repository: it does not
    carry over to another repository the named one redirects to; that one must be in the allowlist itself.
    """
    return target in allowlist or (target == requested and (opted_in or requested in allowlist))


def parse_dependency(repo_id: Any, value: Any, *, where: str) -> Dependency:
    """Validate one `"org/name" = ...` entry, explaining how to fix each kind of mistake."""
    entry = f"dependency {repo_id!r} in {where}"
    if not is_repo_id(repo_id):
        raise ConfigError(
            f"Malformed repo id {repo_id!r} in {where}. A kernel repo id is 'org/name' "
            f"(letters, digits, '-', '_', '.'; no '--' or '..'), e.g. \"kernels-community/activation\" = 1."
        )
    if isinstance(value, bool):
        raise ConfigError(
            f'Invalid {entry}: {value!r} is not a version. Write "{repo_id}" = <major>, e.g. = 1.'
        )
    if isinstance(value, int):
        value = {"version": value}
    elif isinstance(value, str):
        raise RangeSpecifierError(
            f"The version specifier {value!r} of {entry} is no longer supported: kernels have only major "
            f'versions (branch vN). Replace it with {{ version = <major> }} (e.g. "{repo_id}" = 1; '
            f'`kernel-lock versions {repo_id}` lists them), or {{ revision = "<branch, tag or commit>" }}.',
            repo_id,
        )
    elif not isinstance(value, dict):
        raise ConfigError(
            f"Invalid {entry}: expected a major version or a table, found {type(value).__name__}. "
            f'Write "{repo_id}" = 1 or {{ version = 1 }} or {{ revision = "..." }}.'
        )
    unknown = sorted(set(value) - DEPENDENCY_KEYS)
    if unknown:
        raise ConfigError(
            f"Unknown key(s) {', '.join(map(repr, unknown))} in {entry}. "
            f"Allowed keys: {', '.join(sorted(DEPENDENCY_KEYS))}."
        )
    version, revision = value.get("version"), value.get("revision")
    if version is None and revision is None:
        raise ConfigError(
            f"{entry[0].upper()}{entry[1:]} has no version. Add the major version you need, "
            f'e.g. {{ version = 1 }} (see `kernel-lock versions {repo_id}`), or {{ revision = "..." }}.'
        )
    if version is not None and revision is not None:
        raise ConfigError(f"{entry[0].upper()}{entry[1:]} sets both version and revision. Keep only one.")
    if isinstance(version, str):
        raise ConfigError(
            f"The version {version!r} of {entry} is not a major version. Kernels have only major versions "
            f"(branch vN): write version = <major>, e.g. version = 1."
        )
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 0):
        raise ConfigError(
            f"Invalid version {version!r} of {entry}: a version is a whole number >= 0, e.g. version = 1."
        )
    if revision is not None and (not isinstance(revision, str) or not revision.strip()):
        raise ConfigError(
            f"Invalid revision {revision!r} of {entry}: give a branch, tag or 40-hex commit as a string."
        )
    trust = value.get("trust-remote-code", False)
    if not isinstance(trust, bool):
        raise ConfigError(f"Invalid trust-remote-code {trust!r} of {entry}: write true or false.")
    signers = parse_signers(value.get("signers", []), where=entry)
    required = value.get("require-signature")
    if required is not None and not isinstance(required, bool):
        raise ConfigError(f"Invalid require-signature {required!r} of {entry}: write true or false.")
    if version == 0:
        warnings.warn(
            f"{repo_id} uses version 0, which is for alpha/beta kernels and has no API stability promise.",
            KernelLockWarning,
            stacklevel=2,
        )
    return Dependency(
        version=version,
        revision=revision,
        trust_remote_code=trust,
        signers=signers,
        require_signature=required,
    )
