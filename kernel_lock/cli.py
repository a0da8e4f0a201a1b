"""`kernel-lock`: a thin command line over the Python API.

Heavy modules (pydantic, huggingface_hub, torch) are imported inside commands, so
`kernel-lock --help` stays fast. Errors of our own become one paragraph on
stderr (and, with `--json`, an `{"error": {"code", "message"}}` document on
stdout) and an exit code from `EXIT_CODES`; nothing prints a traceback unless
`--verbose` asks for one.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar

import click

from kernel_lock import __version__, errors
from kernel_lock import env as environ
from kernel_lock.target import BACKENDS, TargetChoice

if TYPE_CHECKING:
    from kernel_lock.locking import LockResult
    from kernel_lock.reports import Report

F = TypeVar("F", bound=Callable[..., Any])

# The CLI uses no pydantic plugins; looking for them scans every installed
# package's entry points, about 0.1 s of each start.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_VERIFICATION = 4
EXIT_CODES: dict[type[errors.KernelLockError], int] = {
    errors.LockOutOfDate: EXIT_CHECK_FAILED,
    errors.ConfigError: 2,
    errors.LockfileError: 2,
    errors.ResolutionError: 2,
    errors.VariantError: 2,
    errors.MissingPythonDependency: 2,
    errors.HubError: 3,
    errors.VerificationError: EXIT_VERIFICATION,
}
# Error codes of failures that are not a KernelLockError.
USAGE, FILE_SYSTEM, INTERRUPTED, INTERNAL = "usage", "file-system", "interrupted", "internal"


def exit_code_for(exc: errors.KernelLockError) -> int:
    """The exit code of an error: that of its nearest class in `EXIT_CODES`."""
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 2


def _stream_wants_color(mode: str, stream: Any) -> bool:
    """`--color` as uv and cargo read it: auto means a terminal, and no `NO_COLOR`."""
    if mode == "always":
        return True
    if mode == "never":
        return False
    return bool(getattr(stream, "isatty", lambda: False)()) and not environ.no_color()


class Output:
    """Where a command writes: human text on stdout, notes and problems on stderr, or one JSON document."""

    def __init__(self, *, json_mode: bool, quiet: bool, verbose: bool, color: str = "auto") -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.verbose = verbose
        self.color = _stream_wants_color(color, sys.stdout)
        self.err_color = _stream_wants_color(color, sys.stderr)
        self.warnings: list[str] = []
        self.report: Report | None = None

    def info(self, message: str) -> None:
        """A line of normal output (silenced by --quiet and --json)."""
        if not self.quiet and not self.json_mode:
            click.echo(message, color=self.color)

    def note(self, message: str) -> None:
        """A line about what the command is doing (the target, a lock it wrote), on stderr; silenced by --quiet."""
        if not self.quiet:
            click.echo(message, err=True)

    def detail(self, message: str) -> None:
        """A line of --verbose output, on stderr."""
        if self.verbose:
            click.echo(message, err=True)

    def warn(self, message: str) -> None:
        """A warning: on stderr always, and in the JSON document."""
        self.warnings.append(message)
        label = click.style("warning:", fg="yellow", bold=True) if self.err_color else "warning:"
        click.echo(f"{label} {message}", err=True, color=self.err_color)

    def error(self, code: str, message: str) -> None:
        """An error: `error: ...` on stderr, and with --json the error document on stdout."""
        if self.json_mode:
            self.emit(_error_report(code, message))
        self.problem(message)

    def problem(self, message: str) -> None:
        """`error: ...` on stderr for a failed check, whose JSON document is its report, not an error."""
        label = click.style("error:", fg="red", bold=True) if self.err_color else "error:"
        click.echo(f"{label} {message}", err=True, color=self.err_color)

    def style(self, text: str, **kw: Any) -> str:
        """Colour `text` where colour is wanted."""
        return click.style(text, **kw) if self.color else text

    def result(self, report: Report) -> None:
        """The JSON document of this run (printed when the command ends, with its warnings)."""
        self.report = report

    def emit(self, report: Report) -> None:
        """Print a JSON document, with the warnings seen so far."""
        report.warnings = [*self.warnings, *report.warnings]
        click.echo(json.dumps(report.to_json(), indent=2, sort_keys=True, ensure_ascii=False))


def _json_requested(args: Sequence[str]) -> bool:
    """Whether `--json` is among the options (before any `--`), for errors found before options are parsed."""
    return "--json" in (args[: list(args).index("--")] if "--" in args else args)


class Group(click.Group):
    """The `kernel-lock` group: usage errors (a bad option, a missing argument) honour `--json` too."""

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None, **kw: Any
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        standalone = kw.pop("standalone_mode", True)
        try:
            return super().main(argv, prog_name, standalone_mode=False, **kw)
        except click.ClickException as exc:
            if not standalone:
                raise
            if _json_requested(argv):
                Output(json_mode=True, quiet=False, verbose=False, color="never").emit(
                    _error_report(USAGE, exc.format_message())
                )
            exc.show()
            sys.exit(exc.exit_code)
        except click.exceptions.Abort:
            if not standalone:
                raise
            click.echo("Aborted!", err=True)
            sys.exit(1)
        except click.exceptions.Exit as exc:
            if not standalone:
                raise
            sys.exit(exc.exit_code)


def _error_report(code: str, message: str) -> Report:
    from kernel_lock.reports import ErrorDetail, ErrorReport

    return ErrorReport(error=ErrorDetail(code=code, message=message))


def _fail(out: Output, code: str, message: str, exit_code: int) -> NoReturn:
    out.error(code, message)
    sys.exit(exit_code)


def command(fn: F) -> F:
    """Wrap a command: shared options, warnings on stderr and in JSON, our errors mapped to exit codes."""

    @click.option("--json", "json_mode", is_flag=True, help="Print one JSON document (schemas/output/).")
    @click.option("-q", "--quiet", is_flag=True, help="Print only warnings and errors.")
    @click.option(
        "-v", "--verbose", is_flag=True, help="Print more detail (and tracebacks of unexpected errors)."
    )
    @click.option(
        "--color",
        type=click.Choice(["auto", "always", "never"]),
        default="auto",
        show_default=True,
        help="Colour output: auto means on a terminal without NO_COLOR.",
    )
    @click.option(
        "--offline", is_flag=True, help="Never reach the Hub (as HF_HUB_OFFLINE=1); what needs it fails."
    )
    @functools.wraps(fn)
    def wrapper(
        *args: Any, json_mode: bool, quiet: bool, verbose: bool, color: str, offline: bool, **kwargs: Any
    ) -> None:
        out = Output(json_mode=json_mode, quiet=quiet, verbose=verbose, color=color)
        with warnings.catch_warnings(), _offline(offline):
            warnings.simplefilter("always", errors.KernelLockWarning)
            warnings.showwarning = lambda message, *_, **__: out.warn(str(message))
            code = _run(fn, out, verbose, args, kwargs)
        if json_mode and out.report is not None:
            out.emit(out.report)
        sys.exit(code or EXIT_OK)

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def _offline(offline: bool) -> Iterator[None]:
    """`--offline`: HF_HUB_OFFLINE=1 for this command (and huggingface_hub, if already imported), then as before."""
    if not offline:
        yield
        return
    before = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    constants = sys.modules.get("huggingface_hub.constants")
    was = getattr(constants, "HF_HUB_OFFLINE", None)
    if constants is not None:
        setattr(constants, "HF_HUB_OFFLINE", True)  # noqa: B010 - a module attribute read at call time
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = before
        if constants is not None:
            setattr(constants, "HF_HUB_OFFLINE", was)  # noqa: B010


def _run(fn: Callable[..., int], out: Output, verbose: bool, args: Any, kwargs: Any) -> int:
    """Run a command; our errors (and any other) become one paragraph and an exit code."""
    try:
        if "target_spec" in kwargs:
            kwargs["target"] = take_target(kwargs)
        return fn(*args, out=out, **kwargs)
    except errors.KernelLockError as exc:
        request_id = getattr(exc, "request_id", None)
        if request_id:
            out.detail(f"Hub request id: {request_id}")
        _fail(out, exc.code, str(exc), exit_code_for(exc))
    except KeyboardInterrupt:
        _fail(out, INTERRUPTED, "Interrupted.", 130)
    except OSError as exc:
        if verbose:
            raise
        _fail(
            out,
            FILE_SYSTEM,
            f"{exc.strerror or exc} ({exc.filename or type(exc).__name__}). Check the path and its permissions.",
            2,
        )
    except Exception as exc:
        if verbose:
            raise
        _fail(
            out,
            INTERNAL,
            f"unexpected {type(exc).__name__}: {exc}. This is a bug in kernel-lock; run again with --verbose "
            f"for the traceback and report it.",
            70,
        )


project_option = click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Project directory (default: nearest one upward holding pyproject.toml).",
)


def target_options(fn: F) -> F:
    """Options declaring the environment to select variants for; the command gets `target: TargetChoice | None`.

    One option per backend of `kernel_lock.target.BACKENDS`, so a new backend needs no change here. Put it
    above `@command`, which turns the options into the target (so a bad target is an error like any other).
    """
    backend_options = [
        click.option(
            f"--{b.name}",
            f"backend_{b.name}",
            metavar="X.Y" if b.prefix else None,
            is_flag=not b.prefix,
            default=None,
            help=f"Declared {b.label} version (e.g. {b.example})."
            if b.prefix
            else f"Declared {b.label} backend.",
        )
        for b in BACKENDS.values()
    ]
    options = [
        click.option(
            "--target",
            "target_spec",
            metavar="SPEC",
            help="Environment as a variant-like name, e.g. torch210-cxx11-cu128-x86_64-linux "
            "(default: KERNEL_LOCK_TARGET, else this machine).",
        ),
        click.option(
            "--torch", "torch_version", metavar="X.Y", help="Declared torch version (with a backend option)."
        ),
        *backend_options,
        click.option("--arch", metavar="ARCH", help="Declared CPU architecture (default: this machine's)."),
        click.option("--os", "os_name", metavar="OS", help="Declared OS (default: this machine's)."),
    ]

    for option in reversed(options):
        fn = option(fn)
    return fn


def take_target(kw: dict[str, Any]) -> TargetChoice | None:
    """Replace the target options in a command's kwargs by the `target` they declare (run by `command`)."""
    spec, torch, arch, os_name = (kw.pop(k) for k in ("target_spec", "torch_version", "arch", "os_name"))
    backends = {name: kw.pop(f"backend_{name}") for name in BACKENDS}
    return declared_target(spec, torch=torch, arch=arch, os_name=os_name, backends=backends)


