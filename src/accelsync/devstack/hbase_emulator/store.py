"""The emulator's tables: HBase's data model and its failures, without Thrift.

A table holds rows (any bytes, sorted as bytes), each row holds cells addressed `family:qualifier`,
and each cell keeps up to its family's `maxVersions` versions, newest first. Deletes leave
markers (tombstones) that hide older puts until a major compaction, as in HBase. Columns are
parsed the way HBase >= 0.96 does it: `cf` is the whole family, `cf:` the empty qualifier.

Errors carry HBase's exception names in their message, because the Thrift server sends the
Java stack trace's text as `IOError.message` and clients match on it.
"""

from __future__ import annotations

import bisect
import re
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, Optional

LATEST_TIMESTAMP = 2**63 - 1  # HConstants.LATEST_TIMESTAMP: "now", decided by the server
MAX_ROW_LENGTH = 32767
_TABLE_NAME = re.compile(rb"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_DESCRIPTOR_DEFAULTS = {"maxVersions": 3, "compression": "NONE", "inMemory": False,
                        "bloomFilterType": "NONE", "bloomFilterVectorSize": 0, "bloomFilterNbHashes": 0,
                        "blockCacheEnabled": False, "timeToLive": -1}


class HBaseIOError(Exception):
    """Sent as the IDL's `IOError` (HBase wraps most failures in it)."""


class IllegalArgument(Exception):
    """Sent as the IDL's `IllegalArgument`."""


