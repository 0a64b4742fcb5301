"""The two Spark Python data sources that carry every accelsync source and target.

`accelsync_source` reads the partitions of a plan through the registered Source; `accelsync_target`
writes Arrow batches through the registered Target with the shared write loop. Options carry the
spec and plan as JSON, so Spark tasks need nothing from the driver's memory, and connectors
never see Spark. Imports of connector code happen inside the methods, on the executors.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator

from pyspark.sql.datasource import (DataSource, DataSourceArrowWriter, DataSourceReader,
                                    InputPartition, WriterCommitMessage)

from accelsync.engine.tasks import read_partition, write_batches
from accelsync.runs import WRITE_STATS_FILE

SOURCE_FORMAT = "accelsync_source"
TARGET_FORMAT = "accelsync_target"
SNAPSHOT_FORMAT = "accelsync_snapshot"


class AccelsyncSource(DataSource):
    @classmethod
    def name(cls) -> str:
        return SOURCE_FORMAT

    def schema(self):
        from pyspark.sql.pandas.types import from_arrow_schema

        from accelsync.engine.plan import Plan
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
        from accelsync.engine.plan import Plan
        plan = Plan.from_json(self.options["plan"])
        return [_Partition(i, p) for i, p in enumerate(plan.partitions)] or [_Partition(0, {"empty": True})]

    def read(self, partition: _Partition) -> Iterator[Any]:
        if partition.value.get("empty"):
            return iter(())
        return read_partition(self.options, partition.index, partition.value)


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


class AccelsyncTarget(DataSource):
    @classmethod
    def name(cls) -> str:
        return TARGET_FORMAT

    def writer(self, schema, overwrite: bool):
        return _TargetWriter(dict(self.options))


class _TargetWriter(DataSourceArrowWriter):
    def __init__(self, options: dict[str, str]):
        self.options = options

    def write(self, iterator) -> _Written:
        from pyspark import TaskContext

        task = TaskContext.get()
        return _Written(write_batches(self.options, iterator, task.partitionId() if task else 0))

    def commit(self, messages) -> None:
        from pathlib import Path

        from accelsync.runs import write_json_atomic
        write_json_atomic(Path(self.options["run_dir"]) / WRITE_STATS_FILE,
                          [m.stats for m in messages if m is not None])
