"""The gate: every check that must pass before a run's data goes live.

Checks run on the run snapshot (the rows the sink accepted, as Arrow IPC files in the run folder) and on
the target itself through the sink's real client:
- suite: the GX suite of `quality.suite`, validated on the snapshot;
- reconcile: rows present in the target vs read - dirty - filtered, within `tolerance`;
- readback: a sample of snapshot rows fetched from the target and compared field by field;
- freshness: the newest `freshness.column` value is within `max_lag` of now;
- timeliness: the run so far is within the spec's `timeout`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from accelsync.engine import SyncStats, apply_transform, load_plan, snapshot_files
from accelsync.registry import sink_class
from accelsync.runs import RunDir, data_docs_root
from accelsync.spec import Spec


def check(name: str, passed: bool, detail: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "passed": bool(passed), "detail": detail, **extra}


def snapshot_frame(spark, spec: Spec, run: RunDir):
    files = snapshot_files(run)
    if files:
        import json

        from accelsync.spark_io import SNAPSHOT_FORMAT
        return spark.read.format(SNAPSHOT_FORMAT).option("files", json.dumps(files)).load()
    from pyspark.sql.pandas.types import from_arrow_schema
    empty = spark.createDataFrame([], from_arrow_schema(load_plan(run).schema, prefer_timestamp_ntz=True))
    return apply_transform(empty, spec)


def run_gate(spark, spec: Spec, run: RunDir, stats: SyncStats, elapsed_seconds: float) -> dict[str, Any]:
    """Run every configured check; return {"passed", "checks", "data_docs"}."""
    frame = snapshot_frame(spark, spec, run)
    sink = sink_class(spec.target.type)(spec)
    context = run.read_json("context.json") if run.exists("context.json") else {}
    checks: list[dict[str, Any]] = [_reconcile(frame, spec, sink, context, stats)]
    if spec.quality.readback.sample > 0:
        checks.append(_readback(frame, spec, sink, context, stats))
    if spec.quality.freshness:
        checks.append(_freshness(frame, spec))
    budget = spec.timeout.total_seconds()
    checks.append(check("timeliness", elapsed_seconds <= budget,
                        f"run took {elapsed_seconds:.1f}s of its {budget:.0f}s timeout",
                        measured=elapsed_seconds, limit=budget))
    data_docs = None
    if spec.quality.suite:
        suite, data_docs = _suite(frame, spec, run, checks)
        checks = suite + checks
    return {"passed": all(c["passed"] for c in checks), "checks": checks, "data_docs": data_docs}


# Each gate check also becomes an expectation in the suite's validation, so the Data Docs page of
# the run shows every check beside the suite's: a literal column holding the check's measurement,
# expected to be within the check's limit. The gate's verdict comes from the checks themselves
# (on an empty snapshot those expectations pass vacuously; the checks do not).
GATE_COLUMN = "accelsync_{}"


def _suite(frame, spec: Spec, run: RunDir,
           checks: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str | None]:
    from pyspark.sql import functions as F

    from accelsync.quality.expectations import validate_dataframe

    measured = [c for c in checks if c.get("measured") is not None]
    if measured:
        frame = frame.withColumns({GATE_COLUMN.format(c["name"]): F.lit(float(c["measured"])) for c in measured})
    extra = [{"type": "expect_column_values_to_be_between",
              "kwargs": {"column": GATE_COLUMN.format(c["name"]), "max_value": float(c["limit"])},
              "notes": f"accelsync gate check {c['name']}: {c['detail']}"} for c in measured]
    result = validate_dataframe(frame, spec.quality.suite, run_name=f"{spec.name}/{run.run_id}",
                                docs_root=str(data_docs_root()), extra_expectations=extra)
    own = tuple(f"({GATE_COLUMN.format(c['name'])})" for c in measured)
    return ([dict(c, name=f"suite: {c['name']}") for c in result.checks if not c["name"].endswith(own)],
            result.data_docs)


def _reconcile(frame, spec: Spec, sink, context, stats: SyncStats) -> dict[str, Any]:
    spec_json = spec.model_dump_json(by_alias=True)
    from accelsync.connections import for_spec
    shipped = for_spec(spec)

    def count(batches):
        import pyarrow as pa

        from accelsync.connections import install
        from accelsync.registry import sink_class
        from accelsync.spec import Spec
        install(shipped)
        own = sink_class(spec.target.type)(Spec.model_validate_json(spec_json))
        total = 0
        for batch in batches:
            total += own.count_present(batch, context)
        yield pa.RecordBatch.from_pydict({"present": [total]})

    present = sum(row["present"] for row in frame.mapInArrow(count, "present long").collect())
    expected = stats.read - stats.dirty - stats.filtered
    tolerance = spec.quality.reconcile.tolerance
    difference = abs(present - expected)
    return check("reconcile", difference <= tolerance,
                 f"target has {present} of {expected} expected rows (read {stats.read} - dirty {stats.dirty}"
                 f" - filtered {stats.filtered}); difference {difference}, tolerance {tolerance}",
                 present=present, expected=expected, measured=difference, limit=tolerance)


def _readback(frame, spec: Spec, sink, context, stats: SyncStats) -> dict[str, Any]:
    wanted = spec.quality.readback.sample
    if stats.written == 0:
        return check("readback", True, "no rows written; nothing to read back")
    fraction = min(1.0, 2.0 * wanted / stats.written)
    sample = frame.sample(fraction=fraction, seed=17).limit(wanted) if fraction < 1 else frame.limit(wanted)
    rows = sample.toArrow().to_pylist()
    mismatches = sink.read_back(rows, context)
    shown = "; ".join(f"{m['key']}" + (f" field {m['field']}" if m["field"] else "") +
                      f": expected {m['expected']!r}, got {m['actual']!r}" for m in mismatches[:10])
    detail = (f"{len(rows)} sampled rows match the target field by field" if not mismatches else
              f"{len(mismatches)} mismatches in {len(rows)} sampled rows: {shown}")
    return check("readback", not mismatches, detail, mismatches=mismatches[:100], measured=len(mismatches), limit=0)


def _freshness(frame, spec: Spec) -> dict[str, Any]:
    from pyspark.sql import functions as F

    column = spec.quality.freshness.column
    newest = frame.agg(F.max(column)).collect()[0][0]
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
