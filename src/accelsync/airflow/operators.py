"""The Airflow operators of an accelsync DAG: each holds a spec path and makes one library call.

    SyncOperator -> GateOperator -> PublishOperator -> ReportOperator

The run id shared by the stages is the Airflow run id made safe as a folder name, so every task
of one DAG run (and every retry) works in the same run folder. Errors keep their retry policy:
a `TerminalError` (bad spec, bad data, failed gate) fails the task at once, without retries; a
`TransientError` (a service unavailable) propagates, so the task's retries apply.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Sequence

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from accelsync.errors import AccelsyncError, TerminalError
from accelsync.runs import AIRFLOW_FILE, FAILURE_FILE, GATE_FILE, TRIES_FILE, RunDir, safe_run_id
from accelsync.spec import load_spec

if TYPE_CHECKING:
    from airflow.sdk import Context
    from accelsync.spec import Spec


class SpecOperator(BaseOperator):
    """Base of the accelsync operators: loads the spec, runs one stage, maps the error family."""

    template_fields: Sequence[str] = ("spec_path",)
    ui_color = "#e8f1fb"
    # Whether a failure of this stage is recorded in the run folder for `report` to show.
    records_failure = True

    def __init__(self, *, spec_path: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec_path = spec_path

    def execute(self, context: Context) -> Any:
        run_id = safe_run_id(context["run_id"])
        try:
            spec = load_spec(self.spec_path)
        except TerminalError as exc:
            raise AirflowFailException(str(exc)) from exc
        run = RunDir(spec.name, run_id)
        if not run.exists(AIRFLOW_FILE):  # the Airflow run behind the folder, for links back to it
            run.write_json(AIRFLOW_FILE, {"dag_id": spec.name, "run_id": context["run_id"]})
        record_try(run, self.task_id, getattr(context.get("ti"), "try_number", None))
        if self.records_failure:
            run.file(FAILURE_FILE).unlink(missing_ok=True)
        self.log.info("accelsync %s: %s, run %s (folder %s)", self.task_id, spec.name, run_id, run.path)
        try:
            return self.run_stage(spec, run_id)
        except AccelsyncError as exc:
            if self.records_failure:
                run.write_json(FAILURE_FILE, {"task": self.task_id, "error": str(exc), "retryable": exc.retryable})
            if isinstance(exc, TerminalError):
                raise AirflowFailException(str(exc)) from exc
            raise

    def run_stage(self, spec: Spec, run_id: str) -> Any:
        raise NotImplementedError


def record_try(run: RunDir, task_id: str, try_number: int | None) -> None:
    """Note which Airflow try of `task_id` runs now (`tries.json`), so the summary can say that a
    task was retried (a lost worker, an unavailable service), not only its partitions."""
    if not try_number:
        return
    tries = run.read_json(TRIES_FILE) if run.exists(TRIES_FILE) else {}
    tries[task_id] = max(int(try_number), int(tries.get(task_id, 0)))
    run.write_json(TRIES_FILE, tries)


class SyncOperator(SpecOperator):
    """Plans and copies the data into the target (DataX job: reader -> channels -> writer)."""

    ui_color = "#cfe3f7"

    def run_stage(self, spec: Spec, run_id: str) -> dict[str, Any]:
        from accelsync import pipeline

        # The engine cancels its Spark jobs just before Airflow's execution_timeout fires, so the
        # task fails with accelsync's readable SyncTimeout (terminal: the run's budget is spent).
        deadline = None
        if self.execution_timeout:
            deadline = time.monotonic() + 0.98 * self.execution_timeout.total_seconds()
        stats = pipeline.stage_sync(spec, run_id, deadline)
        self.log.info("read %s, written %s, dirty %s, filtered %s in %.1fs (%.0f rows/s, %s partitions)",
                      stats.read, stats.written, stats.dirty, stats.filtered, stats.seconds,
                      stats.rows_per_second, stats.partitions)
        for reason, count in stats.dirty_reasons.items():
            self.log.warning("dirty: %s x %s", count, reason)
        return {"read": stats.read, "written": stats.written, "dirty": stats.dirty,
                "filtered": stats.filtered, "seconds": stats.seconds}

    def on_kill(self) -> None:
        """Stop this process's sync tasks when Airflow kills the task (e.g. execution_timeout)."""
        import sys

        from accelsync.engine import local as local_engine
        self.log.warning("stopping the tasks of this sync")
        local_engine.stop_all()
        if "pyspark" in sys.modules:  # only a sync that ran on Spark has a session to cancel
            from pyspark.sql import SparkSession
            session = SparkSession.getActiveSession()
            if session is not None:
                session.sparkContext.cancelAllJobs()


