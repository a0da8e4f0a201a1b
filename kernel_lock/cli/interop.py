"""Commands that convert to and from the `kernels` library's JSON locks: `export`, `import`."""

from __future__ import annotations

from pathlib import Path

import click

from kernel_lock import errors
from kernel_lock.cli.command import command
from kernel_lock.cli.exitcodes import EXIT_OK
from kernel_lock.cli.options import project_option
from kernel_lock.cli.output import Output


@click.command(name="export")
@project_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["kernels", "kernels-legacy"]),
    required=True,
    help="kernels: the JSON lock of kernels 0.17 to 0.19; kernels-legacy: the older JSON with per-variant hashes.",
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default: stdout)."
)
@command
def export(*, out: Output, project: Path | None, fmt: str, output: Path | None) -> int:
    """Write kernels.lock in the `kernels` library's JSON format.

    Without -o the exported lock itself is the output, so --json needs -o.
    """
    from kernel_lock.cli.reports import ExportReport
    from kernel_lock.core.fsutil import atomic_write
    from kernel_lock.core.lockfile import read_lock
    from kernel_lock.lock.interop import export_lock
    from kernel_lock.project.paths import project_lockfile

    lock = read_lock(project_lockfile(project))
    if output is None and out.json_mode:
        raise errors.ConfigError(
            "export --json needs -o FILE: without it, stdout is the exported lock itself."
        )
    text = export_lock(lock, fmt)  # type: ignore[arg-type]
    if output is None:
        click.echo(text, nl=False)
        return EXIT_OK
    atomic_write(output, text.encode("utf-8"))
    out.info(f"Wrote {output} ({fmt} format)")
    out.result(ExportReport(format=fmt, output=str(output), kernels=len(lock.kernel)))  # type: ignore[arg-type]
    return EXIT_OK


@click.command(name="import")
@click.argument("source", required=False, type=click.Path(dir_okay=False, path_type=Path))
@project_option
@command
def import_(*, out: Output, source: Path | None, project: Path | None) -> int:
    """Turn a `kernels` JSON lock (0.17 to 0.19, or legacy) into kernels.lock, keeping its commits.

    Without SOURCE, the project's own kernels.lock written by `kernels lock` is
    converted in place; the JSON is kept next to it as kernels.lock.kernels.json.
    """
    from kernel_lock.cli.reports import ImportReport
    from kernel_lock.lock.interop import import_lock

    result = import_lock(source, project)
    out.info(f"Imported {result.source} ({result.format} format): {len(result.lock.kernel)} kernel(s)")
    if result.backup is not None:
        out.info(f"Kept the `kernels` lock as {result.backup}")
    for repo, dep in result.added_dependencies.items():
        out.info(f"added {repo} ({dep.describe()}) to pyproject.toml")
    for path in result.written:
        out.info(f"Wrote {path}")
    out.result(
        ImportReport(
            format=result.format,
            source=str(result.source),
            backup=str(result.backup) if result.backup else None,
            written=[str(p) for p in result.written],
            added_dependencies={r: d.describe() for r, d in result.added_dependencies.items()},
        )
    )
    return EXIT_OK