def declared_target(
    spec: str | None, *, torch: str | None, arch: str | None, os_name: str | None, backends: dict[str, Any]
) -> TargetChoice | None:
    """The target the options declare, or None to use `KERNEL_LOCK_TARGET` or this machine."""
    declared = any([torch, arch, os_name, *backends.values()])
    if spec and declared:
        raise errors.VariantError("Give either --target SPEC or --torch/--cuda/... options, not both.")
    if spec:
        from kernel_lock.target import parse_target

        return TargetChoice(parse_target(spec), "--target")
    if declared:
        from kernel_lock.target import target_from_options

        target = target_from_options(torch=torch, arch=arch, os=os_name, **backends)
        return TargetChoice(target, "options")
    return None


def announce_target(out: Output, declared: TargetChoice | None) -> TargetChoice:
    """Choose the target, say which (once per command), and warn where detection found no torch."""
    from kernel_lock.target import choose_target

    choice = choose_target(declared)
    out.note(f"Target: {choice.describe()}")
    if choice.source == "detected" and choice.target.torch is None:
        warnings.warn(
            "torch is not importable here, so the target is this machine without torch: only noarch variants "
            "(torch-universal, torch-cpu, ...) fit. If the kernels run elsewhere (a Docker build stage, another "
            f"machine), declare that environment with --target or {environ.TARGET}, e.g. "
            "--target torch210-cxx11-cu128-x86_64-linux.",
            errors.KernelLockWarning,
            stacklevel=2,
        )
    return choice


