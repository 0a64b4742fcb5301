"""Runs one sync: plan, read -> (transform) -> write on the local or the Spark engine, then count.

The counts obey DataX's invariant: read = written + dirty + filtered (rows a transform filter
dropped). The error limit is checked on them before anything can be gated or published.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any

from accelsync.errors import DataError, TerminalError
from accelsync.engine.plan import Plan
from accelsync.registry import target_class, source_class
from accelsync.runs import (CONTEXT_FILE, DIRTY_FOLDER, GATE_FILE, PLAN_FILE, SAMPLE_FOLDER, SNAPSHOT_FOLDER,
                            STATS_FOLDER, SYNC_FILE, WRITE_STATS_FILE, RunDir)
from accelsync.connections import for_spec
from accelsync.engine.tasks import CONNECTIONS_OPTION
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
    retries: int = 0  # failed partition attempts that were retried (see accelsync.engine.retry)
    value_bytes: int = 0  # values before and after the target's compression (0: no compression)
    stored_bytes: int = 0
    engine: str = "spark"  # the engine that ran the sync: local or spark

    @property
    def rows_per_second(self) -> float:
        return self.read / self.seconds if self.seconds > 0 else 0.0


def make_plan(spec: Spec, run: RunDir) -> Plan:
    plan = source_class(spec.source.type)(spec).plan(spec.speed.channels)
    run.write_json(PLAN_FILE, {"plan": plan.to_json(), "summary": plan.summary()})
    return plan


def load_plan(run: RunDir) -> Plan:
    return Plan.from_json(run.read_json(PLAN_FILE)["plan"])


def sync(spec: Spec, run: RunDir, deadline: float | None = None) -> SyncStats:
    """Plan and copy the data; raise DataError when dirty records exceed the error limit."""
    for folder in (STATS_FOLDER, SNAPSHOT_FOLDER, SAMPLE_FOLDER, DIRTY_FOLDER):
        shutil.rmtree(run.path / folder, ignore_errors=True)
    for name in (WRITE_STATS_FILE, SYNC_FILE, GATE_FILE):
        run.file(name).unlink(missing_ok=True)
    started = datetime.now(timezone.utc)
    clock = time.monotonic()
    plan = make_plan(spec, run)
    target = target_class(spec.target.type)(spec)
    context = target.prepare(run.run_id)
    context.setdefault("run_dir", str(run.path))
    run.write_json(CONTEXT_FILE, context)
    engine = choose(spec)
    options = {"spec": spec.model_dump_json(by_alias=True), CONNECTIONS_OPTION: for_spec(spec),
               "plan": plan.to_json(), "context": json.dumps(context), "run_dir": str(run.path),
               "channels": str(spec.speed.channels),
               "max_dirty": json.dumps(spec.error_limit.task_cap(plan.max_records)),
               "snapshot_columns": json.dumps(snapshot_columns(spec, target)),
               "sample": str(spec.quality.readback.sample)}
    if engine == "spark":
        from accelsync.engine import spark as spark_engine
        spark_engine.copy(spec, plan, options, run, deadline)
    else:
        from accelsync.engine import local as local_engine
        local_engine.copy(spec, plan, options, run, deadline)
    context = target.finish(context, deadline)
    run.write_json(CONTEXT_FILE, context)
    stats = _collect(run, started, time.monotonic() - clock, len(plan.partitions), engine)
    run.write_json(SYNC_FILE, asdict(stats))
    check_error_limit(spec, stats)
    return stats


def choose(spec: Spec) -> str:
    """`spark` or `local`: the spec's `engine`, or for `auto` (the default), Spark where it pays:
    a `transform` (Spark SQL), a cluster master in the deployment's settings, or a spec's own
    `spark:` section; otherwise the local engine, which runs the same tasks without a JVM.
    `ACCELSYNC_ENGINE` sets the deployment's default for `auto`."""
    wanted = spec.engine if spec.engine != "auto" else (os.environ.get("ACCELSYNC_ENGINE") or "auto")
    if wanted in ("spark", "local"):
        if wanted == "local" and spec.transform is not None:
            raise TerminalError("engine: local cannot run a `transform` (Spark SQL); use engine: spark or auto")
        return wanted
    from accelsync.engine import spark_settings
    if spec.transform is not None or spec.spark is not None or spark_settings.for_spec(spec).is_cluster:
        return "spark"
    if "PYSPARK_GATEWAY_PORT" in os.environ:  # a driver started by spark-submit: its cluster is given
        return "spark"
    return "local"


def snapshot_columns(spec: Spec, target) -> list[str] | None:
    """The columns the gate needs from every written row: the target's (reconcile) and the
    freshness column; all of them (None) when a GX suite validates the rows."""
    if spec.quality.suite:
        return None
    columns = target.gate_columns()
    if columns is None:
        return None
    if spec.quality.freshness:
        columns = [*columns, spec.quality.freshness.column]
    return list(dict.fromkeys(columns))


def check_error_limit(spec: Spec, stats: SyncStats) -> None:
    """DataX's errorLimit: fail when the dirty records exceed either limit that is set."""
    limit = spec.error_limit
    if limit.exceeded(stats.dirty, stats.read):
        share = stats.dirty / stats.read if stats.read else 0.0
        raise DataError(f"{stats.dirty} dirty records of {stats.read} read ({share:.4%}) exceed "
                        f"error_limit ({limit.describe()}); reasons: {stats.dirty_reasons}; "
                        f"see the run's dirty/ folder")


def _collect(run: RunDir, started: datetime, seconds: float, partitions: int, engine: str) -> SyncStats:
    reads = [run.read_json(f"{STATS_FOLDER}/{p.name}") for p in sorted((run.path / STATS_FOLDER).glob("read-*.json"))]
    writes = run.read_json(WRITE_STATS_FILE) if run.exists(WRITE_STATS_FILE) else []
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
                     stored_bytes=sum(w.get("stored_bytes", 0) for w in writes), engine=engine)


def load_stats(run: RunDir) -> SyncStats:
    return SyncStats(**run.read_json(SYNC_FILE))


def snapshot_files(run: RunDir) -> list[str]:
    writes: list[dict[str, Any]] = run.read_json(WRITE_STATS_FILE) if run.exists(WRITE_STATS_FILE) else []
    return sorted(w["snapshot"] for w in writes if w.get("snapshot"))
