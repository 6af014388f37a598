"""``python -m orchestration.cli``: the ``headwater`` command."""

from orchestration.cli.app import main

main()
