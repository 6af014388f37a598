"""fakesnow's server (a Snowflake emulator) with two gaps closed that real Snowflake does not have.

Run with the emulator's own environment (``tests/emulators/fakesnow/pyproject.toml``: fakesnow 0.12 needs duckdb 2):

    uv run --project tests/emulators/fakesnow --locked python tests/emulators/fakesnow/serve.py -p PORT -d DIR

What is emulated here, and why (both are emulator gaps, not Headwater or dlt code paths; the real code path runs):

1. **Multi-statement requests.** dlt's snowflake client sends a batch of statements in one request
   (``cursor.execute(sql, num_statements=0)``: Snowflake's ``MULTI_STATEMENT_COUNT=0``). fakesnow 0.12.1 parses a
   request as one statement, so the batch ``CREATE TABLE ...; CREATE TABLE ...`` fails with ``Parser Error: syntax
   error at or near "CREATE"`` (``DESCRIBE CREATE TABLE ...``), which dlt reports as ``SchemaUpdateTransientError``.
   Here a request holding several statements runs them one after another and answers with the last one's result.
2. **A quoted stage location in PUT.** dlt uploads with ``PUT 'file://...' '@"SCHEMA"."%TABLE"/"<load id>"'``; real
   Snowflake accepts the location as a string literal, fakesnow 0.12.1 only unquoted (``... does not start with @``,
   while its LIST and COPY INTO accept the literal). Here PUT's literal is unquoted the way fakesnow's LIST does it.
3. **Commas between options.** dlt writes ``FILE_FORMAT = (TYPE = 'PARQUET', BINARY_AS_TEXT = FALSE, ...)``, which
   Snowflake accepts; sqlglot parses each comma as an empty ``SequenceProperties`` node and fakesnow's option
   reader asserts on it (a 500 the connector retries for minutes). Here those empty nodes are skipped.
4. **A quoted copy option.** dlt writes ``MATCH_BY_COLUMN_NAME='CASE_INSENSITIVE'``; fakesnow reads the option only
   unquoted. Here the literal is read as the keyword it names.
5. **JSON loaded by column name.** dlt stages its own ``_dlt_pipeline_state`` rows as JSON lines (that table's file
   format is dlt's "preferred" one, JSON on Snowflake, whatever the loader file format) and copies them with
   ``MATCH_BY_COLUMN_NAME``; fakesnow loads JSON only into one VARIANT column ("has 8 columns but 1 values were
   supplied"). Here such a copy reads the JSON lines as columns and matches them by name as fakesnow does for parquet.
6. **A quote in a table comment.** dbt's ``persist_docs`` writes ``comment on table ... IS $$The shop's ...$$``;
   fakesnow copies the text unescaped into its own catalog (``Parser Error: unterminated string literal``, a 500 the
   connector retries for minutes). Here the text is escaped first, and an empty comment (fakesnow's own MERGE
   staging table has one) is not written at all: DuckDB refuses a write to fakesnow's catalog database inside a
   transaction that already wrote to the warehouse, so every MERGE of dbt's snapshot failed.
7. **Several column comments in one ALTER.** dbt-snowflake's ``persist_docs`` writes ``alter table T alter "A"
   COMMENT $$...$$, "B" COMMENT $$...$$``, which sqlglot cannot parse (``syntax error at or near "COMMENT"``). Here it
   becomes one ``alter table T alter column "A" COMMENT '...'`` per column, the form fakesnow's server runs.
8. **NULL timestamps in results.** fakesnow's server sends a timestamp column as Snowflake's (epoch, fraction)
   struct without a validity mask, so a NULL reads back as 1970-01-01 (a table diff then reports NULLs as changed
   rows). Here the struct carries the column's NULLs.
9. **Temporary tables named with their database.** dbt-snowflake's incremental merge and snapshot stage their rows in
   ``create or replace temporary table DB.SCHEMA.X__dbt_tmp``; DuckDB refuses a temporary table outside its ``temp``
   catalog ("TEMPORARY table names can *only* use the temp catalog"). Here such a table is created as an ordinary
   one (it outlives the session in the emulator; dbt replaces it on the next run).
10. **Bare source columns in MERGE's INSERT VALUES.** dbt's snapshot merge writes ``when not matched ... then insert
    ("A", ...) values ("A", ...)``: Snowflake reads the values from the source; fakesnow's MERGE rewrite leaves them
    ambiguous ("Ambiguous reference to column name"), and the aborted DuckDB transaction then answers every later
    statement of the session with a 500 the connector retries for minutes. Here those columns are qualified with
    the source's alias first.

And one for the tests' sake: a statement the emulator fails on with an unexpected exception answers as a statement
error; fakesnow's server answers HTTP 500, which the connector retries for about ten minutes before giving up.

Everything else is fakesnow as released: the table stage, COPY INTO from parquet, the upload over HTTP.
"""

