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
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD [ARGS]...")
@command
def run(*, out: Output, project: Path | None, sync_first: bool, record: bool, cmd: tuple[str, ...]) -> int:
    """Run CMD with every kernel the `kernels` library loads answered from kernels.lock, verified, offline.

    Every Python process CMD starts, children too, is enforced (a
    `sitecustomize` on PYTHONPATH). The exit status is CMD's.
    """
    from kernel_lock import run as runner

    if record:
        from kernel_lock.reports import KernelRequestReport, RunRecordReport

        if sync_first:
            raise errors.ConfigError(
                "--record runs unenforced and online; it cannot be combined with --sync."
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
    downloaded = 0
    if sync_first:
        downloaded = runner.sync_once(lockfile)
        out.detail(f"synced before the run: {downloaded} file(s) downloaded")
    if out.json_mode:  # the document comes after the command, so it runs as a child, not in our place
        return _run_for_report(out, cmd, lockfile, downloaded)
    runner.exec_enforced(cmd, lockfile)
    return 0


def _run_for_report(out: Output, cmd: tuple[str, ...], lockfile: Path, downloaded: int) -> int:
    """`run --json`: the command as a child process, enforced, then the document with its exit status."""
    import os
    import subprocess

    from kernel_lock import run as runner
    from kernel_lock.lockfile import read_lock
    from kernel_lock.reports import RunReport

    read_lock(lockfile)  # a missing or malformed lock fails here, not in the middle of the program
    try:
        code = subprocess.call(list(cmd), env=runner.command_env(os.environ, lockfile=lockfile))
    except OSError as exc:
        raise errors.ConfigError(
            f"Cannot run {cmd[0]!r}: {exc.strerror}. Check the command and your PATH."
        ) from None
    out.result(RunReport(exit_code=code, lockfile=str(lockfile), downloaded_files=downloaded))
    return code
