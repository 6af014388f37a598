"""dlt internals Headwater relies on, in one place; ``tests/test_compat.py`` fails when dlt moves them.

When dlt cannot convert a source's value to the column's Arrow type it raises ``PyToArrowConversionException``,
which keeps the column's name only in a private attribute (``_field_name``, checked on dlt 1.x): a failure names
the column from it instead of from the message's words.
"""

from __future__ import annotations


def conversion_field(exc: BaseException) -> str:
    """The column a ``PyToArrowConversionException`` could not convert ('' when it names none)."""
    return str(getattr(exc, "_field_name", "") or "")
