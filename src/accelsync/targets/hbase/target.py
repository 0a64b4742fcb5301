"""HBase target: each row becomes one HBase row, written through the HBase Thrift server (happybase).

What HBase holds, so readers can rely on it:
- **row key**: `row_key` rendered column-wise (`value_text.render`, the same value text as Redis). With
  `salt: {buckets: N}` a stable bucket is put in front, computable in any language:

      salted = f"{zlib.crc32(key) % N:0{len(str(N - 1))}d}_".encode() + key

  where `key` is the rendered row key (UTF-8 bytes) and CRC-32 is the IEEE one (zlib, Java's
  `java.util.zip.CRC32`, Go's `crc32.ChecksumIEEE`). E.g. N=16, key `user:42` -> `06_user:42`.
- **cells**: `columns: {"cf:q": column}`, or `family: cf` for every column not used in the row
  key as `cf:<column>`. Values are `value_text.as_text` text (integers as digits, decimals with their
  scale, `YYYY-MM-DD HH:MM:SS[.ffffff]`, ...), so Redis and HBase agree on value text.
- **NULL** deletes the cell (every version up to the row's timestamp), so a rerun converges on
  the source row. A row whose cells are all NULL has its cells deleted and is reported dirty
  (HBase has no empty row); a NULL row-key column, an empty row key or a NULL version is dirty
  and not written.
- **timestamps**: `version_column` gives each row's cell timestamp: a timestamp or date column
  as milliseconds since 1970-01-01 UTC (naive values read as UTC), an integer column as is;
  `version` gives every cell one fixed timestamp.
  Without it the server's clock stamps the cells, and each rerun adds a version (HBase keeps the
  family's `maxVersions`, 3 for tables created here). A version before 1970 or equal to
  2^63-1 (HBase's "now" marker, which the server would replace by its clock) is dirty.
- **tables** created here (`create_table: true`) get, per family, 3 versions, the block cache on
  and a row Bloom filter (HBase's defaults apart from versions; Thrift would otherwise create
  families with the block cache off and no Bloom filter).

Writes: the binary-protocol `mutateRows` / `mutateRowsTs` messages are built column-wise with Arrow
kernels (as `resp` builds Redis commands) and sent on the happybase connection's transport, with
up to `_WINDOW` replies outstanding; `batch_size` rows per message. Thrift1 has one timestamp per
call, so with `version_column` rows are grouped by timestamp, one message per distinct timestamp.
A connection with `protocol: compact` goes through happybase's `Table.batch` instead.
A write that fails is checked against the table: one that no longer exists or was disabled fails
the run at once (HBase reports both only as a failed mutation, which would otherwise be retried).

Connection (Airflow HBase style): host, port (9090), extra `table_prefix`, `table_prefix_separator`,
`transport` (buffered | framed), `protocol` (binary | compact), `compat`, `timeout` (ms, 60000).
"""

from __future__ import annotations

import sys
import time
import zlib
from datetime import date, datetime, timezone
from typing import Any, Optional

import calendar
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from accelsync.connections import Connection, get_connection
from accelsync.errors import AccelsyncError, TerminalError
from accelsync.spec import Spec
from accelsync.targets import value_text
from accelsync.targets.base import BatchWriter, Target
from accelsync.targets.hbase.client import hbase_connection, hbase_error, salt_prefixes
from accelsync.targets.hbase.spec import HbaseTargetSpec
from accelsync.targets.hbase.thrift import MutationPipe, mutation_messages, row_mutations
from accelsync.targets.value_text import same as _same, show as _show, text as _text


_READ_CHUNK = 5000          # row keys per getRows call (gate reads)
_DAY_MS = 86_400_000
_LATEST = 2**63 - 1         # HBase's LATEST_TIMESTAMP: the server stamps such cells with its clock
# Table families created here: HBase's own defaults (block cache, row Bloom filter), 3 versions.
_FAMILY = {"max_versions": 3, "block_cache_enabled": True, "bloom_filter_type": "ROW"}
# HBase's legal names (TableName.isLegalTableQualifierName, ColumnFamilyDescriptor): a table may
# have a namespace; neither may start with a period or hold anything but these characters.
# `java.pkg.SomeException: ` before a class name, and the table descriptor HBase appends to some messages
# IOErrors that retrying cannot fix (the rest, e.g. a region in transition, are transient)


