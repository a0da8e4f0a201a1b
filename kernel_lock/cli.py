"""`kernel-lock`: a thin command line over the Python API.

Heavy modules (huggingface_hub, torch) are imported inside commands, so
`kernel-lock --help` stays fast. Errors of our own become one paragraph on
stderr and an exit code from `EXIT_CODES`; nothing else prints a traceback
unless `--verbose` asks for one.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from kernel_lock import env, errors

F = TypeVar("F", bound=Callable[..., Any])

# The CLI uses no pydantic plugins; looking for them scans every installed
# package's entry points, about 0.1 s of each start.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

EXIT_OK = 0
EXIT_CODES: dict[type[errors.KernelLockError], int] = {
    errors.LockOutOfDate: 1,
    errors.ConfigError: 2,
    errors.LockfileError: 2,
    errors.ResolutionError: 2,
    errors.VariantError: 2,
    errors.MissingPythonDependency: 2,
    errors.HubError: 3,
    errors.VerificationError: 4,
}


def exit_code_for(exc: errors.KernelLockError) -> int:
    """The exit code of an error: that of its nearest class in `EXIT_CODES`."""
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 2


class Output:
    """Where a command writes: human text (quiet-able) or one JSON document; colour only on a terminal."""

    def __init__(self, *, json_mode: bool, quiet: bool, verbose: bool) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.verbose = verbose
        self.color = sys.stdout.isatty() and not env.no_color()

    def info(self, message: str) -> None:
        """A line of normal output (silenced by --quiet and --json)."""
        if not self.quiet and not self.json_mode:
            click.echo(message)

    def detail(self, message: str) -> None:
        """A line of --verbose output, on stderr."""
        if self.verbose:
            click.echo(message, err=True)

    def style(self, text: str, **kw: Any) -> str:
        """Colour `text` where colour is wanted."""
        return click.style(text, **kw) if self.color else text

    def result(self, data: Any) -> None:
        """The JSON document of a --json run."""
        if self.json_mode:
            click.echo(json.dumps(data, indent=2, sort_keys=True))


def _show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    click.echo(f"warning: {message}", err=True)


def command(fn: F) -> F:
    """Wrap a command: shared options, our warnings on stderr, our errors mapped to exit codes."""

    @click.option("--json", "json_mode", is_flag=True, help="Print one JSON document for scripts and CI.")
    @click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
    @click.option(
        "-v", "--verbose", is_flag=True, help="Print more detail (and tracebacks of unexpected errors)."
    )
    @functools.wraps(fn)
    def wrapper(*args: Any, json_mode: bool, quiet: bool, verbose: bool, **kwargs: Any) -> None:
        out = Output(json_mode=json_mode, quiet=quiet, verbose=verbose)
        warnings.showwarning = _show_warning
        try:
            code = fn(*args, out=out, **kwargs)
        except errors.KernelLockError as exc:
            if json_mode:
                click.echo(json.dumps({"error": str(exc), "kind": type(exc).__name__}, indent=2))
            click.echo(f"error: {exc}", err=True)
            sys.exit(exit_code_for(exc))
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)
        except OSError as exc:
            if verbose:
                raise
            click.echo(
                f"error: {exc.strerror or exc} ({exc.filename or type(exc).__name__}). Check the path and its permissions.",
                err=True,
            )
            sys.exit(2)
        except Exception as exc:
            if verbose:
                raise
            click.echo(
                f"error: unexpected {type(exc).__name__}: {exc}. This is a bug in kernel-lock; "
                f"run again with --verbose for the traceback and report it.",
                err=True,
            )
            sys.exit(70)
        sys.exit(code or EXIT_OK)

    return wrapper  # type: ignore[return-value]


project_option = click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Project directory (default: nearest one upward holding pyproject.toml).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kernel-lock")
def main() -> None:
    """Lock, sync and verify Hugging Face Hub kernels for reproducible, tamper-evident loading.

    Exit codes: 0 ok, 1 check failed (lock out of date), 2 bad input,
    3 network or Hub error, 4 verification failed.
    """


@main.command()
@project_option
@click.option("--upgrade", "-U", is_flag=True, help="Re-resolve every kernel to its branch head.")
@click.option(
    "--upgrade-package", "-P", multiple=True, metavar="REPO", help="Re-resolve just this kernel (repeatable)."
)
@click.option(
    "--check", "--locked", "check", is_flag=True, help="Change nothing; exit 1 if the lock is out of date."
)
@command
def lock(
    *, out: Output, project: Path | None, upgrade: bool, upgrade_package: tuple[str, ...], check: bool
) -> int:
    """Resolve [tool.kernels] dependencies and write kernels.lock."""
    from kernel_lock.config import load_project
    from kernel_lock.lockfile import read_lock_if_exists
    from kernel_lock.locking import load_project_online, lock_differences, lock_project, recheck_signatures

    proj = load_project(project) if check else load_project_online(project)
    if check:
        current = read_lock_if_exists(proj.lockfile)
        problems = lock_differences(proj, current)
        if problems or current is None:
            out.result({"up_to_date": False, "differences": problems, "lockfile": str(proj.lockfile)})
            for line in problems:
                click.echo(f"  {line}", err=True)
            click.echo(f"error: {proj.lockfile} is out of date. Run `kernel-lock lock`.", err=True)
            return 1
        signatures = recheck_signatures(proj, current)
        if signatures.unavailable:
            warnings.warn(
                f"{len(signatures.unavailable)} signed variant(s) not verified again: their metadata.json is "
                f"neither kept from `kernel-lock lock` nor synced on this machine "
                f"(e.g. {signatures.unavailable[0]}).",
                stacklevel=1,
            )
        out.result(
            {
                "up_to_date": True,
                "differences": [],
                "lockfile": str(proj.lockfile),
                "signatures_verified": signatures.verified,
                "signatures_unavailable": signatures.unavailable,
            }
        )
        out.info(
            f"{proj.lockfile.name} is up to date ({len(proj.dependencies)} kernel(s); "
            f"{signatures.verified} signature(s) verified again)."
        )
        return 0
    from kernel_lock.migrate import function_repository_notice

    notice = function_repository_notice(proj.root)
    if notice:
        warnings.warn(notice, stacklevel=1)
    unknown = sorted(set(upgrade_package) - set(proj.dependencies))
    if unknown:
        raise errors.ConfigError(
            f"--upgrade-package {', '.join(unknown)}: not in [tool.kernels.dependencies] of {proj.pyproject}."
        )
    result = lock_project(proj, upgrade=upgrade, upgrade_packages=upgrade_package)
    for kind, names in (("added", result.added), ("updated", result.updated), ("removed", result.removed)):
        for name in names:
            out.detail(f"{kind} {name}")
    for entry in result.lock.kernel:
        via = f" (via {entry.redirected_from})" if entry.redirected_from else ""
        out.info(f"{entry.repo_id}{via} {entry.ref} @ {entry.commit[:12]}: {len(entry.variants)} variant(s)")
    verb = "Wrote" if result.written else "Unchanged:"
    out.info(f"{verb} {result.path}")
    out.result(
        {
            "lockfile": str(result.path),
            "written": result.written,
            "added": result.added,
            "updated": result.updated,
            "removed": result.removed,
            "kernels": [k.model_dump(by_alias=True, exclude_none=True) for k in result.lock.kernel],
        }
    )
    return 0


def target_options(fn: F) -> F:
    """Options that declare the environment to select variants for (default: this machine)."""
    options = [
        click.option(
            "--target",
            "target_spec",
            metavar="SPEC",
            help="Environment as a variant-like name, e.g. torch210-cxx11-cu128-x86_64-linux.",
        ),
        click.option(
            "--torch",
            "torch_version",
            metavar="X.Y",
            help="Declared torch version (with --cuda/--rocm/--xpu/--cpu/--metal).",
        ),
        click.option("--cuda", metavar="X.Y", help="Declared CUDA version."),
        click.option("--rocm", metavar="X.Y", help="Declared ROCm version."),
        click.option("--xpu", metavar="X.Y", help="Declared XPU version."),
        click.option("--cpu", "cpu_backend", is_flag=True, help="Declared CPU-only backend."),
        click.option("--metal", is_flag=True, help="Declared Metal backend."),
        click.option("--arch", metavar="ARCH", help="Declared CPU architecture (default: this machine's)."),
        click.option("--os", "os_name", metavar="OS", help="Declared OS (default: this machine's)."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def resolve_target(
    *,
    target_spec: str | None,
    torch_version: str | None,
    cuda: str | None,
    rocm: str | None,
    xpu: str | None,
    cpu_backend: bool,
    metal: bool,
    arch: str | None,
    os_name: str | None,
) -> Any:
    """The declared target from the options, or None to detect this machine."""
    declared = any([torch_version, cuda, rocm, xpu, cpu_backend, metal, arch, os_name])
    if target_spec and declared:
        raise errors.VariantError("Give either --target SPEC or --torch/--cuda/... options, not both.")
    if target_spec:
        from kernel_lock.target import parse_target

        return parse_target(target_spec)
    if declared:
        from kernel_lock.target import target_from_options

        return target_from_options(
            torch=torch_version,
            cuda=cuda,
            rocm=rocm,
            xpu=xpu,
            cpu=cpu_backend,
            metal=metal,
            arch=arch,
            os=os_name,
            cxx11_abi=None,
        )
    return None


TARGET_KEYS = (
    "target_spec",
    "torch_version",
    "cuda",
    "rocm",
    "xpu",
    "cpu_backend",
    "metal",
    "arch",
    "os_name",
)


def pop_target(kwargs: dict[str, Any]) -> Any:
    """Take the target options out of a command's kwargs and build the target."""
    return resolve_target(**{k: kwargs.pop(k) for k in TARGET_KEYS})