from __future__ import annotations

import re
import sys
from typing import Any

import fakesnow.arrow
import fakesnow.cli
import fakesnow.copy_into
import fakesnow.info_schema
import fakesnow.transforms.file_format
import fakesnow.transforms.stage
import pyarrow as pa
import pyarrow.compute as pc
import snowflake.connector.errors
import sqlglot
from fakesnow import transforms
from fakesnow.cursor import FakeSnowflakeCursor
from fakesnow.transforms.options import parse_options
from sqlglot import exp
from sqlglot.tokens import TokenType


def statements(sql: str) -> list[str]:
    """``sql`` split at its top-level semicolons (Snowflake's tokenizer: semicolons in strings stay), empty parts
    dropped; the text of each statement is kept as sent."""
    try:
        tokens = sqlglot.Dialect.get_or_raise("snowflake").tokenize(sql)
    except sqlglot.errors.TokenError:
        return [sql]
    parts, start = [], 0
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            parts.append(sql[start : token.start])
            start = token.end + 1
    parts.append(sql[start:])
    return [part.strip() for part in parts if part.strip()] or [sql]


_ALTER_COMMENTS = re.compile(r"^\s*alter\s+table\s+(\S+)\s+alter\s+(.*\bCOMMENT\s+\$\$.*)$", re.I | re.S)
_COLUMN_COMMENT = re.compile(r'("(?:[^"]|"")+"|\w+)\s+COMMENT\s+\$\$(.*?)\$\$', re.I | re.S)


def column_comments(statement: str) -> list[str]:
    """``alter table T alter "A" COMMENT $$a$$, "B" COMMENT $$b$$`` as one ALTER per column."""
    match = _ALTER_COMMENTS.match(statement)
    if not match:
        return [statement]
    table, columns = match.groups()
    return [
        f"alter table {table} alter column {column} COMMENT '{text.replace(chr(39), chr(39) * 2)}'"
        for column, text in _COLUMN_COMMENT.findall(columns)
    ]


_TEMPORARY = re.compile(
    r"^(\s*create\s+(?:or\s+replace\s+)?)(?:local\s+|global\s+)?temp(?:orary)?\s+"
    r"((?:table|view)\s+(?:if\s+not\s+exists\s+)?[^\s(.]+\.[^\s(.]+\.[^\s(]+)",
    re.I,
)


def qualified_temporary(statement: str) -> str:
    """``create temporary table DB.S.T`` as ``create table DB.S.T`` (names with fewer parts stay temporary)."""
    return _TEMPORARY.sub(r"\1\2", statement, count=1)


def qualified_merge(statement: str) -> str:
    """A MERGE whose ``insert ... values`` name bare columns, with each qualified by the source's alias."""
    if not re.match(r"\s*merge\s", statement, re.I):
        return statement
    try:
        tree = sqlglot.parse_one(statement, read="snowflake")
    except sqlglot.errors.ParseError:
        return statement
    source = tree.args.get("using")
    if not isinstance(tree, exp.Merge) or source is None:
        return statement
    bare = [
        column
        for when in tree.find_all(exp.When)
        if isinstance(then := when.args.get("then"), exp.Insert) and then.expression is not None
        for column in then.expression.find_all(exp.Column)
        if not column.table
    ]
    for column in bare:
        column.set("table", exp.to_identifier(source.alias_or_name))
    return tree.sql(dialect="snowflake") if bare else statement


_execute = FakeSnowflakeCursor.execute


