"""What a target is, and the write loop every target shares.

A target subclass says how one Arrow batch is written (`BatchWriter.write`), how the gate finds
rows again (`count_present`, `read_back`) and how a run becomes live (`publish`). The shared
loop here owns what DataX's framework owns: batching, the speed limit, dirty-record accounting
and the run snapshot that the gate validates.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from accelsync.engine import cancel
from accelsync.engine.dirty import DirtyLog
from accelsync.errors import DataError
from accelsync.engine.faults import pause_point
from accelsync.spec import Spec


class BatchWriter(ABC):
    """Writes batches to the target from one Spark task."""

    # Bytes of the values before and after compression, for targets that compress them.
    value_bytes = 0
    stored_bytes = 0

    @abstractmethod
    def write(self, batch: pa.RecordBatch) -> list[tuple[int, str]]:
        """Write the batch; return (row index, reason) for each row that was not written."""

    def flush(self) -> None:
        """Make sure everything written so far reached the target."""

    def close(self) -> None:
        """Release connections."""


class Target(ABC):
    """A target writer (DataX writer plugin)."""

    type: ClassVar[str]

    def __init__(self, spec: Spec):
        self.spec = spec
        self.options = spec.target

    def prepare(self, run_id: str) -> dict[str, Any]:
        """On the driver, before writing: check the target, return what writers need to know."""
        return {}

    @abstractmethod
    def open_writer(self, context: dict[str, Any]) -> BatchWriter:
        ...

    def finish(self, context: dict[str, Any], deadline: float | None) -> dict[str, Any]:
        """On the driver, after every write task succeeded: complete what needs the whole run
        (e.g. submit one ingestion task for all staged files and wait for it, until `deadline`,
        a time.monotonic() value or None). Return the context, updated for gate and publish."""
        return context

    def gate_columns(self) -> list[str] | None:
        """The columns `count_present` needs from each written row (the run snapshot keeps only
        those when no suite needs every column); None: all of them."""
        return None

    @abstractmethod
    def count_present(self, batch: pa.RecordBatch, context: dict[str, Any]) -> int:
        """How many rows of this (snapshot) batch are present in the target."""

    def count_present_all(self, snapshot: Callable[[], Iterator[pa.RecordBatch]],
                          context: dict[str, Any]) -> int | None:
        """How many rows of the whole snapshot are present, when the target has a faster way than
        batch by batch (HBase: key-only scans of sorted keys); None: the gate counts batch by batch."""
        return None

    @abstractmethod
    def read_back(self, rows: list[dict[str, Any]], context: dict[str, Any]) -> list[dict[str, Any]]:
        """Fetch these source-side rows from the target; return one entry per mismatch:
        {"key": ..., "field": ..., "expected": ..., "actual": ...}."""

    def publish(self, context: dict[str, Any]) -> dict[str, Any]:
        """Make this run's data live (after the gate passed)."""
        return {}

    def discard(self, context: dict[str, Any]) -> None:
        """Throw away what a failed run wrote where readers cannot see it."""


@dataclass
class PartitionStats:
    """What one write task did; summed on the driver."""

    rows_in: int = 0
    written: int = 0
    dirty: int = 0
    bytes_in: int = 0
    seconds: float = 0.0
    wait_reader_seconds: float = 0.0
    write_seconds: float = 0.0
    snapshot_seconds: float = 0.0
    value_bytes: int = 0
    stored_bytes: int = 0
    snapshot: str | None = None
    sample: str | None = None
    dirty_file: str | None = None
    dirty_reasons: dict[str, int] = field(default_factory=dict)


class Throttle:
    """Keeps one task under its share of `speed.records_per_second` (0 = unlimited)."""

    def __init__(self, records_per_second: float):
        self.rate = records_per_second
        self.start = time.monotonic()
        self.done = 0

    def wait(self, records: int) -> None:
        if self.rate <= 0:
            return
        self.done += records
        ahead = self.done / self.rate - (time.monotonic() - self.start)
        if ahead > 0:
            cancel.sleep(ahead)