def _check_json(check: Any) -> dict[str, Any]:
    return {
        "repo_id": check.repo_id,
        "commit": check.commit,
        "variant": check.variant,
        "status": check.status,
        "path": str(check.path),
        "problems": [str(p) for p in check.problems],
    }


@main.command()
@project_option
@target_options
@click.option(
    "--variant",
    "variant_names",
    multiple=True,
    metavar="NAME",
    help="Sync exactly this variant (repeatable).",
)
@click.option("--all-variants", is_flag=True, help="Sync every locked variant.")
@click.option(
    "--frozen", is_flag=True, help="Use kernels.lock as is, without checking it against pyproject.toml."
)
@command
def sync(
    *,
    out: Output,
    project: Path | None,
    variant_names: tuple[str, ...],
    all_variants: bool,
    frozen: bool,
    **kw: Any,
) -> int:
    """Fetch the locked variant(s) into the Hugging Face cache and verify every file."""
    from kernel_lock.sync import sync_project

    target = pop_target(kw)
    progress = (lambda msg: click.echo(msg, err=True)) if sys.stderr.isatty() and not out.quiet else None
    result = sync_project(
        project,
        target=target,
        variants=variant_names,
        all_variants=all_variants,
        frozen=frozen,
        progress=progress,
    )
    for check in result.checks:
        out.info(f"{out.style('ok', fg='green')} {check.repo_id} {check.variant} ({check.commit[:12]})")
    size_mb = result.downloaded_bytes / 1e6
    out.info(
        f"Synced {len(result.checks)} variant(s); downloaded {result.downloaded_files} file(s), {size_mb:.1f} MB."
    )
    out.result(
        {
            "variants": [_check_json(c) for c in result.checks],
            "downloaded_files": result.downloaded_files,
            "downloaded_bytes": result.downloaded_bytes,
        }
    )
    return 0


