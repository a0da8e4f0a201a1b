"""Commands that declare and lock kernels: `init`, `add`, `remove`, `lock`."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from kernel_lock import errors
from kernel_lock.cli.command import command
from kernel_lock.cli.exitcodes import EXIT_CHECK_FAILED, EXIT_OK
from kernel_lock.cli.options import project_option
from kernel_lock.cli.output import Output, print_changes
from kernel_lock.cli.progress import working
from kernel_lock.cli.syncing import sync_added

if TYPE_CHECKING:
    from kernel_lock.core.lockfile import Lock


@click.command()
@project_option
@command
def init(*, out: Output, project: Path | None) -> int:
    """Start declaring kernels: a pyproject.toml with an empty [tool.kernels.dependencies] (or add the table)."""
    from kernel_lock.cli.reports import InitReport
    from kernel_lock.core.fsutil import atomic_write
    from kernel_lock.project.config import kernels_table
    from kernel_lock.project.edit import with_dependencies_table
    from kernel_lock.project.paths import PYPROJECT

    root = (project or Path.cwd()).resolve()
    path = root / PYPROJECT
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    table = kernels_table(text, where=path) if text else None
    if table is not None and "dependencies" in table:
        out.note(f"{path} already has [tool.kernels.dependencies]; nothing to do.")
        action: Literal["created", "added-table", "unchanged"] = "unchanged"
    else:
        root.mkdir(parents=True, exist_ok=True)
        atomic_write(path, with_dependencies_table(text).encode("utf-8"))
        action = "added-table" if text else "created"
        out.note(f"{'Added [tool.kernels.dependencies] to' if text else 'Created'} {path}")
        out.info("Next: `kernel-lock add ORG/KERNEL` (e.g. kernels-community/activation).")
    out.result(InitReport(pyproject=str(path), action=action))
    return EXIT_OK


@click.command()
@click.argument("repos", nargs=-1, required=True, metavar="REPO[@VERSION|@REVISION]...")
@project_option
@click.option("--version", "version", type=click.IntRange(min=0), help="Major version (default: the newest).")
@click.option("--revision", metavar="REV", help="A branch, tag or 40-hex commit instead of a version.")
@click.option(
    "--upgrade", "-U", is_flag=True, help="Move a repo already required to the newest major version."
)
@click.option(
    "--trust-remote-code", is_flag=True, help="Allow a repo whose publisher is not trusted on the Hub."
)
@click.option("--no-sync", is_flag=True, help="Lock only; do not sync the kernels for this machine.")
@command
def add(
    *,
    out: Output,
    repos: tuple[str, ...],
    project: Path | None,
    version: int | None,
    revision: str | None,
    upgrade: bool,
    trust_remote_code: bool,
    no_sync: bool,
) -> int:
    """Require each REPO in [tool.kernels.dependencies] (keeping the rest of pyproject.toml) and lock.

    `org/name@2` requires version 2, `org/name@main` a revision; otherwise --version or
    --revision, or else the newest major version. As with `uv add`, a repo already required
    keeps its requirement unless a version or revision is given, or --upgrade. Then, as
    `uv add`, the kernels named are synced for this machine (--no-sync: not).
    """
    from kernel_lock.cli.reports import AddedKernel, AddReport, LockChanges
    from kernel_lock.lock.requirements import add_dependencies, parse_add_spec

    if version is not None and revision is not None:
        raise errors.ConfigError("Give --version or --revision, not both.")
    requests: dict[str, tuple[int | None, str | None]] = {}
    for spec in repos:
        repo_id, pinned_version, pinned_revision = parse_add_spec(spec)
        pinned = pinned_version is not None or pinned_revision is not None
        if pinned and (version is not None or revision is not None):
            raise errors.ConfigError(f"{spec} names its version; drop --version/--revision, or the @ part.")
        requests[repo_id] = (pinned_version, pinned_revision) if pinned else (version, revision)
    with working(out, "Locking"):
        result = add_dependencies(requests, project, trust_remote_code=trust_remote_code, upgrade=upgrade)
    pyproject = result.lock.path.parent / "pyproject.toml"
    redirects = _redirects(result.lock.lock, [a.repo_id for a in result.added])
    for added in result.added:
        requirement = added.dependency.describe()
        if added.action == "added":
            out.note(f"Added {added.repo_id} ({requirement}) to {pyproject}")
        elif added.before is not None and added.action == "updated":
            out.note(
                f"Updated {added.repo_id} from {added.before.describe()} to {requirement} in {pyproject}"
            )
        else:
            hint = "" if upgrade else "; give a version, or --upgrade for the newest"
            out.note(f"{added.repo_id} already requires {requirement} in {pyproject}{hint}")
        if added.repo_id in redirects:
            out.note(
                f"{added.repo_id} redirects to {redirects[added.repo_id]} (its kernel-status.toml): the lock "
                f"pins {redirects[added.repo_id]}. Require {redirects[added.repo_id]} instead to drop the redirect."
            )
    print_changes(out, result.lock)
    synced = [] if no_sync else sync_added(out, result.lock.lock, [a.repo_id for a in result.added])
    out.result(
        AddReport(
            variants=synced,
            **LockChanges.of(result.lock).model_dump(),
            kernels=[
                AddedKernel(
                    repo_id=a.repo_id,
                    requirement=a.dependency.describe(),
                    action=a.action,
                    redirects_to=redirects.get(a.repo_id),
                )
                for a in result.added
            ],
        )
    )
    return EXIT_OK


def _redirects(lock: Lock, repos: list[str]) -> dict[str, str]:
    """Which of `repos` the lock records as redirected, and to where."""
    entries = {repo: lock.find(repo) for repo in repos}
    return {
        repo: entry.repo_id for repo, entry in entries.items() if entry is not None and entry.redirected_from
    }


@click.command()
@click.argument("repos", nargs=-1, required=True, metavar="REPO...")
@project_option
@command
def remove(*, out: Output, repos: tuple[str, ...], project: Path | None) -> int:
    """Remove each REPO from [tool.kernels.dependencies] and from the lock."""
    from kernel_lock.cli.reports import LockChanges, RemoveReport
    from kernel_lock.lock.requirements import remove_dependency

    result = remove_dependency(repos, project)
    required_by: list[str] = []
    for repo in repos:
        out.note(f"Removed {repo} from {result.path.parent / 'pyproject.toml'}")
        still = sorted(
            {r.kernel for k in result.lock.kernel if k.requested_repo == repo for r in k.required_by}
        )
        if still:
            out.note(f"{repo} stays in the lock: required by {', '.join(still)}.")
        required_by += still
    print_changes(out, result)
    out.result(
        RemoveReport(
            **LockChanges.of(result).model_dump(),
            repo_id=repos[0],
            repo_ids=list(repos),
            required_by=sorted(set(required_by)),
        )
    )
    return EXIT_OK


@click.command()
@project_option
@click.option("--upgrade", "-U", is_flag=True, help="Re-resolve every kernel to its branch head.")
@click.option(
    "--upgrade-package", "-P", multiple=True, metavar="REPO", help="Re-resolve just this kernel (repeatable)."
)
@click.option(
    "--hash-type",
    type=click.Choice(["sha256", "git_lfs_concat"]),
    help="Variant hash type: sha256 (default for new locks) or git_lfs_concat (older kernels locks). "
    "Converts every entry at its locked commit; without it an existing lock keeps its type (--upgrade: sha256). "
    "With --check: accept entries of this type (else only sha256 passes).",
)
@click.option(
    "--check", "--locked", "check", is_flag=True, help="Change nothing; exit 1 if the lock is out of date."
)
@click.option(
    "--online",
    is_flag=True,
    help="With --check: also ask the Hub that every locked commit is on the history of the branch or tag its "
    "requirement names (a hand-edited pull-request commit is not).",
)
@click.option("--dry-run", is_flag=True, help="Resolve and print what would change; write nothing.")
@command
def lock(
    *,
    out: Output,
    project: Path | None,
    upgrade: bool,
    upgrade_package: tuple[str, ...],
    hash_type: Literal["sha256", "git_lfs_concat"] | None,
    check: bool,
    online: bool,
    dry_run: bool,
) -> int:
    """Resolve [tool.kernels] dependencies and write kernels.lock."""
    from kernel_lock.cli.reports import LockChanges, LockCheckReport, LockReport
    from kernel_lock.lock.project import (
        check_commits_on_refs,
        load_project_online,
        lock_differences,
        lock_project,
        recheck_signatures,
        weak_hash_types,
    )
    from kernel_lock.project.config import load_project

    if online and not check:
        raise errors.ConfigError(
            "--online applies to `kernel-lock lock --check`; a plain lock is online anyway."
        )
    proj = load_project(project) if check else load_project_online(project)
    if check:
        from kernel_lock.core.lockfile import missing_lock_error, read_lock_if_exists

        current = read_lock_if_exists(proj.lockfile)
        problems = lock_differences(proj, current) + (weak_hash_types(current, hash_type) if current else [])
        count = len(current.kernel) if current else 0
        report = LockCheckReport(
            lockfile=str(proj.lockfile), up_to_date=False, differences=problems, kernels=count
        )
        if current is None:
            out.result(report)
            out.problem(str(missing_lock_error(proj.lockfile)))
            return EXIT_CHECK_FAILED
        if problems:
            out.result(report)
            for line in problems:
                click.echo(f"  {line}", err=True)
            out.problem(f"{proj.lockfile} is out of date. Run `kernel-lock lock`.")
            return EXIT_CHECK_FAILED
        if online:
            from kernel_lock.hub.client import Hub

            check_commits_on_refs(current.kernel, Hub())
        signatures = recheck_signatures(proj, current)
        if signatures.unavailable:
            warnings.warn(
                f"{len(signatures.unavailable)} signed variant(s) not verified again: their metadata.json is "
                f"neither kept from `kernel-lock lock` nor synced on this machine "
                f"(e.g. {signatures.unavailable[0]}).",
                errors.KernelLockWarning,
                stacklevel=1,
            )
        report.up_to_date = True
        report.signatures_verified = signatures.verified
        report.signatures_unavailable = signatures.unavailable
        out.result(report)
        out.info(
            f"{proj.lockfile.name} is up to date ({count} kernel(s); "
            f"{signatures.verified} signature(s) verified again)."
        )
        return EXIT_OK
    from kernel_lock.project.migrate import function_repository_notice

    notice = function_repository_notice(proj.root)
    if notice:
        warnings.warn(notice, errors.KernelLockWarning, stacklevel=1)
    unknown = sorted(set(upgrade_package) - set(proj.dependencies))
    if unknown:
        raise errors.ConfigError(
            f"--upgrade-package {', '.join(unknown)}: not in [tool.kernels.dependencies] of {proj.pyproject}."
        )
    with working(out, f"Locking {len(proj.dependencies)} kernel(s)"):
        result = lock_project(
            proj, upgrade=upgrade, upgrade_packages=upgrade_package, hash_type=hash_type, dry_run=dry_run
        )
    print_changes(out, result, dry_run=dry_run)
    out.result(LockReport(**LockChanges.of(result).model_dump(), kernels=result.lock.kernel, dry_run=dry_run))
    return EXIT_OK
