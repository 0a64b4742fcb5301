"""The gate: every check that must pass before a run's data goes live.

Checks run on the run snapshot (the rows the target accepted, as Arrow IPC files in the run folder:
every column when a suite needs them, else only those the checks use), on a uniform sample of
whole rows the write tasks kept, and on the target itself through the target's real client. No
JVM unless GX needs Spark for a large snapshot.
- suite: the GX suite of `quality.suite`, validated on the snapshot: on Arrow when every
  expectation is one quality/arrow_suite computes exactly as GX does (GX then draws the Data Docs
  page after the verdict), else by GX on pandas up to PANDAS_SUITE_ROWS rows, on Spark beyond;
- reconcile: rows present in the target vs read - dirty - filtered, within `tolerance`;
- readback: a sample of snapshot rows fetched from the target and compared field by field;
- freshness: the newest `freshness.column` value is within `max_lag` of now;
- timeliness: the run so far is within the spec's `timeout`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Iterator

import pyarrow as pa
import pyarrow.compute as pc

from accelsync.engine.sync import SyncStats, load_plan, snapshot_files
from accelsync.registry import target_class
from accelsync.runs import CONTEXT_FILE, SUITE_RESULT_FILE, RunDir, WRITE_STATS_FILE, data_docs_root
from accelsync.targets.base import read_sample
from accelsync.spec import Spec

# Snapshot batches counted by one reconcile thread at a time.
RECONCILE_BATCHES = 8
# A suite runs on pandas up to this many rows (GX in this process, no JVM), on Spark beyond.
PANDAS_SUITE_ROWS = 2_000_000


def check(name: str, passed: bool, detail: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "passed": bool(passed), "detail": detail, **extra}


def snapshot_batches(path: str, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The batches of one snapshot file, memory-mapped (no copy)."""
    with pa.memory_map(path, "r") as source:
        reader = pa.ipc.open_file(source)
        for index in range(reader.num_record_batches):
            batch = reader.get_batch(index)
            yield batch.select(columns) if columns else batch


def _batch_count(path: str) -> int:
    with pa.memory_map(path, "r") as source:
        return pa.ipc.open_file(source).num_record_batches


def run_gate(spec: Spec, run: RunDir, stats: SyncStats, elapsed_seconds: float) -> dict[str, Any]:
    """Run every configured check; return {"passed", "checks", "data_docs"}."""
    files = snapshot_files(run)
    target = target_class(spec.target.type)(spec)
    context = run.read_json(CONTEXT_FILE) if run.exists(CONTEXT_FILE) else {}
    checks: list[dict[str, Any]] = [_reconcile(files, spec, context, stats)]
    if spec.quality.readback.sample > 0:
        checks.append(_readback(run, spec, target, context, stats))
    if spec.quality.freshness:
        checks.append(_freshness(files, spec))
    budget = spec.timeout.total_seconds()
    checks.append(check("timeliness", elapsed_seconds <= budget,
                        f"run took {elapsed_seconds:.1f}s of its {budget:.0f}s timeout",
                        measured=elapsed_seconds, limit=budget))
    data_docs, evaluated_by = None, None
    if spec.quality.suite:
        suite, data_docs, evaluated_by = _suite(files, spec, run, stats, checks)
        checks = suite + checks
    return {"passed": all(c["passed"] for c in checks), "checks": checks, "data_docs": data_docs,
            "suite_evaluated_by": evaluated_by}


# Each gate check also becomes an expectation in the suite's validation, so the Data Docs page of
# the run shows every check beside the suite's: a literal column holding the check's measurement,
# expected to be within the check's limit. The gate's verdict comes from the checks themselves
# (on an empty snapshot those expectations pass vacuously; the checks do not).
GATE_COLUMN = "accelsync_{}"