@main.command()
@project_option
@target_options
@click.option(
    "--variant",
    "variant_names",
    multiple=True,
    metavar="NAME",
    help="Verify exactly this variant (repeatable).",
)
@click.option(
    "--all-variants", is_flag=True, help="Verify every locked variant (those not synced report missing)."
)
@click.option(
    "--full",
    is_flag=True,
    help="Hash every file, ignoring recorded fingerprints (as KERNEL_LOCK_VERIFY=full).",
)
@click.option(
    "--signatures",
    is_flag=True,
    help="Also verify each variant's publisher signature again (offline) against pyproject.toml's signers.",
)
@command
def verify(
    *,
    out: Output,
    project: Path | None,
    variant_names: tuple[str, ...],
    all_variants: bool,
    full: bool,
    signatures: bool,
    **kw: Any,
) -> int:
    """Re-verify synced kernels in the cache against kernels.lock, offline."""
    from kernel_lock.config import find_project_root
    from kernel_lock.lockfile import read_lock
    from kernel_lock.sync import selected_variants
    from kernel_lock.verify import check_variant

    target = pop_target(kw)
    lock = read_lock(find_project_root(project) / "kernels.lock")
    pairs = selected_variants(lock, target=target, names=variant_names, all_variants=all_variants)
    checks = [check_variant(entry, variant, mode="full" if full else None) for entry, variant in pairs]
    signers = _recheck_synced_signatures(project, pairs, checks) if signatures else {}
    for check in checks:
        colour = {"ok": "green", "missing": "yellow", "corrupt": "red"}[check.status]
        signed = (
            f"  {signers[check.variant, check.repo_id]}" if (check.variant, check.repo_id) in signers else ""
        )
        out.info(
            f"{out.style(check.status, fg=colour)} {check.repo_id} {check.variant} ({check.commit[:12]}){signed}"
        )
        for problem in check.problems:
            out.info(f"    {problem}")
    out.result({"ok": all(c.ok for c in checks), "variants": [_check_json(c) for c in checks]})
    bad = [c for c in checks if not c.ok]
    if bad:
        click.echo(f"error: {len(bad)} of {len(checks)} variant(s) failed verification.", err=True)
        return 4
    return 0


