"""Build provenance from a variant's `metadata.json`: which kernel-builder built it, from which source commit.

The `kernels` builder writes `"provenance": {"kernel-builder": {"version", "commit"?, "dirty"?},
"kernel"?: {"commit", "dirty"}}`; a build is dirty when either git tree had uncommitted changes. The
lock keeps one `Provenance` per distinct build, naming the variants built that way.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from kernel_lock.core.lockfile import Provenance

GitId = Annotated[str, Field(pattern=r"^([0-9a-f]{40}|[0-9a-f]{64})$")]


class _GitStatus(BaseModel):
    model_config = ConfigDict(extra="ignore")

    commit: GitId
    dirty: bool


class _Builder(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: Annotated[str, Field(min_length=1, max_length=200)]
    commit: GitId | None = None
    dirty: bool | None = None

    @model_validator(mode="after")
    def _together(self) -> _Builder:
        if (self.commit is None) != (self.dirty is None):
            raise ValueError("git commit and dirty must be specified together")
        return self


class _MetadataProvenance(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    kernel_builder: _Builder = Field(alias="kernel-builder")
    kernel: _GitStatus | None = None


def parse_provenance(metadata: Mapping[str, Any]) -> Provenance | None:
    """The provenance of one variant (with no variants named yet), None where `metadata.json` has none.

    Raises `ValueError` with the reason where it is malformed (the `kernels` library refuses to load those).
    """
    raw = metadata.get("provenance")
    if raw is None:
        return None
    try:
        parsed = _MetadataProvenance.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise ValueError(f"{'.'.join(map(str, first['loc'])) or 'provenance'}: {first['msg']}") from None
    builder = parsed.kernel_builder
    return Provenance(
        builder=builder.version,
        builder_commit=builder.commit,
        source_commit=parsed.kernel.commit if parsed.kernel else None,
        dirty=bool(builder.dirty) or bool(parsed.kernel and parsed.kernel.dirty),
        variants=[],
    )


def group(per_variant: Mapping[str, Provenance | None]) -> list[Provenance]:
    """One `Provenance` per distinct build, naming its variants (variants without provenance left out)."""
    builds: dict[tuple[object, ...], Provenance] = {}
    variants: dict[tuple[object, ...], list[str]] = defaultdict(list)
    for name, provenance in sorted(per_variant.items()):
        if provenance is not None:
            key = (provenance.builder, provenance.builder_commit, provenance.source_commit, provenance.dirty)
            builds.setdefault(key, provenance)
            variants[key].append(name)
    return [dataclasses.replace(builds[key], variants=names) for key, names in variants.items()]
