"""A run's checks beyond dbt tests: contract quarantines, source freshness and Great Expectations suites.

Each check is its own Prefect task run (through the run's :class:`TaskRecorder`), run right after the
asset it checks has materialized; its outcome joins the run's report, where a blocking failure stops the
asset's downstream (see ``assets.checks.blocked_by``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assets import AssetGraph, AssetKey, CheckSpec
from assets.checks import CheckOutcome, freshness_outcome
from assets.specs import CheckKind
from orchestration.core import interrupts
from orchestration.core.errors import log_failure
from orchestration.engine.outcomes import Outcome
from orchestration.project import Project
from orchestration.warehouse._compat import dbapi_rows
from orchestration.warehouse.targets import Target

if TYPE_CHECKING:
    from ingestion import LoadResult
    from quality.gx_runner import SuiteRunner


def _mirror_outcome(outcome: CheckOutcome) -> str:
    if outcome.status == "skipped":
        return Outcome.SKIPPED
    return Outcome.FAILED if outcome.failed else Outcome.SUCCESS


if TYPE_CHECKING:
    from orchestration.engine.outcomes import TaskRecorder


def newest(conn: Any, schema: str, table: str, expression: str) -> Any:
    """``max(<expression>)`` over a relation: a source's newest ``loaded_at_field``, for its freshness check and for
    the state-aware decision. The relation comes from the graph, the expression from the dbt project's own source
    config. On an error the connection is rolled back (PostgreSQL's transaction is aborted) and the error raised.

    Raises:
        sqlalchemy.exc.DBAPIError: the warehouse could not answer the query.
    """
    import sqlalchemy as sa

    try:
        return conn.execute(sa.text(f'select max({expression}) from "{schema}"."{table}"')).scalar()  # noqa: S608
    except sa.exc.DBAPIError:
        conn.rollback()
        raise


class RunChecks:
    """Evaluates the non-dbt checks of one run on one target and keeps their outcomes."""

    def __init__(self, project: Project, target: Target, graph: AssetGraph, mirror: TaskRecorder) -> None:
        self.project = project
        self.target = target
        self.graph = graph
        self.mirror = mirror
        self.outcomes: list[CheckOutcome] = []
        self.data_docs: Path | None = None
        self.errors: list[str] = []
        self.planned: set[str] = set()
        """Checks this run set out to evaluate: those without an outcome when a signal stops the run did not finish."""
        self.notes: list[str] = []
        """What the run repaired on its way (unreadable GX files an interrupted run left), shown with the summary."""
        self._gx: SuiteRunner | None = None

    def _record(self, outcome: CheckOutcome) -> None:
        message = outcome.message if outcome.status != "pass" else ""
        self.mirror.finish(outcome.check.unique_id, _mirror_outcome(outcome), message)
        self.outcomes.append(outcome)

    def _checks(self, keys: Iterable[AssetKey], kind: CheckKind) -> list[CheckSpec]:
        wanted = set(keys)
        return [c for c in self.graph.checks if c.kind == kind and c.asset_key in wanted]

    # -- quarantine -------------------------------------------------------------------------------------
    def quarantine(self, load: LoadResult, tables: Iterable[str]) -> None:
        """A contracted table's ``quarantine`` check: fails when this load rejected any of its rows."""
        keys = [AssetKey.of(load.dataset, t) for t in tables]
        for check in self._checks(keys, CheckKind.QUARANTINE):
            self.mirror.open(check.unique_id)
            rejected = load.quarantined.get(check.owned_key.name, 0)
            if rejected:
                reasons = "; ".join(load.quarantine_reasons.get(check.owned_key.name, []))
                status = "warn" if check.severity.value == "warn" else "fail"
                message = f"{rejected} rows quarantined in {load.dataset}._headwater_quarantine: {reasons}"
                self._record(CheckOutcome(check, status, rejected, message))
            else:
                self._record(CheckOutcome(check, "pass", 0, "no row rejected"))

    def load_failed(self, keys: Iterable[AssetKey], message: str) -> None:
        """Quarantine and freshness checks of tables whose load failed cannot say anything: skipped."""
        keys = list(keys)
        for check in [*self._checks(keys, CheckKind.QUARANTINE), *self._checks(keys, CheckKind.FRESHNESS)]:
            self.mirror.finish(check.unique_id, Outcome.SKIPPED, message)
            self.outcomes.append(CheckOutcome(check, "skipped", None, message, attempts=0))

    # -- reconciliation ---------------------------------------------------------------------------------
    def reconcile(self, definition: Any, tables: Iterable[str]) -> None:
        """Each loaded table's ``reconcile`` check: the source's keys and cursors against the warehouse's, and a
        sample of whole rows (see ``ingestion.reconcile``); a difference warns, with the fix."""
        checks = self._checks([AssetKey.of(definition.dataset, t) for t in tables], CheckKind.RECONCILE)
        if not checks or definition.reader is None:
            return
        import sqlalchemy as sa

        from ingestion.reconcile import comparable, reconcile, sample_keys

        reader = definition.reader(self.project.source_paths)
        engine = self.target.engine()
        try:
            with engine.connect() as conn:
                for check in checks:
                    self.mirror.open(check.unique_id)
                    table = check.owned_key.name
                    try:
                        source = comparable(reader.cursors(table))
                        warehouse = comparable(self._warehouse_cursors(conn, check.owned_key, reader))
                        held = self._quarantined(conn, definition.dataset, table)
                        keys = sample_keys(source, warehouse)
                        found = reconcile(
                            table, source, warehouse, held, reader.rows(table, keys),
                            self._warehouse_rows(conn, check.owned_key, reader.key, keys),
                        )  # fmt: skip
                    except (sa.exc.DBAPIError, OSError, ValueError) as exc:
                        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
                        self._record(CheckOutcome(check, "error", None, f"cannot compare {check.owned_key}: {first}"))
                        continue
                    status = "warn" if found.total else "pass"
                    self._record(CheckOutcome(check, status, found.total, found.message(definition.name)))
        finally:
            engine.dispose()

    @staticmethod
    def _warehouse_cursors(conn: Any, key: AssetKey, reader: Any) -> dict[Any, Any]:
        schema, table = key.parts[0], key.parts[-1]
        sql = f'select "{reader.key}", "{reader.cursor}" from "{schema}"."{table}"'  # noqa: S608 - names from the registry
        # every row of the table, without SQLAlchemy's row objects (2 s at 1.9M rows; see warehouse/_compat.py)
        result = conn.exec_driver_sql(sql)
        try:
            return dict(dbapi_rows(result))
        finally:
            result.close()

    @staticmethod
    def _warehouse_rows(conn: Any, key: AssetKey, column: str, keys: list[Any]) -> dict[Any, dict[str, Any]]:
        import sqlalchemy as sa

        if not keys:
            return {}
        schema, table = key.parts[0], key.parts[-1]
        sql = sa.text(f'select * from "{schema}"."{table}" where "{column}" in :keys').bindparams(  # noqa: S608
            sa.bindparam("keys", expanding=True)
        )
        rows = conn.execute(sql, {"keys": keys}).mappings().fetchall()
        return {row[column]: {k: v for k, v in row.items() if not k.startswith("_dlt")} for row in rows}

    @staticmethod
    def _quarantined(conn: Any, dataset: str, table: str) -> set[Any]:
        """Keys of rows a contract rejected (their origin is ``id=<key>``): they are not missing, they are held."""
        import sqlalchemy as sa

        from ingestion import QUARANTINE_TABLE

        sql = f'select origin from "{dataset}"."{QUARANTINE_TABLE}" where table_name = :t'  # noqa: S608
        try:
            origins = [r[0] for r in conn.execute(sa.text(sql), {"t": table}).fetchall()]
        except sa.exc.DBAPIError:
            conn.rollback()
            return set()
        return {int(o[3:]) for o in origins if o and o.startswith("id=") and o[3:].isdigit()}

    # -- freshness --------------------------------------------------------------------------------------
    def freshness(self, keys: Iterable[AssetKey], now: datetime | None = None) -> None:
        """Each ``freshness`` check of ``keys``: the newest ``loaded_at_field`` against its thresholds."""
        done = {o.check.unique_id for o in self.outcomes}  # a table whose load failed: skipped already
        checks = [c for c in self._checks(keys, CheckKind.FRESHNESS) if c.unique_id not in done]
        if not checks:
            return
        import sqlalchemy as sa

        engine = self.target.engine()
        try:
            with engine.connect() as conn:
                for check in checks:
                    self.mirror.open(check.unique_id)
                    schema, table = check.owned_key.parts[0], check.owned_key.parts[-1]
                    try:
                        loaded_at = newest(conn, schema, table, check.config["loaded_at_field"])
                    except sa.exc.DBAPIError as exc:
                        message = f"{check.path}: cannot read {check.owned_key}: {str(exc.orig).splitlines()[0]}"
                        self._record(CheckOutcome(check, "error", None, message))
                        continue
                    self._record(freshness_outcome(check, _aware(loaded_at), now or datetime.now(UTC)))
        finally:
            engine.dispose()

    # -- Great Expectations -----------------------------------------------------------------------------
    def suites(self, keys: Iterable[AssetKey]) -> None:
        """Run the GX suite of every key that has one, in the warehouse."""
        self._run_gx(self._checks(keys, CheckKind.GX))

    def run_due(self, checks: Iterable[CheckSpec]) -> None:
        """Run these GX checks (due ones: new, changed or cut off) against their assets as they stand."""
        self._run_gx([c for c in checks if c.kind == CheckKind.GX])

    def _run_gx(self, checks: Iterable[CheckSpec]) -> None:
        by_key: dict[AssetKey, list[CheckSpec]] = {}
        for check in checks:
            by_key.setdefault(check.owned_key, []).append(check)
        if not by_key:
            return
        from quality.gx_runner import GxVersionError
        from quality.suites import Suite

        for key_checks in by_key.values():  # planned, so that a run cut off before they finish names them
            self.planned.update(c.unique_id for c in key_checks)
        try:
            runner = self._runner()
        except (GxVersionError, ImportError) as exc:
            for key_checks in by_key.values():
                for check in key_checks:
                    self.mirror.open(check.unique_id)
                    self._record(CheckOutcome(check, "error", None, str(exc)))
            return
        try:
            for key, key_checks in sorted(by_key.items()):
                interrupts.at(f"the checks of {key}")
                for check in key_checks:
                    self.mirror.open(check.unique_id)
                suite = Suite(asset_key=key, path=Path(key_checks[0].path), checks=tuple(key_checks))
                outcomes = runner.run(suite, key.parts[0], key.parts[-1])
                interrupts.check()  # GX may report an interrupted query as a failed expectation
                for outcome in outcomes:
                    self._record(outcome)
        finally:
            runner.close()  # DuckDB: dbt needs the file next

    def not_run(self, keys: Iterable[AssetKey], reason: str) -> None:
        """Every GX check of ``keys`` that has no result yet is skipped with ``reason`` (its asset was not built),
        so that each selected check is accounted for."""
        done = {o.check.unique_id for o in self.outcomes}
        for check in self._checks(keys, CheckKind.GX):
            if check.unique_id not in done:
                self.mirror.finish(check.unique_id, Outcome.SKIPPED, reason)
                self.outcomes.append(CheckOutcome(check, "skipped", None, reason, attempts=0))

    def _runner(self) -> SuiteRunner:
        if self._gx is None:
            from quality.gx_runner import SuiteRunner, Warehouse

            self._gx = SuiteRunner(
                self.project.data_dir,
                Warehouse(self.target.name, self.target.sqlalchemy_url(), self.target.connect_args()),
            )
            self.notes.extend(f"GX store: removed {what}" for what in self._gx.tidied)
        return self._gx

    def close(self, build_docs: bool = True) -> None:
        """Build GX Data Docs when suites ran (a failure to build them is reported, never fatal); an interrupted
        run skips them (seconds of work nobody waits for)."""
        if self._gx is None:
            return
        try:
            if build_docs:
                self.data_docs = self._gx.build_docs()
        except Exception as exc:  # Data Docs are a view; a broken view must not fail the run
            self.errors.append(f"GX Data Docs: {type(exc).__name__}: {exc}")
            log_failure("GX Data Docs", exc)
        finally:
            self._gx.close()


def _aware(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