# ---------------------------------------------------------------- the target

class HbaseTarget(Target):
    type = "hbase"
    options: HbaseTargetSpec

    def __init__(self, spec: Spec):
        super().__init__(spec)

    # -- what the spec maps where ---------------------------------------------------------------

    def families(self) -> list[str]:
        if self.options.family is not None:
            return [self.options.family]
        return sorted({cell.split(":", 1)[0] for cell in self.options.columns})

    def cells(self, columns: list[str]) -> list[tuple[bytes, str]]:
        """(b"family:qualifier", source column) of every cell a row writes."""
        if self.options.columns is not None:
            missing = [c for c in self.options.columns.values() if c not in columns]
            if missing:
                raise TerminalError(f"target.columns: {missing} are not columns of the synced data "
                                    f"(columns: {', '.join(columns)})")
            return [(cell.encode(), column) for cell, column in self.options.columns.items()]
        keyed = set(self.options.row_key.columns)
        cells = [(f"{self.options.family}:{c}".encode(), c) for c in columns if c not in keyed]
        if not cells:
            raise TerminalError("target.family: every column is in the row key; no column is left for cells")
        return cells

    def row_keys(self, batch: pa.RecordBatch) -> pa.Array:
        """Row keys (binary), salted when asked; null where a row-key column is NULL."""
        keys = value_text.render(self.options.row_key, batch)
        if self.options.salt is None:
            return keys
        buckets = self.options.salt.buckets
        crc = zlib.crc32
        indices = pa.array([None if k is None else crc(k) % buckets for k in keys.to_pylist()], pa.int32())
        return pc.binary_join_element_wise(pc.take(pa.array(salt_prefixes(buckets), pa.binary()), indices),
                                           keys, b"")

    def salted(self, key: bytes) -> bytes:
        """One row key as `row_keys` makes it (for reads, row by row)."""
        if self.options.salt is None:
            return key
        return salt_prefixes(self.options.salt.buckets)[zlib.crc32(key) % self.options.salt.buckets] + key

    def timestamps(self, batch: pa.RecordBatch) -> Optional[pa.Array]:
        """Each row's cell timestamp in ms (int64, null where the version column is NULL)."""
        if self.options.version is not None:  # one timestamp for every cell
            return pa.array(np.full(batch.num_rows, self.options.version, dtype=np.int64))
        name = self.options.version_column
        if name is None:
            return None
        if name not in batch.schema.names:
            raise TerminalError(f"target.version_column: {name!r} is not a column of the synced data "
                                f"(columns: {', '.join(batch.schema.names)})")
        column = batch.column(name)
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        kind = column.type
        if pa.types.is_timestamp(kind):
            raw = column.cast(pa.int64())
            if kind.unit == "s":
                millis = pc.multiply(raw, 1000)
            elif kind.unit == "ms":
                millis = raw
            else:
                millis = pc.divide(raw, 1000 if kind.unit == "us" else 1_000_000)
            # division truncates toward zero (-0.5 ms would become 0): pre-1970 stays negative (dirty)
            return pc.if_else(pc.less(raw, 0), pa.scalar(-1, pa.int64()), millis)
        if pa.types.is_date32(kind):
            return pc.multiply(column.cast(pa.int32()).cast(pa.int64()), _DAY_MS)
        if pa.types.is_date64(kind):
            return column.cast(pa.int64())
        if pa.types.is_integer(kind):
            return column.cast(pa.int64(), safe=False)
        raise TerminalError(f"target.version_column: {name!r} is {kind}; use a timestamp, date or integer "
                            f"column (milliseconds since 1970)")

    # -- stages ---------------------------------------------------------------------------------

    def prepare(self, run_id: str) -> dict[str, Any]:
        conn = self._conn()
        name = self.options.table
        client = hbase_connection(conn)
        try:
            if name.encode() not in client.tables():
                if not self.options.create_table:
                    raise TerminalError(f"target.table: HBase table {name!r} does not exist "
                                        f"(set create_table: true to create it)")
                self._create(client)
            else:
                have = {f.decode() for f in client.table(name).families()}
                missing = [f for f in self.families() if f not in have]
                if missing:
                    field = "family" if self.options.family is not None else "columns"
                    raise TerminalError(f"target.{field}: HBase table {name!r} has no column family "
                                        f"{missing[0]!r} (it has: {', '.join(sorted(have))})")
                problem = self._table_problem(client)
                if problem:
                    raise TerminalError(problem)
        except AccelsyncError:
            raise
        except Exception as exc:
            raise hbase_error(exc, conn, "target.table") from None
        finally:
            client.close()
        return {}

    def _create(self, client) -> None:
        idl = sys.modules["Hbase_thrift"]
        try:
            client.create_table(self.options.table, {family: dict(_FAMILY) for family in self.families()})
        except idl.AlreadyExists:
            pass  # another run created it meanwhile

    def _table_problem(self, client) -> Optional[str]:
        """Why the table cannot take writes (it does not exist, or is disabled), or None."""
        name = self.options.table
        if name.encode() not in client.tables():
            return f"target.table: HBase table {name!r} does not exist"
        if not client.is_table_enabled(name):
            return f"target.table: HBase table {name!r} is disabled"
        return None

    def write_failure(self, exc: Exception, conn: Connection) -> AccelsyncError:
        """The error for a failed write. HBase reports a write to a dropped or disabled table only
        as a failed mutation ("RetriesExhaustedWithDetailsException: Failed 1 action: t: 1 time,
        servers with issues: null" or "... NotServingRegionException ..."), which reads as
        transient: ask the table's state on a fresh connection, and make those two terminal."""
        error = hbase_error(exc, conn, "writing")
        if not error.retryable:
            return error
        try:
            client = hbase_connection(conn)
            try:
                problem = self._table_problem(client)
            finally:
                client.close()
        except Exception:  # the server is away: the write's own error says so
            return error
        return TerminalError(f"writing: {problem}") if problem else error

    def open_writer(self, context: dict[str, Any]) -> BatchWriter:
        return _HbaseWriter(self)

    def gate_columns(self) -> list[str]:
        return list(self.options.row_key.columns)

    def count_present(self, batch: pa.RecordBatch, context: dict[str, Any]) -> int:
        keys = self.row_keys(batch).drop_null().to_pylist()
        families = [f.encode() for f in self.families()]
        conn = self._conn()
        client = hbase_connection(conn)
        try:
            table = client.table(self.options.table)
            return sum(len(table.rows(keys[start:start + _READ_CHUNK], columns=families))
                       for start in range(0, len(keys), _READ_CHUNK))
        except Exception as exc:
            raise hbase_error(exc, conn, "reading back") from None
        finally:
            client.close()

    def count_present_all(self, snapshot, context: dict[str, Any]) -> int | None:
        from accelsync.targets.hbase import presence

        conn = self._conn()

        def open_table():
            client = hbase_connection(conn)
            return client.table(self.options.table), client.close
        try:
            return presence.count_present([self.row_keys(batch).drop_null() for batch in snapshot()],
                                          [f.encode() for f in self.families()], open_table)
        except AccelsyncError:
            raise
        except Exception as exc:
            raise hbase_error(exc, conn, "reading back") from None

    def read_back(self, rows: list[dict[str, Any]], context: dict[str, Any]) -> list[dict[str, Any]]:
        if not rows:
            return []
        cells = self.cells(list(rows[0]))
        keys = [self.salted(self.options.row_key.render(
            {k: _text(row[k]).decode("utf-8", "surrogateescape") for k in self.options.row_key.columns}
        ).encode("utf-8", "surrogateescape")) for row in rows]
        conn = self._conn()
        client = hbase_connection(conn)
        try:
            table = client.table(self.options.table)
            found: dict[bytes, dict] = {}
            for start in range(0, len(keys), _READ_CHUNK):
                found.update(table.rows(keys[start:start + _READ_CHUNK], include_timestamp=True))
        except Exception as exc:
            raise hbase_error(exc, conn, "reading back") from None
        finally:
            client.close()
        mismatches: list[dict[str, Any]] = []
        for key, row in zip(keys, rows):
            shown = key.decode("utf-8", "backslashreplace")
            got = found.get(key)
            if not got:
                mismatches.append({"key": shown, "field": None, "expected": "present", "actual": "missing"})
                continue
            stamp = (_millis(row[self.options.version_column]) if self.options.version_column
                     else self.options.version)
            mapped = set()
            for cell, column in cells:
                mapped.add(cell)
                expected, actual = row[column], got.get(cell)
                if expected is None or actual is None:
                    if expected is not None or actual is not None:
                        mismatches.append({"key": shown, "field": cell.decode(), "expected": _show(expected),
                                           "actual": _show(actual[0] if actual else None)})
                elif not _same(expected, actual[0]):
                    mismatches.append({"key": shown, "field": cell.decode(), "expected": _show(expected),
                                       "actual": _show(actual[0])})
                elif stamp is not None and actual[1] != stamp:
                    mismatches.append({"key": shown, "field": f"{cell.decode()} timestamp", "expected": stamp,
                                       "actual": actual[1]})
            if self.options.family is not None:  # the whole family is this sync's
                for cell in sorted(set(got) - mapped):
                    mismatches.append({"key": shown, "field": cell.decode("utf-8", "backslashreplace"),
                                       "expected": None, "actual": _show(got[cell][0])})
        return mismatches

    def _conn(self) -> Connection:
        return get_connection(self.options.connection)


