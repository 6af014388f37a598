"""How a run reports progress to whoever started it (the CLI's rich progress bars, or nothing)."""

from __future__ import annotations

from typing import Protocol


class Reporter(Protocol):
    def phase(self, name: str, total: int | None = None) -> None:
        """A new phase starts (ingest, build, checks); ``total`` steps if known."""

    def advance(self, description: str = "") -> None:
        """One step of the current phase is done."""

    def done(self) -> None:
        """The current phase is over."""


class SilentReporter:
    def phase(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, description: str = "") -> None:
        pass

    def done(self) -> None:
        pass


_current: Reporter = SilentReporter()


def set_reporter(reporter: Reporter | None) -> None:
    global _current
    _current = reporter or SilentReporter()


def reporter() -> Reporter:
    return _current
