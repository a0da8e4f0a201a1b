"""Commands that show what is locked and what fits: `versions`, `status` (and `show`), `tree`, `env`."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import click

from kernel_lock import env as environ
from kernel_lock import errors
from kernel_lock.cli.command import command
from kernel_lock.cli.exitcodes import EXIT_CHECK_FAILED, EXIT_OK
from kernel_lock.cli.options import announce_target, project_option, target_options
from kernel_lock.cli.output import Output, decision_lines, decision_status, table
from kernel_lock.core.target import TargetChoice


@click.command()
@click.argument("repo")
@target_options
@command
def versions(*, out: Output, repo: str, target: TargetChoice | None) -> int:
    """List the major versions of REPO and their build variants; ✅ marks what this environment would load.

    With --verbose, one line per variant: preferred, compatible, or rejected and why, for this
    environment (or the one --target declares).
    """
    from kernel_lock.cli.reports import DecisionReport, TargetReport, VersionReport, VersionsReport
    from kernel_lock.core.variants import rank_variants
    from kernel_lock.hub.client import Hub
    from kernel_lock.inspect.versions import list_versions

    choice = announce_target(out, target)
    hub = Hub()
    try:
        holder, infos = list_versions(repo, hub=hub, target=choice.target)
    except errors.RepoNotFound as exc:  # a repo named here, not in pyproject.toml
        raise errors.RepoNotFound(
            exc.repo_id, exc.endpoint, exc.suggestion, how="Check the repo id", request_id=exc.request_id
        ) from None
    org = holder.split("/", 1)[0]
    trusted = hub.org_is_trusted(org)
    if not trusted:
        warnings.warn(
            f"{holder} is published by {org}, which is not a trusted kernel publisher on the Hub: after reviewing "
            f"its code, lock it with `kernel-lock add {repo} --trust-remote-code`.",
            errors.KernelLockWarning,
            stacklevel=1,
        )
    if holder != repo:
        out.answer(f"{repo} redirects to {holder}")
    if not infos:
        out.answer(f"{holder} has no major versions (no vN branches).")
    reports = []
    for info in infos:
        names = [f"{v} ✅" if v == info.selected else v for v in info.variants]
        label = f"Version {info.version}" + (
            " (unstable: alpha/beta, no API promise)" if info.unstable else ""
        )
        fits = "" if info.selected else f" (none fits {choice.target.describe()})"
        out.answer(f"{label}: {', '.join(names)}{fits}")
        ranked = rank_variants(info.variants, choice.target)
        decisions = [
            DecisionReport(
                variant=d.variant, status=decision_status(d, info.selected), reason=d.reason, why=d.why
            )
            for d in ranked
        ]
        if out.verbose:
            for line in decision_lines(ranked, info.selected):
                out.answer(line)
        reports.append(
            VersionReport(
                version=info.version,
                commit=info.commit,
                unstable=info.unstable,
                variants=info.variants,
                selected=info.selected,
                decisions=decisions,
            )
        )
    out.result(
        VersionsReport(
            repo_id=holder, target=TargetReport.of(choice), trusted_publisher=trusted, versions=reports
        )
    )
    return EXIT_OK


@click.command()
@project_option
@target_options
@click.option("--outdated", is_flag=True, help="Also ask the Hub for newer major versions and newer commits.")
@click.option(
    "--check",
    is_flag=True,
    help="Exit 1 if kernels.lock is out of date (or, with --outdated, anything is newer).",
)
@command
def status(
    *, out: Output, project: Path | None, target: TargetChoice | None, outdated: bool, check: bool
) -> int:
    """One row per locked kernel: requirement, commit, selected variant, sync state, Python needs.

    Also says whether kernels.lock still matches pyproject.toml. `show` is an alias.
    """
    from kernel_lock.cli.reports import KernelStatusReport, StatusReport, TargetReport
    from kernel_lock.inspect.status import project_status

    choice = announce_target(out, target)
    state = project_status(project, target=choice.target, outdated=outdated)
    if state.differences:
        warnings.warn(
            f"{state.lockfile} is out of date: {'; '.join(state.differences)}. Run `kernel-lock lock` "
            f"(or `kernel-lock sync`, which locks first).",
            errors.KernelLockWarning,
            stacklevel=1,
        )
    colours = {"verified": "green", "missing": "yellow", "corrupt": "red"}
    rows = []
    for row in state.rows:
        e = row.entry
        name = e.requested_repo if e.direct else f"  {e.requested_repo} (dependency)"
        notes = []
        if row.variant:
            notes.append(f"signed by {row.signer.describe()}" if row.signer else "unsigned")
        if row.python_missing:
            notes.append(f"missing Python packages: {', '.join(row.python_missing)}")
        elif row.python_depends:
            notes.append(f"needs: {', '.join(row.python_depends)}")
        if row.build():
            notes.append(f"built by {row.build()}")
        if row.newer_version is not None:
            notes.append(f"(version {row.newer_version} available)")
        if row.newer_commit is not None:
            notes.append(
                f"({e.ref} moved to {row.newer_commit[:12]}; `kernel-lock lock -P {e.requested_repo}`)"
            )
        rows.append(
            [
                name,
                e.requirement().describe(),
                e.commit[:12],
                row.variant or f"no variant fits ({row.variant_error})",
                out.style(row.sync, fg=colours[row.sync]),
                "  ".join(notes),
            ]
        )
        rows.extend([["", f"  {problem}"] for problem in row.problems])
    for line in table(rows):
        out.answer(line.rstrip())
    unsigned = [r.entry.requested_repo for r in state.rows if set(r.entry.variants) - set(r.entry.signed_by)]
    if unsigned:
        out.info(
            f"Notice: {len(unsigned)} kernel(s) have unsigned variants ({', '.join(unsigned)}); "
            f"require-signature = true refuses unsigned builds."
        )
    majors = [
        f"{r.entry.requested_repo} {r.newer_version}" for r in state.rows if r.newer_version is not None
    ]
    if majors:
        out.info(f"Notice: newer major versions are available: {', '.join(majors)}.")
    out.result(
        StatusReport(
            lockfile=str(state.lockfile),
            up_to_date=state.up_to_date,
            differences=state.differences or [],
            target=TargetReport.of(choice),
            kernels=[
                KernelStatusReport(
                    repo_id=r.entry.requested_repo,
                    resolved_repo=r.entry.repo_id,
                    requirement=r.entry.requirement().describe(),
                    direct=r.entry.direct,
                    commit=r.entry.commit,
                    trust=r.entry.trust,
                    variant=r.variant,
                    variant_error=r.variant_error,
                    sync=r.sync,
                    problems=r.problems,
                    python_depends=r.python_depends,
                    python_missing=r.python_missing,
                    newer_version=r.newer_version,
                    newer_commit=r.newer_commit,
                    signer=r.signer,
                    signed_variants=len(r.entry.signed_by),
                    provenance=r.entry.provenance,
                )
                for r in state.rows
            ],
        )
    )
    newer = outdated and any(r.newer_version is not None or r.newer_commit for r in state.rows)
    return EXIT_CHECK_FAILED if (check and state.differences) or newer else EXIT_OK


show = click.Command(
    "show",
    params=status.params,
    callback=status.callback,
    help=status.help,
    short_help="Alias of `status`.",
)


@click.command()
@project_option
@click.option("--invert", "-i", is_flag=True, help="Show each kernel with the kernels that require it.")
@command
def tree(*, out: Output, project: Path | None, invert: bool) -> int:
    """The locked kernel dependency tree, as `uv tree` / `cargo tree` (with --invert: who requires what)."""
    from dataclasses import asdict

    from kernel_lock.cli.reports import TreeReport
    from kernel_lock.core.lockfile import read_lock
    from kernel_lock.inspect.tree import kernel_tree, render_tree
    from kernel_lock.project.paths import project_lockfile

    lock = read_lock(project_lockfile(project))
    roots = kernel_tree(lock, invert=invert)
    for line in render_tree(roots):
        out.answer(line)
    out.result(TreeReport.model_validate({"invert": invert, "kernels": [asdict(root) for root in roots]}))
    return EXIT_OK


@click.command(name="env")
@target_options
@command
def env_(*, out: Output, target: TargetChoice | None) -> int:
    """Print the environment variants are selected for, and where it came from.

    That is --target (or --torch/--cuda/...), else KERNEL_LOCK_TARGET, else this
    machine as the `kernels` library would see it (found without importing torch).
    """
    import platform

    from kernel_lock.cli.reports import EnvReport, TargetReport
    from kernel_lock.core.target import choose_target, torch_dir

    choice = choose_target(target)
    torch_path = torch_dir()
    out.answer(f"target: {choice.target.spec() or '(no torch)'}")
    out.answer(f"environment: {choice.describe()}")
    out.answer(f"python: {platform.python_version()} ({sys.executable})")
    out.answer(f"torch: {torch_path or 'not importable'}")
    out.detail(f"{environ.TARGET}: {environ.declared_target() or '(unset)'}")
    out.detail(f"{environ.LOCK_FILE}: {environ.lock_file() or '(unset)'}")
    out.detail(f"{environ.HUB_ENDPOINT}: {environ.hub_endpoint() or '(unset: https://huggingface.co)'}")
    out.detail(f"Hugging Face cache: {environ.hub_cache()}")
    out.result(
        EnvReport(
            target=TargetReport.of(choice),
            python=platform.python_version(),
            torch_path=str(torch_path) if torch_path else None,
        )
    )
    return EXIT_OK
