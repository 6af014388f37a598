"""Running a source into a destination with dlt, and reading back what it loaded."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import dlt
import pyarrow
from dlt.common.destination import Destination
from dlt.common.libs.pyarrow import PyToArrowConversionException
from dlt.common.schema import Schema
from dlt.common.schema.exceptions import DataValidationError
from dlt.extract.exceptions import ResourceExtractionError
from dlt.pipeline.exceptions import PipelineStepFailed

from ingestion._compat import conversion_field
from ingestion.contracts import QUARANTINE_TABLE, resource_names
from ingestion.registry import SourceDefinition, SourcePaths


@dataclass(frozen=True)
class LoadResult:
    """What one source run loaded: new rows per table (0 when nothing changed upstream)."""

    source: str
    dataset: str
    load_ids: tuple[str, ...]
    rows: dict[str, int] = field(default_factory=dict)
    recovered_packages: int = 0
    """Load packages an interrupted earlier run left pending, finished by this run (their rows are in ``rows``)."""
    quarantined: dict[str, int] = field(default_factory=dict)
    """Rows of this run that a contract rejected, per table (kept in ``<dataset>._headwater_quarantine``)."""
    quarantine_reasons: dict[str, list[str]] = field(default_factory=dict)
    """Per table, the most frequent rejection reasons with their counts."""
    failed: dict[str, str] = field(default_factory=dict)
    """Tables whose reader failed (a value its column type cannot take), with why: nothing of them was loaded and
    their cursors did not move; the source's other tables loaded."""
    errors: dict[str, BaseException] = field(default_factory=dict, repr=False, compare=False)
    """The failure of each table of ``failed``, with its chain (for the run's log file)."""

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def pipeline_for(
    definition: SourceDefinition, destination: Destination, *, target: str, pipelines_dir: Path
) -> dlt.Pipeline:
    """The dlt pipeline of ``definition`` for ``target`` (its incremental state is per target)."""
    return dlt.pipeline(
        pipeline_name=f"headwater_{definition.name}_{target}",
        destination=destination,
        dataset_name=definition.dataset,
        pipelines_dir=str(pipelines_dir),
    )


def run_source(
    definition: SourceDefinition,
    paths: SourcePaths,
    destination: Destination,
    *,
    target: str,
    pipelines_dir: Path,
    tables: Sequence[str] | None = None,
    full_refresh: bool = False,
) -> LoadResult:
    """Extract, normalize and load ``definition`` (or only its ``tables``) as Arrow/parquet into ``destination``.

    Load packages left pending by an interrupted earlier run are finished first and separately:
    ``pipeline.run`` would otherwise load only them and silently drop the new data passed to it.
    ``full_refresh`` reloads the selected tables from scratch (dlt's ``refresh="drop_data"``: their rows and
    incremental cursors are reset, then everything the source holds is loaded): what an incremental load cannot
    see (hard deletes, rows behind the cursor, changes without a newer cursor) is repaired.
    """
    # Arrow rows carry no _dlt_load_id by default; dbt needs it for freshness and incremental models.
    dlt.config["normalize.parquet_normalizer.add_dlt_load_id"] = True
    # dlt's own signal handlers (normalize, load) hold a Ctrl-C until a checkpoint and forget it if the step ends
    # first: a run stopped then went on as a success. The caller's handler sees every signal instead.
    dlt.config["runtime.intercept_signals"] = False
    pipeline = pipeline_for(definition, destination, target=target, pipelines_dir=pipelines_dir)
    recovered: dict[str, int] = {}
    recovered_ids: list[str] = []
    with _interruptions_pass_through():
        if pipeline.has_pending_data:
            pipeline.normalize()
            recovered_ids = list(pipeline.load().loads_ids)
            recovered = _rows_of_loads(pipeline, recovered_ids)
    wanted = list(tables) if tables is not None else list(definition.tables)
    failed: dict[str, str] = {}
    errors: dict[str, BaseException] = {}
    while True:
        source = definition.build(paths)
        if tables is not None or failed:
            source = source.with_resources(*resource_names(wanted, source.resources))
        try:
            with _interruptions_pass_through():
                if full_refresh:
                    info = pipeline.run(source, loader_file_format="parquet", refresh="drop_data")
                else:
                    info = pipeline.run(source, loader_file_format="parquet")
            break
        except PipelineStepFailed as exc:
            violation = _contract_violation(exc)
            if violation is None and exc.step == "extract":
                table = _failing_table(exc, wanted)
                if table is None or wanted == [table]:
                    raise SourceFailed(definition, exc, table, failed) from exc  # the traceback stays in the chain
                # one table's reader failed (a value its type cannot take): nothing was extracted for any table;
                # the others load without it, the failed one keeps its rows and its incremental cursor
                failure = SourceFailed(definition, exc, table)
                failure.__cause__ = exc  # the whole chain, down into dlt, for the run's log file
                failed[table], errors[table] = str(failure), failure
                wanted.remove(table)
                continue
            if violation is None:
                raise
            # a frozen contract stops the load; drop the package so the pipeline is not blocked, and leave the
            # incremental cursor where it was, so the same rows come again once the contract or source is fixed
            pipeline.abort_packages()
            raise ContractViolation(definition, violation) from None
        finally:
            # Arrow's allocator keeps what normalizing freed for Arrow's next use: give it back before dbt and GX
            # run (measured: ~25 MiB of a demo run's RSS, ~10-20 MiB of its peak)
            pyarrow.default_memory_pool().release_unused()
    normalize = pipeline.last_trace.last_normalize_info if pipeline.last_trace is not None else None
    counts = normalize.row_counts if normalize else {}
    rows = {table: n for table, n in counts.items() if not table.startswith(("_dlt", QUARANTINE_TABLE))}
    for table, n in recovered.items():
        rows[table] = rows.get(table, 0) + n
    load_ids = (*recovered_ids, *info.loads_ids)
    found = counts.get(QUARANTINE_TABLE) or (
        recovered_ids and QUARANTINE_TABLE in pipeline.default_schema.data_table_names()
    )
    quarantined, reasons = _quarantined(pipeline, load_ids) if found else ({}, {})
    return LoadResult(
        source=definition.name,
        dataset=definition.dataset,
        load_ids=load_ids,
        rows=dict(sorted(rows.items())),
        recovered_packages=len(recovered_ids),
        quarantined=quarantined,
        quarantine_reasons=reasons,
        failed=failed,
        errors=errors,
    )