def _recheck_synced_signatures(project: Path | None, pairs: list[Any], checks: list[Any]) -> dict[Any, str]:
    """Verify the signature of every variant that verified, from its synced files; a failure is a problem.

    Returns (variant, repo) -> "signed by ..." / "unsigned" for the lines of output.
    """
    from kernel_lock.config import load_project
    from kernel_lock.signatures import Verifiers, check_synced_signature
    from kernel_lock.verify import FileProblem

    signing = load_project(project).signing()
    verifiers = Verifiers()
    shown = {}
    for check, (entry, variant) in zip(checks, pairs, strict=True):
        if not check.ok:
            continue
        try:
            signer = check_synced_signature(
                entry,
                variant,
                signing.policy(entry.requested_repo),
                lambda: verifiers.get(signing.trusted_root),
            )
        except errors.SignatureError as exc:
            check.status = "corrupt"
            check.problems.append(FileProblem("metadata.json.sigstore", f"signature: {exc}"))
            continue
        shown[variant, entry.repo_id] = f"signed by {signer.describe()}" if signer else "unsigned"
    return shown


def _lock_summary(out: Output, result: Any) -> None:
    """What a lock-writing command changed, as lines and as JSON."""
    for kind, names in (("added", result.added), ("updated", result.updated), ("removed", result.removed)):
        for name in names:
            out.info(f"{kind} {name}")
    out.info(f"{'Wrote' if result.written else 'Unchanged:'} {result.path}")