class SyncBar:
    """`sync` on a terminal: one byte-level bar for all the files it fetches.

    tqdm, because huggingface_hub already brings it (its own download bars); rich would add
    rich, markdown-it-py, mdurl and pygments (about 5 MB) for the same bar.
    """

    def __init__(self) -> None:
        self.bar: Any = None
        self.lock = threading.Lock()
        self.before: Callable[[], None] = lambda: None  # stops a spinner, so the two do not share the line

    def planned(self, files: int, size: int) -> None:
        from tqdm import tqdm

        self.before()
        if files:
            self.bar = tqdm(
                total=size,
                desc=f"Fetching {files} file(s)",
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                file=sys.stderr,
                leave=False,
                dynamic_ncols=True,
            )

    def received(self, size: int) -> None:
        with self.lock:
            if self.bar is not None:
                self.bar.update(size)

    def synced(self, check: Any) -> None:
        """Variants are listed once, after the bar, with the rest of the output."""

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@contextlib.contextmanager
def working(out: Output, what: str) -> Iterator[Callable[[], None]]:
    """A spinner with the elapsed time on a terminal's stderr while something long runs (e.g. locking).

    Yields a function that stops it early (before a progress bar takes the line).
    """
    if out.quiet or not sys.stderr.isatty():
        yield lambda: None
        return
    done = threading.Event()

    def spin() -> None:
        start = time.monotonic()
        for frame in itertools.cycle("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"):
            click.echo(f"\r{frame} {what} {time.monotonic() - start:4.1f}s", err=True, nl=False)
            if done.wait(0.1):
                break
        click.echo("\r\033[K", err=True, nl=False)

    thread = threading.Thread(target=spin, name="kernel-lock-spinner", daemon=True)
    thread.start()

    def stop() -> None:
        done.set()
        thread.join()

    try:
        yield stop
    finally:
        stop()