def _failing_table(exc: PipelineStepFailed, tables: Sequence[str]) -> str | None:
    """The table whose resource raised during extraction (its pipe: the table, ``<table>_rows`` for a contracted
    table, ``<table>__quarantine``), or None when the failure names none of ``tables``."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ResourceExtractionError):
            pipe = str(seen.pipe_name)
            for name in (pipe, pipe.removesuffix("_rows"), pipe.removesuffix("__quarantine")):
                if name in tables:
                    return name
            return None
        seen = seen.__cause__ or seen.__context__
    return None


@contextmanager
def _interruptions_pass_through() -> Iterator[None]:
    """dlt wraps a KeyboardInterrupt raised in a step (a signal handler's) in PipelineStepFailed, an ordinary
    exception that would read as a failed source: raise the interruption itself (the load package stays pending and
    the next run finishes it)."""
    try:
        yield
    except PipelineStepFailed as exc:
        if isinstance(exc.exception, KeyboardInterrupt):
            raise exc.exception from None
        raise


class ContractViolation(RuntimeError):
    """A dlt schema contract (``freeze``) rejected a whole load: nothing of that run was loaded."""

    def __init__(self, definition: SourceDefinition, error: DataValidationError) -> None:
        self.table = error.table_name
        where = f"{definition.dataset}.{error.table_name}" + (f".{error.column_name}" if error.column_name else "")
        super().__init__(
            f"{where}: the source broke the {error.schema_entity} contract `{error.contract_mode}` "
            f"({error.schema_entity} of this table are frozen): nothing from this run was loaded and the "
            f"incremental cursor was not moved. Fix the source, or change the contract in "
            f"ingestion/{definition.name}/source.py, then rerun `headwater ingest {definition.name}`."
        )


class SourceFailed(RuntimeError):
    """Reading the source failed (a value its reader cannot convert, a broken connection): nothing of the failing
    table (or of the source, when no table can be told) was loaded and its incremental cursor stayed where it was."""

    def __init__(
        self,
        definition: SourceDefinition,
        error: PipelineStepFailed,
        table: str | None = None,
        others_failed: dict[str, str] | None = None,
    ) -> None:
        self.table = table
        conversion = _find(error, PyToArrowConversionException)
        column = conversion_field(conversion) if conversion is not None else ""
        where = f"{definition.dataset}.{table}" if table else f"source {definition.name} ({definition.dataset})"
        if conversion is not None and column:
            cause = conversion.__cause__ or conversion.__context__
            detail = _first(cause) if cause is not None else _first(conversion)
            what = f"column {column} holds a value its type {conversion.data_type} cannot take ({detail})"
        elif table:  # the reader failed on a value dlt does not name: the innermost error says what it was
            root = _innermost(error)
            what = f"its reader failed on a value ({type(root).__name__}: {_first(root) or repr(root)})"
        else:
            what = _first(error.exception) or repr(error.exception)
        scope = (
            "Nothing of this table was loaded and its incremental cursor was not moved"
            if table
            else "Nothing from this run was loaded and the incremental cursor was not moved"
        )
        also = f" ({len(others_failed)} more table(s) failed likewise)" if others_failed else ""
        super().__init__(
            f"{where}: {what}.{also} {scope}, so the rows come again once the source is fixed; then rerun "
            f"`headwater ingest {definition.name}`."
        )


def _find(exc: BaseException, kind: type[_E]) -> _E | None:
    """The first exception of ``kind`` in ``exc``'s chain (causes, contexts, a dlt step's wrapped exception)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__ or seen.__context__ or getattr(seen, "exception", None)
    return None


