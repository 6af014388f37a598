"""Where the run log lives: SQLite beside a DuckDB warehouse (DuckDB allows one writer process, and dbt is
it), the warehouse's own ``headwater`` schema on PostgreSQL so that every worker sees it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from assets.run_log import CheckRecord, Materialization
from orchestration.core.errors import RunLogError
from orchestration.project import Project
from orchestration.warehouse.targets import Target

_meta = sa.MetaData()
RUNS = sa.Table(
    "runs",
    _meta,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("target", sa.String(64), nullable=False),
    sa.Column("selection", sa.Text),
    # quoted: sqlglot (so fakesnow, the Snowflake emulator) reads a bare EXCLUDE as the keyword; the same column
    # everywhere else (PostgreSQL and SQLite fold nothing here, Snowflake keeps it lower case)
    sa.Column("exclude", sa.Text, quote=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    sa.Column("vars", sa.Text),
    sa.Column("flags", sa.Text),
    sa.Column("project", sa.Text),
)
TABLE_ROWS = sa.Table(
    "table_rows",
    _meta,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("asset_key", sa.String(512), primary_key=True),
    sa.Column("rows", sa.BigInteger),
    sa.Column("counted_at", sa.DateTime(timezone=True)),
)
"""Rows each table held when a run on a DuckDB target ended: what readers show instead of opening the file a run
may need to write (DuckDB admits one writer, and a reader holding the file makes that writer fail)."""
_ADDED_COLUMNS = {
    "runs": ("vars", "flags", "project"),
    "materializations": ("data_version",),
    "check_results": ("code_version",),
}
"""Columns added since the first run logs were written: created on open when an older log lacks them."""
MATERIALIZATIONS = sa.Table(
    "materializations",
    _meta,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("asset_key", sa.String(512), primary_key=True),
    sa.Column("kind", sa.String(32)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    sa.Column("rows", sa.BigInteger),
    sa.Column("code_version", sa.String(128)),
    sa.Column("message", sa.Text),
    sa.Column("target", sa.String(64)),
    sa.Column("data_version", sa.Text),
)
CHECKS = sa.Table(
    "check_results",
    _meta,
    sa.Column("run_id", sa.String(64), primary_key=True),
    sa.Column("asset_key", sa.String(512), primary_key=True),
    sa.Column("check_name", sa.String(512), primary_key=True),
    sa.Column("severity", sa.String(8)),
    sa.Column("status", sa.String(16)),
    sa.Column("failures", sa.BigInteger),
    sa.Column("message", sa.Text),
    sa.Column("code_version", sa.Text),
)


class RunLog:
    """Runs, materializations and check results for one target."""

    def __init__(
        self, url: str, schema: str | None = None, where: str = "", connect_args: dict[str, Any] | None = None
    ) -> None:
        """Open (and create or upgrade) the run log at ``url`` (``connect_args``: the target's, see
        ``Target.connect_args``).

        Raises:
            RunLogError: a file that is no run log, or a warehouse that does not answer; one line, with the fix.
        """
        self.engine = sa.create_engine(url, future=True, connect_args=connect_args or {})
        self.schema = schema
        self.read_only = False
        try:
            if schema:
                self.engine = self.engine.execution_options(schema_translate_map={None: schema})
                with self.engine.begin() as conn:  # the dialect's quoting: on Snowflake an unquoted HEADWATER
                    conn.execute(sa.text(f"create schema if not exists {self._quote(schema)}"))
            _meta.create_all(self.engine)
            self._add_missing_columns()
        except sa.exc.DatabaseError as exc:
            first = (str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["?"])[0]
            if "readonly database" in first or "read-only file system" in first.lower():
                self.read_only = True  # a read-only data folder: what is there can still be read
                return
            self.engine.dispose()
            if url.startswith("sqlite"):
                raise RunLogError(
                    f"{where or url}: not a readable run log ({first}); move it aside (Headwater starts a new one; "
                    "what it recorded is then only in Prefect) or restore it"
                ) from None
            raise RunLogError(
                f"the run log lives in the warehouse ({where or 'the target'}), which does not answer: {first}"
            ) from None

    def _add_missing_columns(self) -> None:
        inspector = sa.inspect(self.engine)
        for table, columns in _ADDED_COLUMNS.items():
            have = {c["name"] for c in inspector.get_columns(table, schema=self.schema)}
            for column in columns:
                if column not in have:
                    name = f"{self._quote(self.schema)}.{self._quote(table)}" if self.schema else self._quote(table)
                    with self.engine.begin() as conn:
                        conn.execute(sa.text(f"alter table {name} add column {self._quote(column)} text"))

    def _quote(self, name: str) -> str:
        return str(self.engine.dialect.identifier_preparer.quote(name))

    @classmethod
    def for_target(cls, project: Project, target: Target) -> RunLog:
        if target.type in ("postgres", "snowflake"):  # in the warehouse: shared by every worker
            c = target.config
            server = f"account {c.get('account')}" if target.type == "snowflake" else f"{c.get('host')}:{c.get('port')}"
            where = f"{target.name}: {server}, schema headwater"
            return cls(target.sqlalchemy_url(), schema="headwater", where=where, connect_args=target.connect_args())
        project.data_dir.mkdir(parents=True, exist_ok=True)
        path = project.data_dir / f"run_log_{target.name}.sqlite"
        return cls(f"sqlite:///{path}", where=str(path))

    @classmethod
    def for_run(cls, project: Project, target: Target) -> tuple[RunLog, str | None]:
        """The run log a run writes to, and a note when it had to start a new one: a local run log that is not
        readable (a corrupt file) is moved aside, kept beside it as ``<name>.corrupt-<UTC time>``, and a new one
        starts, so the run builds everything selected (nothing it recorded can be trusted) and says so.

        Raises:
            RunLogError: the warehouse holding the run log does not answer.
        """
        try:
            return cls.for_target(project, target), None
        except RunLogError as exc:
            path = project.data_dir / f"run_log_{target.name}.sqlite"
            if target.type == "postgres" or not path.exists():
                raise
            kept = path.with_name(f"{path.name}.corrupt-{datetime.now(UTC):%Y%m%dT%H%M%S}")
            path.rename(kept)
            note = f"{exc.args[0].split('; move it aside')[0]}: moved aside to {kept.name}, a new run log starts"
            return cls.for_target(project, target), note

    def start_run(
        self,
        run_id: str,
        target: str,
        selection: str | None,
        exclude: str | None,
        at: datetime,
        *,
        vars: Mapping[str, Any] | None = None,
        flags: Mapping[str, Any] | None = None,
        project: str | None = None,
    ) -> None:
        """Record a run as running, with its selection, the dbt vars and flags it runs with, and its dbt project."""
        with self.engine.begin() as conn:
            conn.execute(
                RUNS.insert().values(
                    run_id=run_id,
                    target=target,
                    selection=selection,
                    exclude=exclude,
                    status="running",
                    started_at=at,
                    vars=json.dumps(dict(vars or {}), sort_keys=True, default=str),
                    flags=json.dumps(dict(flags or {}), sort_keys=True, default=str),
                    project=project,
                )
            )

    def finish_run(
        self,
        run_id: str,
        status: str,
        at: datetime,
        materializations: Iterable[Materialization],
        checks: Iterable[CheckRecord],
        *,
        attempts: int = 1,
        table_rows: Mapping[str, int] | None = None,
    ) -> None:
        """Record the run's outcome and everything it did, in one transaction, with the rows each table held at its
        end (``table_rows``, DuckDB targets); a lost connection is retried ``attempts`` times in all (2 s, 4 s, ...
        apart) before its error propagates."""
        rows = [asdict(m) for m in materializations]
        check_rows = [asdict(c) for c in checks]
        counted = [
            {"run_id": run_id, "asset_key": k, "rows": n, "counted_at": at} for k, n in (table_rows or {}).items()
        ]
        for attempt in range(1, attempts + 1):
            try:
                self._write_run(run_id, status, at, rows, check_rows, counted)
                return
            except sa.exc.OperationalError:
                if attempt == attempts:
                    raise
                time.sleep(2.0 * attempt)

    def _write_run(
        self, run_id: str, status: str, at: datetime, rows: list[dict], check_rows: list[dict], counted: list[dict]
    ) -> None:
        with self.engine.begin() as conn:
            if counted:
                conn.execute(TABLE_ROWS.insert(), counted)
            # the run's checkpoints are replaced by its full record
            conn.execute(MATERIALIZATIONS.delete().where(MATERIALIZATIONS.c.run_id == run_id))
            if rows:
                conn.execute(MATERIALIZATIONS.insert(), rows)
            if check_rows:
                conn.execute(CHECKS.insert(), check_rows)
            conn.execute(RUNS.update().where(RUNS.c.run_id == run_id).values(status=status, ended_at=at))

    def checkpoint(self, *materializations: Materialization) -> None:
        """Record assets as soon as they succeeded (one transaction), so a run killed later still shows what it
        finished (``headwater retry`` then skips them); ``finish_run`` replaces checkpoints with the full record."""
        rows = {(m.run_id, m.asset_key): asdict(m) for m in materializations}  # the newest of one asset wins
        with self.engine.begin() as conn:  # an asset built again in a retry round replaces its checkpoint
            for run_id, asset_key in rows:
                conn.execute(
                    MATERIALIZATIONS.delete().where(
                        (MATERIALIZATIONS.c.run_id == run_id) & (MATERIALIZATIONS.c.asset_key == asset_key)
                    )
                )
            conn.execute(MATERIALIZATIONS.insert(), list(rows.values()))

    def last_run(self, target: str | None = None) -> dict | None:
        """The newest run (on ``target``), its ``vars`` and ``flags`` decoded (empty for runs logged before)."""
        query = sa.select(RUNS).order_by(RUNS.c.started_at.desc()).limit(1)
        if target:
            query = query.where(RUNS.c.target == target)
        with self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if not row:
            return None
        run = dict(row)
        for column in ("vars", "flags"):
            try:
                run[column] = json.loads(run.get(column) or "{}")
            except json.JSONDecodeError:
                run[column] = {}
        return run

    def other_project(self, project: str, exclude_run: str | None = None) -> str | None:
        """The dbt project the log's runs belong to when none of them is ``project`` (a run log copied or shared from
        another project, whose records say nothing about this one); None when it is this project's, or unknown.
        ``exclude_run``: the run asking, already recorded as this project's."""
        query = sa.select(RUNS.c.project).where(RUNS.c.project.is_not(None), RUNS.c.run_id != (exclude_run or ""))
        query = query.distinct()
        with self.engine.connect() as conn:
            names = {r[0] for r in conn.execute(query) if r[0]}
        if not names or project in names or not project:
            return None
        return sorted(names)[0]

    def materializations(self, run_id: str) -> list[Materialization]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(MATERIALIZATIONS).where(MATERIALIZATIONS.c.run_id == run_id)).mappings()
            return [Materialization(**dict(r)) for r in rows]

    def latest(self, project: str | None = None) -> tuple[dict[str, Materialization], dict[str, Materialization]]:
        """The newest materialization per asset, and the newest successful one, from one scan; with ``project``,
        only from runs of that dbt project (and runs older than the ``project`` column), so that two projects
        sharing a run log and a warehouse never take each other's builds for their own."""
        latest: dict[str, Materialization] = {}
        successful: dict[str, Materialization] = {}
        # newest run last (a skipped or interrupted asset has no end time, yet it is the newest word on it)
        query = (
            sa.select(MATERIALIZATIONS)
            .join(RUNS, RUNS.c.run_id == MATERIALIZATIONS.c.run_id, isouter=True)
            .order_by(RUNS.c.started_at, MATERIALIZATIONS.c.ended_at)
        )
        if project:
            query = query.where(sa.or_(RUNS.c.project == project, RUNS.c.project.is_(None)))
        with self.engine.connect() as conn:
            for row in conn.execute(query).mappings():
                record = Materialization(**dict(row))
                latest[record.asset_key] = record
                if record.status in ("success", "observed"):  # observed: a source's loaded_at_field moved
                    successful[record.asset_key] = record
        return latest, successful

    def latest_rows(self) -> dict[str, tuple[int, datetime | None, str]]:
        """The rows each table held at the end of the newest run that counted it: ``key -> (rows, when, run id)``."""
        latest: dict[str, tuple[int, datetime | None, str]] = {}
        try:
            with self.engine.connect() as conn:
                for row in conn.execute(sa.select(TABLE_ROWS).order_by(TABLE_ROWS.c.counted_at)).mappings():
                    latest[row["asset_key"]] = (row["rows"], row["counted_at"], row["run_id"])
        except sa.exc.OperationalError:  # a log older than the counts, opened read-only: no counts yet
            return {}
        return latest

    def check_records(self, run_id: str) -> list[CheckRecord]:
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(CHECKS).where(CHECKS.c.run_id == run_id)).mappings()
            return [CheckRecord(**dict(r)) for r in rows]

    def latest_checks(self) -> dict[tuple[str, str], tuple[CheckRecord, datetime | None]]:
        """The newest result of every check ``(asset key, check name)``, with its run's end time."""
        query = (
            sa.select(CHECKS, RUNS.c.ended_at).join(RUNS, RUNS.c.run_id == CHECKS.c.run_id).order_by(RUNS.c.started_at)
        )
        latest: dict[tuple[str, str], tuple[CheckRecord, datetime | None]] = {}
        with self.engine.connect() as conn:
            for row in conn.execute(query).mappings():
                values = dict(row)
                ended = values.pop("ended_at")
                record = CheckRecord(**values)
                latest[(record.asset_key, record.check_name)] = (record, ended)
        return latest
