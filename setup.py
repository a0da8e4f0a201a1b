"""Install `kernel_lock-enforce.pth` beside the package: `KERNEL_LOCK_ENFORCE=1` then works without `kernel-lock run`.

Everything else about the package is declared in pyproject.toml; a `.pth`
file at the top of site-packages is the one thing it cannot say.
"""

import os

from setuptools import setup
from setuptools.command.build_py import build_py

PTH = "kernel_lock-enforce.pth"


class BuildPyWithPth(build_py):
    """`build_py` that also puts the start-up hook at the top of the built tree (and so of the wheel)."""

    def run(self) -> None:
        super().run()
        self.copy_file(PTH, os.path.join(self.build_lib, PTH), preserve_mode=False)

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        return [*super().get_outputs(include_bytecode), os.path.join(self.build_lib, PTH)]


setup(cmdclass={"build_py": BuildPyWithPth})
