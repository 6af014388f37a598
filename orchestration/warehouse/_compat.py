"""SQLAlchemy internals Headwater relies on, in one place; ``tests/test_compat.py`` fails when SQLAlchemy moves them.

A signal is never raised inside a function that releases a connection (``orchestration.interrupts``): besides the
public ``close``/``dispose``, SQLAlchemy's pool releases through these private functions, found by name on the stack.
"""

from __future__ import annotations

SQLALCHEMY_RELEASE_FUNCTIONS = ("_close_connection", "_finalize_fairy")
"""``sqlalchemy.pool.base.Pool._close_connection`` and ``sqlalchemy.pool.base._finalize_fairy``."""
