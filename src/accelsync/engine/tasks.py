"""What one channel does, whatever runs it: read plan partitions and write them through the target.

The Spark data sources (`accelsync.engine.spark_io`) and the local engine (`accelsync.engine.local`) both
call these functions, in Spark's Python workers or in local worker processes. Everything they
need comes in `options`, a dict of strings (the spec and plan as JSON, the shipped connections,
the target's context, the run folder), so a task needs nothing from the driver's memory. Connector
code is imported here, inside the functions.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import asdict
from typing import Any, Iterator

from accelsync.runs import DIRTY_FOLDER, SAMPLE_FOLDER, SNAPSHOT_FOLDER, STATS_FOLDER, write_json_atomic

# Spark redacts option values whose key matches spark.redaction.regex ("secret" among others).
CONNECTIONS_OPTION = "secret_connections"


def spec_of(options: dict[str, str]):
    from accelsync.connections import install
    from accelsync.spec import Spec
    install(options.get(CONNECTIONS_OPTION))
    return Spec.model_validate_json(options["spec"])


def read_partition(options: dict[str, str], index: int, value: dict) -> Iterator[Any]:
    """Yield one plan partition's Arrow batches; leave its read counts in the run folder."""
    from pathlib import Path

    from accelsync.engine import cancel
    from accelsync.engine.dirty import DirtyLog
    from accelsync.engine.faults import pause_point
    from accelsync.engine.plan import Plan
    from accelsync.registry import source_class

    spec = spec_of(options)
    plan = Plan.from_json(options["plan"])
    run_dir = options["run_dir"]
    dirty = DirtyLog(os.path.join(run_dir, DIRTY_FOLDER), f"read-{index:05d}")
    rows = bytes_read = 0
    max_dirty = json.loads(options.get("max_dirty") or "null")  # ErrorLimit.task_cap, from the driver
    try:
        for batch in source_class(spec.source.type)(spec).read(plan, value, dirty):
            _check_dirty(spec, dirty, max_dirty)
            cancel.check()
            rows += batch.num_rows
            bytes_read += batch.nbytes
            yield batch
            pause_point("read")
        _check_dirty(spec, dirty, max_dirty)
    finally:
        dirty.close()
    write_json_atomic(Path(run_dir) / STATS_FOLDER / f"read-{index:05d}.json",
                      {"rows": rows, "bytes": bytes_read, "dirty": dirty.count,
                       "dirty_reasons": dirty.reasons, "dirty_file": str(dirty.path) if dirty.count else None})


def _check_dirty(spec, dirty, max_dirty: int | None) -> None:
    """Stop the task once its own dirty records make the run's failure certain (error_limit)."""
    if max_dirty is not None and dirty.count > max_dirty:
        from accelsync.errors import DataError
        raise DataError(f"dirty records exceed error_limit ({spec.error_limit.describe()}): one task alone "
                        f"found {dirty.count} while reading; reasons: {dirty.reasons}")


def write_batches(options: dict[str, str], batches, task_index: int, partition: int | None = None) -> dict:
    """Write Arrow batches through the spec's target with the shared loop; return the task's stats.

    `partition` (the fused path) names the plan partition, so a retry can clear what a failed
    attempt at it left."""
    from accelsync.engine.dirty import DirtyLog
    from accelsync.registry import target_class
    from accelsync.targets.base import write_partition

    spec = spec_of(options)
    run_dir = options["run_dir"]
    owner = f"{task_index:05d}" if partition is None else f"p{partition:05d}"
    # `writer` names this task's output where a target stages files (Druid's part files): unique
    # among the run's tasks on either engine, and the same for a retry of the same partition.
    context = {**json.loads(options["context"]), "writer": owner}
    name = f"write-{owner}-{uuid.uuid4().hex[:8]}"
    channels = max(1, int(options["channels"]))
    max_dirty = json.loads(options.get("max_dirty") or "null")  # ErrorLimit.task_cap, from the driver
    stats = write_partition(
        target_class(spec.target.type)(spec), context, batches,
        dirty=DirtyLog(os.path.join(run_dir, DIRTY_FOLDER), name),
        snapshot_path=os.path.join(run_dir, SNAPSHOT_FOLDER, f"{name}.arrow"),
        records_per_second=spec.speed.records_per_second / channels,
        max_dirty=max_dirty,
        snapshot_columns=json.loads(options.get("snapshot_columns") or "null"),
        sample_path=os.path.join(run_dir, SAMPLE_FOLDER, f"{name}.arrow"),
        sample_size=int(options.get("sample") or 0))
    return asdict(stats)


def sync_partition(options: dict[str, str], task_index: int, index: int, value: dict) -> dict:
    """Read and write one plan partition, again from its start when a service was unavailable."""
    from accelsync.engine.retry import retry_partition

    return retry_partition(lambda: _sync_one(options, task_index, index, value), index, options["run_dir"])


def sync_partitions(options: dict[str, str]):
    """The fused path, for specs without a transform: each Spark task reads its plan partitions
    and writes them in the same Python worker (a DataX channel), so batches never cross into
    the JVM and back. Returns a function for `RDD.mapPartitionsWithIndex`."""

    def run(task_index: int, partitions):
        for index, value in partitions:
            yield sync_partition(options, task_index, index, value)

    return run


def _sync_one(options: dict[str, str], task_index: int, index: int, value: dict) -> dict:
    batches = read_partition(options, index, value)
    try:
        return write_batches(options, batches, task_index, index)
    finally:
        batches.close()  # a failed write leaves the source's connection closed, not dangling
