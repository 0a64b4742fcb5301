"""Runs one sync on Spark: plan, read -> transform -> write, then count what happened.

The counts obey DataX's invariant: read = written + dirty + filtered (rows a transform filter
dropped). The error limit is checked on them before anything can be gated or published.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from accelsync.errors import DataError, SyncTimeout, TerminalError
from accelsync.plan import Plan
from accelsync.registry import sink_class, source_class
from accelsync.runs import RunDir
from accelsync.connections import for_spec
from accelsync.spark_io import CONNECTIONS_OPTION, SINK_FORMAT, SOURCE_FORMAT, sync_partitions
from accelsync.spec import Spec


@dataclass
class SyncStats:
    started: str
    ended: str
    seconds: float
    read: int
    written: int
    dirty: int
    filtered: int
    bytes: int
    partitions: int
    dirty_reasons: dict[str, int]
    retries: int = 0  # failed partition attempts that were retried (see accelsync.retry)
    value_bytes: int = 0  # values before and after the sink's compression (0: no compression)
    stored_bytes: int = 0

    @property
    def rows_per_second(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0


def make_plan(spec: Spec, run: RunDir) -> Plan:
    plan = source_class(spec.source.type)(spec).plan(spec.speed.channels)
    run.write_json("plan.json", {"plan": plan.to_json(), "summary": plan.summary()})
    return plan


def load_plan(run: RunDir) -> Plan:
    return Plan.from_json(run.read_json("plan.json")["plan"])


def source_frame(spark, spec: Spec, plan: Plan, run: RunDir):
    """The transformed DataFrame of this run's plan (lazy: nothing is read yet)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    # Giving the schema spares Spark a Python planner process to ask the data source for it.
    frame = (spark.read.format(SOURCE_FORMAT)
             .schema(from_arrow_schema(plan.schema, prefer_timestamp_ntz=True))
             .option("spec", spec.model_dump_json(by_alias=True))
             .option(CONNECTIONS_OPTION, for_spec(spec))
             .option("plan", plan.to_json())
             .option("run_dir", str(run.path))
             .option("max_dirty", json.dumps(spec.error_limit.task_cap(plan.max_records)))
             .load())
    return apply_transform(frame, spec)


def apply_transform(frame, spec: Spec):
    if spec.transform is None:
        return frame
    from pyspark.errors import AnalysisException, ParseException
    try:
        if spec.transform.filter:
            frame = frame.filter(spec.transform.filter)
        if spec.transform.select:
            frame = frame.selectExpr(*spec.transform.select)
        frame.schema  # analyse now, so a bad expression fails here with its message
    except (AnalysisException, ParseException) as exc:
        raise TerminalError(f"transform: {_first_line(str(exc))}") from None
    return frame


def sync(spark, spec: Spec, run: RunDir, deadline: float | None = None) -> SyncStats:
    """Plan and copy the data; raise DataError when dirty records exceed the error limit."""
    for folder in ("stats", "snapshot", "dirty"):
        shutil.rmtree(run.path / folder, ignore_errors=True)
    for name in ("write_stats.json", "sync.json", "gate.json"):
        run.file(name).unlink(missing_ok=True)
    started = datetime.now(timezone.utc)
    clock = time.monotonic()
    plan = make_plan(spec, run)
    sink = sink_class(spec.target.type)(spec)
    context = sink.prepare(run.run_id)
    context.setdefault("run_dir", str(run.path))
    run.write_json("context.json", context)
    options = {"spec": spec.model_dump_json(by_alias=True), CONNECTIONS_OPTION: for_spec(spec),
               "plan": plan.to_json(), "context": json.dumps(context), "run_dir": str(run.path),
               "channels": str(spec.speed.channels),
               "max_dirty": json.dumps(spec.error_limit.task_cap(plan.max_records))}
    try:
        with _cancel_at(spark, deadline, f"accelsync-{spec.name}-{run.run_id}"):
            try:
                if spec.transform is None:
                    _sync_fused(spark, plan, options, run)
                else:
                    _sync_dataframe(spark, spec, plan, run, options)
            except Exception as exc:
                raise _task_error(exc) from None
        context = sink.finish(context, deadline)
        run.write_json("context.json", context)
        stats = _collect(run, started, time.monotonic() - clock, len(plan.partitions))
        run.write_json("sync.json", asdict(stats))
        check_error_limit(spec, stats)
    except BaseException:
        # Nothing staged outlives a failed sync (a swap version, a Druid staging datasource);
        # a killed one is cleaned up by the next run's `prepare`.
        _discard(sink, run)
        raise
    return stats


def _discard(sink, run: RunDir) -> None:
    context = run.read_json("context.json") if run.exists("context.json") else {}
    try:
        sink.discard(context)
    except Exception as exc:  # never hide the run's own failure behind a cleanup failure
        import logging
        logging.getLogger(__name__).warning("could not remove what run %s staged: %s", run.run_id, exc)