class AlreadyExists(Exception):
    """Sent as the IDL's `AlreadyExists`."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def text(name: bytes) -> str:
    return name.decode("utf-8", "backslashreplace")


def parse_column(column: bytes) -> tuple[bytes, Optional[bytes]]:
    """`cf` -> (cf, None) meaning the whole family; `cf:q` -> (cf, q); `cf:` -> (cf, b"")."""
    family, colon, qualifier = column.partition(b":")
    return (family, qualifier) if colon else (family, None)


def column_sort_key(column: bytes) -> tuple[bytes, bytes]:
    """HBase orders cells by family, then qualifier (not by the joined `cf:q` bytes)."""
    family, _, qualifier = column.partition(b":")
    return family, qualifier


def table_not_found(name: bytes) -> HBaseIOError:
    return HBaseIOError(f"org.apache.hadoop.hbase.TableNotFoundException: {text(name)}")


@dataclass
class Selection:
    """Which cells a read returns: whole families and single columns (empty = every cell)."""

    families: set[bytes] = field(default_factory=set)
    columns: set[bytes] = field(default_factory=set)

    @property
    def everything(self) -> bool:
        return not self.families and not self.columns

    def wants(self, column: bytes) -> bool:
        return self.everything or column in self.columns or column.partition(b":")[0] in self.families


class Table:
    """One HBase table: families, rows of versioned cells, delete markers, enabled flag."""

    def __init__(self, name: bytes, descriptors: list[dict]):
        self.name = name
        self.families: dict[bytes, dict] = {}
        for descriptor in descriptors:
            family = parse_column(descriptor["name"])[0]
            if not family:
                raise IllegalArgument("java.lang.IllegalArgumentException: Column Family name can not be empty")
            if family in self.families:
                raise IllegalArgument(f"java.lang.IllegalArgumentException: Family '{text(family)}' "
                                      f"already exists so cannot be added")
            settings = {**_DESCRIPTOR_DEFAULTS, **{k: v for k, v in descriptor.items()
                                                   if k != "name" and v is not None}}
            if settings["maxVersions"] < 1:
                raise IllegalArgument(f"java.lang.IllegalArgumentException: Maximum versions must be "
                                      f"positive (family '{text(family)}')")
            self.families[family] = settings
        self.enabled = True
        self.region_id = now_ms()
        # row -> column (b"cf:q") -> [(timestamp, value), ...] newest first
        self.rows: dict[bytes, dict[bytes, list[tuple[int, bytes]]]] = {}
        # row -> {b"cf:q": deleted up to ts, b"cf": whole family deleted up to ts}
        self.tombstones: dict[bytes, dict[bytes, int]] = {}
        self._sorted: Optional[list[bytes]] = None
        self._checked: dict[bytes, tuple[bytes, bytes, int]] = {}

    # -- state kept across restarts -------------------------------------------------------------

    def __getstate__(self) -> dict:
        return {"name": self.name, "families": self.families, "enabled": self.enabled,
                "region_id": self.region_id, "rows": self.rows, "tombstones": self.tombstones}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._sorted = None
        self._checked = {}

    # -- columns --------------------------------------------------------------------------------

    def check_column(self, column: bytes) -> tuple[bytes, bytes, int]:
        """(column as stored, family, maxVersions) of a `family:qualifier` this table has."""
        known = self._checked.get(column)
        if known is not None:
            return known
        family = parse_column(column)[0]
        settings = self.families.get(family)
        if settings is None:
            raise self.no_such_family(family)
        known = (column, family, settings["maxVersions"])
        # only family:qualifier columns (mutate_rows trusts the cache); and wide rows with
        # endless qualifiers stop filling it
        if b":" in column and len(self._checked) < 100_000:
            self._checked[column] = known
        return known

    def no_such_family(self, family: bytes) -> HBaseIOError:
        families = ", ".join(f"{{NAME => '{text(f)}'}}" for f in self.families)
        return HBaseIOError(
            f"org.apache.hadoop.hbase.regionserver.NoSuchColumnFamilyException: Column family "
            f"{text(family)} does not exist in region {text(self.name)},,{self.region_id}.emulator. "
            f"in table '{text(self.name)}', {families}")

    def selection(self, columns: Optional[Iterable[bytes]]) -> Selection:
        """Parse the `columns` argument of a get or scan; unknown families fail as in HBase."""
        chosen = Selection()
        for column in columns or ():
            family, qualifier = parse_column(column)
            if family not in self.families:
                raise self.no_such_family(family)
            if qualifier is None:
                chosen.families.add(family)
            else:
                chosen.columns.add(column)
        return chosen

    # -- writes ---------------------------------------------------------------------------------

    def put(self, row: bytes, column: bytes, value: bytes, ts: int) -> None:
        column, family, max_versions = self.check_column(column)
        marks = self.tombstones.get(row)
        if marks and (marks.get(column, -1) >= ts or marks.get(family, -1) >= ts):
            return  # hidden by a delete marker, and dropped by the next major compaction
        cells = self.rows.get(row)
        if cells is None:
            self.rows[row] = {column: [(ts, value)]}
            self._sorted = None
            return
        versions = cells.get(column)
        if versions is None:
            cells[column] = [(ts, value)]
            return
        if ts > versions[0][0]:
            versions.insert(0, (ts, value))
        else:
            for index, (existing, _) in enumerate(versions):
                if existing == ts:  # same coordinates: the newer write wins
                    versions[index] = (ts, value)
                    return
                if existing < ts:
                    versions.insert(index, (ts, value))
                    break
            else:
                versions.append((ts, value))
        if len(versions) > max_versions:
            del versions[max_versions:]

    def delete_column(self, row: bytes, column: bytes, ts: int) -> None:
        """Every version of one column up to `ts` (Delete.addColumns)."""
        column = self.check_column(column)[0]
        self._mark(row, column, ts)
        cells = self.rows.get(row)
        if cells and column in cells:
            self._drop_older(row, cells, column, ts)

    def delete_family(self, row: bytes, family: bytes, ts: int) -> None:
        """Every column of one family up to `ts` (Delete.addFamily)."""
        if family not in self.families:
            raise self.no_such_family(family)
        self._mark(row, family, ts)
        cells = self.rows.get(row)
        if cells:
            for column in [c for c in cells if c.partition(b":")[0] == family]:
                self._drop_older(row, cells, column, ts)

    def delete_row(self, row: bytes, ts: int) -> None:
        for family in self.families:
            self.delete_family(row, family, ts)

    def _mark(self, row: bytes, key: bytes, ts: int) -> None:
        marks = self.tombstones.setdefault(row, {})
        if marks.get(key, -1) < ts:
            marks[key] = ts

    def _drop_older(self, row: bytes, cells: dict, column: bytes, ts: int) -> None:
        kept = [version for version in cells[column] if version[0] > ts]
        if kept:
            cells[column] = kept
            return
        del cells[column]
        if not cells:
            del self.rows[row]
            self._sorted = None

    def major_compact(self) -> None:
        self.tombstones.clear()

    # -- reads ----------------------------------------------------------------------------------

    def cells(self, row: bytes, selection: Selection, before: int = LATEST_TIMESTAMP,
              versions: int = 1) -> list[tuple[bytes, list[tuple[int, bytes]]]]:
        """[(column, [(ts, value), ...newest first])] of a row, in HBase's column order.

        `before` is an exclusive upper bound on timestamps, as Scan/Get.setTimeRange(0, ts)."""
        stored = self.rows.get(row)
        if not stored:
            return []
        found = []
        for column in sorted(stored, key=column_sort_key):
            if not selection.wants(column):
                continue
            kept = [v for v in stored[column] if v[0] < before] if before != LATEST_TIMESTAMP \
                else stored[column]
            if kept:
                found.append((column, kept[:versions]))
        return found

    def sorted_rows(self) -> list[bytes]:
        if self._sorted is None:
            self._sorted = sorted(self.rows)
        return self._sorted

    def row_range(self, start: bytes, stop: Optional[bytes], reverse: bool) -> list[bytes]:
        """Row keys from `start` (inclusive) to `stop` (exclusive), in scan order."""
        keys = self.sorted_rows()
        if not reverse:
            low = bisect.bisect_left(keys, start) if start else 0
            high = bisect.bisect_left(keys, stop) if stop else len(keys)
            return keys[low:high]
        high = bisect.bisect_right(keys, start) if start else len(keys)
        low = bisect.bisect_right(keys, stop) if stop else 0
        return keys[low:high][::-1]


def check_row(row: bytes) -> None:
    if not row:
        raise IllegalArgument("java.lang.IllegalArgumentException: Row length is 0")
    if len(row) > MAX_ROW_LENGTH:
        raise IllegalArgument(f"java.lang.IllegalArgumentException: Row length {len(row)} is > {MAX_ROW_LENGTH}")


def check_timestamp(ts: int) -> None:
    if ts < 0:
        raise IllegalArgument(f"java.lang.IllegalArgumentException: Timestamp cannot be negative. ts={ts}")


@dataclass
class Mutation:
    """One entry of a mutateRow(s) call (the IDL's Mutation, decoupled from Thrift)."""

    isDelete: bool  # noqa: N815 (the IDL's field names, so Thrift structs pass as they are)
    column: bytes
    value: Optional[bytes] = None


class Store:
    """Every table, behind one lock (the Thrift server is threaded; HBase ops are row-atomic)."""

    def __init__(self):
        self.tables: dict[bytes, Table] = {}
        self.lock = threading.RLock()
        self.changes = 0  # bumped by every write, so persistence knows when to snapshot

    # -- admin ----------------------------------------------------------------------------------

    def table(self, name: bytes, enabled: bool = True) -> Table:
        table = self.tables.get(name)
        if table is None:
            raise table_not_found(name)
        if enabled and not table.enabled:
            raise HBaseIOError(f"org.apache.hadoop.hbase.TableNotEnabledException: {text(name)} is disabled.")
        return table

    def create_table(self, name: bytes, descriptors: list[dict]) -> None:
        if b":" in name and not name.startswith(b"default:"):
            namespace = text(name.partition(b":")[0])
            raise HBaseIOError(f"org.apache.hadoop.hbase.NamespaceNotFoundException: {namespace}")
        name = name.removeprefix(b"default:")
        if not _TABLE_NAME.match(name):
            raise IllegalArgument(f"java.lang.IllegalArgumentException: Illegal character in table name "
                                  f"{text(name)!r}: use letters, digits, _, - and .")
        if name in self.tables:
            raise AlreadyExists("table name already in use")
        if not descriptors:
            raise HBaseIOError("org.apache.hadoop.hbase.DoNotRetryIOException: Table should have at least "
                               "one column family. Set hbase.table.sanity.checks to false at conf or table "
                               "descriptor if you want to bypass sanity checks")
        self.tables[name] = Table(name, descriptors)
        self.changes += 1

    def delete_table(self, name: bytes) -> None:
        table = self.tables.get(name)
        if table is None:
            raise HBaseIOError("java.io.IOException: table does not exist")
        if table.enabled:
            raise HBaseIOError(f"org.apache.hadoop.hbase.TableNotDisabledException: {text(name)}")
        del self.tables[name]
        self.changes += 1

    def set_enabled(self, name: bytes, enabled: bool) -> None:
        table = self.table(name, enabled=False)
        if table.enabled == enabled:
            kind = "TableNotDisabledException" if enabled else "TableNotEnabledException"
            raise HBaseIOError(f"org.apache.hadoop.hbase.{kind}: {text(name)}")
        table.enabled = enabled
        self.changes += 1

    # -- writes ---------------------------------------------------------------------------------

    def mutate_rows(self, name: bytes, batches: list[tuple[bytes, list[Mutation]]], ts: int,
                    single_row: bool = False) -> None:
        """mutateRow(s)(Ts). Every mutation is checked before any is applied.

        Like HBase's Thrift server: a put needs `family:qualifier` (mutateRows fails with
        IllegalArgument, mutateRow skips it); mutateRows applies every put, then every delete;
        mutateRow deletes first. LATEST_TIMESTAMP means the server's clock, once per call."""
        table = self.table(name)
        check_timestamp(ts)
        puts: list[tuple[bytes, list[tuple[tuple[bytes, bytes, int], bytes]]]] = []
        deletes: list[tuple[bytes, bytes, Optional[bytes]]] = []
        checked, families = table._checked, table.families
        for row, mutations in batches:
            if not row or len(row) > MAX_ROW_LENGTH:
                check_row(row)
            cells = []
            for mutation in mutations:
                column = mutation.column
                if mutation.isDelete:
                    family, qualifier = parse_column(column)
                    if family not in families:
                        raise table.no_such_family(family)
                    deletes.append((row, family, column if qualifier is not None else None))
                    continue
                known = checked.get(column)
                if known is None:
                    if b":" in column:
                        known = table.check_column(column)
                    elif column not in families:
                        raise table.no_such_family(column)
                    elif single_row:
                        continue
                    else:
                        raise IllegalArgument("java.lang.IllegalArgumentException: Invalid famAndQf provided.")
                cells.append((known, mutation.value or b""))
            if cells:
                puts.append((row, cells))
        when = now_ms() if ts == LATEST_TIMESTAMP else ts
        if single_row:
            self._delete(table, deletes, when)
            self._put(table, puts, when)
        else:
            self._put(table, puts, when)
            self._delete(table, deletes, when)
        self.changes += 1

    @staticmethod
    def _put(table: Table, puts, when: int) -> None:
        """Table.put, with its common cases (new row, new cell, newer version) inlined: this is
        the emulator's hot loop."""
        rows, marked, put = table.rows, table.tombstones, table.put
        for row, cells in puts:
            stored = rows.get(row)
            if marked and row in marked:
                for (column, _, _), value in cells:
                    put(row, column, value, when)
                continue
            if stored is None:
                rows[row] = {column: [(when, value)] for (column, _, _), value in cells}
                table._sorted = None
                continue
            for (column, _, max_versions), value in cells:
                versions = stored.get(column)
                if versions is None:
                    stored[column] = [(when, value)]
                elif when > versions[0][0]:
                    versions.insert(0, (when, value))
                    if len(versions) > max_versions:
                        del versions[max_versions:]
                else:
                    put(row, column, value, when)

    @staticmethod
    def _delete(table: Table, deletes, when: int) -> None:
        for row, family, column in deletes:
            if column is None:
                table.delete_family(row, family, when)
            else:
                table.delete_column(row, column, when)

    def delete_all(self, name: bytes, row: bytes, column: Optional[bytes], ts: int) -> None:
        """deleteAll(Ts) for one column or family, deleteAllRow(Ts) when `column` is None."""
        table = self.table(name)
        when = now_ms() if ts == LATEST_TIMESTAMP else ts
        if column is None:
            table.delete_row(row, when)
        else:
            family, qualifier = parse_column(column)
            if qualifier is None:
                table.delete_family(row, family, when)
            else:
                table.delete_column(row, column, when)
        self.changes += 1

    def increment(self, name: bytes, row: bytes, column: bytes, amount: int) -> int:
        """Add to a 64-bit big-endian counter cell (created at 0); return the new value."""
        table = self.table(name)
        check_row(row)
        family, qualifier = parse_column(column)
        column = family + b":" + (qualifier or b"")
        column = table.check_column(column)[0]
        current = table.cells(row, Selection(columns={column}))
        value = 0
        if current:
            stored = current[0][1][0]
            if len(stored[1]) != 8:
                raise HBaseIOError(f"org.apache.hadoop.hbase.DoNotRetryIOException: Field is not a long, "
                                   f"it's {len(stored[1])} bytes wide")
            value = struct.unpack(">q", stored[1])[0]
        value += amount
        if not -2**63 <= value < 2**63:
            raise HBaseIOError("org.apache.hadoop.hbase.DoNotRetryIOException: counter overflow")
        table.put(row, column, struct.pack(">q", value), now_ms())
        self.changes += 1
        return value

    def append(self, name: bytes, row: bytes, columns: list[bytes], values: list[bytes]) -> list[tuple[int, bytes]]:
        table = self.table(name)
        check_row(row)
        stamp = now_ms()
        results = []
        for column, suffix in zip(columns, values):
            column = table.check_column(column)[0]
            current = table.cells(row, Selection(columns={column}))
            value = (current[0][1][0][1] if current else b"") + (suffix or b"")
            table.put(row, column, value, stamp)
            results.append((stamp, value))
        self.changes += 1
        return results

    def check_and_put(self, name: bytes, row: bytes, column: bytes, expected: Optional[bytes],
                      mutation: Mutation) -> bool:
        table = self.table(name)
        check_row(row)
        column = table.check_column(column)[0]
        current = table.cells(row, Selection(columns={column}))
        present = current[0][1][0][1] if current else None
        # HRegion.checkAndMutate: an empty expected value matches a missing or empty cell
        if not (present in (None, b"") if not expected else present == expected):
            return False
        family, qualifier = parse_column(mutation.column)
        if qualifier is None:
            raise IllegalArgument("java.lang.IllegalArgumentException: Invalid famAndQf provided.")
        table.put(row, mutation.column, mutation.value or b"", now_ms())
        self.changes += 1
        return True
