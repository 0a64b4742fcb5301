"""The Spark engine: a sync's partitions as Spark tasks (a cluster, or a spec with a `transform`).

Without a transform, each Spark task reads and writes its plan partitions in one Python worker
(the fused path, one DataX channel per task); with one, the source is a DataFrame of Arrow
batches, transformed by Spark SQL and written by the target data source. Either way the task's
work is `accelsync.engine.tasks`, the same code the local engine runs.
"""

from __future__ import annotations

import json
import re
import threading
import time
from contextlib import contextmanager

from accelsync.connections import for_spec
from accelsync.engine.plan import Plan
from accelsync.engine.spark_io import SOURCE_FORMAT, TARGET_FORMAT
from accelsync.engine.tasks import CONNECTIONS_OPTION, sync_partitions
from accelsync.errors import SyncTimeout, TerminalError
from accelsync.runs import RunDir, WRITE_STATS_FILE
from accelsync.spec import Spec


def copy(spec: Spec, plan: Plan, options: dict[str, str], run: RunDir, deadline: float | None) -> None:
    """Copy the plan's partitions on Spark; leaves the tasks' stats in `write_stats.json`."""
    from accelsync.engine import spark_settings
    from accelsync.engine.spark_session import get_spark

    spark = get_spark(spark_settings.for_spec(spec))
    group = f"accelsync-{spec.name}-{run.run_id}"
    with _cancel_at(spark, deadline, group):
        try:
            if spec.transform is None:
                _sync_fused(spark, plan, options, run)
            else:
                _sync_dataframe(spark, spec, plan, run, options)
        except Exception as exc:
            _settle(spark, group)
            raise _task_error(exc) from None


def _settle(spark, group: str, seconds: float = 60) -> None:
    """After a failed job, cancel its other tasks and wait until none runs: a task still
    writing would put rows back after the failed run discards what it staged."""
    context = spark.sparkContext
    context.cancelJobGroup(group)
    tracker = context.statusTracker()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        stages = [tracker.getStageInfo(s) for s in tracker.getActiveStageIds()]
        if not any(stage and stage.numActiveTasks for stage in stages):
            return
        time.sleep(0.2)


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


def _sync_fused(spark, plan: Plan, options: dict[str, str], run: RunDir) -> None:
    """No transform: each task reads and writes its partitions in one Python worker."""
    partitions = list(enumerate(plan.partitions))
    if not partitions:
        run.write_json(WRITE_STATS_FILE, [])
        return
    stats = (spark.sparkContext.parallelize(partitions, len(partitions))
             .mapPartitionsWithIndex(sync_partitions(options)).collect())  # one small dict per task
    run.write_json(WRITE_STATS_FILE, stats)


def _sync_dataframe(spark, spec: Spec, plan: Plan, run: RunDir, options: dict[str, str]) -> None:
    """With a transform: source -> Spark SQL -> target, as DataFrames of Arrow batches."""
    frame = source_frame(spark, spec, plan, run)
    writer = frame.write.format(TARGET_FORMAT).mode("append")
    for key in ("spec", CONNECTIONS_OPTION, "context", "run_dir", "channels", "max_dirty", "snapshot_columns",
                "sample"):
        writer = writer.option(key, options[key])
    writer.save()


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