class GateOperator(SpecOperator):
    """Runs the quality gate; fails (no retry) naming each failed check, so publish never runs."""

    ui_color = "#fdf0c8"

    def run_stage(self, spec: Spec, run_id: str) -> dict[str, Any]:
        from accelsync import pipeline
        from accelsync.errors import GateFailed

        try:
            verdict = pipeline.stage_gate(spec, run_id)
        except GateFailed as exc:
            self._log_checks(exc.checks, RunDir(spec.name, run_id))
            raise
        self._log_checks(verdict["checks"], RunDir(spec.name, run_id))
        return {"passed": verdict["passed"], "data_docs": verdict.get("data_docs"),
                "checks": [{k: c[k] for k in ("name", "passed", "detail")} for c in verdict["checks"]]}

    def _log_checks(self, checks: list[dict[str, Any]], run: RunDir) -> None:
        passed = sum(1 for c in checks if c["passed"])
        self.log.info("gate: %d of %d checks passed", passed, len(checks))
        for item in checks:
            if item["passed"]:
                self.log.info("  [ok]   %s: %s", item["name"], item["detail"])
            else:
                self.log.error("  [FAIL] %s: %s", item["name"], item["detail"])
        if run.exists(GATE_FILE):
            verdict = run.read_json(GATE_FILE)
            if verdict.get("suite_evaluated_by") == "arrow":
                self.log.info("suite evaluated on the run's Arrow snapshot; its Data Docs page is drawn by the"
                              " report task" if verdict["passed"] else "suite evaluated on the run's Arrow snapshot")
            if verdict.get("data_docs"):
                self.log.info("Data Docs: %s", verdict["data_docs"])


class PublishOperator(SpecOperator):
    """Makes the run live and advances the source position; refuses without a passing gate."""

    ui_color = "#d4f0d4"

    def run_stage(self, spec: Spec, run_id: str) -> dict[str, Any]:
        from accelsync import pipeline

        record = pipeline.stage_publish(spec, run_id)
        self.log.info("published at %s: target %s, source %s", record.get("published"),
                      record.get("target"), record.get("source"))
        return record


class ReportOperator(SpecOperator):
    """Logs the DataX-style summary of the run, whatever happened upstream; returns it."""

    ui_color = "#eeeeee"
    records_failure = False

    def run_stage(self, spec: Spec, run_id: str) -> dict[str, Any]:
        from accelsync.report.summary import render

        from accelsync import pipeline

        summary = run_summary(spec, run_id)
        if summary["status"] != "published":
            pipeline.discard(spec, run_id)  # nothing staged outlives a failed run
        text = render(summary)
        if summary["status"] == "published":
            self.log.info("%s", text)
        else:
            self.log.error("%s", text)
        return summary


def run_summary(spec: Spec, run_id: str) -> dict[str, Any]:
    """The run's summary rebuilt from its folder, with the failed stage's error as the reason."""
    from accelsync import pipeline

    run = RunDir(spec.name, run_id)
    reason = None
    if run.exists(FAILURE_FILE):
        failure = run.read_json(FAILURE_FILE)
        error = failure["error"]
        reason = error if error.startswith(failure["task"]) else f"{failure['task']}: {error}"
    return pipeline.report(spec, run_id, reason)


class SpecErrorOperator(BaseOperator):
    """The one task of a stand-in DAG for a broken spec: fails with the spec's error."""

    template_fields: Sequence[str] = ()
    ui_color = "#f8d0d0"

    def __init__(self, *, spec_path: str, error: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.spec_path = spec_path
        self.error = error

    def execute(self, context: Context) -> None:
        for line in self.error.splitlines():
            self.log.error("%s", line)
        raise AirflowFailException(f"broken spec {self.spec_path}:\n{self.error}")
