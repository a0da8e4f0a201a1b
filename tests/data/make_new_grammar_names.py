"""Build new-grammar-variant-names.txt from the legacy names with kernels 0.19.1's own classes and serializer.

Not a test (see README.md): run by hand where kernels 0.19.1 is installed, as
`python make_new_grammar_names.py real-variant-names.txt > new-grammar-variant-names.txt`.
"""

import dataclasses
import sys
from pathlib import Path

from kernels._internals.variants import ArchVariant, Python, parse_variant
from packaging.version import Version


def main(legacy_names: Path) -> None:
    """Each legacy arch name in the new grammar with Python 3.9 (abi3); every 3rd also 3.12, every 4th 3.15 abi3t."""
    out = []
    for i, name in enumerate(legacy_names.read_text().split()):
        v = parse_variant(name)
        if not isinstance(v, ArchVariant):
            continue
        framework = dataclasses.replace(v.framework, legacy=False)
        backend = dataclasses.replace(v.backend, legacy=False) if hasattr(v.backend, "legacy") else v.backend
        pythons = [Python(version=Version("3.9"), abi="abi3", legacy=False)]
        if i % 3 == 0:
            pythons.append(Python(version=Version("3.12"), abi="abi3", legacy=False))
        if i % 4 == 1:
            pythons.append(Python(version=Version("3.15"), abi="abi3t", legacy=False))
        for python in pythons:
            built = ArchVariant(
                framework=framework, backend=backend, python=python, system=v.system
            ).variant_str
            assert parse_variant(built).variant_str == built
            out.append(built)
    print("\n".join(out))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
