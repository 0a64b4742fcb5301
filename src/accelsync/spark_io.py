"""The two Spark Python data sources that carry every accelsync source and sink.

`accelsync_source` reads the partitions of a plan through the registered Source; `accelsync_sink`
writes Arrow batches through the registered Sink with the shared write loop. Options carry the
spec and plan as JSON, so Spark tasks need nothing from the driver's memory, and connectors
never see Spark. Imports of connector code happen inside the methods, on the executors.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict, dataclass
from typing import Any, Iterator

from pyspark.sql.datasource import (DataSource, DataSourceArrowWriter, DataSourceReader,
                                    InputPartition, WriterCommitMessage)

SOURCE_FORMAT = "accelsync_source"
SINK_FORMAT = "accelsync_sink"
SNAPSHOT_FORMAT = "accelsync_snapshot"
# Spark redacts option values whose key matches spark.redaction.regex ("secret" among others).
CONNECTIONS_OPTION = "secret_connections"


def _spec(options: dict[str, str]):
    from accelsync.connections import install
    from accelsync.spec import Spec
    install(options.get(CONNECTIONS_OPTION))
    return Spec.model_validate_json(options["spec"])


class AccelsyncSource(DataSource):
    @classmethod
    def name(cls) -> str:
        return SOURCE_FORMAT

    def schema(self):
        from pyspark.sql.pandas.types import from_arrow_schema

        from accelsync.plan import Plan
        return from_arrow_schema(Plan.from_json(self.options["plan"]).schema, prefer_timestamp_ntz=True)

    def reader(self, schema) -> DataSourceReader:
        return _PlanReader(dict(self.options))


class _Partition(InputPartition):
    def __init__(self, index: int, value: dict):
        super().__init__(value)
        self.index = index


class _PlanReader(DataSourceReader):
    def __init__(self, options: dict[str, str]):
        self.options = options

    def partitions(self):
        from accelsync.plan import Plan
        plan = Plan.from_json(self.options["plan"])
        return [_Partition(i, p) for i, p in enumerate(plan.partitions)] or [_Partition(0, {"empty": True})]

    def read(self, partition: _Partition) -> Iterator[Any]:
        if partition.value.get("empty"):
            return iter(())
        return read_partition(self.options, partition.index, partition.value)


def read_partition(options: dict[str, str], index: int, value: dict) -> Iterator[Any]:
    """Yield one plan partition's Arrow batches; leave its read counts in the run folder."""
    from pathlib import Path

    from accelsync.dirty import DirtyLog
    from accelsync.faults import pause_point
    from accelsync.plan import Plan
    from accelsync.registry import source_class
    from accelsync.runs import write_json_atomic

    spec = _spec(options)
    plan = Plan.from_json(options["plan"])
    run_dir = options["run_dir"]
    dirty = DirtyLog(os.path.join(run_dir, "dirty"), f"read-{index:05d}")
    rows = bytes_read = 0
    max_dirty = json.loads(options.get("max_dirty") or "null")  # ErrorLimit.task_cap, from the driver
    try:
        for batch in source_class(spec.source.type)(spec).read(plan, value, dirty):
            _check_dirty(spec, dirty, max_dirty)
            rows += batch.num_rows
            bytes_read += batch.nbytes
            yield batch
            pause_point("read")
        _check_dirty(spec, dirty, max_dirty)
    finally:
        dirty.close()
    write_json_atomic(Path(run_dir) / "stats" / f"read-{index:05d}.json",
                      {"rows": rows, "bytes": bytes_read, "dirty": dirty.count,
                       "dirty_reasons": dirty.reasons, "dirty_file": str(dirty.path) if dirty.count else None})


def _check_dirty(spec, dirty, max_dirty: int | None) -> None:
    """Stop the task once its own dirty records make the run's failure certain (error_limit)."""
    if max_dirty is not None and dirty.count > max_dirty:
        from accelsync.errors import DataError
        raise DataError(f"dirty records exceed error_limit ({spec.error_limit.describe()}): one task alone "
                        f"found {dirty.count} while reading; reasons: {dirty.reasons}")


