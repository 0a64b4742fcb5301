"""The Overlord's part: accept tasks, run each in a thread, report status and reports as Druid does.

A task is RUNNING from submission until it publishes (SUCCESS) or fails (FAILED with Druid's
errorMsg, cut to 100 characters plus "..." as Druid's TaskStatus does; the full message is in the
task report). A shutdown request fails a running task at once with "Shutdown request from user"
and it never publishes. Emulator-only test hooks, read from the task's `context`:
`emulatorDelaySeconds` (wait that long before reading the input, so timeouts can be tested) and
`emulatorFailWith` (fail with that errorMsg).
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from datetime import datetime, timezone
from typing import Any

from accelsync.devstack.druid_emulator import ingest
from accelsync.devstack.druid_emulator.spec import IngestionSpec, SpecError, parse_task
from accelsync.devstack.druid_emulator.store import Store

log = logging.getLogger("druid_emulator")
MAX_ERROR_MSG_LENGTH = 100
SHUTDOWN_MESSAGE = "Shutdown request from user"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def truncate(message: str | None) -> str | None:
    if message is not None and len(message) > MAX_ERROR_MSG_LENGTH:
        return message[:MAX_ERROR_MSG_LENGTH] + "..."
    return message


class Task:
    """One submitted task, its state, counters and parse errors."""

    def __init__(self, task_id: str, task_type: str, spec: IngestionSpec, payload: dict[str, Any]):
        self.id = task_id
        self.type = task_type
        self.spec = spec
        self.payload = dict(payload, id=task_id)
        self.created = _now()
        self.state = "RUNNING"
        self.runner_state = "PENDING"
        self.ingestion_state = "NOT_STARTED"
        self.error: str | None = None
        self.started = time.monotonic()
        self.duration = -1
        self.stats = ingest.RowStats()
        self.errors = ingest.ParseErrors(spec.max_parse_exceptions, spec.max_saved_parse_exceptions, self.stats)
        self.shutdown = threading.Event()
        self.lock = threading.Lock()

    def finish(self, state: str, error: str | None = None) -> None:
        if self.state != "RUNNING":
            return
        self.state, self.error = state, error
        self.runner_state = "NONE"
        self.duration = int((time.monotonic() - self.started) * 1000)

    def status(self) -> dict[str, Any]:
        """TaskStatusPlus as `GET /druid/indexer/v1/task/{id}/status` shows it."""
        running = self.state == "RUNNING"
        return {"id": self.id, "groupId": self.id, "type": self.type, "createdTime": self.created,
                "queueInsertionTime": "1970-01-01T00:00:00.000Z", "statusCode": self.state,
                "status": self.state, "runnerStatusCode": self.runner_state,
                "duration": -1 if running else self.duration,
                "location": {"host": "localhost" if running else None, "port": 8100 if running else -1,
                             "tlsPort": -1},
                "dataSource": self.spec.datasource, "errorMsg": truncate(self.error)}

    def report(self) -> dict[str, Any]:
        """The ingestionStatsAndErrors report (`GET .../task/{id}/reports`)."""
        return {"ingestionStatsAndErrors": {
            "type": "ingestionStatsAndErrors", "taskId": self.id,
            "payload": {"ingestionState": self.ingestion_state,
                        "unparseableEvents": {"buildSegments": list(self.errors.saved)} if self.errors.saved else {},
                        "rowStats": {"buildSegments": ingest.stats_dict(self.stats)},
                        "errorMsg": self.error, "segmentAvailabilityConfirmed": False,
                        "segmentAvailabilityWaitTimeMs": 0, "recordsProcessed": None}}}


class Overlord:
    """Holds every task; runs each one on its own thread against the store."""

    def __init__(self, store: Store):
        self.store = store
        self.tasks: dict[str, Task] = {}
        self.lock = threading.Lock()

    def submit(self, payload: Any) -> str:
        """Accept a task (SpecError for what Druid refuses with HTTP 400) and start it."""
        task_id, task_type, spec = parse_task(payload)
        with self.lock:
            if task_id in self.tasks:
                raise SpecError(f"Task[{task_id}] already exists!")
            task = self.tasks[task_id] = Task(task_id, task_type, spec, payload)
        threading.Thread(target=self._run, args=(task,), name=f"task-{task_id}", daemon=True).start()
        log.info("task %s submitted for datasource %s", task_id, spec.datasource)
        return task_id

    def get(self, task_id: str) -> Task | None:
        with self.lock:
            return self.tasks.get(task_id)

    def all(self) -> list[Task]:
        with self.lock:
            return list(self.tasks.values())

    def shutdown(self, task_id: str) -> None:
        task = self.get(task_id)
        if task is None:
            return
        task.shutdown.set()
        with task.lock:  # never while the task is publishing: it either published or never will
            if task.state == "RUNNING":
                task.finish("FAILED", SHUTDOWN_MESSAGE)
                log.info("task %s shut down on request", task_id)

    def _run(self, task: Task) -> None:
        task.runner_state = "RUNNING"
        task.ingestion_state = "BUILD_SEGMENTS"
        try:
            self._wait(task, float(task.spec.context.get("emulatorDelaySeconds") or 0))
            if task.spec.context.get("emulatorFailWith"):
                raise ingest.IngestionFailed(str(task.spec.context["emulatorFailWith"]))
            segments = ingest.run(task.spec, task.stats, task.errors, task.shutdown.is_set)
            with task.lock:
                if task.shutdown.is_set():
                    raise ingest.Cancelled()
                self.store.publish(task.spec.datasource, segments.table, segments.column_types,
                                   segments.chunks, segments.replace)
                task.ingestion_state = "COMPLETED"
                task.finish("SUCCESS")
            log.info("task %s SUCCESS: %s rows in %s segments", task.id, segments.table.num_rows,
                     len(segments.chunks))
        except ingest.Cancelled:
            with task.lock:
                task.finish("FAILED", SHUTDOWN_MESSAGE)
        except ingest.IngestionFailed as exc:
            with task.lock:
                task.finish("FAILED", str(exc))
            log.info("task %s FAILED: %s", task.id, exc)
        except Exception as exc:  # a bug of the emulator: fail the task, say so in its errorMsg
            log.error("task %s crashed:\n%s", task.id, traceback.format_exc())
            with task.lock:
                task.finish("FAILED", f"java.lang.RuntimeException: emulator error: {type(exc).__name__}: {exc}")

    @staticmethod
    def _wait(task: Task, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if task.shutdown.is_set():
                raise ingest.Cancelled()
            time.sleep(0.05)