@main.command()
@click.argument("repo")
@target_options
@command
def versions(*, out: Output, repo: str, **kw: Any) -> int:
    """List the major versions of REPO and their build variants; ✅ marks what this environment would load."""
    from kernel_lock.hub import Hub
    from kernel_lock.target import default_target
    from kernel_lock.versions import list_versions

    target = pop_target(kw) or default_target()
    holder, infos = list_versions(repo, hub=Hub(), target=target)
    if holder != repo:
        out.info(f"{repo} redirects to {holder}")
    if not infos:
        out.info(f"{holder} has no major versions (no vN branches).")
    for info in infos:
        names = [f"{v} ✅" if v == info.selected else v for v in info.variants]
        label = f"Version {info.version}" + (
            " (unstable: alpha/beta, no API promise)" if info.unstable else ""
        )
        out.info(f"{label}: {', '.join(names)}")
    out.result(
        {
            "repo_id": holder,
            "target": target.describe(),
            "versions": [
                {
                    "version": i.version,
                    "commit": i.commit,
                    "unstable": i.unstable,
                    "variants": i.variants,
                    "selected": i.selected,
                }
                for i in infos
            ],
        }
    )
    return 0


@main.command()
@click.argument("repo")
@project_option
@click.option("--version", "version", type=click.IntRange(min=0), help="Major version (default: the newest).")
@click.option("--revision", metavar="REV", help="A branch, tag or 40-hex commit instead of a version.")
@click.option(
    "--trust-remote-code", is_flag=True, help="Allow a repo whose publisher is not trusted on the Hub."
)
@command
def add(
    *,
    out: Output,
    repo: str,
    project: Path | None,
    version: int | None,
    revision: str | None,
    trust_remote_code: bool,
) -> int:
    """Add REPO to [tool.kernels.dependencies] (keeping the rest of pyproject.toml) and update the lock."""
    from kernel_lock.locking import add_dependency

    if version is not None and revision is not None:
        raise errors.ConfigError("Give --version or --revision, not both.")
    dep, result = add_dependency(
        repo, project, version=version, revision=revision, trust_remote_code=trust_remote_code
    )
    out.info(f"Added {repo} ({dep.describe()}) to {result.path.parent / 'pyproject.toml'}")
    _lock_summary(out, result)
    out.result(
        {
            "repo_id": repo,
            "requirement": dep.describe(),
            "lockfile": str(result.path),
            "added": result.added,
            "updated": result.updated,
            "removed": result.removed,
        }
    )
    return 0


@main.command()
@click.argument("repo")
@project_option
@command
def remove(*, out: Output, repo: str, project: Path | None) -> int:
    """Remove REPO from [tool.kernels.dependencies] and from the lock."""
    from kernel_lock.locking import remove_dependency

    result = remove_dependency(repo, project)
    out.info(f"Removed {repo} from {result.path.parent / 'pyproject.toml'}")
    _lock_summary(out, result)
    out.result({"repo_id": repo, "lockfile": str(result.path), "removed": result.removed})
    return 0


@main.command()
@project_option
@target_options
@click.option("--outdated", is_flag=True, help="Also ask the Hub for newer major versions and newer commits.")
@command
def status(*, out: Output, project: Path | None, outdated: bool, **kw: Any) -> int:
    """One row per locked kernel: requirement, commit, selected variant, sync state, Python needs."""
    from kernel_lock.status import project_status

    rows = project_status(project, target=pop_target(kw), outdated=outdated)
    colours = {"verified": "green", "missing": "yellow", "corrupt": "red"}
    for row in rows:
        e = row.entry
        name = e.requested_repo if e.direct else f"  {e.requested_repo} (dependency)"
        variant = row.variant or f"no variant fits ({row.variant_error})"
        line = f"{name}  {e.requirement().describe()}  {e.commit[:12]}  {variant}  {out.style(row.sync, fg=colours[row.sync])}"
        if row.variant:
            line += f"  signed by {row.signer.describe()}" if row.signer else "  unsigned"
        if row.python_missing:
            line += f"  missing Python packages: {', '.join(row.python_missing)}"
        elif row.python_depends:
            line += f"  needs: {', '.join(row.python_depends)}"
        if row.newer_version is not None:
            line += f"  (version {row.newer_version} available)"
        if row.newer_commit is not None:
            line += f"  ({e.ref} moved to {row.newer_commit[:12]}; `kernel-lock lock -P {e.requested_repo}`)"
        out.info(line)
        for problem in row.problems:
            out.info(f"    {problem}")
    out.result({"kernels": [row.to_json() for row in rows]})
    return 1 if outdated and any(r.newer_version is not None or r.newer_commit for r in rows) else 0


