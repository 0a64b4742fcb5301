"""MySQL / MariaDB source: a table or query, split into integer key ranges (DataX splitPk).

Planning uses pymysql (schema, key bounds, watermark). Reading uses ConnectorX, which decodes the
MySQL wire protocol straight into Arrow in Rust: no Python object per row. Types map faithfully:
integers (unsigned ones widened), DECIMAL(p,s) exactly, floats, utf8mb4 text, binary, DATE,
DATETIME/TIMESTAMP (microseconds, no time zone), TIME and YEAR as text and small integers.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Iterator
from urllib.parse import quote

import pyarrow as pa

from accelsync.connections import Connection, get_connection
from accelsync.engine.dirty import DirtyLog
from accelsync.errors import TerminalError, TransientError, classify
from accelsync.engine.plan import Plan
from accelsync.sources.base import Source
from accelsync.sources.mysql.spec import MysqlSourceSpec
from accelsync.state import load_state

# pymysql FIELD_TYPE codes
_DECIMAL, _TINY, _SHORT, _LONG, _FLOAT, _DOUBLE, _NULL, _TIMESTAMP, _LONGLONG, _INT24 = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9
_DATE, _TIME, _DATETIME, _YEAR, _NEWDATE, _VARCHAR, _BIT, _JSON, _NEWDECIMAL = 10, 11, 12, 13, 14, 15, 16, 245, 246
_ENUM, _SET, _TINY_BLOB, _MEDIUM_BLOB, _LONG_BLOB, _BLOB, _VAR_STRING, _STRING, _GEOMETRY = \
    247, 248, 249, 250, 251, 252, 253, 254, 255
_UNSIGNED_FLAG = 32
_BINARY_CHARSET = 63
_INTEGER_TYPES = {_TINY, _SHORT, _LONG, _LONGLONG, _INT24}
_TEMPORAL_TYPES = {_DATE, _NEWDATE, _DATETIME, _TIMESTAMP}


def quote_identifier(name: str) -> str:
    """`name` or `db`.`name`; the spec already allows only plain identifiers."""
    return ".".join(f"`{part}`" for part in name.split("."))


def arrow_type(field) -> pa.DataType:
    """The Arrow type for a pymysql result field."""
    code, unsigned = field.type_code, bool(field.flags & _UNSIGNED_FLAG)
    if code == _TINY:
        return pa.int16() if unsigned else pa.int8()
    if code == _SHORT or code == _YEAR:
        return pa.int32() if unsigned else pa.int16()
    if code in (_LONG, _INT24):
        return pa.int64() if unsigned else pa.int32()
    if code == _LONGLONG:
        return pa.decimal128(20, 0) if unsigned else pa.int64()
    if code == _FLOAT:
        return pa.float32()
    if code == _DOUBLE:
        return pa.float64()
    if code in (_DECIMAL, _NEWDECIMAL):
        scale = field.scale
        precision = field.length - (1 if scale else 0) - (0 if unsigned else 1)
        return pa.decimal128(max(1, min(precision, 38)), scale)
    if code in (_DATE, _NEWDATE):
        return pa.date32()
    if code in (_DATETIME, _TIMESTAMP):
        return pa.timestamp("us")
    if code in (_BIT, _GEOMETRY):
        return pa.binary()
    if code in (_TINY_BLOB, _MEDIUM_BLOB, _LONG_BLOB, _BLOB, _VAR_STRING, _STRING, _VARCHAR):
        return pa.binary() if field.charsetnr == _BINARY_CHARSET else pa.string()
    return pa.string()  # TIME, JSON, ENUM, SET and anything newer: as text


def select_expression(field) -> str:
    """How to select a column so that the wire value converts exactly (casts for odd types)."""
    name = quote_identifier(field.name)
    # DECIMAL travels as text and is parsed into decimal128(p, s) by Arrow: exact at any scale.
    if field.type_code in (_TIME, _ENUM, _SET, _JSON, _DECIMAL, _NEWDECIMAL):
        return f"CAST({name} AS CHAR) AS {name}"
    if field.type_code == _YEAR:
        return f"CAST({name} AS UNSIGNED) AS {name}"
    if field.type_code == _LONGLONG and field.flags & _UNSIGNED_FLAG:
        return f"CAST({name} AS CHAR) AS {name}"
    return name


class MysqlSource(Source):
    type = "mysql"
    options: MysqlSourceSpec

    def plan(self, channels: int) -> Plan:
        import pymysql

        conn = get_connection(self.options.connection)
        try:
            return self._plan(conn, channels)
        except pymysql.err.OperationalError as exc:  # lost or killed connection, server shutdown
            raise TransientError(f"MySQL planning query failed: {conn.redact(str(exc.args[-1]))}") from None
        except pymysql.err.MySQLError as exc:  # e.g. a `where` the server rejects
            raise TerminalError(f"source: MySQL rejected a planning query: {conn.redact(str(exc.args[-1]))}") from None

    def _plan(self, conn: Connection, channels: int) -> Plan:
        with _connect(conn) as db:
            cursor = db.cursor()
            base = self._base_query()
            fields = _describe(cursor, base, conn)
            schema = pa.schema([pa.field(f.name, arrow_type(f)) for f in fields])
            select = ", ".join(select_expression(f) for f in fields)
            conditions = [f"({self.options.where})"] if self.options.where else []
            state: dict[str, Any] = {}
            if self.options.incremental:
                conditions, state = self._incremental(cursor, conditions, fields)
            if self.options.query is not None:
                sql = f"SELECT {select} FROM ({self.options.query}) AS accelsync_q"
                return Plan(schema, [{"sql": sql}], state, "query, one partition")
            table = quote_identifier(self.options.table)
            ranges = self._split(cursor, table, fields, conditions, channels)
        partitions = []
        for condition in ranges:
            where = " AND ".join(conditions + ([condition] if condition else []))
            partitions.append({"sql": f"SELECT {select} FROM {table}" + (f" WHERE {where}" if where else "")})
        how = f"{len(partitions)} ranges of {self.options.split_pk}" if self.options.split_pk else "one partition"
        return Plan(schema, partitions, state, how)

    def read(self, plan: Plan, partition: dict, dirty: DirtyLog) -> Iterator[pa.RecordBatch]:
        import connectorx

        conn = get_connection(self.options.connection)
        try:
            reader = connectorx.read_sql(_url(conn), partition["sql"], return_type="arrow_stream",
                                         batch_size=self.options.fetch_size)
        except Exception as exc:  # ConnectorX raises plain RuntimeErrors with the server's text
            raise _error(exc, conn) from None
        try:
            for batch in reader:
                if batch.num_rows:
                    yield conform(batch, plan.schema)
        except (GeneratorExit, KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # a lost connection surfaces as pyo3's PanicException
            raise _error(exc, conn) from None

    def publish(self, plan: Plan) -> dict:
        if self.options.incremental and plan.state.get("upper") is not None:
            from accelsync.state import save_state
            save_state(self.spec.name, {"watermark": plan.state["upper"],
                                        "column": self.options.incremental.column})
            return {"watermark": plan.state["upper"]}
        return {}

    def _base_query(self) -> str:
        if self.options.query is not None:
            return f"SELECT * FROM ({self.options.query}) AS accelsync_q"
        columns = ", ".join(quote_identifier(c) for c in self.options.columns) if self.options.columns else "*"
        return f"SELECT {columns} FROM {quote_identifier(self.options.table)}"

    def _incremental(self, cursor, conditions: list[str], fields) -> tuple[list[str], dict]:
        """Rows from the saved watermark (itself included, minus `lookback`) up to the column's
        maximum now, and rows whose column is NULL. The watermark's own value is read again
        because a row committed after the last run may carry it too (a DATETIME holds whole
        seconds); keyed targets absorb the re-read rows, and the spec refuses targets that would
        count them twice."""
        incremental = self.options.incremental
        column = quote_identifier(incremental.column)
        where = " AND ".join(conditions) or "1=1"
        cursor.execute(f"SELECT MAX({column}) FROM {quote_identifier(self.options.table)} WHERE {where}")
        upper = cursor.fetchone()[0]
        saved = load_state(self.spec.name).get("watermark")
        # Rows whose column is NULL have no place in the order: they are read by every run (keyed
        # targets converge), never left behind.
        window = [] if upper is None else [f"{column} <= %s" % _literal(cursor, upper)]
        if saved is not None and upper is not None:
            window.insert(0, f"{column} >= {self._lower_bound(cursor, saved, fields)}")
        in_window = " AND ".join(window) if window else "1=0"
        bounded = [*conditions, f"({column} IS NULL OR ({in_window}))"]
        return bounded, {"lower": saved, "lookback": _lookback_text(incremental.lookback),
                         "upper": None if upper is None else str(upper)}

    def _lower_bound(self, cursor, saved: str, fields) -> str:
        """The SQL lower bound: the saved watermark, moved down by `lookback` when set."""
        lookback = self.options.incremental.lookback
        literal = _literal(cursor, saved)
        if not lookback:
            return literal
        kind = {f.name: f for f in fields}.get(self.options.incremental.column)
        temporal = kind is not None and kind.type_code in _TEMPORAL_TYPES
        if isinstance(lookback, timedelta):
            if not temporal:
                raise TerminalError(f"source.incremental.lookback: {_lookback_text(lookback)} is a duration, but "
                                    f"{self.options.incremental.column!r} is not a date or time column; give a number")
            micros = int(lookback.total_seconds() * 1_000_000)
            return f"(CAST({literal} AS DATETIME(6)) - INTERVAL {micros} MICROSECOND)"
        if temporal:
            raise TerminalError(f"source.incremental.lookback: {lookback} is a number, but "
                                f"{self.options.incremental.column!r} is a date or time column; give a duration (5m)")
        return f"({literal} - {int(lookback)})"

    def _split(self, cursor, table: str, fields, conditions: list[str], channels: int) -> list[str | None]:
        pk = self.options.split_pk
        if not pk or channels <= 1:
            return [None]
        by_name = {f.name: f for f in fields}
        if pk not in by_name:
            raise TerminalError(f"source.split_pk: {pk!r} is not a selected column")
        if by_name[pk].type_code not in _INTEGER_TYPES:
            raise TerminalError(f"source.split_pk: {pk!r} is not an integer column; split on an integer key")
        column = quote_identifier(pk)
        where = " AND ".join(conditions) or "1=1"
        cursor.execute(f"SELECT MIN({column}), MAX({column}) FROM {table} WHERE {where}")
        low, high = cursor.fetchone()
        if low is None:
            return [None]
        count = max(1, min(channels, high - low + 1))
        step = (high - low + 1) / count
        bounds = [low + int(step * i) for i in range(1, count)]
        if not bounds:
            return [None]
        # Open-ended first and last ranges, and NULL keys in the first: every row in exactly one.
        ranges = [f"({column} < {bounds[0]} OR {column} IS NULL)"]
        ranges += [f"{column} >= {a} AND {column} < {b}" for a, b in zip(bounds, bounds[1:])]
        ranges.append(f"{column} >= {bounds[-1]}")
        return ranges


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """Cast a batch as ConnectorX decoded it to the planned schema (exact: casts are checked)."""
    if batch.schema.equals(schema):
        return batch
    columns = []
    for field in schema:
        column = batch.column(field.name)
        if column.type != field.type:
            column = column.cast(field.type)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _connect(conn: Connection):
    import pymysql

    try:
        return pymysql.connect(host=conn.host or "127.0.0.1", port=conn.port or 3306, user=conn.login or "root",
                               password=conn.password or "", database=conn.schema or None,
                               charset="utf8mb4", connect_timeout=10)
    except pymysql.err.OperationalError as exc:
        raise TransientError(f"MySQL at {conn.safe_address()} is unavailable: "
                             f"{conn.redact(str(exc.args[-1]))}") from None


def _describe(cursor, base: str, conn: Connection):
    import pymysql

    try:
        cursor.execute(f"{base} LIMIT 0")
    except pymysql.err.ProgrammingError as exc:
        raise TerminalError(f"source: MySQL rejected the query: {conn.redact(str(exc.args[-1]))}") from None
    except pymysql.err.OperationalError as exc:
        code = exc.args[0] if exc.args else None
        if code in (1054, 1146, 1049, 1064):  # unknown column / table / database, syntax
            raise TerminalError(f"source: {conn.redact(str(exc.args[-1]))}") from None
        raise TransientError(f"MySQL query failed: {conn.redact(str(exc.args[-1]))}") from None
    return cursor._result.fields


def _lookback_text(lookback: Any) -> Any:
    if isinstance(lookback, timedelta):
        from accelsync.spec import format_duration
        return format_duration(lookback)
    return lookback


def _literal(cursor, value: Any) -> str:
    return cursor.connection.literal(value)


def _url(conn: Connection) -> str:
    auth = quote(conn.login or "root", safe="")
    if conn.password:
        auth += ":" + quote(conn.password, safe="")
    return f"mysql://{auth}@{conn.host or '127.0.0.1'}:{conn.port or 3306}/{quote(conn.schema or '', safe='')}"


def _error(exc: Exception, conn: Connection) -> Exception:
    """A lost, refused, killed or interrupted connection is worth another attempt (errors.py's
    list); anything else the server or ConnectorX says fails at once."""
    return classify(exc, f"MySQL read failed: {conn.redact(str(exc))}")
