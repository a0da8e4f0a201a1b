"""The command reference, generated from the click commands: a table in README.md, every option in docs/cli.md.

`python -m kernel_lock.cli.doc` rewrites both (README.md only between its markers); a test fails when
either is stale. The error codes table comes from `kernel_lock.errors` and the CLI's own codes.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

import click

from kernel_lock import cli, errors
from kernel_lock.cli.exitcodes import FILE_SYSTEM, INTERNAL, INTERRUPTED, USAGE, exit_code_for

README_BLOCKS = ("command reference", "error codes")
CLI_CODES = {
    USAGE: "a usage error: an unknown option, a missing argument (exit 2)",
    FILE_SYSTEM: "a file could not be read or written (exit 2)",
    INTERRUPTED: "interrupted (exit 130)",
    INTERNAL: "a bug in kernel-lock (exit 70)",
}


def _root() -> click.Context:
    """The group's context, whose settings (`-h` as well as `--help`) its commands inherit."""
    return click.Context(cli.main, info_name="kernel-lock", **cli.main.context_settings)


def _context(name: str, cmd: click.Command) -> click.Context:
    return click.Context(cmd, info_name=name, parent=_root())


def _commands(group: click.Group = cli.main, prefix: str = "") -> list[tuple[str, click.Command]]:
    """(name, command) of every command, as `kernel-lock --help` lists them; a group's commands in its place."""
    ctx = _root()
    found: list[tuple[str, click.Command]] = []
    for name in group.list_commands(ctx):
        cmd = group.get_command(ctx, name)
        if isinstance(cmd, click.Group):
            found += _commands(cmd, f"{prefix}{name} ")
        elif cmd is not None:
            found.append((f"{prefix}{name}", cmd))
    return found


def _usage(name: str, cmd: click.Command) -> str:
    ctx = _context(name, cmd)
    return " ".join(cmd.collect_usage_pieces(ctx)).strip()


def _cell(text: str) -> str:
    """Text for a Markdown table cell (a `|` would end the cell)."""
    return text.replace("|", "\\|").replace("\n", " ")


def command_table() -> str:
    """One row per command: its usage and its one-line help."""
    rows = ["| command | what it does |", "|---|---|"]
    for name, cmd in _commands():
        usage = f"kernel-lock {name} {_usage(name, cmd)}".strip()
        rows.append(f"| `{_cell(usage)}` | {_cell(cmd.get_short_help_str(limit=200))} |")
    return "\n".join(rows) + "\n"


def error_table() -> str:
    """Every stable error code and the failure it names."""
    rows = ["| error code | meaning |", "|---|---|"]
    classes = [
        c
        for name, c in vars(errors).items()
        if isinstance(c, type)
        and issubclass(c, errors.KernelLockError)
        and c is not errors.KernelLockError
        and not name.startswith("_")  # a shared base of some errors, raised as none of its own
    ]
    for cls in sorted(classes, key=lambda c: c.code):
        doc = (cls.__doc__ or "").strip().splitlines()[0].rstrip(".")
        rows.append(f"| `{cls.code}` | {doc} (exit {exit_code_for(cls.__new__(cls))}) |")
    rows += [f"| `{code}` | {meaning} |" for code, meaning in sorted(CLI_CODES.items())]
    return "\n".join(rows) + "\n"


def reference() -> str:
    """docs/cli.md: every command with its help text and options."""
    parts = [
        "# Command reference\n",
        "Generated from the commands by `python -m kernel_lock.cli.doc`; do not edit by hand.\n",
    ]
    for name, cmd in _commands():
        ctx = _context(name, cmd)
        parts.append(f"## `kernel-lock {name}`\n")
        parts.append(f"    kernel-lock {name} {_usage(name, cmd)}\n")
        parts.append(inspect.cleandoc(cmd.help or "") + "\n")
        options = [p.get_help_record(ctx) for p in cmd.get_params(ctx) if isinstance(p, click.Option)]
        rows = [r for r in options if r is not None]
        if rows:
            parts.append(
                "| option | |\n|---|---|\n" + "".join(f"| `{_cell(o)}` | {_cell(h)} |\n" for o, h in rows)
            )
    return "\n".join(parts)


def readme(text: str) -> str:
    """README.md text with the generated blocks replaced."""
    for block, body in zip(README_BLOCKS, (command_table(), error_table()), strict=True):
        start, end = f"<!-- {block}: start -->\n", f"<!-- {block}: end -->"
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        if not rest:
            raise ValueError(f"README.md has no {start.strip()} marker")
        text = head + start + body + end + tail
    return text


def main(root: str = ".") -> None:
    """Rewrite README.md's generated blocks and docs/cli.md under `root`."""
    base = Path(root)
    path = base / "README.md"
    path.write_text(readme(path.read_text(encoding="utf-8")), encoding="utf-8")
    (base / "docs").mkdir(exist_ok=True)
    (base / "docs" / "cli.md").write_text(reference(), encoding="utf-8")


if __name__ == "__main__":
    main(*sys.argv[1:])
