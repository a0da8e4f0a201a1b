"""`kernel-lock run`: a command with every kernel load answered from the lock."""

from __future__ import annotations

from pathlib import Path

import click

from kernel_lock import errors
from kernel_lock.cli.command import command
from kernel_lock.cli.options import flag, project_option
from kernel_lock.cli.output import Output, print_changes


@click.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@project_option
@flag(
    "--sync",
    "First lock (if kernels.lock is missing or stale) and sync what is missing, once across processes.",
    dest="sync_first",
)
@flag("--frozen", "Use kernels.lock as it is, without checking it against pyproject.toml (as uv).")
@flag("--record", "Run unenforced, online; add every kernel it asks for to pyproject.toml; lock.")
@flag(
    "--no-strict",
    "Warn, and let `kernels` load it as it would, where a kernel is not locked or fails verification.",
)
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD [ARGS]...")
@command
def run(
    *,
    out: Output,
    project: Path | None,
    sync_first: bool,
    frozen: bool,
    record: bool,
    no_strict: bool,
    cmd: tuple[str, ...],
) -> int:
    """Run CMD with every kernel the `kernels` library loads answered from kernels.lock, verified, offline.

    Every Python process CMD starts, children too, is enforced (a
    `sitecustomize` on PYTHONPATH), strictly unless --no-strict, whatever
    KERNEL_LOCK_* variables it inherits. The exit status is CMD's. As
    `uv run`, kernels.lock is first checked against pyproject.toml (offline):
    a stale lock is refused; --sync locks it first; --frozen uses it as it is.
    """
    from kernel_lock.enforcement import run as runner

    if record:
        if sync_first or frozen or no_strict:
            raise errors.ConfigError(
                "--record runs unenforced and online, then locks; it cannot be combined with --sync, --frozen "
                "or --no-strict."
            )
        return _record(out, cmd, project)
    lockfile = runner.lockfile_for(project)
    if not frozen:
        _lock_checked(out, lockfile, lock_first=sync_first)
    downloaded = 0
    if sync_first:
        downloaded = runner.sync_once(lockfile)
        out.detail(f"synced before the run: {downloaded} file(s) downloaded")
    if out.json_mode:  # the document comes after the command, so it runs as a child, not in our place
        return _run_for_report(out, cmd, lockfile, downloaded, strict=not no_strict)
    runner.exec_enforced(cmd, lockfile, strict=not no_strict)
    return 0


def _lock_checked(out: Output, lockfile: Path, *, lock_first: bool) -> None:
    """As `uv run`: the lock must match the pyproject.toml beside it (checked offline); `lock_first` locks it.

    A lock with no pyproject.toml beside it (KERNEL_LOCK_FILE in an image without the project) is used as is.
    """
    from kernel_lock.project.paths import PYPROJECT

    if not (lockfile.parent / PYPROJECT).is_file() or _plainly_current(lockfile, lockfile.parent / PYPROJECT):
        return
    from kernel_lock.core.lockfile import missing_lock_error, read_lock_if_exists
    from kernel_lock.lock.project import lock_differences, lock_project
    from kernel_lock.project.config import load_project

    proj = load_project(lockfile.parent)
    current = read_lock_if_exists(lockfile)
    problems = lock_differences(proj, current)
    if current is not None and not problems:
        return
    if lock_first:
        print_changes(out, lock_project(proj))
        return
    if current is None:
        raise missing_lock_error(lockfile)
    raise errors.LockOutOfDate(
        lockfile,
        proj.pyproject,
        problems,
        how="Run `kernel-lock lock` (or `kernel-lock run --sync`, which locks first), or `kernel-lock run --frozen` "
        "to run with the lock as it is.",
    )


def _plainly_current(lockfile: Path, pyproject: Path) -> bool:
    """Whether the lock plainly matches pyproject.toml, judged without pydantic (`run` starts every command).

    Only for the plain case: [tool.kernels] holds nothing but dependencies, each a version or a revision,
    and the lock has exactly those as its direct entries, none trusted by opt-in, redirected to another
    organization or signed (the signer policy comes from the project's settings). Anything else goes to the
    full check (`lock_differences`), which also words the refusal.
    """
    from kernel_lock.core import tomlread
    from kernel_lock.core.lockfile import read_lock
    from kernel_lock.errors import KernelLockError

    try:
        table = tomlread.loads(pyproject.read_text(encoding="utf-8")).get("tool", {}).get("kernels", {})
        lock = read_lock(lockfile)
    except (OSError, UnicodeDecodeError, tomlread.TOMLDecodeError, KernelLockError):
        return False
    dependencies = table.get("dependencies") if isinstance(table, dict) else None
    if set(table) != {"dependencies"} or not isinstance(dependencies, dict):
        return False
    declared = {}
    for repo, spec in dependencies.items():
        if type(spec) is int:
            declared[repo] = ("version", spec)
        elif isinstance(spec, dict) and len(spec) == 1 and set(spec) <= {"version", "revision"}:
            declared[repo] = next(iter(spec.items()))
        else:
            return False
    direct = {}
    for k in lock.kernel:
        if (
            k.trust == "trust-remote-code"
            or k.signed_by
            or k.requested_repo.split("/")[0] != k.repo_id.split("/")[0]
        ):
            return False
        if k.direct:
            direct[k.requested_repo] = (
                ("version", k.version) if k.version is not None else ("revision", k.revision)
            )
    return declared == direct


def _record(out: Output, cmd: tuple[str, ...], project: Path | None) -> int:
    """`run --record`: run unenforced, add what the program asked for, and lock whenever the lock is missing or stale."""
    from kernel_lock.cli.reports import KernelRequestReport, RunRecordReport
    from kernel_lock.enforcement import run as runner

    rec = runner.run_recording(cmd, project)
    for request in rec.requests:
        out.info(f"asked for {request.repo_id} {request.describe()}")
    for repo, requirement in rec.added.items():
        out.info(f"added {repo} ({requirement}) to pyproject.toml")
    for conflict in rec.conflicts:
        out.warn(f"{conflict}; pyproject.toml left as it is.")
    new = f"{len(rec.added)} added to pyproject.toml and locked" if rec.added else "nothing new"
    out.note(f"Recorded: {len(rec.requests)} kernel(s) asked for; {new}.")
    lockfile = runner.lockfile_for(project)
    _lock_checked(out, lockfile, lock_first=True)  # also where nothing new was added
    for line in runner.moved_since_the_run(rec, lockfile):
        out.warn(line)
    out.result(
        RunRecordReport(
            exit_code=rec.exit_code,
            requests=[KernelRequestReport(**vars(r)) for r in rec.requests],
            added=rec.added,
            conflicts=rec.conflicts,
        )
    )
    return rec.exit_code


def _run_for_report(
    out: Output, cmd: tuple[str, ...], lockfile: Path, downloaded: int, *, strict: bool
) -> int:
    """`run --json`: the command as a child process, enforced, then the document with its exit status."""
    import os
    import subprocess

    from kernel_lock.cli.reports import RunReport
    from kernel_lock.core.lockfile import read_lock
    from kernel_lock.enforcement import run as runner

    read_lock(lockfile)  # a missing or malformed lock fails here, not in the middle of the program
    try:
        code = subprocess.call(
            list(cmd), env=runner.command_env(os.environ, lockfile=lockfile, strict=strict)
        )
    except OSError as exc:
        raise errors.ConfigError(
            f"Cannot run {cmd[0]!r}: {exc.strerror}. Check the command and your PATH."
        ) from None
    out.result(RunReport(exit_code=code, lockfile=str(lockfile), downloaded_files=downloaded))
    return code
