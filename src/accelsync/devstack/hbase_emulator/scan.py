"""Scanners of the HBase emulator: row ranges, prefixes, column selection, scan batching and a
small part of HBase's filter language.

Filters understood (combined with AND): PrefixFilter('p'), KeyOnlyFilter(), FirstKeyOnlyFilter(),
ColumnPrefixFilter('q'), MultipleColumnPrefixFilter('a', 'b'), PageFilter(n). Any other filter
fails with IOError naming these, never silently returns unfiltered rows.
"""

from __future__ import annotations

import re
import struct
import time
from typing import Callable, Optional

from accelsync.devstack.hbase_emulator.store import LATEST_TIMESTAMP, HBaseIOError, Selection, Table

# (row, [(column, (ts, value))]) -> the same, filtered; None drops the row
RowFilter = Callable[[bytes, list], Optional[list]]
Result = tuple[bytes, list[tuple[bytes, tuple[int, bytes]]]]

SUPPORTED = "PrefixFilter, KeyOnlyFilter, FirstKeyOnlyFilter, ColumnPrefixFilter, MultipleColumnPrefixFilter, PageFilter"
_CALL = re.compile(r"\s*([A-Za-z]+)\s*\(((?:[^()']|'(?:[^']|'')*')*)\)\s*")
_ARG = re.compile(r"\s*('(?:[^']|'')*'|[^,\s]+)\s*(?:,|$)")


class Scanner:
    """An open scanner: the row keys it will visit, fixed at open, and how to shape each row."""

    def __init__(self, table: Table, keys: list[bytes], selection: Selection, before: int = LATEST_TIMESTAMP,
                 batch: Optional[int] = None, filters: Optional[list[RowFilter]] = None,
                 prefix: Optional[bytes] = None, page: Optional[int] = None, sort: bool = False):
        self.table = table
        self.keys = keys
        self.position = 0
        self.selection = selection
        self.before = before
        self.batch = batch if batch and batch > 0 else None
        self.filters = filters or []
        self.prefix = prefix  # scannerOpenWithPrefix: WhileMatchFilter(PrefixFilter)
        self.page = page
        self.sort = sort  # answer TRowResult.sortedColumns instead of the columns map
        self.returned_rows = 0
        self.pending: list[Result] = []
        self.used = time.monotonic()

    def next(self, count: int) -> list[Result]:
        self.used = time.monotonic()
        results: list[Result] = []
        while len(results) < count:
            if self.pending:
                results.append(self.pending.pop(0))
                continue
            if self.position >= len(self.keys) or (self.page is not None and self.returned_rows >= self.page):
                break
            row = self.keys[self.position]
            self.position += 1
            if self.prefix is not None and not row.startswith(self.prefix):
                self.position = len(self.keys)
                break
            cells = [(column, versions[0]) for column, versions in
                     self.table.cells(row, self.selection, self.before)]
            for keep in self.filters:
                if not cells:
                    break
                cells = keep(row, cells)
            if not cells:
                continue
            self.returned_rows += 1
            if self.batch and len(cells) > self.batch:
                parts = [cells[i:i + self.batch] for i in range(0, len(cells), self.batch)]
                results.append((row, parts[0]))
                self.pending.extend((row, part) for part in parts[1:])
            else:
                results.append((row, cells))
        return results


def parse_filter(text: str) -> tuple[list[RowFilter], Optional[int]]:
    """The row filters of an HBase filter string, and the PageFilter limit if any."""
    filters: list[RowFilter] = []
    page = None
    for clause in re.split(r"\s+AND\s+", text.strip()):
        match = _CALL.fullmatch(clause)
        if not match:
            raise _unsupported(text)
        name, raw_args = match.group(1), match.group(2)
        args = [_arg(a) for a in _ARG.findall(raw_args)] if raw_args.strip() else []
        if name == "PrefixFilter" and len(args) == 1:
            prefix = _bytes(args[0])
            filters.append(lambda row, cells, p=prefix: cells if row.startswith(p) else None)
        elif name == "KeyOnlyFilter" and len(args) <= 1:
            with_length = bool(args) and str(args[0]).lower() == "true"
            filters.append(lambda row, cells, w=with_length: [
                (c, (ts, struct.pack(">i", len(v)) if w else b"")) for c, (ts, v) in cells])
        elif name == "FirstKeyOnlyFilter" and not args:
            filters.append(lambda row, cells: cells[:1])
        elif name in ("ColumnPrefixFilter", "MultipleColumnPrefixFilter") and args:
            prefixes = tuple(_bytes(a) for a in args)
            filters.append(lambda row, cells, p=prefixes: [
                cell for cell in cells if cell[0].partition(b":")[2].startswith(p)] or None)
        elif name == "PageFilter" and len(args) == 1 and isinstance(args[0], int):
            page = args[0]
        else:
            raise _unsupported(text)
    return filters, page


def _arg(raw: str):
    if raw.startswith("'"):
        return raw[1:-1].replace("''", "'")
    try:
        return int(raw)
    except ValueError:
        return raw


def _bytes(value) -> bytes:
    return str(value).encode("utf-8", "surrogateescape")


def _unsupported(text: str) -> HBaseIOError:
    return HBaseIOError(f"java.lang.IllegalArgumentException: filter {text!r} is not supported by the "
                        f"accelsync HBase emulator (it understands {SUPPORTED}, joined with AND)")
