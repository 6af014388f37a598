"""Asset keys: one name per table, everywhere (the warehouse relation, schema-qualified)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_PART = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_$\-]*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9_$\-]")


@dataclass(frozen=True, order=True)
class AssetKey:
    """A schema-qualified relation such as ``raw_shop.orders`` or ``marts.orders``.

    Python assets use the same form (``python.forecast``); keys compare and sort by their parts.
    """

    parts: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.parts:
            raise ValueError("an asset key needs at least one part")
        bad = [p for p in self.parts if not _PART.match(p)]
        if bad:
            raise ValueError(
                f"invalid asset key part(s) {', '.join(repr(p) for p in bad)} in {'.'.join(self.parts)!r}: "
                "use letters, digits, '_', '-' or '$'"
            )

    @classmethod
    def parse(cls, text: str) -> AssetKey:
        """``"marts.orders"`` -> ``AssetKey(("marts", "orders"))``.

        Raises:
            ValueError: empty or malformed text.
        """
        return cls(tuple(text.strip().split(".")))

    @classmethod
    def of(cls, *parts: str) -> AssetKey:
        return cls(tuple(p.lower() for p in parts))

    @classmethod
    def safe(cls, *parts: str) -> AssetKey:
        """Like :meth:`of`, for names a warehouse allows but keys do not (spaces, dots, quotes, non-ASCII letters in
        quoted identifiers): each such character becomes ``_``, so such a relation still gets a readable key."""
        cleaned = []
        for part in parts:
            text = _UNSAFE.sub("_", str(part).lower()) or "_"
            cleaned.append(text if _PART.match(text) else f"_{text}")
        return cls(tuple(cleaned))

    @property
    def name(self) -> str:
        """The last part: the table name."""
        return self.parts[-1]

    @property
    def schema(self) -> str:
        return self.parts[0] if len(self.parts) > 1 else ""

    def __str__(self) -> str:
        return ".".join(self.parts)