def _sync_fused(spark, plan: Plan, options: dict[str, str], run: RunDir) -> None:
    """No transform: each task reads and writes its partitions in one Python worker."""
    partitions = list(enumerate(plan.partitions))
    if not partitions:
        run.write_json("write_stats.json", [])
        return
    stats = (spark.sparkContext.parallelize(partitions, len(partitions))
             .mapPartitionsWithIndex(sync_partitions(options)).collect())  # one small dict per task
    run.write_json("write_stats.json", stats)


def _sync_dataframe(spark, spec: Spec, plan: Plan, run: RunDir, options: dict[str, str]) -> None:
    """With a transform: source -> Spark SQL -> sink, as DataFrames of Arrow batches."""
    frame = source_frame(spark, spec, plan, run)
    writer = frame.write.format(SINK_FORMAT).mode("append")
    for key in ("spec", CONNECTIONS_OPTION, "context", "run_dir", "channels", "max_dirty"):
        writer = writer.option(key, options[key])
    writer.save()


def check_error_limit(spec: Spec, stats: SyncStats) -> None:
    """DataX's errorLimit: fail when the dirty records exceed either limit that is set."""
    limit = spec.error_limit
    if limit.exceeded(stats.dirty, stats.read):
        share = stats.dirty / stats.read if stats.read else 0.0
        raise DataError(f"{stats.dirty} dirty records of {stats.read} read ({share:.4%}) exceed "
                        f"error_limit ({limit.describe()}); reasons: {stats.dirty_reasons}; "
                        f"see the run's dirty/ folder")


def _collect(run: RunDir, started: datetime, seconds: float, partitions: int) -> SyncStats:
    reads = [RunDir.read_json(run, f"stats/{p.name}") for p in sorted((run.path / "stats").glob("read-*.json"))]
    writes = run.read_json("write_stats.json") if run.exists("write_stats.json") else []
    yielded = sum(r["rows"] for r in reads)
    read_dirty = sum(r["dirty"] for r in reads)
    reasons: dict[str, int] = {}
    for entry in reads + writes:
        for reason, count in (entry.get("dirty_reasons") or {}).items():
            reasons[reason] = reasons.get(reason, 0) + count
    rows_in = sum(w["rows_in"] for w in writes)
    written = sum(w["written"] for w in writes)
    write_dirty = sum(w["dirty"] for w in writes)
    return SyncStats(started=started.isoformat(timespec="seconds"),
                     ended=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                     seconds=round(seconds, 3), read=yielded + read_dirty, written=written,
                     dirty=read_dirty + write_dirty, filtered=yielded - rows_in,
                     bytes=sum(r["bytes"] for r in reads), partitions=partitions, dirty_reasons=reasons,
                     retries=sum(max(0, w.get("attempts", 1) - 1) for w in writes),
                     value_bytes=sum(w.get("value_bytes", 0) for w in writes),
                     stored_bytes=sum(w.get("stored_bytes", 0) for w in writes))


def load_stats(run: RunDir) -> SyncStats:
    return SyncStats(**run.read_json("sync.json"))


@contextmanager
def _cancel_at(spark, deadline: float | None, group: str):
    """Cancel this thread's Spark jobs when the run's deadline passes."""
    if deadline is None:
        yield
        return
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise SyncTimeout("timeout: the run's time budget was used up before the sync started")
    context = spark.sparkContext
    context.setJobGroup(group, "accelsync sync", interruptOnCancel=True)
    fired = threading.Event()

    def cancel():
        fired.set()
        context.cancelJobGroup(group)

    timer = threading.Timer(remaining, cancel)
    timer.daemon = True
    timer.start()
    try:
        yield
    except Exception:
        if fired.is_set():
            raise SyncTimeout("timeout: the sync ran past the spec's timeout and was cancelled") from None
        raise
    finally:
        timer.cancel()


def _task_error(exc: Exception) -> Exception:
    """Turn Spark's wrapped task failure back into the accelsync error the task raised."""
    from accelsync import errors
    text = str(exc)
    for name in ("SpecError", "ConnectionConfigError", "DataError", "TerminalError", "TransientError",
                 "SyncTimeout"):
        marker = f"accelsync.errors.{name}: "
        if marker in text:
            message = _first_line(text.split(marker, 1)[1])
            cls = getattr(errors, name)
            return (errors.TerminalError if name == "SpecError" else cls)(message)
    for marker in ("TerminalError: ", "TransientError: ", "DataError: "):
        if marker in text:
            message = _first_line(text.split(marker, 1)[1])
            return getattr(errors, marker[:-2])(message)
    if isinstance(exc, (TerminalError,)) or getattr(exc, "retryable", None) is not None:
        return exc
    # Anything else is retried only when it is a lost connection or worker (errors.py's list);
    # a bug fails the run at once with its message.
    return errors.classify(exc, f"Spark job failed: {_python_error(text)}")


def _python_error(text: str) -> str:
    """The Python exception line inside Spark's wrapped task failure, else its first line."""
    lines = [line.strip() for line in text.splitlines()]
    for line in reversed(lines):
        if re.match(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b.*", line):
            return line
    return _first_line(text)


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def snapshot_files(run: RunDir) -> list[str]:
    writes: list[dict[str, Any]] = run.read_json("write_stats.json") if run.exists("write_stats.json") else []
    return sorted(w["snapshot"] for w in writes if w.get("snapshot"))
