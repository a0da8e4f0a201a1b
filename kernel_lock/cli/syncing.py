"""Commands over the cache: `sync` fills it, `verify` checks it, `cache prune` empties what no lock uses."""

from __future__ import annotations

import dataclasses
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kernel_lock import errors
from kernel_lock.cli.command import command
from kernel_lock.cli.exitcodes import EXIT_OK, EXIT_VERIFICATION
from kernel_lock.cli.options import announce_target, flag, project_option, target_options, variant_options
from kernel_lock.cli.output import Output, decision_lines, human_bytes, print_changes
from kernel_lock.cli.progress import SyncBar, working
from kernel_lock.core.target import TargetChoice

if TYPE_CHECKING:
    from kernel_lock.cli.reports import VariantReport
    from kernel_lock.core.lockfile import Lock


@click.command()
@project_option
@target_options
@variant_options("Sync", all_help="Sync every locked variant.")
@flag(
    "--locked", "Fail (exit 1) if kernels.lock is missing or out of date, instead of locking first (as uv)."
)
@flag("--frozen", "Use kernels.lock as is, without checking it against pyproject.toml (as uv).")
@flag("--dry-run", "Print what would be locked and fetched; write and fetch nothing.")
@command
def sync(
    *,
    out: Output,
    project: Path | None,
    target: TargetChoice | None,
    variant_names: tuple[str, ...],
    all_variants: bool,
    locked: bool,
    frozen: bool,
    dry_run: bool,
) -> int:
    """Fetch the locked variant(s) into the Hugging Face cache and verify every file.

    As `uv sync`: a missing or stale kernels.lock is updated first (as `kernel-lock lock`
    would, keeping the commits of unchanged requirements); --locked fails instead;
    --frozen uses the lock as it is.
    """
    from kernel_lock.cache.sync import sync_project
    from kernel_lock.cli.reports import LockChanges, SyncReport, TargetReport, VariantReport

    choice = None if variant_names or all_variants else announce_target(out, target)
    bar = SyncBar() if sys.stderr.isatty() and not out.quiet else None
    try:
        with working(out, "Syncing") as stop_spinner:
            if bar is not None:
                bar.before = stop_spinner
            result = sync_project(
                project,
                target=choice.target if choice else None,
                variants=variant_names,
                all_variants=all_variants,
                locked=locked,
                frozen=frozen,
                dry_run=dry_run,
                progress=bar,
            )
    finally:
        if bar is not None:
            bar.close()
    if result.lock_result is not None:
        print_changes(out, result.lock_result, dry_run=dry_run)
    if out.verbose and choice is not None:
        explain_choices(out, project, choice)
    for check in result.checks:
        if dry_run and not check.ok:
            out.info(
                f"{out.style('would fetch', fg='yellow')} {check.repo_id} {check.variant} ({check.commit[:12]})"
            )
        else:
            out.info(f"{out.style('ok', fg='green')} {check.repo_id} {check.variant} ({check.commit[:12]})")
    if dry_run:
        missing = sum(not c.ok for c in result.checks)
        out.info(
            f"Dry run: {missing} of {len(result.checks)} variant(s) would be fetched; nothing was written."
        )
    else:
        out.info(
            f"Synced {len(result.checks)} variant(s); downloaded {result.downloaded_files} file(s), "
            f"{human_bytes(result.downloaded_bytes)}."
        )
    out.result(
        SyncReport(
            target=TargetReport.of(choice) if choice else None,
            lock=LockChanges.of(result.lock_result) if result.lock_result else None,
            variants=[VariantReport.of(c) for c in result.checks],
            downloaded_files=result.downloaded_files,
            downloaded_bytes=result.downloaded_bytes,
            dry_run=dry_run,
        )
    )
    return EXIT_OK


@click.command()
@project_option
@target_options
@variant_options("Verify", all_help="Verify every locked variant (those not synced report missing).")
@flag("--full", "Hash every file, ignoring recorded fingerprints (as KERNEL_LOCK_VERIFY=full).")
@flag(
    "--signatures",
    "Also verify each variant's publisher signature again (offline) against pyproject.toml's signers.",
)
@command
def verify(
    *,
    out: Output,
    project: Path | None,
    target: TargetChoice | None,
    variant_names: tuple[str, ...],
    all_variants: bool,
    full: bool,
    signatures: bool,
) -> int:
    """Re-verify synced kernels in the cache against kernels.lock, offline."""
    from kernel_lock.cache.sync import selected_variants
    from kernel_lock.cache.verify import check_variant
    from kernel_lock.cli.reports import TargetReport, VariantReport, VerifyReport
    from kernel_lock.core.lockfile import read_lock
    from kernel_lock.project.paths import project_lockfile

    lock = read_lock(project_lockfile(project))
    choice = None if variant_names or all_variants else announce_target(out, target)
    pairs = selected_variants(
        lock, target=choice.target if choice else None, names=variant_names, all_variants=all_variants
    )
    checks = [check_variant(entry, variant, mode="full" if full else None) for entry, variant in pairs]
    signers = _recheck_synced_signatures(project, pairs, checks) if signatures else {}
    for check in checks:
        colour = {"ok": "green", "missing": "yellow", "corrupt": "red"}[check.status]
        signed = (
            f"  {signers[check.variant, check.repo_id]}" if (check.variant, check.repo_id) in signers else ""
        )
        out.info(
            f"{out.style(check.status, fg=colour)} {check.repo_id} {check.variant} ({check.commit[:12]}){signed}"
        )
        for problem in check.problems:
            out.info(f"    {problem}")
    out.result(
        VerifyReport(
            ok=all(c.ok for c in checks),
            target=TargetReport.of(choice) if choice else None,
            variants=[VariantReport.of(c, signers.get((c.variant, c.repo_id))) for c in checks],
        )
    )
    bad = [c for c in checks if not c.ok]
    if bad:
        out.problem(f"{len(bad)} of {len(checks)} variant(s) failed verification.")
        return EXIT_VERIFICATION
    return EXIT_OK


