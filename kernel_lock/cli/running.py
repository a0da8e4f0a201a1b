"""`kernel-lock run`: a command with every kernel load answered from the lock."""

from __future__ import annotations

from pathlib import Path

import click

from kernel_lock import errors
from kernel_lock.cli.command import command
from kernel_lock.cli.options import project_option
from kernel_lock.cli.output import Output


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@project_option
@click.option(
    "--sync", "sync_first", is_flag=True, help="First sync what is missing (once across processes)."
)
@click.option(
    "--record",
    is_flag=True,
    help="Run unenforced, online; add every kernel it asks for to pyproject.toml; lock.",
)
@click.option(
    "--no-strict",
    is_flag=True,
    help="Warn, and let `kernels` load it as it would, where a kernel is not locked or fails verification.",
)
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD [ARGS]...")
@command
def run(
    *,
    out: Output,
    project: Path | None,
    sync_first: bool,
    record: bool,
    no_strict: bool,
    cmd: tuple[str, ...],
) -> int:
    """Run CMD with every kernel the `kernels` library loads answered from kernels.lock, verified, offline.

    Every Python process CMD starts, children too, is enforced (a
    `sitecustomize` on PYTHONPATH), strictly unless --no-strict, whatever
    KERNEL_LOCK_* variables it inherits. The exit status is CMD's.
    """
    from kernel_lock import run as runner

    if record:
        from kernel_lock.reports import KernelRequestReport, RunRecordReport

        if sync_first or no_strict:
            raise errors.ConfigError(
                f"--record runs unenforced and online; it cannot be combined with "
                f"{'--sync' if sync_first else '--no-strict'}."
            )
        rec = runner.run_recording(cmd, project)
        for request in rec.requests:
            out.info(f"asked for {request.repo_id} {request.describe()}")
        for repo, requirement in rec.added.items():
            out.info(f"added {repo} ({requirement}) to pyproject.toml")
        for conflict in rec.conflicts:
            out.warn(f"{conflict}; pyproject.toml left as it is.")
        out.result(
            RunRecordReport(
                exit_code=rec.exit_code,
                requests=[KernelRequestReport(**vars(r)) for r in rec.requests],
                added=rec.added,
                conflicts=rec.conflicts,
            )
        )
        return rec.exit_code
    lockfile = runner.lockfile_for(project)
    if sync_first:
        downloaded = runner.sync_once(lockfile)
        out.detail(f"synced before the run: {downloaded} file(s) downloaded")
    runner.exec_enforced(cmd, lockfile, strict=not no_strict)
    return 0
