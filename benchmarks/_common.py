"""Shared helpers of the benchmarks: where the tools are, their environment, timing, statistics, tables.

Everything runs against `kernel_lock.testing.LocalHub` in *this* process; the tools under test run as
subprocesses (their own interpreters), so the server and the client never share a GIL. Scripts a child
interpreter runs are files in `children/`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHILDREN = Path(__file__).resolve().parent / "children"
REFERENCE_VARIANTS = ROOT / "tests" / "data" / "real-variant-names.txt"
# Interpreter and console scripts of the venv this script runs in (fall back to the repo's .venv).
BIN = (
    Path(sys.executable).parent
    if (Path(sys.executable).parent / "kernel-lock").exists()
    else ROOT / ".venv" / "bin"
)
PYTHON = str(BIN / "python")
KERNEL_LOCK = str(BIN / "kernel-lock")
KERNELS = str(BIN / "kernels")
UNREACHABLE = "http://127.0.0.1:9"  # an endpoint nothing answers: offline runs must not need one

_FALLBACK_REAL = [
    "torch-cpu",
    "torch-cuda",
    "torch-rocm",
    "torch-xpu",
    "torch213-cxx11-cpu-x86_64-linux",
    "torch213-cxx11-cu126-x86_64-linux",
    "torch213-cxx11-cu130-x86_64-linux",
]


def variant_names(n: int) -> list[str]:
    """`n` realistic variant names: the real ones seen on the Hub, then generated `torch2XX-cxx11-cuYYY-...`.

    With more real names than needed, the noarch ones and the newest torch versions are kept.
    """
    try:
        real = [line.strip() for line in REFERENCE_VARIANTS.read_text().splitlines() if line.strip()]
    except OSError:
        real = list(_FALLBACK_REAL)
    real = sorted(dict.fromkeys(real))
    noarch = [v for v in real if v.count("-") == 1]
    built = [v for v in real if v.count("-") > 1]
    if len(real) >= n:
        keep = noarch[: min(len(noarch), n)]
        return sorted(keep + built[len(built) - (n - len(keep)) :]) if n > len(keep) else sorted(keep)
    names = list(real)
    for torch in range(209, 199, -1):
        for cuda in ("118", "121", "124", "126", "128", "129", "130"):
            for arch in ("x86_64", "aarch64"):
                name = f"torch{torch}-cxx11-cu{cuda}-{arch}-linux"
                if name not in names:
                    names.append(name)
                if len(names) >= n:
                    return sorted(names)
    return sorted(names[:n])


def hub_env(url: str, cache: Path | None, *, pycache: Path | None = None) -> dict[str, str]:
    """Environment for a tool talking to the local Hub.

    `HF_HUB_USER_AGENT_ORIGIN` is set because kernels 0.17.2 with telemetry off sends a User-Agent ending
    in "; ", which the HTTP library rejects. With `pycache`, every module's bytecode is kept in that scratch
    tree: installed packages come with bytecode, and an editable checkout under PYTHONDONTWRITEBYTECODE=1
    would make kernel-lock (and only it) compile its modules from source in every process.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HF_", "HUGGINGFACE_", "KERNELS_", "KERNEL_LOCK_"))
    }
    env.update(
        HF_ENDPOINT=url,
        HF_HUB_USER_AGENT_ORIGIN="bench",
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        HF_HUB_DISABLE_IMPLICIT_TOKEN="1",
        HF_HUB_DISABLE_XET="1",
        NO_COLOR="1",
    )
    if cache is not None:
        env["HF_HUB_CACHE"] = str(cache)
        env["HF_HOME"] = str(cache.parent / (cache.name + "-home"))
    if pycache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(pycache)
    return env


def add_bytecode_option(parser: argparse.ArgumentParser) -> None:
    """`--as-is`: keep the caller's bytecode settings instead of a scratch `PYTHONPYCACHEPREFIX`."""
    parser.add_argument(
        "--as-is",
        action="store_true",
        help="keep the caller's bytecode settings (default: the tools byte-compile into a scratch "
        "PYTHONPYCACHEPREFIX, as installed packages would be)",
    )


def add_server_nodelay_option(parser: argparse.ArgumentParser) -> None:
    """`--server-nodelay`, a diagnostic: TCP_NODELAY on LocalHub's sockets (`apply_server_nodelay`)."""
    parser.add_argument(
        "--server-nodelay",
        action="store_true",
        help="diagnostic: set TCP_NODELAY on LocalHub's sockets (not what LocalHub ships)",
    )


def apply_server_nodelay(args: argparse.Namespace) -> None:
    """Set TCP_NODELAY on the sockets of every LocalHub started from now on, where `--server-nodelay` asks."""
    if args.server_nodelay:
        from kernel_lock.testing.http import _Handler

        _Handler.disable_nagle_algorithm = True


def offline_env(cache: Path, *, pycache: Path | None = None) -> dict[str, str]:
    """`hub_env` with `HF_HUB_OFFLINE=1` and an endpoint nothing answers: the Hub is gone."""
    return {**hub_env(UNREACHABLE, cache, pycache=pycache), "HF_HUB_OFFLINE": "1"}


