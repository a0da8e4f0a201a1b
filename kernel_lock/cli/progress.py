"""Progress on a terminal's stderr: sync's byte-level bar, and a spinner while something long runs."""

from __future__ import annotations

import contextlib
import itertools
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import click

from kernel_lock.cli.output import Output


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
