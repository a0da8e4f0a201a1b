"""`python -m kernel_lock.testing serve`: the embedded local Hub with its demo kernels, to try kernel-lock offline.

It serves what the test suite uses (`kernel_lock.testing.fixtures.populate`) on 127.0.0.1 until Ctrl-C, and
prints the `HF_ENDPOINT` to point kernel-lock (or `huggingface_hub`, or `kernels`) at.
"""

from __future__ import annotations

import argparse
import sys
import threading
from collections.abc import Sequence

DEMO_KERNELS = (
    ("kernels-community/relu", "versions 1 and 2 (2 needs activation 1)"),
    ("kernels-community/activation", "version 1"),
    ("kernels-community/old-relu", "redirects to kernels-community/relu"),
    ("my-org/untrusted-kernel", "version 1, from a publisher the Hub does not trust"),
)


def serve(port: int) -> int:
    """Serve the demo Hub until interrupted."""
    from kernel_lock.testing import LocalHub, populate

    hub = LocalHub()
    populate(hub)
    try:
        url = hub.start(port)
    except OSError as exc:
        print(
            f"error: cannot serve on 127.0.0.1:{port}: {exc.strerror}. Pick another --port.", file=sys.stderr
        )
        return 2
    kernels = "\n".join(f"  {repo:30} {what}" for repo, what in DEMO_KERNELS)
    print(
        f"Local Hub at {url}, serving:\n{kernels}\n\n"
        f"In another shell, point kernel-lock at it (with a cache of its own):\n"
        f"  export HF_ENDPOINT={url} HF_HUB_CACHE=$PWD/.demo-hf-cache\n"
        f"Ctrl-C stops it.",
        flush=True,
    )
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m kernel_lock.testing", description=__doc__.splitlines()[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser(
        "serve", help="Serve the local Hub with its demo kernels until Ctrl-C."
    )
    serve_parser.add_argument("--port", type=int, default=8765, help="Port on 127.0.0.1 (0: any free one).")
    args = parser.parse_args(argv)
    return serve(args.port)


if __name__ == "__main__":
    sys.exit(main())
