"""Datasources as SQLite tables, published atomically the way Druid publishes segments.

Each datasource is one table: `__time` as Druid's ISO text (so it sorts, compares and reads back
as Druid SQL returns it), one column per dimension and metric. A task's rows become visible in
one transaction. Replacing a time chunk deletes the rows it overshadows; marking a datasource
unused drops its table, since Druid forgets a datasource that has no used segments. A side
database (`emulator_meta`, hidden from SQL) keeps the segment records for the coordinator API.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa

from accelsync.devstack.druid_emulator import sqlfunctions
from accelsync.devstack.druid_emulator.timeutil import MAX_MILLIS, MIN_MILLIS, iso, iso_array

SQL_TYPES = {"string": "VARCHAR", "long": "BIGINT", "float": "FLOAT", "double": "DOUBLE", "json": "COMPLEX<json>"}
META = "emulator_meta"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Store:
    """All datasources of the emulator; every method is safe to call from any thread."""

    def __init__(self, data_dir: Path | None = None):
        self.lock = threading.RLock()
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(data_dir / "datasources.sqlite"), check_same_thread=False,
                                      isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            meta = str(data_dir / "segments.sqlite")
        else:
            self.db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
            meta = ":memory:"
        self.db.execute("PRAGMA temp_store=MEMORY")
        self.db.execute("PRAGMA cache_size=-200000")
        self.db.execute(f"ATTACH DATABASE ? AS {META}", (meta,))
        self.db.execute(f"CREATE TABLE IF NOT EXISTS {META}.segments (datasource TEXT, start INTEGER, "
                        "end INTEGER, version TEXT, partition INTEGER, rows INTEGER, used INTEGER)")
        sqlfunctions.register(self.db)

    # -- reading -----------------------------------------------------------------------------

    def datasources(self) -> list[str]:
        with self.lock:
            rows = self.db.execute("SELECT name FROM main.sqlite_master WHERE type = 'table' ORDER BY name")
            return [name for (name,) in rows]

    def exists(self, datasource: str) -> bool:
        return datasource in self.datasources()

    def columns(self, datasource: str) -> list[tuple[str, str]]:
        with self.lock:
            return [(row[1], row[2]) for row in self.db.execute(f"PRAGMA main.table_info({quote(datasource)})")]

    def segments(self, datasource: str) -> list[dict[str, Any]]:
        with self.lock:
            rows = self.db.execute(f"SELECT start, end, version, partition, rows FROM {META}.segments "
                                   "WHERE datasource = ? AND used = 1 ORDER BY start, version, partition",
                                   (datasource,)).fetchall()
        return [{"start": s, "end": e, "version": v, "partition": p, "rows": n} for s, e, v, p, n in rows]

    def summary(self, datasource: str) -> dict[str, Any] | None:
        """What the coordinator says about a datasource: segment count, rows, min/max time."""
        if not self.exists(datasource):
            return None
        segments = self.segments(datasource)
        with self.lock:
            low, high, rows = self.db.execute(
                f"SELECT MIN(__time), MAX(__time), COUNT(*) FROM {quote(datasource)}").fetchone()
        return {"count": len(segments), "rows": rows, "minTime": low, "maxTime": high,
                "size": sum(s["rows"] for s in segments) * 64}

    def query(self, sql: str, parameters: list[Any]) -> tuple[list[str], list[tuple]]:
        """Run one read-only statement; anything else is refused by the authorizer."""
        with self.lock:
            self.db.set_authorizer(_read_only)
            try:
                cursor = self.db.execute(sql, parameters)
                names = [_column_name(d[0], i) for i, d in enumerate(cursor.description or [])]
                return names, cursor.fetchall()
            finally:
                self.db.set_authorizer(None)

    # -- writing -----------------------------------------------------------------------------

    def publish(self, datasource: str, table: pa.Table, column_types: dict[str, str],
                chunks: list[tuple[int, int, int]], replace: list[tuple[int, int]] | None) -> None:
        """Make a task's rows visible in one transaction.

        `table` holds `__time` (int64 millis) and the columns; `chunks` are (start, end, rows) of
        the segments the task built; `replace` the intervals whose older data they overshadow
        (None when appending).
        """
        version = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        names = [n for n in table.column_names if n != "__time"]
        columns = [iso_array(table.column("__time").combine_chunks())] + \
                  [table.column(n).combine_chunks() for n in names]
        with self.lock:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self._ensure_table(datasource, names, column_types)
                if replace is not None:
                    for start, end in replace:
                        self._drop_range(datasource, start, end)
                if table.num_rows:
                    marks = ", ".join("?" * (len(names) + 1))
                    target = ", ".join(quote(n) for n in ["__time"] + names)
                    values = zip(*[c.to_pylist() for c in columns])
                    self.db.executemany(f"INSERT INTO {quote(datasource)} ({target}) VALUES ({marks})", values)
                partitions: dict[int, int] = {}
                for start, end, rows in chunks:
                    if replace is None:
                        (partition,) = self.db.execute(
                            f"SELECT COUNT(*) FROM {META}.segments WHERE datasource = ? AND start = ? AND "
                            "used = 1", (datasource, start)).fetchone()
                    else:
                        partition = partitions.get(start, 0)
                    partitions[start] = partition + 1
                    self.db.execute(f"INSERT INTO {META}.segments VALUES (?, ?, ?, ?, ?, ?, 1)",
                                    (datasource, start, end, version, partition, rows))
                self._drop_if_empty(datasource)
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def mark_unused(self, datasource: str, interval: tuple[int, int] | None = None) -> int:
        """Mark a datasource's segments (in `interval`, or all) unused; return how many."""
        with self.lock:
            if not self.exists(datasource):
                return 0
            self.db.execute("BEGIN IMMEDIATE")
            try:
                start, end = interval or (MIN_MILLIS, MAX_MILLIS)
                changed = self._drop_range(datasource, start, end)
                self._drop_if_empty(datasource)
                self.db.execute("COMMIT")
                return changed
            except BaseException:
                self.db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self.lock:
            self.db.close()

    def _ensure_table(self, datasource: str, names: Iterable[str], column_types: dict[str, str]) -> None:
        existing = {name.lower() for name, _ in self.columns(datasource)}
        if not existing:
            self.db.execute(f"CREATE TABLE {quote(datasource)} (__time TEXT NOT NULL)")
            self.db.execute(f"CREATE INDEX {quote(datasource + '__time_index')} ON {quote(datasource)} (__time)")
            existing = {"__time"}
        for name in names:
            if name.lower() not in existing:
                self.db.execute(f"ALTER TABLE {quote(datasource)} ADD COLUMN {quote(name)} "
                                f"{SQL_TYPES.get(column_types.get(name, 'string'), column_types.get(name))}")

    def _drop_range(self, datasource: str, start: int, end: int) -> int:
        """Delete rows in [start, end) and retire the segments that interval fully covers."""
        if start <= MIN_MILLIS and end >= MAX_MILLIS:
            self.db.execute(f"DELETE FROM {quote(datasource)}")
        else:
            self.db.execute(f"DELETE FROM {quote(datasource)} WHERE __time >= ? AND __time < ?",
                            (iso(start), iso(end)))
        cursor = self.db.execute(f"UPDATE {META}.segments SET used = 0 WHERE datasource = ? AND used = 1 "
                                 "AND start >= ? AND end <= ?", (datasource, start, end))
        return cursor.rowcount

    def _drop_if_empty(self, datasource: str) -> None:
        if self.columns(datasource) and \
                self.db.execute(f"SELECT 1 FROM {quote(datasource)} LIMIT 1").fetchone() is None:
            self.db.execute(f"DROP TABLE {quote(datasource)}")
            self.db.execute(f"UPDATE {META}.segments SET used = 0 WHERE datasource = ?", (datasource,))


def _column_name(name: str, position: int) -> str:
    """Druid names an unaliased expression EXPR$<position>."""
    simple = name.strip("`\"")
    return simple if simple.replace("_", "a").replace("$", "a").isalnum() else f"EXPR${position}"


def _read_only(action: int, arg1, arg2, database, trigger) -> int:
    """sqlite3 authorizer for user SQL: reads of datasources and functions only."""
    if database == META:
        return sqlite3.SQLITE_DENY
    if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
                  getattr(sqlite3, "SQLITE_RECURSIVE", 33)):
        return sqlite3.SQLITE_OK
    return sqlite3.SQLITE_DENY