def human_bytes(size: int) -> str:
    """`1.5 MiB`, `820 B`: sizes as people read them."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def print_changes(out: Output, result: LockResult, *, dry_run: bool = False) -> None:
    """A lock's change summary, one line per kernel, then where it was written."""
    changes = result.changes()
    for change in changes:
        out.info(str(change))
    if dry_run:
        out.info(f"Would {'update' if changes else 'leave'} {result.path} (dry run: nothing written).")
    elif result.written:
        out.info(f"Wrote {result.path}")
    else:
        out.info(f"{result.path.name} unchanged ({len(result.lock.kernel)} kernel(s)).")


def table(rows: list[list[str]]) -> list[str]:
    """Rows as lines with aligned columns (two spaces apart; the last column not padded)."""
    if not rows:
        return []
    widths = [max(len(click.unstyle(r[i])) for r in rows if i < len(r)) for i in range(max(map(len, rows)))]
    return [
        "  ".join(
            cell + " " * (widths[i] - len(click.unstyle(cell))) if i < len(row) - 1 else cell
            for i, cell in enumerate(row)
        )
        for row in rows
    ]


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="kernel-lock", message="%(prog)s %(version)s")
def main() -> None:
    """Lock, sync and verify Hugging Face Hub kernels for reproducible, tamper-evident loading.

    Exit codes: 0 ok, 1 check failed (lock out of date), 2 bad input,
    3 network or Hub error, 4 verification failed. With --json, errors are
    {"error": {"code": ..., "message": ...}} on stdout.
    """


@main.command()
@project_option
@click.option("--upgrade", "-U", is_flag=True, help="Re-resolve every kernel to its branch head.")
@click.option(
    "--upgrade-package", "-P", multiple=True, metavar="REPO", help="Re-resolve just this kernel (repeatable)."
)
@click.option(
    "--hash-type",
    type=click.Choice(["sha256", "git_lfs_concat"]),
    help="Variant hash type: sha256 (default for new locks) or git_lfs_concat (older kernels locks). "
    "Converts every entry at its locked commit; without it an existing lock keeps its type (--upgrade: sha256).",
)
@click.option(
    "--check", "--locked", "check", is_flag=True, help="Change nothing; exit 1 if the lock is out of date."
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
    dry_run: bool,
) -> int:
    """Resolve [tool.kernels] dependencies and write kernels.lock."""
    from kernel_lock.config import load_project
    from kernel_lock.locking import load_project_online, lock_differences, lock_project, recheck_signatures
    from kernel_lock.reports import LockChanges, LockCheckReport, LockReport

    proj = load_project(project) if check else load_project_online(project)
    if check:
        from kernel_lock.lockfile import read_lock_if_exists

        current = read_lock_if_exists(proj.lockfile)
        problems = lock_differences(proj, current)
        count = len(current.kernel) if current else 0
        report = LockCheckReport(
            lockfile=str(proj.lockfile), up_to_date=False, differences=problems, kernels=count
        )
        if problems or current is None:
            out.result(report)
            for line in problems:
                click.echo(f"  {line}", err=True)
            out.problem(f"{proj.lockfile} is out of date. Run `kernel-lock lock`.")
            return EXIT_CHECK_FAILED
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
    from kernel_lock.migrate import function_repository_notice

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


