"""``python -m benchbench`` = the ``benchbench`` command."""

from benchbench.cli import main

main()
