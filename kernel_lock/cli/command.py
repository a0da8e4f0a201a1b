"""`@command`: what every command shares (output options, `--offline`, warnings) and its errors as exit codes."""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

import click

from kernel_lock import errors
from kernel_lock.cli.exitcodes import EXIT_OK, FILE_SYSTEM, INTERNAL, INTERRUPTED, exit_code_for
from kernel_lock.cli.options import take_target
from kernel_lock.cli.output import Output

F = TypeVar("F", bound=Callable[..., Any])


def _fail(out: Output, code: str, message: str, exit_code: int) -> NoReturn:
    out.error(code, message)
    sys.exit(exit_code)


def command(fn: F) -> F:
    """Wrap a command: shared options, warnings on stderr and in JSON, our errors mapped to exit codes."""

    @click.option("--json", "json_mode", is_flag=True, help="Print one JSON document (schemas/output/).")
    @click.option(
        "-q",
        "--quiet",
        count=True,
        help="Print only what was asked for (a table, a tree), warnings and errors; -qq: nothing on stdout.",
    )
    @click.option(
        "-v",
        "--verbose",
        count=True,
        help="Print requests, timings and per-variant decisions (and tracebacks of unexpected errors).",
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
        *args: Any, json_mode: bool, quiet: int, verbose: int, color: str, offline: bool, **kwargs: Any
    ) -> None:
        out = Output(json_mode=json_mode, quiet=quiet, verbose=verbose, color=color)
        started = time.monotonic()
        with warnings.catch_warnings(), _offline(offline), _requests_shown(out):
            warnings.simplefilter("always", errors.KernelLockWarning)
            warnings.showwarning = lambda message, category, *_, **__: (
                out.notice(str(message))
                if issubclass(category, errors.KernelLockNotice)
                else out.warn(str(message))
            )
            code = _run(fn, out, verbose, args, kwargs, offline=offline)
        out.detail(f"{fn.__name__.rstrip('_')} took {time.monotonic() - started:.2f}s")
        if json_mode and out.report is not None:
            out.emit(out.report)
        sys.exit(code or EXIT_OK)

    return wrapper  # type: ignore[return-value]


@contextlib.contextmanager
def _requests_shown(out: Output) -> Iterator[None]:
    """With --verbose, every HTTP request to the Hub as a line on stderr (the HTTP library logs them: httpx,
    or httpx2 under newer huggingface_hub)."""
    if not out.verbose:
        yield
        return
    import logging

    class ToDetail(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            out.detail(record.getMessage())

    handler = ToDetail()
    loggers = {logging.getLogger(name): logging.getLogger(name).level for name in ("httpx", "httpx2")}
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        for logger, level in loggers.items():
            logger.removeHandler(handler)
            logger.setLevel(level)


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


def _run(
    fn: Callable[..., int], out: Output, verbose: int, args: Any, kwargs: Any, *, offline: bool = False
) -> int:
    """Run a command; our errors (and any other) become one paragraph and an exit code."""
    try:
        if "target_spec" in kwargs:
            kwargs["target"] = take_target(kwargs)
        return fn(*args, out=out, **kwargs)
    except errors.HubOffline as exc:
        if offline:  # the option, not the environment, made this run offline
            exc = errors.HubOffline(exc.what, exc.repo_id, exc.endpoint, by_option=True)
        _fail(out, exc.code, str(exc), exit_code_for(exc))
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