def _suite(files: list[str], spec: Spec, run: RunDir, stats: SyncStats,
           checks: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None, str]:
    """The suite's checks, its Data Docs page (None: drawn after the verdict, see
    pipeline.render_data_docs) and what evaluated it ("arrow" or "gx"). Evaluated on the Arrow
    snapshot when every expectation is one quality/arrow_suite computes as GX would, else by GX:
    on pandas, or on Spark when large."""
    measured = [c for c in checks if c.get("measured") is not None]
    columns = {GATE_COLUMN.format(c["name"]): float(c["measured"]) for c in measured}
    extra = [{"type": "expect_column_values_to_be_between",
              "kwargs": {"column": GATE_COLUMN.format(c["name"]), "max_value": float(c["limit"])},
              "notes": f"accelsync gate check {c['name']}: {c['detail']}"} for c in measured]
    own = tuple(f"({GATE_COLUMN.format(c['name'])})" for c in measured)
    if spec.quality.suite_engine == "auto" and (files or spec.transform is None):
        result = _arrow_suite(files, spec, run, extra, columns)
        if result is not None:
            suite = [dict(c, name=f"suite: {c['name']}") for c in result if not c["name"].endswith(own)]
            return suite, None, "arrow"
    from accelsync.quality.expectations import validate_dataframe

    if stats.written <= PANDAS_SUITE_ROWS and (files or spec.transform is None):
        frame = _pandas_frame(files, run)
        for name, value in columns.items():
            frame[name] = value
    else:
        from pyspark.sql import functions as F
        frame = _spark_frame(files, spec, run)
        if columns:
            frame = frame.withColumns({name: F.lit(value) for name, value in columns.items()})
    result = validate_dataframe(frame, spec.quality.suite, run_name=f"{spec.name}/{run.run_id}",
                                docs_root=str(data_docs_root()), extra_expectations=extra)
    return ([dict(c, name=f"suite: {c['name']}") for c in result.checks if not c["name"].endswith(own)],
            result.data_docs, "gx")


def _arrow_suite(files: list[str], spec: Spec, run: RunDir, extra: list[dict[str, Any]],
                 constants: dict[str, float]) -> list[dict[str, Any]] | None:
    """The suite's checks computed on the snapshot without GX (None: GX must evaluate it); the
    results are kept in the run folder, in GX's shape, for Data Docs."""
    from accelsync.quality import arrow_suite
    from accelsync.quality.suite_checks import suite_check

    if files:
        with pa.memory_map(files[0], "r") as source:
            schema = pa.ipc.open_file(source).schema
    else:
        schema = load_plan(run).schema
    try:
        suite = arrow_suite.load_raw_suite(spec.quality.suite)
    except (OSError, ValueError, arrow_suite.Unsupported):
        return None  # GX reads it again and says what is wrong with it, field by field
    result = arrow_suite.evaluate(suite, extra, files, schema, constants)
    if result is None:
        return None
    result["run_time"] = datetime.now(timezone.utc).isoformat()
    run.write_json(SUITE_RESULT_FILE, result)
    return [suite_check(r["expectation_config"]["type"], r["expectation_config"]["kwargs"], r["success"],
                        r["result"], r["exception_info"]) for r in result["results"]]


def _pandas_frame(files: list[str], run: RunDir):
    """The written rows as one pandas DataFrame (timestamps without zone, as Spark shows them).

    Decimals of up to 15 digits become float64, which holds them exactly enough for every
    comparison an expectation makes, and lets GX compare them in bulk instead of row by row."""
    tables = [pa.Table.from_batches(list(snapshot_batches(path))) for path in files]
    table = pa.concat_tables(tables) if tables else load_plan(run).schema.empty_table()
    for index, field in enumerate(table.schema):
        if pa.types.is_decimal(field.type) and field.type.precision <= 15:
            table = table.set_column(index, field.name, pc.cast(table.column(index), pa.float64()))
    return table.to_pandas(timestamp_as_object=False)


def _spark_frame(files: list[str], spec: Spec, run: RunDir):
    """The written rows as a Spark DataFrame (a run too large for pandas, or an empty one whose
    transformed shape only Spark can tell)."""
    import json

    from accelsync.engine.spark_session import get_spark
    from accelsync.engine.spark import apply_transform
    spark = get_spark()
    if files:
        from accelsync.engine.spark_io import SNAPSHOT_FORMAT
        return spark.read.format(SNAPSHOT_FORMAT).option("files", json.dumps(files)).load()
    from pyspark.sql.pandas.types import from_arrow_schema
    empty = spark.createDataFrame([], from_arrow_schema(load_plan(run).schema, prefer_timestamp_ntz=True))
    return apply_transform(empty, spec)


