"""``python -m microweb`` is the ``microweb`` command."""

from .cli import main

main()
