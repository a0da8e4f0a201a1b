"""`python -m kernel_lock` runs the CLI."""

from kernel_lock.cli import main

main()