def write_batches(options: dict[str, str], batches, task_index: int, partition: int | None = None) -> dict:
    """Write Arrow batches through the spec's sink with the shared loop; return the task's stats.

    `partition` (the fused path) names the plan partition, so a retry can clear what a failed
    attempt at it left."""
    from accelsync.dirty import DirtyLog
    from accelsync.registry import sink_class
    from accelsync.sinks.base import write_partition

    spec = _spec(options)
    context = json.loads(options["context"])
    run_dir = options["run_dir"]
    owner = f"{task_index:05d}" if partition is None else f"p{partition:05d}"
    name = f"write-{owner}-{uuid.uuid4().hex[:8]}"
    channels = max(1, int(options["channels"]))
    max_dirty = json.loads(options.get("max_dirty") or "null")  # ErrorLimit.task_cap, from the driver
    stats = write_partition(
        sink_class(spec.target.type)(spec), context, batches,
        dirty=DirtyLog(os.path.join(run_dir, "dirty"), name),
        snapshot_path=os.path.join(run_dir, "snapshot", f"{name}.arrow"),
        records_per_second=spec.speed.records_per_second / channels,
        max_dirty=max_dirty)
    return asdict(stats)


def sync_partitions(options: dict[str, str]):
    """The fused path, for specs without a transform: each Spark task reads its plan partitions
    and writes them in the same Python worker (a DataX channel), so batches never cross into
    the JVM and back. Returns a function for `RDD.mapPartitionsWithIndex`."""

    from accelsync.retry import retry_partition

    def run(task_index: int, partitions):
        for index, value in partitions:
            yield retry_partition(lambda: _sync_one(options, task_index, index, value), index,
                                  options["run_dir"])

    return run


def _sync_one(options: dict[str, str], task_index: int, index: int, value: dict) -> dict:
    batches = read_partition(options, index, value)
    try:
        return write_batches(options, batches, task_index, index)
    finally:
        batches.close()  # a failed write leaves the source's connection closed, not dangling


class AccelsyncSnapshot(DataSource):
    """Reads a run snapshot: the Arrow IPC files the write tasks left, one partition per file."""

    @classmethod
    def name(cls) -> str:
        return SNAPSHOT_FORMAT

    def schema(self):
        from pyspark.sql.pandas.types import from_arrow_schema
        import pyarrow as pa

        files = json.loads(self.options["files"])
        with pa.OSFile(files[0], "rb") as handle:
            schema = pa.ipc.open_file(handle).schema
        return from_arrow_schema(schema, prefer_timestamp_ntz=True)

    def reader(self, schema) -> DataSourceReader:
        return _SnapshotReader(json.loads(self.options["files"]))


class _SnapshotReader(DataSourceReader):
    def __init__(self, files: list[str]):
        self.files = files

    def partitions(self):
        return [InputPartition(path) for path in self.files]

    def read(self, partition: InputPartition) -> Iterator[Any]:
        import pyarrow as pa

        with pa.memory_map(partition.value, "r") as source:
            reader = pa.ipc.open_file(source)
            for index in range(reader.num_record_batches):
                yield reader.get_batch(index)


@dataclass
class _Written(WriterCommitMessage):
    stats: dict


class AccelsyncSink(DataSource):
    @classmethod
    def name(cls) -> str:
        return SINK_FORMAT

    def writer(self, schema, overwrite: bool):
        return _SinkWriter(dict(self.options))


class _SinkWriter(DataSourceArrowWriter):
    def __init__(self, options: dict[str, str]):
        self.options = options

    def write(self, iterator) -> _Written:
        from pyspark import TaskContext

        task = TaskContext.get()
        return _Written(write_batches(self.options, iterator, task.partitionId() if task else 0))

    def commit(self, messages) -> None:
        from pathlib import Path

        from accelsync.runs import write_json_atomic
        write_json_atomic(Path(self.options["run_dir"]) / "write_stats.json",
                          [m.stats for m in messages if m is not None])