def _millis(value: Any) -> Optional[int]:
    """A version value as cell-timestamp milliseconds, row by row (for read-back)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return calendar.timegm(value.timetuple()) * 1000 + value.microsecond // 1000
    if isinstance(value, date):
        return calendar.timegm(value.timetuple()) * 1000
    return int(value)


# ---------------------------------------------------------------- the writer

# Below the Thrift server's 60 s idle limit, with room for a slow batch.
IDLE_REOPEN = 30.0


class _HbaseWriter(BatchWriter):
    """One write task: one happybase connection, mutations built and sent a batch at a time."""

    def __init__(self, target: HbaseTarget):
        self.target = target
        self.options = target.options
        self.conn = target._conn()
        self.cells: Optional[list[tuple[bytes, str]]] = None
        self._open()

    def _open(self) -> None:
        self.client = hbase_connection(self.conn)
        self.table = self.client.table(self.options.table)
        binary = str(self.conn.extra.get("protocol", "binary")) == "binary"
        self.pipe = MutationPipe(self.client, self.table.name) if binary else None
        self.used = time.monotonic()

    def _reopen_if_idle(self) -> None:
        """HBase's Thrift server drops a connection idle for 60 s (`hbase.thrift.server.socket.
        read.timeout`), as one is while a slow source (a quiet topic, a long query) gives nothing:
        take the replies already sent back, then start a new connection."""
        if time.monotonic() - self.used < IDLE_REOPEN:
            return
        if self.pipe is not None:
            self.pipe.drain()
        self.client.close()
        self._open()

    def write(self, batch: pa.RecordBatch) -> list[tuple[int, str]]:
        if self.cells is None:
            self.cells = self.target.cells(batch.schema.names)
        keys = self.target.row_keys(batch)
        values = [value_text.as_text(batch.column(column)) for _, column in self.cells]
        stamps = self.target.timestamps(batch)
        rejected, writable = self._reject(batch, keys, values, stamps)
        if writable is not None:
            keys = keys.filter(writable)
            values = [v.filter(writable) for v in values]
            stamps = stamps.filter(writable) if stamps is not None else None
        if len(keys):
            try:
                self._reopen_if_idle()
                if self.pipe is not None:
                    self._send(keys, values, stamps)
                    self.pipe.push()
                else:
                    self._send_with_happybase(keys, values, stamps)
                self.used = time.monotonic()
            except AccelsyncError:
                raise
            except Exception as exc:
                raise self.target.write_failure(exc, self.conn) from None
        return rejected

    def _reject(self, batch, keys, values, stamps):
        """(rows reported dirty with the reason, mask of the rows to write or None for all)."""
        bad_key = pc.is_null(keys)
        empty_key = pc.fill_null(pc.equal(pc.binary_length(keys), 0), False)
        bad = pc.or_(bad_key, empty_key)
        if stamps is not None:
            unusable = pc.or_(pc.less(stamps, 0), pc.equal(stamps, _LATEST))
            bad = pc.or_(bad, pc.fill_null(unusable, True))
        all_null = None
        for value in values:
            nulls = pc.is_null(value)
            all_null = nulls if all_null is None else pc.and_(all_null, nulls)
        flagged = pc.or_(bad, all_null)
        if not pc.any(flagged).as_py():
            return [], None
        rejected = []
        key_null = bad_key.to_pylist()
        key_empty = empty_key.to_pylist()
        stamp_list = stamps.to_pylist() if stamps is not None else None
        is_bad = bad.to_pylist()
        for index in pc.indices_nonzero(flagged).to_pylist():
            if key_null[index]:
                nulls = [c for c in self.options.row_key.columns if batch.column(c)[index].as_py() is None]
                rejected.append((index, f"row key column {nulls[0]!r} is NULL"))
            elif key_empty[index]:
                rejected.append((index, "row key is empty (HBase rows need a key of at least one byte)"))
            elif is_bad[index]:
                column = self.options.version_column
                if stamp_list[index] is None:
                    reason = f"version column {column!r} is NULL"
                elif stamp_list[index] < 0:
                    reason = f"version column {column!r} is before 1970-01-01 (HBase timestamps cannot be negative)"
                else:
                    reason = (f"version column {column!r} is {_LATEST}, which HBase reads as 'now' "
                              f"(the server's clock would stamp the cells)")
                rejected.append((index, reason))
            else:  # written: its cells are deleted, so the target still matches the source
                rejected.append((index, "every cell is NULL; HBase has no empty row (its cells were deleted)"))
        return rejected, pc.invert(bad)

    def _send(self, keys: pa.Array, values: list[pa.Array], stamps: Optional[pa.Array]) -> None:
        pieces = row_mutations(keys, [cell for cell, _ in self.cells], values)
        for timestamp, count, body in mutation_messages(pieces, stamps, self.options.batch_size):
            self.pipe.send(timestamp, count, body)

    def _send_with_happybase(self, keys, values, stamps) -> None:
        """The same mutations through happybase's Table.batch (any protocol), grouped by timestamp."""
        names = [cell for cell, _ in self.cells]
        columns = [v.to_pylist() for v in values]
        groups: dict[Optional[int], list[int]] = {}
        for index, stamp in enumerate(stamps.to_pylist() if stamps is not None else [None] * len(keys)):
            groups.setdefault(stamp, []).append(index)
        key_list = keys.to_pylist()
        for stamp, indices in groups.items():
            with self.table.batch(timestamp=stamp, batch_size=self.options.batch_size * len(names)) as batch:
                for index in indices:
                    puts = {name: column[index] for name, column in zip(names, columns) if column[index] is not None}
                    deletes = [name for name, column in zip(names, columns) if column[index] is None]
                    if puts:
                        batch.put(key_list[index], puts)
                    if deletes:
                        batch.delete(key_list[index], deletes)

    def flush(self) -> None:
        if self.pipe is not None:
            try:
                self.pipe.drain()
            except AccelsyncError:
                raise
            except Exception as exc:
                raise self.target.write_failure(exc, self.conn) from None

    def close(self) -> None:
        self.client.close()
