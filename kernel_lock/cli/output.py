"""What commands print: `Output` (text, notes, warnings, errors, the JSON document) and its formatting helpers."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, Literal

import click

from kernel_lock import env as environ

if TYPE_CHECKING:
    from kernel_lock.cli.reports import Report
    from kernel_lock.core.variants import Decision
    from kernel_lock.lock.changes import LockResult


def _stream_wants_color(mode: str, stream: Any) -> bool:
    """`--color` as uv reads it: auto means none with `NO_COLOR`, else with `FORCE_COLOR` or on a terminal."""
    if mode == "always":
        return True
    if mode == "never" or environ.no_color():
        return False
    return environ.force_color() or bool(getattr(stream, "isatty", lambda: False)())


class Output:
    """Where a command writes: human text on stdout, notes and problems on stderr, or one JSON document."""

    def __init__(
        self, *, json_mode: bool, quiet: int | bool, verbose: int | bool, color: str = "auto"
    ) -> None:
        self.json_mode = json_mode
        self.quiet = int(quiet)  # 1 (-q): only the answer and problems; 2 (-qq): nothing on stdout
        self.verbose = int(verbose)
        self.color = _stream_wants_color(color, sys.stdout)
        self.err_color = _stream_wants_color(color, sys.stderr)
        self.warnings: list[str] = []
        self.report: Report | None = None

    def answer(self, message: str) -> None:
        """A line of what the command was asked for (a table, a tree, a script): kept by -q, not by -qq or --json."""
        if self.quiet < 2 and not self.json_mode:
            click.echo(message, color=self.color)

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

    def notice(self, message: str) -> None:
        """A notice that holds run after run: always in the JSON document; on stderr once, while new, not with -q."""
        from kernel_lock.cli.notices import first_time

        self.warnings.append(message)
        if self.quiet or not first_time(message):
            return
        label = click.style("notice:", fg="cyan", bold=True) if self.err_color else "notice:"
        click.echo(f"{label} {message}", err=True, color=self.err_color)

    def error(self, code: str, message: str) -> None:
        """An error: `error: ...` on stderr, and with --json the error document on stdout."""
        if self.json_mode:
            self.emit(error_report(code, message))
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


def error_report(code: str, message: str) -> Report:
    """The `{"error": {"code", "message"}}` document of a failed command."""
    from kernel_lock.cli.reports import ErrorDetail, ErrorReport

    return ErrorReport(error=ErrorDetail(code=code, message=message))


def human_bytes(size: int) -> str:
    """`1.5 MiB`, `820 B`: sizes as people read them."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def print_changes(out: Output, result: LockResult, *, dry_run: bool = False) -> None:
    """A lock's change summary, one line per kernel, then where it was written (--verbose: every resolution)."""
    changes = result.changes()
    for change in changes:
        out.info(str(change))
    for entry in result.lock.kernel:
        via = f" via {entry.redirected_from} -> {entry.repo_id}" if entry.redirected_from else ""
        out.detail(
            f"{entry.key}: {entry.ref} -> {entry.commit[:12]}{via}, {len(entry.variants)} variant(s), "
            f"{entry.hash_type}, {len(entry.signed_by)} signed"
        )
    if dry_run:
        out.info(f"Would {'update' if changes else 'leave'} {result.path} (dry run: nothing written).")
    elif result.written:
        out.info(f"Wrote {result.path}")
    else:
        out.info(f"{result.path.name} unchanged ({len(result.lock.kernel)} kernel(s)).")


def decision_status(d: Decision, selected: str | None) -> Literal["preferred", "compatible", "rejected"]:
    """A variant's decision in one word: the one selected, another that fits, or one that does not."""
    return "preferred" if d.variant == selected else "compatible" if d.accepted else "rejected"


def decision_lines(decisions: list[Decision], selected: str | None) -> list[str]:
    """`✅ torch-cpu: preferred`, `✗ torch212-...: rejected (why)`: each variant's decision for a target."""
    lines = []
    for d in decisions:
        status = decision_status(d, selected)
        mark = "✅" if status == "preferred" else "  " if status == "compatible" else "✗ "
        lines.append(f"  {mark} {d.variant}: {status}{f' ({d.reason})' if d.reason else ''}")
    return lines


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
