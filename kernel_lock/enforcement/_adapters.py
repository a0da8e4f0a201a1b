"""One adapter per `kernels` release family: where it keeps what enforcement hooks, and what differs.

- 0.17: modules at `kernels.*`; layer and function repositories turn a
  version into a commit themselves (`_resolve_revision`), over the network.
- 0.18: the same modules; repositories load through `get_kernel`; kernel
  validators check digests and signatures at load (and keep receipts);
  commits are `Oid`s.
- 0.19: every module under `kernels._internals`; `UNSTABLE_KERNELS_ALL_LATEST`
  swaps in `LatestHubResolver`.

An adapter lists every place it hooks; if one is missing the installed
release is not the one the adapter was written for, and enforcement refuses
to start rather than leave a way around the lock.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from kernel_lock import env
from kernel_lock.enforcement import _hooks
from kernel_lock.enforcement._modes import refuse_overrides
from kernel_lock.errors import UnsupportedKernelsVersion, VerificationError

if TYPE_CHECKING:
    from kernel_lock.core.lockfile import LockedKernel

_HUB_RESOLVERS = ("HubResolver", "HubCacheResolver", "LockedHubResolver", "LockedHubCacheResolver")
_PATH_RESOLVERS = ("RepoPathsResolver", "KernelPathsResolver")


@dataclass(frozen=True)
class Adapter:
    """How enforcement reaches one release family of `kernels`."""

    family: tuple[int, int]
    package: str = "kernels"
    """Where the family keeps its modules: `kernels` or `kernels._internals`."""
    overrides: tuple[str, ...] = (env.LOCAL_KERNELS,)
    """The family's environment variables that would load something other than the lock."""
    resolves_revisions: bool = False
    """Layer and function repositories resolve a version to a commit themselves (`_resolve_revision`)."""
    validates_kernels: bool = True
    """Kernel validators (digest, signature) run on every loaded variant."""
    latest_resolver: bool = False
    """`UNSTABLE_KERNELS_ALL_LATEST` has a resolver of its own."""
    commits_are_oids: bool = True
    """`RepoInfo.revision` is a `kernels._rust.Oid`, not a string."""

    def module(self, name: str) -> ModuleType:
        return importlib.import_module(f"{self.package}.{name}")

    def _hooks(self) -> list[tuple[str, str, str, Callable[[Any], Any]]]:
        """(module, class or "", attribute, hook factory) for every place this family is hooked."""
        hooks: list[tuple[str, str, str, Callable[[Any], Any]]] = [
            *(("resolver", c, "resolve", lambda o: _hooks.hub_resolve(self, o)) for c in _HUB_RESOLVERS),
            *(("resolver", c, "resolve", lambda o: _hooks.path_resolve(self, o)) for c in _PATH_RESOLVERS),
            ("deps", "", "_import_from_path", lambda o: _hooks.import_from_path(self, o)),
            ("deps", "", "resolve_kernel_tree", _hooks.kernel_tree),
            ("install", "", "install_kernel_all_variants", _hooks.install_all_variants),
        ]
        if self.resolves_revisions:
            hooks += [
                ("layer.layer", "LayerRepository", "_resolve_revision", _hooks.repository_revision),
                ("layer.func", "FuncRepository", "_resolve_revision", _hooks.repository_revision),
            ]
        if self.validates_kernels:
            hooks += [
                ("validate", v, "validate_kernel", _hooks.validate_kernel)
                for v in ("DigestValidator", "SignatureValidator")
            ]
        if self.latest_resolver:
            hooks.append(
                ("resolver", "LatestHubResolver", "resolve", lambda o: _hooks.latest_resolve(self, o))
            )
        return hooks

    def install(self, patch: Callable[[Any, str, Any], None]) -> None:
        """Check that every hooked place exists, then hook them all through `patch(owner, name, value)`."""
        found = []
        missing = []
        for module_name, class_name, attribute, factory in self._hooks():
            where = f"{self.package}.{module_name}" + (f".{class_name}" if class_name else "")
            try:
                module = self.module(module_name)
            except ImportError:
                missing.append(f"{where}.{attribute}")
                continue
            owner = getattr(module, class_name, None) if class_name else module
            if owner is None or not hasattr(owner, attribute):
                missing.append(f"{where}.{attribute}")
                continue
            found.append((owner, attribute, factory, class_name == ""))
        if missing:
            raise _unsupported(str(getattr(sys.modules.get("kernels"), "__version__", "unknown")), missing)
        for owner, attribute, factory, is_function in found:
            original = owner.__dict__[attribute] if isinstance(owner, type) else getattr(owner, attribute)
            value = factory(original)
            if is_function:
                for module in self._holders(original, attribute):
                    patch(module, attribute, value)
            else:
                patch(owner, attribute, value)

    def _holders(self, function: Any, name: str) -> list[ModuleType]:
        """Every imported module of `kernels` that holds `function` under `name` (imported by name elsewhere)."""
        return [
            module
            for module_name, module in list(sys.modules.items())
            if (module_name == "kernels" or module_name.startswith("kernels."))
            and module is not None
            and module.__dict__.get(name) is function
        ]

    def refuse_overrides(self) -> None:
        refuse_overrides(self.overrides)

    def local_kernel(self, path: Path) -> Any:
        """A verified variant folder as the family's `LocalKernel` (no Hub origin: upstream does not re-check it)."""
        local_kernel = self.module("resolver").LocalKernel
        return local_kernel(variant_path=path, metadata=_metadata(path))

    def register_loaded(self, variant_path: Path, module: ModuleType, entry: LockedKernel) -> None:
        """List a kernel kernel-lock imported in `kernels.get_loaded_kernels()`, as `kernels` would have."""
        importer = self.module("importer")
        if variant_path in importer._loaded_kernels:
            return
        revision: Any = entry.commit
        if self.commits_are_oids:
            from kernels._rust import Oid

            revision = Oid.from_str(entry.commit)
        importer._loaded_kernels[variant_path] = importer.LoadedKernel(
            metadata=_metadata(variant_path),
            module=module,
            repo_info=self.module("hf_hub").RepoInfo(repo_id=entry.repo_id, revision=revision),
        )