def execute(self: FakeSnowflakeCursor, command: str, *args: Any, **kwargs: Any) -> FakeSnowflakeCursor:
    parts = statements(command) if ";" in command else [command]
    parts = [qualified_merge(qualified_temporary(one)) for part in parts for one in column_comments(part)]
    try:
        for part in parts[:-1]:
            _execute(self, part, *args, **kwargs)
        return _execute(self, parts[-1], *args, **kwargs)
    except snowflake.connector.errors.Error:
        raise
    except Exception as exc:  # an emulator failure answers as a statement error, not a 500 retried for minutes
        raise snowflake.connector.errors.ProgrammingError(
            msg=f"fakesnow (emulator) failed: {type(exc).__name__}: {exc}", errno=9999, sqlstate="99999"
        ) from exc


_put_stage = transforms.put_stage


def put_stage(expression: exp.Expr, *args: Any, **kwargs: Any) -> exp.Expr:
    if isinstance(expression, exp.Put):
        target = expression.args.get("target")
        text = target.text("this") if isinstance(target, exp.Var) else ""
        if text.startswith("'"):
            expression.set("target", exp.Var(this=sqlglot.parse_one(text, read="snowflake").name))
    return _put_stage(expression, *args, **kwargs)


def options(properties: Any) -> dict[str, Any]:
    return parse_options(p for p in properties if not isinstance(p, exp.SequenceProperties))


_params = fakesnow.copy_into._params


class ReadJSONByName(fakesnow.copy_into.ReadParquet):
    """JSON lines read as columns, so that fakesnow's parquet path matches them to the table's columns by name."""

    def read_expression(self, url: str) -> exp.Expr:
        fmt = exp.EQ(this=exp.var("format"), expression=exp.Literal.string("newline_delimited"))
        return exp.func("read_json", self.file_literal(url), fmt)


def copy_params(expression: exp.Copy, *args: Any, **kwargs: Any) -> Any:
    for param in expression.args.get("params") or []:
        value = param.args.get("expression")
        if param.this.name.upper() == "MATCH_BY_COLUMN_NAME" and isinstance(value, exp.Literal):
            param.set("expression", exp.Var(this=value.name))
    params = _params(expression, *args, **kwargs)
    by_name = params.match_by_column_name != fakesnow.copy_into.MatchByColumnName.NONE
    if isinstance(params.file_format, fakesnow.copy_into.ReadJSON) and by_name:
        params.file_format = ReadJSONByName()
    return params


def column_names(url: str, duck_conn: Any) -> list[str]:
    reader = ReadJSONByName() if ".json" in url.rsplit("/", 1)[-1] else fakesnow.copy_into.ReadParquet()
    read = reader.read_expression(url).sql(dialect="duckdb")
    return [row[0] for row in duck_conn.execute(f"DESCRIBE SELECT * FROM {read}").fetchall()]


_table_comment = fakesnow.info_schema.insert_table_comment_sql


def table_comment(catalog: str, schema: str, table: str, comment: str | None) -> str:
    if not comment:  # nothing to record (fakesnow's own MERGE staging table): no write to its catalog database,
        return "SELECT 1"  # which DuckDB refuses inside a transaction that already wrote to the warehouse
    return _table_comment(catalog, schema, table, comment.replace("'", "''"))


_timestamp_struct = fakesnow.arrow.timestamp_to_sf_struct


def timestamp_struct(ts: pa.Array | pa.ChunkedArray) -> pa.Array:
    struct = _timestamp_struct(ts)
    ts = ts.combine_chunks() if isinstance(ts, pa.ChunkedArray) else ts
    if not ts.null_count:
        return struct
    children = [pc.fill_null(struct.field(i), 0) for i in range(struct.type.num_fields)]
    return pa.StructArray.from_arrays(children, fields=list(struct.type), mask=ts.is_null())


def main() -> int:
    FakeSnowflakeCursor.execute = execute  # type: ignore[method-assign]
    transforms.put_stage = put_stage
    for module in (fakesnow.copy_into, fakesnow.transforms.file_format, fakesnow.transforms.stage):
        module.parse_options = options  # type: ignore[attr-defined]
    fakesnow.copy_into._params = copy_params
    fakesnow.copy_into._get_parquet_column_names = column_names
    fakesnow.info_schema.insert_table_comment_sql = table_comment
    fakesnow.arrow.timestamp_to_sf_struct = timestamp_struct
    return fakesnow.cli.main(["-s", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
