"""`kernel-lock`: a thin command line over the Python API.

This module is the `main` group, the entry point; the commands live in modules by what they do
(`locking`, `interop`, `syncing`, `inspecting`, `running`) and share `command` (output options,
errors to exit codes), `options` and `output`. Heavy modules (pydantic, huggingface_hub, torch)
are imported inside commands, so `kernel-lock --help` stays fast. Errors of our own become one
paragraph on stderr (and, with `--json`, an `{"error": {"code", "message"}}` document on stdout)
and an exit code from `exitcodes.EXIT_CODES`; nothing prints a traceback unless `--verbose` asks
for one. May import every stage (`core`, `project`, `hub`, `lock`, `cache`, `load`, `enforcement`,
`inspect`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any, Literal

import click

from kernel_lock import __version__
from kernel_lock.cli import inspecting, interop, locking, running, syncing
from kernel_lock.cli.command import command
from kernel_lock.cli.exitcodes import EXIT_OK, USAGE
from kernel_lock.cli.output import Output

# The CLI uses no pydantic plugins; looking for them scans every installed
# package's entry points, about 0.1 s of each start.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")


def _json_requested(args: Sequence[str]) -> bool:
    """Whether `--json` is among the options (before any `--`), for errors found before options are parsed."""
    return "--json" in (args[: list(args).index("--")] if "--" in args else args)


GLOBAL_FLAGS = {"--json", "-q", "--quiet", "-qq", "-v", "--verbose", "--offline"}
"""Options of every command that may also come before it (`kernel-lock --json status`, as uv allows)."""


def _global_flags_last(group: click.Group, args: list[str]) -> list[str]:
    """Move the shared options given before the command (`--json status`) to just after its name."""
    hoisted: list[str] = []
    rest = list(args)
    while rest and (rest[0] in GLOBAL_FLAGS or rest[0].startswith("--color")):
        hoisted.append(rest.pop(0))
        if hoisted[-1] == "--color" and rest:
            hoisted.append(rest.pop(0))
    if not hoisted:
        return args
    at = 0
    command: click.Command | None = group
    while isinstance(command, click.Group) and at < len(rest) and not rest[at].startswith("-"):
        command = command.get_command(click.Context(command), rest[at])
        at += 1
    return [*rest[:at], *hoisted, *rest[at:]]


class Group(click.Group):
    """The `kernel-lock` group: shared options before the command, and usage errors as our errors (`--json` too)."""

    def main(  # type: ignore[override]
        self, args: Sequence[str] | None = None, prog_name: str | None = None, **kw: Any
    ) -> Any:
        argv = _global_flags_last(self, list(sys.argv[1:] if args is None else args))
        standalone = kw.pop("standalone_mode", True)
        try:
            return super().main(argv, prog_name, standalone_mode=False, **kw)
        except click.ClickException as exc:
            if not standalone:
                raise
            out = Output(json_mode=_json_requested(argv), quiet=False, verbose=False)
            ctx = getattr(exc, "ctx", None)
            where = ctx.command_path if ctx is not None else "kernel-lock"
            out.error(USAGE, f"{exc.format_message().rstrip('.')}. See `{where} --help`.")
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


@click.group(
    cls=Group,
    commands=[
        locking.init,
        locking.add,
        locking.remove,
        locking.lock,
        syncing.sync,
        syncing.verify,
        syncing.cache,
        inspecting.versions,
        inspecting.status,
        inspecting.show,
        inspecting.tree,
        inspecting.env_,
        interop.export,
        interop.import_,
        running.run,
    ],
    context_settings={"help_option_names": ["-h", "--help"]},
)
@click.version_option(__version__, "-V", "--version", prog_name="kernel-lock", message="%(prog)s %(version)s")
def main() -> None:
    """Lock, sync and verify Hugging Face Hub kernels for reproducible, tamper-evident loading.

    Exit codes: 0 ok, 1 check failed (no kernels.lock, or out of date), 2 bad input,
    3 network or Hub error, 4 verification failed. With --json, errors are
    {"error": {"code": ..., "message": ...}} on stdout.
    """


@main.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
@command
def completion(*, out: Output, shell: Literal["bash", "zsh", "fish"]) -> int:
    """Print the shell completion script for SHELL.

    Add `eval "$(kernel-lock completion bash)"` to ~/.bashrc (zsh: ~/.zshrc with
    `zsh`), or write `kernel-lock completion fish` to
    ~/.config/fish/completions/kernel-lock.fish.
    """
    from click.shell_completion import get_completion_class

    from kernel_lock.cli.reports import CompletionReport

    cls = get_completion_class(shell)
    assert cls is not None
    script = cls(main, {}, "kernel-lock", "_KERNEL_LOCK_COMPLETE").source()
    out.answer(script)
    out.result(CompletionReport(shell=shell, script=script))
    return EXIT_OK
