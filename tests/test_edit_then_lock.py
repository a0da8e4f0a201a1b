"""`add`, `remove` and `run --record` edit pyproject.toml and lock in one step (`lock_edited`): both files or neither.

The disk fills up (a file-size limit, as a quota would) between the new pyproject.toml and the new lock: the
project must not be left requiring a kernel its lock does not hold.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

REPO = "kernels-community/relu"
ADD_UNDER_A_FILE_SIZE_LIMIT = """
    import resource, sys
    from pathlib import Path
    from kernel_lock.lock.requirements import add_dependencies

    limit = int(sys.argv[2])
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    try:
        add_dependencies({{"{repo}": (1, None)}}, Path(sys.argv[1]))
    except OSError as exc:
        print("refused:", exc.strerror)
"""


def test_a_lock_that_cannot_be_written_leaves_pyproject_as_it_was(
    hub_env, make_project, cli, tmp_path
) -> None:
    root = make_project()
    assert cli("lock", "--project", str(root)).exit_code == 0
    before = {name: (root / name).read_bytes() for name in ("pyproject.toml", "kernels.lock")}
    # Warm the Hub caches, so that the only files the add writes are the two of the project.
    other = make_project(f'"{REPO}" = 1', name="other")
    assert cli("lock", "--project", str(other)).exit_code == 0
    limit = len((other / "pyproject.toml").read_bytes()) + 64
    assert len((other / "kernels.lock").read_bytes()) > limit
    program = tmp_path / "add.py"
    program.write_text(textwrap.dedent(ADD_UNDER_A_FILE_SIZE_LIMIT.format(repo=REPO)))
    proc = subprocess.run(
        [sys.executable, str(program), str(root), str(limit)], capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.startswith("refused: File too large"), proc.stdout + proc.stderr
    assert {name: (root / name).read_bytes() for name in before} == before