def _reconcile(files: list[str], spec: Spec, context: dict[str, Any], stats: SyncStats) -> dict[str, Any]:
    """Rows of the snapshot present in the target: in one pass when the target has a faster way,
    else in chunks of batches by a few threads (each with its own target client: the work is
    waiting on the target)."""
    present = target_class(spec.target.type)(spec).count_present_all(
        lambda: (batch for path in files for batch in snapshot_batches(path)), context)
    if present is None:
        present = _count_by_chunks(files, spec, context)
    expected = stats.read - stats.dirty - stats.filtered
    tolerance = spec.quality.reconcile.tolerance
    difference = abs(present - expected)
    return check("reconcile", difference <= tolerance,
                 f"target has {present} of {expected} expected rows (read {stats.read} - dirty {stats.dirty}"
                 f" - filtered {stats.filtered}); difference {difference}, tolerance {tolerance}",
                 present=present, expected=expected, measured=difference, limit=tolerance)


def _count_by_chunks(files: list[str], spec: Spec, context: dict[str, Any]) -> int:
    chunks = [(path, start, start + RECONCILE_BATCHES) for path in files
              for start in range(0, _batch_count(path), RECONCILE_BATCHES)]

    def count(chunk: tuple[str, int, int]) -> int:
        path, start, stop = chunk
        own = target_class(spec.target.type)(spec)
        with pa.memory_map(path, "r") as source:
            reader = pa.ipc.open_file(source)
            return sum(own.count_present(reader.get_batch(index), context)
                       for index in range(start, min(stop, reader.num_record_batches)))

    with ThreadPoolExecutor(max_workers=max(1, min(4, len(chunks)))) as pool:
        return sum(pool.map(count, chunks))


def _readback(run: RunDir, spec: Spec, target, context, stats: SyncStats) -> dict[str, Any]:
    wanted = spec.quality.readback.sample
    if stats.written == 0:
        return check("readback", True, "no rows written; nothing to read back")
    writes = run.read_json(WRITE_STATS_FILE) if run.exists(WRITE_STATS_FILE) else []
    rows = read_sample(sorted(w["sample"] for w in writes if w.get("sample")), wanted)
    mismatches = target.read_back(rows, context)
    shown = "; ".join(f"{m['key']}" + (f" field {m['field']}" if m["field"] else "") +
                      f": expected {m['expected']!r}, got {m['actual']!r}" for m in mismatches[:10])
    detail = (f"{len(rows)} sampled rows match the target field by field" if not mismatches else
              f"{len(mismatches)} mismatches in {len(rows)} sampled rows: {shown}")
    return check("readback", not mismatches, detail, mismatches=mismatches[:100], measured=len(mismatches), limit=0)


def _freshness(files: list[str], spec: Spec) -> dict[str, Any]:
    column = spec.quality.freshness.column
    newest = None
    for path in files:
        for batch in snapshot_batches(path, [column]):
            value = pc.max(batch.column(0)).as_py()
            if value is not None and (newest is None or value > newest):
                newest = value
    max_lag = spec.quality.freshness.max_lag
    if newest is None:
        return check("freshness", False, f"no value in {column}")
    if isinstance(newest, datetime):
        now = datetime.now(timezone.utc)
        newest_utc = newest if newest.tzinfo else newest.replace(tzinfo=timezone.utc)
        lag = now - newest_utc
        return check("freshness", lag <= max_lag,
                     f"newest {column} is {newest} ({lag.total_seconds():.0f}s old; max_lag "
                     f"{max_lag.total_seconds():.0f}s)",
                     measured=lag.total_seconds(), limit=max_lag.total_seconds())
    return check("freshness", False, f"{column} is not a timestamp column")
