"""What a command asks the run to do, typed and built once: the CLI makes a :class:`RunRequest` from its options
(``materialize``) or from the last run (``retry``) and hands the flow its primitive parameters (those a deployment
stores and Prefect's UI shows)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class RunRequest:
    """One run of the materialize flow, as the command line (or ``retry``) asks for it.

    ``selection``/``exclude``: dbt selection words (None: everything); ``rebuild``: asset keys built again whatever
    else holds (``retry``); ``build_all``: no stale-only skipping; ``state``: the folder of dbt artifacts the
    ``state:`` methods compare with; ``vars``, ``full_refresh``, ``threads``: dbt's flags; ``retries`` and
    ``retry_delay``: the run's retry rounds (None: each asset's policy); ``dbt_project``/``profiles_dir``: a project
    other than the repository's own.
    """

    selection: tuple[str, ...] | None = None
    exclude: tuple[str, ...] | None = None
    vars: Mapping[str, Any] = field(default_factory=dict)
    full_refresh: bool = False
    threads: int | None = None
    retries: int | None = None
    retry_delay: float | None = None
    indirect_selection: str = "eager"
    build_all: bool = False
    state: str | None = None
    rebuild: tuple[str, ...] = ()
    dbt_project: str | None = None
    profiles_dir: str | None = None

    @classmethod
    def of(
        cls, selection: Sequence[str] | None = None, exclude: Sequence[str] | None = None, **rest: Any
    ) -> RunRequest:
        """A request from lists as the CLI has them (empty means none)."""
        return cls(
            selection=tuple(selection) if selection else None, exclude=tuple(exclude) if exclude else None, **rest
        )

    def flow_parameters(self) -> dict[str, Any]:
        """The flow's parameters: plain JSON values, as a deployment stores them."""
        return {
            "selection": list(self.selection) if self.selection else None,
            "exclude": list(self.exclude) if self.exclude else None,
            "retries": self.retries,
            "retry_delay": self.retry_delay,
            "vars": dict(self.vars),
            "full_refresh": self.full_refresh,
            "threads": self.threads,
            "indirect_selection": self.indirect_selection,
            "build_all": self.build_all,
            "state": self.state,
            "rebuild": list(self.rebuild),
            "dbt_project": self.dbt_project,
            "profiles_dir": self.profiles_dir,
        }
