"""Output on a terminal, seen through a pseudo-terminal: sync's byte-level bar, the locking spinner, each variant
once, coloured `error:`/`warning:`; and none of it when the output is not a terminal."""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

from kernel_lock.testing.fixtures import CPU_VARIANT

KERNEL_LOCK = [sys.executable, "-m", "kernel_lock"]


def in_terminal(*args: str, env: dict[str, str] | None = None) -> str:
    """Run `kernel-lock ARGS` with stdin, stdout and stderr on a pseudo-terminal; everything it wrote."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a terminal has a size
    proc = subprocess.Popen(
        [*KERNEL_LOCK, *args], stdin=slave, stdout=slave, stderr=slave, env=env, close_fds=True
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=120) is not None
    return b"".join(chunks).decode("utf-8", errors="replace")


def test_sync_shows_one_byte_bar_and_each_variant_once(hub_env, make_project, cli) -> None:
    root = make_project('"kernels-community/relu" = 2')  # relu v2 and, through it, activation v1
    assert cli("lock", "--project", str(root)).exit_code == 0
    text = in_terminal("sync", "--project", str(root), "--target", CPU_VARIANT)
    assert "Fetching 10 file(s)" in text and "B/s" in text, text  # each metadata.json came with the lock
    for repo in ("kernels-community/relu", "kernels-community/activation"):
        assert text.count(f"{repo} {CPU_VARIANT}") == 1, text
    assert "\x1b[32mok\x1b[0m" in text, "ok is green on a terminal"
    assert "KiB." in text and " MB" not in text, "sizes in human units"
    piped = subprocess.run(
        [*KERNEL_LOCK, "sync", "--project", str(root), "--target", CPU_VARIANT],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert piped.returncode == 0 and "Fetching" not in piped.stderr and "\r" not in piped.stderr
    assert "\x1b[" not in piped.stdout


def test_lock_shows_a_spinner_on_a_terminal(hub_env, make_project) -> None:
    root = make_project('"kernels-community/relu" = 2')
    text = in_terminal("lock", "--project", str(root))
    assert "Locking 1 kernel(s)" in text and "+ kernels-community/relu v2 (" in text


def test_error_and_warning_are_coloured_on_a_terminal_only(hub_env, make_project, tmp_path: Path) -> None:
    root = make_project('"kernels-community/relu" = 1')  # version 2 exists: a notice
    text = in_terminal("lock", "--project", str(root))
    assert "\x1b[36m\x1b[1mnotice:\x1b[0m" in text
    missing = str(tmp_path / "nowhere")
    assert "\x1b[31m\x1b[1merror:\x1b[0m" in in_terminal("lock", "--project", missing)
    plain = in_terminal("lock", "--project", missing, "--color", "never")
    assert "error:" in plain and "\x1b[" not in plain
    no_color = in_terminal("lock", "--project", missing, env={**os.environ, "NO_COLOR": "1"})
    assert "error:" in no_color and "\x1b[" not in no_color
    forced = subprocess.run(
        [*KERNEL_LOCK, "lock", "--project", missing, "--color", "always"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "\x1b[31m\x1b[1merror:" in forced.stderr