@main.command()
@project_option
@target_options
@click.option(
    "--variant",
    "variant_names",
    multiple=True,
    metavar="NAME",
    help="Sync exactly this variant (repeatable).",
)
@click.option("--all-variants", is_flag=True, help="Sync every locked variant.")
@click.option(
    "--locked",
    is_flag=True,
    help="Fail (exit 1) if kernels.lock is missing or out of date, instead of locking first (as uv).",
)
@click.option(
    "--frozen",
    is_flag=True,
    help="Use kernels.lock as is, without checking it against pyproject.toml (as uv).",
)
@click.option(
    "--dry-run", is_flag=True, help="Print what would be locked and fetched; write and fetch nothing."
)
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
    from kernel_lock.reports import LockChanges, SyncReport, TargetReport, VariantReport
    from kernel_lock.sync import sync_project

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


@main.command()
@project_option
@target_options
@click.option(
    "--variant",
    "variant_names",
    multiple=True,
    metavar="NAME",
    help="Verify exactly this variant (repeatable).",
)
@click.option(
    "--all-variants", is_flag=True, help="Verify every locked variant (those not synced report missing)."
)
@click.option(
    "--full",
    is_flag=True,
    help="Hash every file, ignoring recorded fingerprints (as KERNEL_LOCK_VERIFY=full).",
)
@click.option(
    "--signatures",
    is_flag=True,
    help="Also verify each variant's publisher signature again (offline) against pyproject.toml's signers.",
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
    from kernel_lock.lockfile import read_lock
    from kernel_lock.projectpaths import find_project_root
    from kernel_lock.reports import TargetReport, VariantReport, VerifyReport
    from kernel_lock.sync import selected_variants
    from kernel_lock.verify import check_variant

    lock = read_lock(find_project_root(project) / "kernels.lock")
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
    from kernel_lock.config import load_project
    from kernel_lock.signatures import Verifiers, check_synced_signature
    from kernel_lock.verify import FileProblem

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


@main.command()
@click.argument("repo")
@target_options
@command
def versions(*, out: Output, repo: str, target: TargetChoice | None) -> int:
    """List the major versions of REPO and their build variants; ✅ marks what this environment would load.

    With --verbose, one line per variant: preferred, compatible, or rejected and why, for this
    environment (or the one --target declares).
    """
    from kernel_lock.hub import Hub
    from kernel_lock.reports import DecisionReport, TargetReport, VersionReport, VersionsReport
    from kernel_lock.variants import rank_variants
    from kernel_lock.versions import list_versions

    choice = announce_target(out, target)
    hub = Hub()
    holder, infos = list_versions(repo, hub=hub, target=choice.target)
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
        out.info(f"{repo} redirects to {holder}")
    if not infos:
        out.info(f"{holder} has no major versions (no vN branches).")
    reports = []
    for info in infos:
        names = [f"{v} ✅" if v == info.selected else v for v in info.variants]
        label = f"Version {info.version}" + (
            " (unstable: alpha/beta, no API promise)" if info.unstable else ""
        )
        fits = "" if info.selected else f" (none fits {choice.target.describe()})"
        out.info(f"{label}: {', '.join(names)}{fits}")
        decisions = [
            DecisionReport(
                variant=d.variant,
                status="preferred"
                if d.variant == info.selected
                else "compatible"
                if d.accepted
                else "rejected",
                reason=d.reason,
            )
            for d in rank_variants(info.variants, choice.target)
        ]
        if out.verbose:
            for d in decisions:
                mark = "✅" if d.status == "preferred" else "  " if d.status == "compatible" else "✗ "
                out.info(f"  {mark} {d.variant}: {d.status}{f' ({d.reason})' if d.reason else ''}")
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


@main.command()
@click.argument("repos", nargs=-1, required=True, metavar="REPO[@VERSION|@REVISION]...")
@project_option
@click.option("--version", "version", type=click.IntRange(min=0), help="Major version (default: the newest).")
@click.option("--revision", metavar="REV", help="A branch, tag or 40-hex commit instead of a version.")
@click.option(
    "--trust-remote-code", is_flag=True, help="Allow a repo whose publisher is not trusted on the Hub."
)
@command
def add(
    *,
    out: Output,
    repos: tuple[str, ...],
    project: Path | None,
    version: int | None,
    revision: str | None,
    trust_remote_code: bool,
) -> int:
    """Require each REPO in [tool.kernels.dependencies] (keeping the rest of pyproject.toml) and lock.

    `org/name@2` requires version 2, `org/name@main` a revision; otherwise --version or
    --revision, or else the newest major version. A repo already required is updated.
    """
    from kernel_lock.locking import add_dependencies, parse_add_spec
    from kernel_lock.reports import AddedKernel, AddReport, LockChanges

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
        result = add_dependencies(requests, project, trust_remote_code=trust_remote_code)
    pyproject = result.lock.path.parent / "pyproject.toml"
    for added in result.added:
        requirement = added.dependency.describe()
        if added.action == "added":
            out.note(f"Added {added.repo_id} ({requirement}) to {pyproject}")
        elif added.before is not None and added.action == "updated":
            out.note(
                f"Updated {added.repo_id} from {added.before.describe()} to {requirement} in {pyproject}"
            )
        else:
            out.note(f"{added.repo_id} already requires {requirement} in {pyproject}")
    print_changes(out, result.lock)
    out.result(
        AddReport(
            **LockChanges.of(result.lock).model_dump(),
            kernels=[
                AddedKernel(repo_id=a.repo_id, requirement=a.dependency.describe(), action=a.action)
                for a in result.added
            ],
        )
    )
    return EXIT_OK


@main.command()
@click.argument("repo")
@project_option
@command
def remove(*, out: Output, repo: str, project: Path | None) -> int:
    """Remove REPO from [tool.kernels.dependencies] and from the lock."""
    from kernel_lock.locking import remove_dependency
    from kernel_lock.reports import LockChanges, RemoveReport

    result = remove_dependency(repo, project)
    out.note(f"Removed {repo} from {result.path.parent / 'pyproject.toml'}")
    required_by = sorted(
        {r.kernel for k in result.lock.kernel if k.requested_repo == repo for r in k.required_by}
    )
    if required_by:
        out.note(f"{repo} stays in the lock: required by {', '.join(required_by)}.")
    print_changes(out, result)
    out.result(RemoveReport(**LockChanges.of(result).model_dump(), repo_id=repo, required_by=required_by))
    return EXIT_OK


@main.command()
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
    from kernel_lock.reports import KernelStatusReport, StatusReport, TargetReport
    from kernel_lock.status import project_status

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
        out.info(line.rstrip())
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


main.add_command(
    click.Command(
        "show",
        params=status.params,
        callback=status.callback,
        help=status.help,
        short_help="Alias of `status`.",
    )
)


@main.command(name="env")
@target_options
@command
def env_(*, out: Output, target: TargetChoice | None) -> int:
    """Print the environment variants are selected for, and where it came from.

    That is --target (or --torch/--cuda/...), else KERNEL_LOCK_TARGET, else this
    machine as the `kernels` library would see it (found without importing torch).
    """
    import platform

    from kernel_lock.reports import EnvReport, TargetReport
    from kernel_lock.target import choose_target, torch_dir

    choice = choose_target(target)
    torch_path = torch_dir()
    out.info(f"target: {choice.target.spec() or '(no torch)'}")
    out.info(f"environment: {choice.describe()}")
    out.info(f"python: {platform.python_version()} ({sys.executable})")
    out.info(f"torch: {torch_path or 'not importable'}")
    out.result(
        EnvReport(
            target=TargetReport.of(choice),
            python=platform.python_version(),
            torch_path=str(torch_path) if torch_path else None,
        )
    )
    return EXIT_OK


@main.command(name="export")
@project_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["kernels", "kernels-legacy"]),
    required=True,
    help="kernels: the JSON lock of kernels 0.17; kernels-legacy: the older JSON with per-variant hashes.",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default: stdout)."
)
@command
def export(*, out: Output, project: Path | None, fmt: str, output: Path | None) -> int:
    """Write kernels.lock in the `kernels` library's JSON format.

    Without -o the exported lock itself is the output, so --json needs -o.
    """
    from kernel_lock.fsutil import atomic_write
    from kernel_lock.interop import export_lock
    from kernel_lock.lockfile import read_lock
    from kernel_lock.projectpaths import find_project_root
    from kernel_lock.reports import ExportReport

    lock = read_lock(find_project_root(project) / "kernels.lock")
    if output is None and out.json_mode:
        raise errors.ConfigError(
            "export --json needs -o FILE: without it, stdout is the exported lock itself."
        )
    text = export_lock(lock, fmt)  # type: ignore[arg-type]
    if output is None:
        click.echo(text, nl=False)
        return EXIT_OK
    atomic_write(output, text.encode("utf-8"))
    out.info(f"Wrote {output} ({fmt} format)")
    out.result(ExportReport(format=fmt, output=str(output), kernels=len(lock.kernel)))  # type: ignore[arg-type]
    return EXIT_OK


