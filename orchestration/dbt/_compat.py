"""dbt and dbt-duckdb internals Headwater relies on, in one place; ``tests/test_compat.py`` fails when they move.

dbt renders a var's value with Jinja when a node reads it (``{{ env_var('X') }}`` in ``vars:``): a code version
must hold that rendered value, and dbt has no public call for it, so :func:`render_with_dbt` uses dbt's own Jinja
and base context (checked on dbt-core 1.11).

dbt-duckdb keeps the DuckDB database open in the process after an invocation (its connection manager's class-level
``_ENV``, guarded by ``_LOCK``); checks that connect between dbt invocations with another configuration need it
closed, and dbt-duckdb reopens it on its next invocation. It has no public call for that.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def close_duckdb_environment() -> None:
    """Close the DuckDB database dbt-duckdb keeps open in this process (a no-op when none is open)."""
    from dbt.adapters.duckdb.connections import DuckDBConnectionManager

    with DuckDBConnectionManager._LOCK:
        env = DuckDBConnectionManager._ENV
        DuckDBConnectionManager._ENV = None
    if env is not None:
        env.close()


def render_with_dbt(text: str, cli_vars: dict[str, Any], env: Mapping[str, str], target: Mapping[str, Any]) -> str:
    """``text`` rendered by dbt's own Jinja, in dbt's base context (``env_var``, ``var`` over ``cli_vars``,
    ``modules``, ``run_started_at``, ...) plus ``target``, with ``env`` as the environment ``env_var`` reads, the way
    dbt's ``var()`` renders a var's value when a node reads it (``dbt.context.base.Var.get_rendered_var``).

    dbt reads ``env_var`` from its *invocation context* (``dbt_common.context``), which it sets per invocation: set
    here to ``env`` for the call, then put back.

    Raises:
        Exception: whatever dbt raises for Jinja it cannot render (a macro call: no macros in this context; an unset
            variable without a default).
    """
    from dbt.clients.jinja import get_rendered
    from dbt.context.base import generate_base_context
    from dbt_common.context import reliably_get_invocation_var, set_invocation_context

    variable = reliably_get_invocation_var()
    try:
        previous = variable.get()
    except LookupError:
        previous = None
    set_invocation_context(dict(env))
    try:
        context = generate_base_context(cli_vars)
        context["target"] = dict(target)
        return str(get_rendered(text, context))
    finally:
        if previous is not None:
            variable.set(previous)
