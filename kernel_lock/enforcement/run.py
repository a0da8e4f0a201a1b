"""`kernel-lock run`: a command with kernels enforcement (or recording) on in every Python process it starts.

The established way (`coverage run`, `opentelemetry-instrument`): the folder
holding our `sitecustomize` goes first on `PYTHONPATH`, so every Python
process the command starts, children too, turns enforcement on at start-up;
the environment's own `sitecustomize` still runs. `--sync` first syncs what is
missing, once across processes (a file lock in the cache), so 8 ranks started
together make one download. Without `--record` the command replaces this
process, so its exit status and signals are its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from kernel_lock import env

if TYPE_CHECKING:
    from kernel_lock.core.requirement import Dependency
    from kernel_lock.enforcement import Request

SITE_DIR = Path(__file__).parent / "site"
SYNC_LOCK = ".kernel-lock-run-sync.lock"


def lockfile_for(project: Path | None) -> Path:
    """The lock a run enforces (`find_lockfile`: `--project`'s, `KERNEL_LOCK_FILE`, the one found here), else the
    project's own, still to be written; absolute, for the command's environment."""
    from kernel_lock.load.find import find_lockfile
    from kernel_lock.project.paths import project_lockfile

    return (find_lockfile(project=project) or project_lockfile(None)).absolute()


def command_env(
    base: Mapping[str, str], *, lockfile: Path | None, record: Path | None = None, strict: bool = True
) -> dict[str, str]:
    """The environment of the command: our `sitecustomize` first on `PYTHONPATH`, and what it should do.

    Every variable that decides the mode is set here, whatever `base` holds: an inherited
    `KERNEL_LOCK_RECORD` or `KERNEL_LOCK_STRICT=0` would otherwise turn enforcement into recording or warnings.
    """
    child = {k: v for k, v in base.items() if k not in (env.ENFORCE, env.RECORD, env.STRICT)}
    child["PYTHONPATH"] = os.pathsep.join(
        [str(SITE_DIR), *([base["PYTHONPATH"]] if base.get("PYTHONPATH") else [])]
    )
    if record is not None:
        child[env.RECORD] = str(record)
    else:
        assert lockfile is not None
        child[env.ENFORCE] = "1"
        child[env.STRICT] = "1" if strict else "0"
        child[env.LOCK_FILE] = str(lockfile)
    return child


def sync_once(lockfile: Path) -> int:
    """Sync this machine's locked variants, one process at a time; returns the number of files downloaded."""
    from kernel_lock.cache.sync import selected_variants, sync_variants
    from kernel_lock.cache.writes import cache_file_lock
    from kernel_lock.core.cache_layout import hub_cache_dir
    from kernel_lock.core.lockfile import read_lock

    cache = hub_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with cache_file_lock(cache / SYNC_LOCK):
        pairs = selected_variants(read_lock(lockfile), target=None, names=(), all_variants=False)
        return sync_variants(pairs).downloaded_files


def exec_enforced(cmd: Sequence[str], lockfile: Path, *, strict: bool = True) -> None:
    """Replace this process with `cmd`, enforcement on in it and every Python process under it (`strict`: refuse)."""
    from kernel_lock.core.lockfile import read_lock

    read_lock(lockfile)  # a missing or malformed lock fails here, not in the middle of the program
    child = command_env(os.environ, lockfile=lockfile, strict=strict)
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvpe(cmd[0], list(cmd), child)
    except OSError as exc:
        from kernel_lock.errors import ConfigError

        raise ConfigError(
            f"Cannot run {cmd[0]!r}: {exc.strerror}. Check the command and your PATH."
        ) from None


@dataclass
class Recording:
    """What `run --record` saw and did."""

    exit_code: int
    requests: list[Request]
    added: dict[str, str]
    conflicts: list[str]
    ran: dict[Request, str] = field(default_factory=dict)
    """The commit `kernels` resolved each request to in the run, where it said."""


def run_recording(cmd: Sequence[str], project: Path | None) -> Recording:
    """Run `cmd` unenforced, note every kernel asked of `kernels`, add what pyproject lacks, and lock."""
    from kernel_lock.core.requirement import Dependency
    from kernel_lock.project.config import load_project

    proj = load_project(project)
    with tempfile.TemporaryDirectory(prefix="kernel-lock-record-") as tmp:
        log = Path(tmp) / "requests.jsonl"
        log.touch()
        child = command_env(os.environ, lockfile=None, record=log)
        try:
            exit_code = subprocess.call(list(cmd), env=child)
        except OSError as exc:
            from kernel_lock.errors import ConfigError

            raise ConfigError(
                f"Cannot run {cmd[0]!r}: {exc.strerror}. Check the command and your PATH."
            ) from None
        requests, ran = _read_requests(log)
    added: dict[str, Dependency] = {}
    conflicts = []
    for request in requests:
        dep = Dependency(
            version=request.version, revision=request.revision, trust_remote_code=request.trust_remote_code
        )
        have = proj.dependencies.get(request.repo_id) or added.get(request.repo_id)
        if have is None:
            added[request.repo_id] = dep
        elif (have.version, have.revision) != (dep.version, dep.revision):
            conflicts.append(
                f"{request.repo_id}: the program asked for {dep.describe()}, the project requires {have.describe()}"
            )
    if added:
        _add_and_lock(proj.root, added)
    return Recording(exit_code, requests, {r: d.describe() for r, d in added.items()}, conflicts, ran)


def _read_requests(log: Path) -> tuple[list[Request], dict[Request, str]]:
    """The distinct requests in a record log, in the order first seen, and the commit each ran, where known."""
    from kernel_lock.enforcement import Request

    seen: dict[Request, None] = {}
    ran: dict[Request, str] = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        data = json.loads(line)
        request = Request(data["repo_id"], data["version"], data["revision"], data["trust_remote_code"])
        seen.setdefault(request)
        if isinstance(data.get("commit"), str):
            ran.setdefault(request, data["commit"])
    return list(seen), ran


def moved_since_the_run(recording: Recording, lockfile: Path) -> list[str]:
    """One line for each kernel the lock pins to another commit than the one the recorded run loaded."""
    from kernel_lock.core.lockfile import read_lock_if_exists

    lock = read_lock_if_exists(lockfile)
    if lock is None:
        return []
    lines = []
    for request, commit in recording.ran.items():
        for entry in lock.kernel:
            same_requirement = (entry.version, entry.revision) == (request.version, request.revision)
            if request.repo_id in (entry.requested_repo, entry.repo_id) and same_requirement:
                if entry.commit != commit:
                    lines.append(
                        f"{request.repo_id} {request.describe()}: the run loaded commit {commit[:12]}, but kernels.lock "
                        f"holds {entry.commit[:12]}: the branch moved between the run and the lock. Run the program "
                        f"under `kernel-lock run` to try what is locked."
                    )
                break
    return lines


def _add_and_lock(root: Path, added: Mapping[str, Dependency]) -> None:
    """Add requirements to `[tool.kernels.dependencies]` (style-preserving) and lock; nothing written on error."""
    from kernel_lock.lock.requirements import lock_edited
    from kernel_lock.project.edit import set_dependencies

    lock_edited(root, lambda _current, text: set_dependencies(text, added))