@main.command(name="import")
@click.argument("source", required=False, type=click.Path(dir_okay=False, path_type=Path))
@project_option
@command
def import_(*, out: Output, source: Path | None, project: Path | None) -> int:
    """Turn a `kernels` JSON lock (0.17 or legacy) into kernels.lock, keeping its commits.

    Without SOURCE, the project's own kernels.lock written by `kernels lock` is
    converted in place; the JSON is kept next to it as kernels.lock.kernels.json.
    """
    from kernel_lock.interop import import_lock
    from kernel_lock.reports import ImportReport

    result = import_lock(source, project)
    out.info(f"Imported {result.source} ({result.format} format): {len(result.lock.kernel)} kernel(s)")
    if result.backup is not None:
        out.info(f"Kept the `kernels` lock as {result.backup}")
    for repo, dep in result.added_dependencies.items():
        out.info(f"added {repo} ({dep.describe()}) to pyproject.toml")
    for path in result.written:
        out.info(f"Wrote {path}")
    out.result(
        ImportReport(
            format=result.format,
            source=str(result.source),
            backup=str(result.backup) if result.backup else None,
            written=[str(p) for p in result.written],
            added_dependencies={r: d.describe() for r, d in result.added_dependencies.items()},
        )
    )
    return EXIT_OK


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
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
    if sync_first:
        downloaded = runner.sync_once(lockfile)
        out.detail(f"synced before the run: {downloaded} file(s) downloaded")
    runner.exec_enforced(cmd, lockfile)
    return 0