def _recheck_synced_signatures(project: Path | None, pairs: list[Any], checks: list[Any]) -> dict[Any, str]:
    """Verify the signature of every variant that verified, from its synced files; a failure is a problem.

    Returns (variant, repo) -> "signed by ..." / "unsigned" for the lines of output.
    """
    from kernel_lock.core.verdict import FileProblem
    from kernel_lock.lock.signatures import Verifiers, check_synced_signature
    from kernel_lock.project.config import load_project

    signing = load_project(project).signing()
    verifiers = Verifiers()
    shown = {}
    for check, (entry, variant) in zip(checks, pairs, strict=True):
        if not check.ok:
            continue
        try:
            signer = check_synced_signature(
                entry,
                variant,
                signing.policy(entry.requested_repo),
                lambda: verifiers.get(signing.trusted_root),
            )
        except errors.SignatureError as exc:
            check.status = "corrupt"
            check.problems.append(FileProblem("metadata.json.sigstore", f"signature: {exc}"))
            continue
        shown[variant, entry.repo_id] = f"signed by {signer.describe()}" if signer else "unsigned"
    return shown


@click.group()
def cache() -> None:
    """Manage the kernels in the Hugging Face cache."""


@cache.command()
@click.option(
    "--project",
    "projects",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="A project whose kernels.lock is kept (repeatable; default: the project here).",
)
@flag("--dry-run", "Print what would be removed; remove nothing.")
@command
def prune(*, out: Output, projects: tuple[Path, ...], dry_run: bool) -> int:
    """Remove kernel commits and variants that no lock of the given projects uses.

    Only kernel repositories are touched; a file's content goes once no kept variant links to it.
    """
    from kernel_lock.cache.prune import prune_cache
    from kernel_lock.cli.reports import PrunedReport, PruneReport
    from kernel_lock.core.lockfile import read_lock
    from kernel_lock.project.paths import project_lockfile

    lockfiles = [project_lockfile(p) for p in projects or (None,)]
    result = prune_cache([read_lock(path) for path in lockfiles], dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    for item in result.removed:
        what = f"variant {item.variant}" if item.variant else "all variants"
        out.info(f"{verb} {item.repo_id} {item.commit[:12]} {what}")
    out.info(
        f"{'Dry run: ' if dry_run else ''}{len(result.removed)} item(s), {result.blobs} file(s), "
        f"{human_bytes(result.freed_bytes)} {'would be ' if dry_run else ''}freed."
    )
    out.result(
        PruneReport(
            dry_run=dry_run,
            lockfiles=[str(p) for p in lockfiles],
            removed=[
                PrunedReport(repo_id=i.repo_id, commit=i.commit, variant=i.variant) for i in result.removed
            ],
            blobs=result.blobs,
            freed_bytes=result.freed_bytes,
        )
    )
    return EXIT_OK


def explain_choices(out: Output, project: Path | None, choice: TargetChoice) -> None:
    """--verbose: for each locked kernel, every variant's decision for the target (as `versions -v`)."""
    from kernel_lock.core.lockfile import read_lock_if_exists
    from kernel_lock.core.variants import rank_variants
    from kernel_lock.project.paths import project_lockfile

    lock = read_lock_if_exists(project_lockfile(project))
    for entry in lock.kernel if lock else []:
        decisions = rank_variants(entry.variants, choice.target)
        selected = decisions[0].variant if decisions and decisions[0].accepted else None
        out.detail(f"{entry.key} at {entry.commit[:12]}, for {choice.target.describe()}:")
        for line in decision_lines(decisions, selected):
            out.detail(line)


def sync_added(out: Output, lock: Lock, repos: list[str]) -> list[VariantReport]:
    """`add`'s sync (as `uv add`): the variants of `repos` (and what they need) for this machine.

    A kernel with no variant for this machine is a warning, not a failure: `add` already changed the
    project, and the kernel may be meant for another machine (`sync --target` there).
    """
    from kernel_lock.cache.sync import selected_variants, sync_variants
    from kernel_lock.cli.reports import VariantReport

    choice = announce_target(out, None)
    wanted = dataclasses.replace(
        lock, kernel=[k for k in lock.kernel if not k.direct or k.requested_repo in repos]
    )
    try:
        pairs = selected_variants(wanted, target=choice.target)
    except errors.VariantError as exc:
        warnings.warn(
            f"Not synced: {exc} Sync where the kernel runs (`kernel-lock sync`), or for that machine here "
            f"(`kernel-lock sync --target SPEC`).",
            errors.KernelLockWarning,
            stacklevel=1,
        )
        return []
    with working(out, "Syncing"):
        result = sync_variants(pairs)
    out.note(
        f"Synced {len(result.checks)} variant(s) for this machine; downloaded {result.downloaded_files} "
        f"file(s), {human_bytes(result.downloaded_bytes)}."
    )
    return [VariantReport.of(c) for c in result.checks]