def write_partition(target: Target, context: dict[str, Any], batches: Iterable[pa.RecordBatch], *,
                    dirty: DirtyLog, snapshot_path: str | None, records_per_second: float,
                    max_dirty: int | None, snapshot_columns: list[str] | None = None,
                    sample_path: str | None = None, sample_size: int = 0) -> PartitionStats:
    """The shared write loop of one task: write, count, tee the snapshot, sample, throttle.

    The snapshot keeps the written rows' `snapshot_columns` (all when None) for the gate's
    reconciliation and suite; the sample keeps `sample_size` whole written rows drawn uniformly
    (bottom-k of a random key, so the gate can merge every task's sample into one uniform
    sample) for its read-back."""
    stats = PartitionStats()
    started = time.monotonic()
    throttle = Throttle(records_per_second)
    writer = target.open_writer(context)
    snapshot = None
    sample = Sample(sample_size) if sample_path and sample_size > 0 else None
    try:
        batches = iter(batches)
        while True:
            tick = time.monotonic()
            batch = next(batches, None)
            stats.wait_reader_seconds += time.monotonic() - tick
            if batch is None:
                break
            if batch.num_rows == 0:
                continue
            cancel.check()
            tick = time.monotonic()
            stats.rows_in += batch.num_rows
            stats.bytes_in += batch.nbytes
            rejected = writer.write(batch)
            written = batch
            if rejected:
                keep = [True] * batch.num_rows
                for index, reason in rejected:
                    keep[index] = False
                    dirty.add({"stage": "write", "row": _row_location(batch, index, target)}, reason,
                              _row(batch, index))
                written = batch.filter(pa.array(keep))
                if max_dirty is not None and dirty.count > max_dirty:
                    raise DataError(f"dirty records exceed error_limit ({target.spec.error_limit.describe()}): "
                                    f"one task alone found {dirty.count}; last: {rejected[-1][1]}")
            stats.written += written.num_rows
            stats.write_seconds += time.monotonic() - tick
            tick = time.monotonic()
            if snapshot_path and written.num_rows:
                kept = written.select(snapshot_columns) if snapshot_columns is not None else written
                if snapshot is None:
                    Path(snapshot_path).parent.mkdir(parents=True, exist_ok=True)
                    snapshot = pa.ipc.new_file(snapshot_path, kept.schema)
                snapshot.write_batch(kept)
            if sample is not None and written.num_rows:
                sample.add(written)
            stats.snapshot_seconds += time.monotonic() - tick
            pause_point("write")
            throttle.wait(batch.num_rows)
        tick = time.monotonic()
        writer.flush()
        stats.write_seconds += time.monotonic() - tick
        stats.value_bytes, stats.stored_bytes = writer.value_bytes, writer.stored_bytes
        if sample is not None and sample.rows is not None:
            sample.save(sample_path)
            stats.sample = sample_path
    finally:
        writer.close()
        if snapshot is not None:
            snapshot.close()
        dirty.close()
    stats.dirty = dirty.count
    stats.dirty_reasons = dirty.reasons
    stats.dirty_file = str(dirty.path) if dirty.count else None
    stats.snapshot = snapshot_path if snapshot is not None else None
    stats.seconds = time.monotonic() - started
    return stats


SAMPLE_KEY = "__accelsync_sample_key"


class Sample:
    """A uniform sample of at most `size` rows: each row gets a random key and the `size`
    smallest keys are kept (bottom-k), so samples of several tasks merge into one uniform
    sample by keeping the smallest keys of their union."""

    def __init__(self, size: int):
        import numpy as np

        self.size = size
        self.rows: pa.Table | None = None
        self.random = np.random.default_rng()
        self.threshold = 1.0  # the largest key kept, once `size` rows are kept: only smaller ones matter

    def add(self, batch: pa.RecordBatch) -> None:
        keys = self.random.random(batch.num_rows)
        if self.rows is not None and self.rows.num_rows >= self.size:
            chosen = keys < self.threshold
            if not chosen.any():
                return  # the common case once the sample is full: nothing in this batch is kept
            batch, keys = batch.filter(pa.array(chosen)), keys[chosen]
        table = pa.Table.from_batches([batch]).append_column(SAMPLE_KEY, pa.array(keys))
        if self.rows is not None:
            table = pa.concat_tables([self.rows, table])
        if table.num_rows > self.size:
            table = table.take(pc.sort_indices(table.column(SAMPLE_KEY)).slice(0, self.size))
        self.rows = table.combine_chunks()
        if self.rows.num_rows >= self.size:
            self.threshold = pc.max(self.rows.column(SAMPLE_KEY)).as_py()

    def save(self, path: str) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with pa.ipc.new_file(path, self.rows.schema) as out:
            out.write_table(self.rows)


def read_sample(paths: list[str], size: int) -> list[dict[str, Any]]:
    """The rows of the tasks' samples with the `size` smallest keys: a uniform sample of the run."""
    tables = []
    for path in paths:
        with pa.memory_map(path, "r") as source:
            tables.append(pa.ipc.open_file(source).read_all())
    if not tables:
        return []
    table = pa.concat_tables(tables, promote_options="permissive")
    table = table.take(pc.sort_indices(table.column(SAMPLE_KEY)).slice(0, size))
    return table.drop_columns([SAMPLE_KEY]).to_pylist()


def _row(batch: pa.RecordBatch, index: int) -> dict[str, Any]:
    return batch.slice(index, 1).to_pylist()[0]


def _row_location(batch: pa.RecordBatch, index: int, target: Target) -> dict[str, Any]:
    """Point at a rejected row by its source location columns when it has them."""
    location = {}
    for name in ("_topic", "_partition", "_offset", "_file", "_line"):
        if name in batch.schema.names:
            location[name.lstrip("_")] = batch.column(name)[index].as_py()
    return location or {"index_in_batch": index}
