"""The stages of one run, callable one by one (Airflow tasks) or all at once (`accelsync run`).

    sync -> gate -> publish, then the summary.

Each stage reads what the previous one left in the run folder, so stages may run in different
processes. Nothing becomes visible to readers, and no source position advances, before `gate`
passed: `publish` refuses to run without a passing gate verdict.

Publish has two steps, target then source, that no store can commit together. So `publish` first
records the run it is publishing in the sync's state (`publishing`), and clears it when both
steps are done. A run killed between them is rolled forward: the next run's `sync` finishes that
publish (both steps are idempotent) before it plans, so the source position catches up with what
is live, and an `append` target (Druid) never gets the same rows twice.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any, Iterator

from accelsync import lock
from accelsync.engine.faults import pause_point
from accelsync.engine.sync import SyncStats, load_plan, load_stats
from accelsync.errors import AccelsyncError, GateFailed, SyncTimeout, TerminalError
from accelsync.registry import source_class, target_class
from accelsync.runs import (AIRFLOW_FILE, CONTEXT_FILE, GATE_FILE, PLAN_FILE, PUBLISHED_FILE, RUN_FILE, RunDir,
                            SUITE_RESULT_FILE, SUMMARY_FILE, SYNC_FILE, TRIES_FILE, data_docs_root, new_run_id)
from accelsync.spec import FAILED_UPSERT_NOTE, Spec
from accelsync.state import load_state, save_state


log = logging.getLogger(__name__)
# State key: the run whose publish has started and not finished.
PUBLISHING = "publishing"
# Who runs a stage, as the sync's lock records it.
CLI, AIRFLOW = "accelsync run", "airflow"


def stage_sync(spec: Spec, run_id: str, deadline: float | None = None, via: str = AIRFLOW) -> SyncStats:
    """Plan and write the data where readers do not yet rely on it being final."""
    from accelsync.engine import sync as engine

    with _locked(spec, run_id, via):
        run = RunDir(spec.name, run_id)
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        run.write_json(RUN_FILE, {"name": spec.name, "run_id": run_id, "started": started,
                                    "finished_publish_of": finish_interrupted_publish(spec, run_id)})
        try:
            return engine.sync(spec, run, deadline)
        except BaseException:
            # Nothing staged outlives a failed sync (a swap version, a Druid staging datasource);
            # one a killed run left is removed by the next run's `prepare`.
            discard(spec, run_id)
            raise


@contextmanager
def _locked(spec: Spec, run_id: str, via: str, release_after: bool = False) -> Iterator[None]:
    """Hold the sync's lock (accelsync.lock) for this stage; a failed stage gives it back, and so
    does the last stage of a run."""
    lock.acquire(spec.name, run_id, spec.timeout, via)
    try:
        yield
    except BaseException:
        lock.release(spec.name, run_id)
        raise
    if release_after:
        lock.release(spec.name, run_id)


def finish_interrupted_publish(spec: Spec, current_run_id: str) -> str | None:
    """Complete the publish of an earlier run that was killed half-way; return its run id."""
    pending = load_state(spec.name).get(PUBLISHING)
    if not pending or pending == current_run_id:
        return None
    if not RunDir(spec.name, pending).exists(GATE_FILE):
        save_state(spec.name, {PUBLISHING: None})  # its folder is gone: nothing left to finish
        log.warning("%s: run %s was publishing, but its run folder is gone", spec.name, pending)
        return None
    log.warning("%s: finishing the publish of run %s, which was interrupted", spec.name, pending)
    _publish(spec, pending)  # under the current run's lock
    report(spec, pending)  # its summary and run-history row now say published
    return pending


def stage_gate(spec: Spec, run_id: str, via: str = AIRFLOW) -> dict[str, Any]:
    """Run the quality gate; raise GateFailed (naming each failed check) when it does not pass."""
    with _locked(spec, run_id, via):
        return _gate(spec, run_id)


def _gate(spec: Spec, run_id: str) -> dict[str, Any]:
    from accelsync.quality.gate import run_gate

    run = RunDir(spec.name, run_id)
    clock = time.monotonic()
    stats = load_stats(run)
    started = datetime.fromisoformat(stats.started)
    elapsed = (datetime.now(timezone.utc) - started).total_seconds()
    verdict = run_gate(spec, run, stats, elapsed)
    verdict["seconds"] = round(time.monotonic() - clock, 3)
    run.write_json(GATE_FILE, verdict)
    if not verdict["passed"]:
        verdict = render_data_docs(spec, run_id)  # before failing: the alert links the page
        context = run.read_json(CONTEXT_FILE) if run.exists(CONTEXT_FILE) else {}
        target_class(spec.target.type)(spec).discard(context)  # nothing staged outlives a failed gate
        raise GateFailed(verdict["checks"])
    return verdict


def render_data_docs(spec: Spec, run_id: str) -> dict[str, Any]:
    """Draw the Data Docs page of a suite the gate evaluated on Arrow (GX renders it; importing GX
    costs seconds, so a passing run publishes first and this runs after). Once per run; a failure
    here is logged and changes nothing about the run. Returns the gate verdict."""
    run = RunDir(spec.name, run_id)
    verdict = run.read_json(GATE_FILE)
    if verdict.get("data_docs") or not run.exists(SUITE_RESULT_FILE) or not spec.quality.suite:
        return verdict
    from accelsync.quality.expectations import render_results

    clock = time.monotonic()
    raw = run.read_json(SUITE_RESULT_FILE)
    try:
        page = render_results(raw, run_name=f"{spec.name}/{run_id}", docs_root=str(data_docs_root()))
    except Exception as exc:  # noqa: BLE001 - the verdict stands without its page
        log.warning("%s: could not draw the Data Docs page of run %s (%s)", spec.name, run_id, exc)
        return verdict
    verdict.update(data_docs=page, data_docs_seconds=round(time.monotonic() - clock, 3))
    run.write_json(GATE_FILE, verdict)
    return verdict


def discard(spec: Spec, run_id: str) -> None:
    """Throw away what a failed run staged where readers cannot see it (a Druid staging
    datasource); never for a run that started publishing (the next run finishes that publish)."""
    run = RunDir(spec.name, run_id)
    if run.exists(PUBLISHED_FILE) or not run.exists(CONTEXT_FILE) or \
            load_state(spec.name).get(PUBLISHING) == run_id:
        return
    try:
        target_class(spec.target.type)(spec).discard(run.read_json(CONTEXT_FILE))
    except Exception as exc:  # the run's own failure matters more; the next run cleans up
        log.warning("%s: could not discard what run %s staged (%s); the next run will", spec.name, run_id, exc)


def stage_publish(spec: Spec, run_id: str, via: str = AIRFLOW) -> dict[str, Any]:
    """Make the run live and advance the source; only after a passing gate. Idempotent."""
    with _locked(spec, run_id, via, release_after=True):
        return _publish(spec, run_id)


def _publish(spec: Spec, run_id: str) -> dict[str, Any]:
    run = RunDir(spec.name, run_id)
    if run.exists(PUBLISHED_FILE):
        return run.read_json(PUBLISHED_FILE)
    if not run.exists(GATE_FILE) or not run.read_json(GATE_FILE)["passed"]:
        raise TerminalError(f"publish refused: run {run_id} of {spec.name} has no passing gate")
    context = run.read_json(CONTEXT_FILE) if run.exists(CONTEXT_FILE) else {}
    clock = time.monotonic()
    save_state(spec.name, {PUBLISHING: run_id})
    target = target_class(spec.target.type)(spec).publish(context)
    pause_point("publish")
    source = source_class(spec.source.type)(spec).publish(load_plan(run))
    record = {"published": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "target": target, "source": source, "seconds": round(time.monotonic() - clock, 3)}
    run.write_json(PUBLISHED_FILE, record)
    save_state(spec.name, {PUBLISHING: None})
    return record


def run(spec: Spec, run_id: str | None = None) -> dict[str, Any]:
    """All stages in one process; returns the summary (also saved as summary.json)."""
    run_id = run_id or new_run_id()
    clock = time.monotonic()
    deadline = clock + spec.timeout.total_seconds()
    status, reason, gate = "failed", None, {"passed": False, "checks": []}
    stats: SyncStats | None = None
    try:
        stats = stage_sync(spec, run_id, deadline, via=CLI)
        pause_point("synced")
        if time.monotonic() > deadline:
            raise SyncTimeout("timeout: the sync finished after the spec's timeout")
        try:
            gate = stage_gate(spec, run_id, via=CLI)
        except GateFailed as exc:
            gate = RunDir(spec.name, run_id).read_json(GATE_FILE)
            raise exc
        stage_publish(spec, run_id, via=CLI)
        status = "published"
        gate = render_data_docs(spec, run_id)
    except AccelsyncError as exc:
        reason = str(exc)
        if stats is not None and not isinstance(exc, GateFailed):  # a failed sync or gate discarded already
            discard(spec, run_id)
    finally:
        lock.release(spec.name, run_id)
    return summarize(spec, run_id, status, reason, stats, gate, time.monotonic() - clock)


def summarize(spec: Spec, run_id: str, status: str, reason: str | None, stats: SyncStats | None,
              gate: dict[str, Any], seconds: float) -> dict[str, Any]:
    run = RunDir(spec.name, run_id)
    summary = {
        "name": spec.name, "run_id": run_id, "status": status,
        "source": spec.source.type, "target": spec.target.type,
        "started": stats.started if stats else None,
        "ended": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "read": stats.read if stats else 0, "written": stats.written if stats else 0,
        "dirty": stats.dirty if stats else 0, "filtered": stats.filtered if stats else 0,
        "bytes": stats.bytes if stats else 0,
        "seconds": round(seconds, 3),
        "sync_seconds": stats.seconds if stats else None,
        "stage_seconds": _stage_seconds(run, stats),
        "engine": stats.engine if stats else None,
        # The sync stage's rate (the copy), and the whole run's (start to summary) beside it.
        "rows_per_second": round(stats.read / stats.seconds, 1) if stats and stats.seconds else 0.0,
        "end_to_end_rows_per_second": round(stats.read / seconds, 1) if stats and seconds > 0 else 0.0,
        "bytes_per_second": round(stats.bytes / stats.seconds, 1) if stats and stats.seconds else 0.0,
        "dirty_reasons": stats.dirty_reasons if stats else {},
        "retries": stats.retries if stats else 0,
        # Airflow tasks that ran more than once (try number per task), e.g. after a lost worker.
        "retried_tasks": {task: tries for task, tries in
                          (run.read_json(TRIES_FILE) if run.exists(TRIES_FILE) else {}).items() if tries > 1},
        "compression": _compression(spec, stats),
        "speed_limit": spec.speed.records_per_second,
        "gate": {"passed": bool(gate.get("passed")),
                 "checks": [{k: c[k] for k in ("name", "passed", "detail")} for c in gate.get("checks", [])]},
        "data_docs": gate.get("data_docs"),
        "plan": run.read_json(PLAN_FILE)["summary"]["description"] if run.exists(PLAN_FILE) else None,
        "finished_publish_of": (run.read_json(RUN_FILE).get("finished_publish_of")
                                if run.exists(RUN_FILE) else None),
        "note": (FAILED_UPSERT_NOTE if status == "failed" and spec.visible_before_gate and stats and stats.written
                 else None),
        "run_dir": str(run.path),
        "airflow_run_id": run.read_json(AIRFLOW_FILE)["run_id"] if run.exists(AIRFLOW_FILE) else None,
        "reason": reason,
    }
    run.write_json(SUMMARY_FILE, summary)
    from accelsync.report import history
    history.record(summary)
    return summary


def _stage_seconds(run: RunDir, stats: SyncStats | None) -> dict[str, float | None]:
    """How long each stage took (None: it did not run)."""
    def seconds(name: str) -> float | None:
        return run.read_json(name).get("seconds") if run.exists(name) else None
    docs = run.read_json(GATE_FILE).get("data_docs_seconds") if run.exists(GATE_FILE) else None
    return {"sync": stats.seconds if stats else None, "gate": seconds(GATE_FILE),
            "publish": seconds(PUBLISHED_FILE), "data docs": docs}


def _compression(spec: Spec, stats: SyncStats | None) -> dict[str, Any] | None:
    codec = getattr(spec.target, "compression", "none")
    if codec == "none" or stats is None:
        return None
    return {"codec": codec, "bytes_before": stats.value_bytes, "bytes_after": stats.stored_bytes}


def report(spec: Spec, run_id: str, reason: str | None = None) -> dict[str, Any]:
    """Rebuild the summary of a run from its folder (for the Airflow `report` task, which runs
    whatever happened upstream: the run is over, so its lock is given back)."""
    lock.release(spec.name, run_id)
    run = RunDir(spec.name, run_id)
    stats = load_stats(run) if run.exists(SYNC_FILE) else None
    gate = render_data_docs(spec, run_id) if run.exists(GATE_FILE) else {"passed": False, "checks": []}
    status = "published" if run.exists(PUBLISHED_FILE) else "failed"
    if status == "failed" and reason is None:
        failed = [c for c in gate.get("checks", []) if not c["passed"]]
        reason = ("gate failed: " + "; ".join(f"{c['name']}: {c['detail']}" for c in failed) if failed
                  else "the run did not reach publish; see the failed task's log")
    seconds = 0.0
    if run.exists(RUN_FILE):
        started = datetime.fromisoformat(run.read_json(RUN_FILE)["started"])
        seconds = (datetime.now(timezone.utc) - started).total_seconds()
    return summarize(spec, run_id, status, reason if status == "failed" else None, stats, gate, seconds)
