"""``python -m logging_backend.stack.cli``: the ``stagelog`` command."""

from logging_backend.stack.cli import main

main()