@main.command()
@project_option
@command
def init(*, out: Output, project: Path | None) -> int:
    """Start declaring kernels: a pyproject.toml with an empty [tool.kernels.dependencies] (or add the table)."""
    from kernel_lock.config import kernels_table
    from kernel_lock.edit import with_dependencies_table
    from kernel_lock.fsutil import atomic_write
    from kernel_lock.projectpaths import PYPROJECT
    from kernel_lock.reports import InitReport

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


@main.command()
@project_option
@click.option("--invert", "-i", is_flag=True, help="Show each kernel with the kernels that require it.")
@command
def tree(*, out: Output, project: Path | None, invert: bool) -> int:
    """The locked kernel dependency tree, as `uv tree` / `cargo tree` (with --invert: who requires what)."""
    from kernel_lock.lockfile import read_lock
    from kernel_lock.projectpaths import find_project_root
    from kernel_lock.reports import TreeReport
    from kernel_lock.tree import kernel_tree, render_tree

    lock = read_lock(find_project_root(project) / "kernels.lock")
    roots = kernel_tree(lock, invert=invert)
    for line in render_tree(roots):
        out.info(line)
    out.result(TreeReport(invert=invert, kernels=roots))
    return EXIT_OK


@main.group()
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
@click.option("--dry-run", is_flag=True, help="Print what would be removed; remove nothing.")
@command
def prune(*, out: Output, projects: tuple[Path, ...], dry_run: bool) -> int:
    """Remove kernel commits and variants that no lock of the given projects uses.

    Only kernel repositories are touched; a file's content goes once no kept variant links to it.
    """
    from kernel_lock.lockfile import read_lock
    from kernel_lock.projectpaths import find_project_root
    from kernel_lock.prune import prune_cache
    from kernel_lock.reports import PrunedReport, PruneReport

    lockfiles = [find_project_root(p) / "kernels.lock" for p in projects or (None,)]
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


@main.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    Add `eval "$(kernel-lock completion bash)"` to ~/.bashrc (zsh: ~/.zshrc with
    `zsh`), or write `kernel-lock completion fish` to
    ~/.config/fish/completions/kernel-lock.fish.
    """
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(main, {}, "kernel-lock", "_KERNEL_LOCK_COMPLETE").source())
