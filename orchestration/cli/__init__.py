"""The ``headwater`` command: typer commands and rich output only; the domain lives in the other packages.

``app`` (the typer app) and ``main`` are in :mod:`orchestration.cli.app`; ``python -m orchestration.cli`` runs it.
"""