_E = TypeVar("_E", bound=BaseException)


def _innermost(exc: BaseException) -> BaseException:
    """The deepest exception of ``exc``'s chain (causes, contexts, a dlt step's wrapped exception)."""
    seen: BaseException | None = exc
    last = exc
    while seen is not None:
        last = seen
        seen = seen.__cause__ or seen.__context__ or getattr(seen, "exception", None)
    return last


def _first(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].strip() if lines else ""


def _contract_violation(exc: BaseException) -> DataValidationError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DataValidationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _rows_of_loads(pipeline: dlt.Pipeline, load_ids: Sequence[str]) -> dict[str, int]:
    """Rows per data table that the loads ``load_ids`` wrote (packages an interrupted run left pending)."""
    if not load_ids:
        return {}
    placeholders = ", ".join(["%s"] * len(load_ids))
    rows: dict[str, int] = {}
    with pipeline.sql_client() as client:
        for table in pipeline.default_schema.data_table_names():
            if table == QUARANTINE_TABLE or "_dlt_load_id" not in pipeline.default_schema.get_table_columns(table):
                continue  # rows without a load id (not written by Headwater's run_source) cannot be counted
            name = client.make_qualified_table_name(table)
            found = client.execute_sql(  # dlt's own quoting of a schema table name; load ids are bound
                f"select count(*) from {name} where _dlt_load_id in ({placeholders})",  # noqa: S608
                *load_ids,
            )
            count = found[0][0] if found else 0
            if count:
                rows[table] = int(count)
    return rows


def _quarantined(pipeline: dlt.Pipeline, load_ids: Sequence[str]) -> tuple[dict[str, int], dict[str, list[str]]]:
    placeholders = ", ".join(["%s"] * len(load_ids))
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name(QUARANTINE_TABLE)
        rows = client.execute_sql(  # the table name is dlt's own quoting of a constant; load ids are bound
            f"select table_name, reason, count(*) from {table} where _dlt_load_id in ({placeholders}) "  # noqa: S608
            "group by table_name, reason order by table_name, count(*) desc, reason",
            *load_ids,
        )
    counts: dict[str, int] = {}
    reasons: dict[str, list[str]] = {}
    for table_name, reason, count in rows or []:
        counts[table_name] = counts.get(table_name, 0) + int(count)
        if len(reasons.setdefault(table_name, [])) < 3:
            reasons[table_name].append(f"{count}× {reason}")
    return counts, reasons


def stored_schema(definition: SourceDefinition, *, target: str, pipelines_dir: Path) -> Schema:
    """The dlt schema of the source's last run on ``target``.

    Raises:
        LookupError: the source has never been loaded to that target (run ``headwater ingest``).
    """
    name = f"headwater_{definition.name}_{target}"
    try:
        pipeline = dlt.attach(pipeline_name=name, pipelines_dir=str(pipelines_dir))
        schema = pipeline.default_schema
    except Exception as exc:  # dlt raises several types here; all mean "no usable local state"
        raise LookupError(
            f"no dlt schema for source {definition.name!r} on target {target!r} in {pipelines_dir}; "
            "run `headwater ingest` first"
        ) from exc
    return schema


def stored_schemas(*, target: str, pipelines_dir: Path) -> dict[str, Schema]:
    """The stored dlt schema of every source loaded to ``target`` (sources never loaded there are left out)."""
    from ingestion.registry import SOURCES

    found = {}
    for name, definition in SOURCES.items():
        if not (Path(pipelines_dir) / f"headwater_{definition.name}_{target}").is_dir():
            continue
        try:
            found[name] = stored_schema(definition, target=target, pipelines_dir=pipelines_dir)
        except LookupError:
            continue
    return found
