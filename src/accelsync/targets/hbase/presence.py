"""How many of a run's row keys an HBase table holds, for the gate's reconciliation.

A multi-get makes the region server read every cell of every requested row (about 25,000 keys/s
through Thrift on the development machine). A key-only scan (FirstKeyOnlyFilter, KeyOnlyFilter)
reads one empty cell per row and is 2 to 2.5x faster, but it returns every row of its key range,
ours or not. So the run's distinct keys are sorted and cut into segments; each segment is scanned
from its first to its last key, and if the table holds many more rows than the segment in that
range (an incremental run into a large table), the scan stops and the segment is counted by
multi-gets instead. Both count the same thing: keys with a cell in the target's families.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import pyarrow as pa
import pyarrow.compute as pc

# Sorted distinct row keys per scan (and per thread's unit of work).
SEGMENT_KEYS = 20_000
# A scan returning more rows than this many times its segment's keys (plus some) gives way to gets.
SCAN_OVERHEAD = 2
# Keys sorted in memory at most (about 40 bytes each); beyond, the gate counts batch by batch.
MAX_KEYS = 20_000_000
GET_CHUNK = 5000
KEYS_ONLY = b"FirstKeyOnlyFilter() AND KeyOnlyFilter()"
THREADS = 4


def count_present(keys: list[pa.Array], families: list[bytes], open_table: Callable) -> int | None:
    """How many of `keys` (row keys, with repeats: a key written twice counts twice, as a get per
    row would) the table has; None when there are too many to sort here. `open_table()` returns
    (table, close) on a connection of its own (one per thread)."""
    total = sum(len(k) for k in keys)
    if total > MAX_KEYS:
        return None
    if total == 0:
        return 0
    counted = pc.value_counts(pa.chunked_array(keys))
    order = pc.sort_indices(counted.field("values"))
    distinct = pc.take(counted.field("values"), order)
    repeats = pc.take(counted.field("counts"), order)
    segments = [(start, min(start + SEGMENT_KEYS, len(distinct))) for start in range(0, len(distinct), SEGMENT_KEYS)]

    def count(segment: tuple[int, int]) -> int:
        start, stop = segment
        wanted = distinct.slice(start, stop - start)
        table, close = open_table()
        try:
            found = _scan(table, wanted, families)
            if found is None:
                found = _get(table, wanted, families)
        finally:
            close()
        present = pc.is_in(wanted, value_set=pa.array(found, wanted.type))
        return pc.sum(pc.filter(repeats.slice(start, stop - start), present)).as_py() or 0

    with ThreadPoolExecutor(max_workers=min(THREADS, len(segments))) as pool:
        return sum(pool.map(count, segments))


def _scan(table, wanted: pa.Array, families: list[bytes]) -> list[bytes] | None:
    """Row keys in [first wanted, last wanted], or None once the range holds too many others."""
    first, last = wanted[0].as_py(), wanted[-1].as_py()
    limit = SCAN_OVERHEAD * len(wanted) + 1000
    found: list[bytes] = []
    rows = table.scan(row_start=first, row_stop=last + b"\x00", columns=families, filter=KEYS_ONLY,
                      batch_size=5000)
    try:
        for key, _ in rows:
            found.append(key)
            if len(found) > limit:
                return None
    finally:
        rows.close()  # closes the server-side scanner when we stop early
    return found


def _get(table, wanted: pa.Array, families: list[bytes]) -> list[bytes]:
    keys = wanted.to_pylist()
    return [key for start in range(0, len(keys), GET_CHUNK)
            for key, _ in table.rows(keys[start:start + GET_CHUNK], columns=families)]