@dataclass
class Run:
    """One timed subprocess run."""

    wall: float
    rc: int
    stdout: str
    stderr: str
    cpu: float = 0.0  # user + sys seconds of the process (and any children it waited for)
    requests: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def run_timed(
    cmd: Sequence[str], env: dict[str, str], *, cwd: Path | None = None, timeout: float = 900
) -> Run:
    """Run `cmd`, timing its wall clock from spawn to exit (interpreter start included) and its CPU time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(list(cmd), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(wall, proc.returncode, proc.stdout, proc.stderr, cpu)


def check_ok(run: Run, what: str) -> None:
    """Abort the benchmark (exit 2) when a tool failed: its figures would mean nothing."""
    if run.rc != 0:
        sys.stderr.write(
            f"\n{what} failed (exit {run.rc}).\n--- stdout ---\n{run.stdout[-4000:]}\n"
            f"--- stderr ---\n{run.stderr[-4000:]}\n"
        )
        raise SystemExit(2)


def run_checked(
    cmd: Sequence[str], env: dict[str, str], what: str, *, cwd: Path | None = None, timeout: float = 900
) -> Run:
    """`run_timed`, aborting the benchmark (exit 2) when the command fails."""
    run = run_timed(cmd, env, cwd=cwd, timeout=timeout)
    check_ok(run, what)
    return run


def last_json_line(run: Run) -> dict[str, Any]:
    """The JSON document a child script printed last."""
    data: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    return data


def importtime(stderr: str) -> list[tuple[int, int, str]]:
    """(self us, cumulative us, module) for each line `python -X importtime` wrote to `stderr`."""
    rows = []
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            parts = [p.strip() for p in line[len("import time:") :].split("|")]
            if len(parts) == 3 and parts[0].isdigit() and parts[1].isdigit():
                rows.append((int(parts[0]), int(parts[1]), parts[2]))
    return rows


def loadavg() -> list[float]:
    """The 1, 5 and 15 minute load averages (empty where the platform has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return []


@dataclass
class Stat:
    """Summary of repeated measurements (seconds unless said otherwise)."""

    values: list[float]

    @property
    def best(self) -> float:
        return min(self.values)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    @property
    def worst(self) -> float:
        return max(self.values)

    @property
    def spread(self) -> float:
        """(max - min) / median, a rough relative spread."""
        return (self.worst - self.best) / self.median if self.median else 0.0

    def ms(self) -> str:
        """`median  (best .. worst)` in milliseconds."""
        d = 1 if self.median >= 0.01 else 3
        return f"{self.median * 1e3:8.{d}f}  ({self.best * 1e3:.{d}f} .. {self.worst * 1e3:.{d}f})"

    def fmt(self, unit: str = "s", scale: float = 1.0, digits: int = 3) -> str:
        if len(self.values) == 1:
            return f"{self.values[0] * scale:.{digits}f} {unit} (n=1)"
        return (
            f"med {self.median * scale:.{digits}f} {unit}  best {self.best * scale:.{digits}f}  "
            f"worst {self.worst * scale:.{digits}f}  (n={len(self.values)}, spread {self.spread:.0%})"
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "values": self.values,
            "best": self.best,
            "median": self.median,
            "worst": self.worst,
            "spread": self.spread,
        }


def table(rows: Iterable[Sequence[str]], header: Sequence[str]) -> str:
    """A plain text table."""
    rows = [list(map(str, r)) for r in rows]
    widths = [
        max(len(str(h)), *(len(r[i]) for r in rows)) if rows else len(str(h)) for i, h in enumerate(header)
    ]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=False)), line]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) for r in rows]
    return "\n".join(out)


def machine_info(packages: Sequence[str] = ("huggingface_hub", "kernels")) -> dict[str, Any]:
    """What the figures were measured on: CPUs, Python, platform, the load, and the versions of `packages`."""
    from importlib.metadata import PackageNotFoundError, version

    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": loadavg(),
    }
    for package in packages:
        try:
            info[package] = version(package)
        except PackageNotFoundError:
            info[package] = None
    return info


def write_project(directory: Path, deps: dict[str, int]) -> Path:
    """A project directory whose pyproject.toml declares `deps` under [tool.kernels.dependencies]."""
    directory.mkdir(parents=True, exist_ok=True)
    body = "\n".join(f'"{repo}" = {version}' for repo, version in deps.items())
    (directory / "pyproject.toml").write_text(
        f'[project]\nname = "bench-project"\nversion = "0.0.0"\n\n[tool.kernels.dependencies]\n{body}\n'
    )
    return directory


def fresh_dir(base: Path, name: str) -> Path:
    """An empty directory `base/name` (removed first if present)."""
    path = base / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def tempdir(prefix: str) -> Path:
    """A scratch directory, preferring a real disk over tmpfs for large caches."""
    return Path(tempfile.mkdtemp(prefix=prefix))


def dump_json(path: str | None, data: dict[str, Any]) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        print(f"\nFigures written to {path}")


def count_by(records: Iterable[Any], key: Any) -> dict[str, int]:
    """Requests grouped by `key(record)`."""
    out: dict[str, int] = {}
    for record in records:
        k = key(record)
        out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def request_kind(record: Any) -> str:
    """A coarse class of a request for the tables: method + endpoint kind."""
    path = record.path
    if path.startswith("/api/organizations/"):
        kind = "org overview"
    elif "/refs" in path and path.startswith("/api/"):
        kind = "refs"
    elif "/tree/" in path:
        kind = "tree"
    elif "/paths-info/" in path:
        kind = "paths-info"
    elif path.startswith("/api/"):
        kind = "repo info"
    elif path.startswith("/cdn/"):
        kind = "cdn (lfs)"
    elif "/resolve/" in path:
        kind = "resolve " + (
            "metadata.json"
            if path.endswith("metadata.json")
            else "kernel-status.toml"
            if path.endswith("kernel-status.toml")
            else "file"
        )
    else:
        kind = "other"
    return f"{record.method} {kind}"