def _metadata(variant_path: Path) -> Any:
    """A verified variant's `metadata.json` as `kernels` reads it; a file it refuses is our `VerificationError`.

    A lock made before kernel-lock refused duplicate keys may hold such a file: verified, but unreadable to
    `kernels`' own parser.
    """
    from kernels._rust import Metadata

    path = variant_path / "metadata.json"
    try:
        return Metadata.read_from_file(path)
    except (OSError, ValueError) as exc:
        raise VerificationError(
            f"{path} matches kernels.lock, but the kernels library cannot read it ({exc}); nothing was "
            f"imported. Re-lock the kernel (`kernel-lock lock --upgrade-package REPO`) to find out whether its "
            f"publisher fixed the file, or ask them to."
        ) from None


# Each family names only where it differs from the defaults (what 0.18 does).
ADAPTERS = (
    Adapter((0, 17), resolves_revisions=True, validates_kernels=False, commits_are_oids=False),
    Adapter((0, 18)),
    Adapter(
        (0, 19),
        package="kernels._internals",
        overrides=(env.LOCAL_KERNELS, env.ALL_LATEST),
        latest_resolver=True,
    ),
)
SUPPORTED_KERNELS = tuple(a.family for a in ADAPTERS)


def adapter_for(kernels: ModuleType) -> Adapter:
    """The adapter of the installed `kernels`' release family; `UnsupportedKernelsVersion` if none fits."""
    version = str(getattr(kernels, "__version__", "unknown"))
    try:
        family = tuple(int(p) for p in version.split(".")[:2])
    except ValueError:
        family = ()
    for adapter in ADAPTERS:
        if adapter.family == family:
            return adapter
    raise _unsupported(version, [])


def _unsupported(version: str, missing: list[str]) -> UnsupportedKernelsVersion:
    known = ", ".join(f"{a}.{b}.x" for a, b in SUPPORTED_KERNELS)
    return UnsupportedKernelsVersion(
        f"kernel-lock enforcement knows the kernels library {known}, but kernels {version} is installed"
        + (f" (missing: {', '.join(missing)})" if missing else "")
        + ". Nothing would be enforced, so it refuses to start. Install a supported kernels "
        "(e.g. `pip install 'kernels>=0.19,<0.20'`) or upgrade kernel-lock.",
        version=version,
        missing=tuple(missing),
    )
