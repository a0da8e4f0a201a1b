"""Options shared by commands: the project directory, and the target to select variants for."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from kernel_lock import env as environ
from kernel_lock import errors
from kernel_lock.cli.output import Output
from kernel_lock.core.target import BACKENDS, TargetChoice

F = TypeVar("F", bound=Callable[..., Any])

project_option = click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Project directory (default: nearest one upward holding pyproject.toml).",
)


def flag(name: str, help: str, *, dest: str | None = None) -> Callable[[F], F]:
    """A boolean option `name`, off unless given (its parameter `dest`, else named after it)."""
    return click.option(name, *([dest] if dest else []), is_flag=True, help=help)


def variant_options(verb: str, *, all_help: str) -> Callable[[F], F]:
    """`--variant NAME` (repeatable: the command `verb`s exactly these) and `--all-variants` (`all_help`)."""

    def add(fn: F) -> F:
        fn = flag("--all-variants", all_help)(fn)
        return click.option(
            "--variant",
            "variant_names",
            multiple=True,
            metavar="NAME",
            help=f"{verb} exactly this variant (repeatable).",
        )(fn)

    return add


def target_options(fn: F) -> F:
    """Options declaring the environment to select variants for; the command gets `target: TargetChoice | None`.

    One option per backend of `kernel_lock.core.target.BACKENDS`, so a new backend needs no change here. Put it
    above `@command`, which turns the options into the target (so a bad target is an error like any other).
    """
    backend_options = [
        click.option(
            f"--{b.name}",
            f"backend_{b.name}",
            metavar="X.Y" if b.prefix else None,
            is_flag=not b.prefix,
            default=None,
            help=f"Declared {b.label} version (e.g. {b.example})."
            if b.prefix
            else f"Declared {b.label} backend.",
        )
        for b in BACKENDS.values()
    ]
    options = [
        click.option(
            "--target",
            "target_spec",
            metavar="SPEC",
            help="Environment as a variant-like name, e.g. torch210-cxx11-cu128-x86_64-linux, or with its Python "
            "as kernels 0.19 names variants, torch-2.10-cxx11-cuda-12.8-cpython-3.12-abi3-x86_64-linux "
            "(default: KERNEL_LOCK_TARGET, else this machine).",
        ),
        click.option(
            "--torch", "torch_version", metavar="X.Y", help="Declared torch version (with a backend option)."
        ),
        *backend_options,
        click.option("--arch", metavar="ARCH", help="Declared CPU architecture (default: this machine's)."),
        click.option("--os", "os_name", metavar="OS", help="Declared OS (default: this machine's)."),
        click.option(
            "--python",
            "python_version",
            metavar="X.Y",
            help="Declared CPython version, e.g. 3.12 (default: the Python running kernel-lock).",
        ),
        click.option(
            "--free-threaded",
            "free_threaded",
            is_flag=True,
            default=None,
            help="Declared free-threaded CPython (3.13 or later).",
        ),
    ]

    for option in reversed(options):
        fn = option(fn)
    return fn


def take_target(kw: dict[str, Any]) -> TargetChoice | None:
    """Replace the target options in a command's kwargs by the `target` they declare (run by `command`)."""
    names = ("target_spec", "torch_version", "arch", "os_name", "python_version", "free_threaded")
    spec, torch, arch, os_name, python, free_threaded = (kw.pop(k) for k in names)
    backends = {name: kw.pop(f"backend_{name}") for name in BACKENDS}
    return declared_target(
        spec,
        torch=torch,
        arch=arch,
        os_name=os_name,
        python=python,
        free_threaded=free_threaded,
        backends=backends,
    )


def declared_target(
    spec: str | None,
    *,
    torch: str | None,
    arch: str | None,
    os_name: str | None,
    backends: dict[str, Any],
    python: str | None = None,
    free_threaded: bool | None = None,
) -> TargetChoice | None:
    """The target the options declare, or None to use `KERNEL_LOCK_TARGET` or this machine."""
    declared = any([torch, arch, os_name, python, free_threaded, *backends.values()])
    if spec and declared:
        raise errors.VariantError(
            "Give either --target SPEC or --torch/--cuda/--python/... options, not both "
            "(a --target spec names its Python as in torch-2.10-cxx11-cuda-12.8-cpython-3.12-abi3-x86_64-linux)."
        )
    if spec:
        from kernel_lock.core.target import parse_target

        return TargetChoice(parse_target(spec), "--target")
    if declared:
        from kernel_lock.core.target_options import target_from_options

        target = target_from_options(
            torch=torch, arch=arch, os=os_name, python=python, free_threaded=free_threaded, **backends
        )
        return TargetChoice(target, "options")
    return None


def announce_target(out: Output, declared: TargetChoice | None) -> TargetChoice:
    """Choose the target, say which (once per command), and warn where detection found no torch."""
    from kernel_lock.core.target import choose_target

    choice = choose_target(declared)
    out.note(f"Target: {choice.describe()}")
    if choice.source == "detected" and choice.target.torch is None:
        warnings.warn(
            "torch is not importable here, so the target is this machine without torch: only noarch variants "
            "(torch-universal, torch-cpu, ...) fit. If the kernels run elsewhere (a Docker build stage, another "
            f"machine), declare that environment with --target or {environ.TARGET}, e.g. "
            "--target torch210-cxx11-cu128-x86_64-linux.",
            errors.KernelLockWarning,
            stacklevel=2,
        )
    return choice
