"""The supported upstream stacks, each tested: `nox` runs the kernels tests on the stacks older than the newest.

The newest stack (kernels 0.19.1 with transformers 5.25.0) is the `test` extra, so the README's test command
runs the whole suite on it; each session here installs one older stack into a fresh virtual environment and
runs the tests marked `kernels` (enforcement, `run`, variant selection against the library, interop).
"""

from __future__ import annotations

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = False

STACKS = {
    "kernels-0.17": (
        "0.17.2",
        "5.22.2",
    ),  # transformers 5.22.2 is the newest release that accepts kernels 0.17
    "kernels-0.18": ("0.18.3", "5.24.0"),  # transformers 5.23 and 5.24 accept kernels >=0.18.2,<0.19
}
TORCH = "torch==2.13.0"  # the CPU build the tests pin


@nox.session
@nox.parametrize("stack", list(STACKS), ids=list(STACKS))
def upstream(session: nox.Session, stack: str) -> None:
    """The tests marked `kernels`, with one older supported `kernels` and the transformers that accepts it."""
    kernels, transformers = STACKS[stack]
    session.install(
        "-q", "-e", ".[torch,test-tools]", TORCH, f"kernels=={kernels}", f"transformers=={transformers}"
    )
    session.run("python", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "kernels", *session.posargs)