main.add_command(status, name="show")


@main.command(name="export")
@project_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["kernels", "kernels-legacy"]),
    required=True,
    help="kernels: the JSON lock of kernels 0.17; kernels-legacy: the older JSON with per-variant hashes.",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default: stdout)."
)
@command
def export(*, out: Output, project: Path | None, fmt: str, output: Path | None) -> int:
    """Write kernels.lock in the `kernels` library's JSON format."""
    from kernel_lock.config import find_project_root
    from kernel_lock.fsutil import atomic_write
    from kernel_lock.interop import export_lock
    from kernel_lock.lockfile import read_lock

    text = export_lock(read_lock(find_project_root(project) / "kernels.lock"), fmt)  # type: ignore[arg-type]
    if output is None:
        click.echo(text, nl=False)
    else:
        atomic_write(output, text.encode("utf-8"))
        out.info(f"Wrote {output} ({fmt} format)")
    return 0


@main.command(name="import")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@project_option
@command
def import_(*, out: Output, source: Path, project: Path | None) -> int:
    """Turn a `kernels` JSON lock (0.17 or legacy) into kernels.lock, keeping its commits."""
    from kernel_lock.interop import import_lock

    result = import_lock(source, project)
    out.info(f"Imported {source} ({result.format} format): {len(result.lock.kernel)} kernel(s)")
    for repo, dep in result.added_dependencies.items():
        out.info(f"added {repo} ({dep.describe()}) to pyproject.toml")
    for path in result.written:
        out.info(f"Wrote {path}")
    out.result(
        {
            "format": result.format,
            "written": [str(p) for p in result.written],
            "added_dependencies": {r: d.describe() for r, d in result.added_dependencies.items()},
        }
    )
    return 0


@main.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@project_option
@click.option(
    "--sync", "sync_first", is_flag=True, help="First sync what is missing (once across processes)."
)
@click.option(
    "--record",
    is_flag=True,
    help="Run unenforced, online; add every kernel it asks for to pyproject.toml; lock.",
)
@click.argument("cmd", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD [ARGS]...")
@command
def run(*, out: Output, project: Path | None, sync_first: bool, record: bool, cmd: tuple[str, ...]) -> int:
    """Run CMD with every kernel the `kernels` library loads answered from kernels.lock, verified, offline.

    Every Python process CMD starts, children too, is enforced (a
    `sitecustomize` on PYTHONPATH). The exit status is CMD's.
    """
    from kernel_lock import run as runner

    if record:
        if sync_first:
            raise errors.ConfigError(
                "--record runs unenforced and online; it cannot be combined with --sync."
            )
        rec = runner.run_recording(cmd, project)
        for request in rec.requests:
            out.info(f"asked for {request.repo_id} {request.describe()}")
        for repo, requirement in rec.added.items():
            out.info(f"added {repo} ({requirement}) to pyproject.toml")
        for conflict in rec.conflicts:
            click.echo(f"warning: {conflict}; pyproject.toml left as it is.", err=True)
        out.result(
            {
                "exit_code": rec.exit_code,
                "requests": [r.__dict__ for r in rec.requests],
                "added": rec.added,
                "conflicts": rec.conflicts,
            }
        )
        return rec.exit_code
    lockfile = runner.lockfile_for(project)
    if sync_first:
        downloaded = runner.sync_once(lockfile)
        out.detail(f"synced before the run: {downloaded} file(s) downloaded")
    runner.exec_enforced(cmd, lockfile)
    return 0
