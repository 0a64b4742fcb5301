"""A real Airflow deployment for the tests: `accelsync.dev.devstack.airflow.Airflow` started in a test
folder, on a free port, over its own PostgreSQL database and Redis broker database, with the
specs the deployment tests need (all written before it starts, as the DAG processor parses them
once at start).

What the tests read back comes from the metadata database itself (psycopg2 on PostgreSQL:
`task_instance`, `dag_run`, `deadline`), never from accelsync's own code, and runs are triggered
through Airflow's REST API as a user would.
"""

from __future__ import annotations

import os
import signal
import time
import urllib.error
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from accelsync.dev.devstack.airflow import Airflow

FINISHED = ("success", "failed")


@dataclass
class Deployment:
    service: Airflow
    database: str
    specs: Path
    webhook: list[dict] = field(default_factory=list)
    _token: str | None = None

    # -- REST API --------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.service.base_url

    def token(self) -> str:
        if self._token is None:
            self._token = self.service.token()
        return self._token

    def api(self, method: str, path: str, body: Any = None) -> Any:
        return self.service.api(method, path, body, token=self.token())

    def trigger(self, dag_id: str, run_id: str) -> dict:
        """POST /api/v2/dags/{dag_id}/dagRuns: a manual run, queued now."""
        return self.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"dag_run_id": run_id, "logical_date": None})

    def wait_for_dags(self, dag_ids: list[str], timeout: float = 180) -> None:
        """Until the DAG processor has parsed every DAG (the REST API knows it)."""
        deadline = time.monotonic() + timeout
        missing = list(dag_ids)
        while missing:
            for dag_id in list(missing):
                try:
                    self.api("GET", f"/api/v2/dags/{dag_id}")
                    missing.remove(dag_id)
                except urllib.error.HTTPError as exc:
                    if exc.code != 404:
                        raise
            if missing and time.monotonic() > deadline:
                raise AssertionError(f"DAGs not parsed after {timeout:.0f}s: {missing}; "
                                     f"{self.service.dir / 'dag-processor.log'}")
            if missing:
                time.sleep(1)

    # -- metadata database ---------------------------------------------------------------------

    def query(self, sql: str, params: tuple = ()) -> list[dict]:
        import psycopg2
        import psycopg2.extras

        pg = self.service.postgres()
        conn = psycopg2.connect(host=pg.host, port=pg.port, user="postgres", dbname=self.database)
        try:
            with conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
                cursor.execute(sql, params)
                return [dict(row) for row in cursor.fetchall()]
        finally:
            conn.close()

    def run_row(self, dag_id: str, run_id: str) -> dict | None:
        rows = self.query("SELECT state, queued_at, start_date, end_date FROM dag_run WHERE dag_id = %s AND run_id = %s",
                          (dag_id, run_id))
        return rows[0] if rows else None

    def tasks(self, dag_id: str, run_id: str) -> dict[str, dict]:
        """task_id -> the task instance's row (state, start/end, hostname, queue, pool, weight, try)."""
        rows = self.query("SELECT task_id, state, start_date, end_date, queued_dttm, hostname, queue, pool, "
                          "priority_weight, try_number, pid FROM task_instance WHERE dag_id = %s AND run_id = %s",
                          (dag_id, run_id))
        return {row["task_id"]: row for row in rows}

    def wait_finished(self, dag_id: str, run_id: str, timeout: float = 240) -> dict:
        """Until the run is success or failed and its `report` teardown has ended (or was skipped:
        a run stopped by its dagrun_timeout skips what did not start); its row."""
        deadline = time.monotonic() + timeout
        while True:
            row = self.run_row(dag_id, run_id)
            tasks = self.tasks(dag_id, run_id) if row else {}
            report = tasks.get("report") or {}
            if row and row["state"] in FINISHED and (report.get("end_date") or report.get("state") == "skipped"):
                return row
            if time.monotonic() > deadline:
                states = {task: t["state"] for task, t in tasks.items()}
                raise AssertionError(f"run {dag_id}/{run_id} not finished after {timeout:.0f}s: "
                                     f"{row and row['state']}, tasks {states}; logs in {self.service.dir}")
            time.sleep(1)

    def wait_task_state(self, dag_id: str, run_id: str, task_id: str, states: tuple[str, ...],
                        timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            task = self.tasks(dag_id, run_id).get(task_id)
            if task and task["state"] in states:
                return task
            if time.monotonic() > deadline:
                raise AssertionError(f"{dag_id}/{run_id}/{task_id} not in {states} after {timeout:.0f}s: "
                                     f"{task and task['state']}")
            time.sleep(0.5)

    # -- the processes -----------------------------------------------------------------------

    def worker_pid(self, queue: str) -> int:
        """The pid of the Celery worker (the `airflow celery worker` process) listening on `queue`."""
        supervisor = self.service.our_pid()
        for child in Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split():
            # the worker retitles itself: "[celeryd: ...] (celery worker --queues <queue> ...)"
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
            if b"worker" in cmdline and f"--queues {queue} ".encode() in cmdline:
                return int(child)
        raise AssertionError(f"no Celery worker on queue {queue} under supervisor {supervisor}")

    def kill_worker(self, queue: str) -> list[int]:
        """SIGKILL the worker of `queue` and every process under it (its pool, the task processes
        Airflow's supervisor puts in process groups of their own, a sync's channel processes), as
        an OOM kill of its container or a lost machine would; the supervisor restarts the worker.
        Returns the killed pids, worker first."""
        worker = self.worker_pid(queue)
        pids = [worker, *descendants(worker)]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return pids


def descendants(pid: int) -> list[int]:
    """Every process under `pid` (children first), from /proc."""
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            found += [child, *descendants(child)]
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def overlaps(a: dict, b: dict) -> bool:
    """Whether two task instances' [start, end) intervals overlap."""
    return a["start_date"] < b["end_date"] and b["start_date"] < a["end_date"]


def seconds(start: datetime, end: datetime) -> float:
    return (end - start).total_seconds()


# -- the specs and data of the deployment tests ---------------------------------------------------

MYSQL_DATABASE = f"accelsync_test_deploy_{os.getpid()}"
ROWS = {"users": 3000, "deadline_users": 50, "retry_users": 2000, "gate_users": 20}
SUITE = {"name": "deploy_gate", "expectations": [
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "score", "min_value": 0, "max_value": 100}},
]}


def _spec(name: str, line: str, table: str, prefix: str, priority: str = "medium", rate: int = 0,
          timeout: str = "5m", retries: int = 0, extra: str = "", channels: int = 1) -> str:
    return f"""name: {name}
business_line: {line}
priority: {priority}
timeout: {timeout}
retries: {retries}
source: {{type: mysql, connection: deploy_mysql, table: {table}, split_pk: id}}
target: {{type: redis, connection: deploy_redis, key: "{prefix}:{{id}}", value: {{type: hash, fields: [name, score]}}}}
speed: {{records_per_second: {rate}, channels: {channels}}}
{extra}"""


def spec_files(suite_path: Path) -> dict[str, str]:
    """Spec file name -> text. Pools of one slot per line (ACCELSYNC_POOL_SLOTS=1); rates that make
    a sync last a few seconds, long enough to see what runs beside what."""
    return {
        # pools: two syncs of growth, one of commerce
        "pool_growth_a.yaml": _spec("pool_growth_a", "growth", "users", "pga", rate=1000),
        "pool_growth_b.yaml": _spec("pool_growth_b", "growth", "users", "pgb", rate=1000),
        # (two channels: the local engine's worker processes, under a Celery pool process)
        "pool_commerce.yaml": _spec("pool_commerce", "commerce", "users", "pc", rate=400, channels=2),
        # priority: a full growth pool, two low syncs queued before a high one
        "prio_low_a.yaml": _spec("prio_low_a", "growth", "users", "pla", priority="low", rate=1000),
        "prio_low_b.yaml": _spec("prio_low_b", "growth", "users", "plb", priority="low", rate=3000),
        "prio_high.yaml": _spec("prio_high", "growth", "users", "ph", priority="high", rate=3000),
        # a run held past its 20 s timeout (the test locks its table)
        "deadline_users.yaml": _spec("deadline_users", "commerce", "deadline_users", "dl", timeout="20s"),
        # a sync whose worker is killed mid-task; one retry
        "retry_users.yaml": _spec("retry_users", "growth", "retry_users", "ru", retries=1, channels=2),
        # a gate that fails: a score of 400 against a 0..100 expectation
        # (its 45 s deadline passes after the run failed: no deadline alert for it)
        "gate_users.yaml": _spec("gate_users", "commerce", "gate_users", "gu", timeout="45s",
                                 extra=f"quality: {{suite: {suite_path}}}\n"),
    }


def make_tables(cursor) -> None:
    cursor.execute(f"DROP DATABASE IF EXISTS {MYSQL_DATABASE}")
    cursor.execute(f"CREATE DATABASE {MYSQL_DATABASE} DEFAULT CHARSET utf8mb4")
    for table, rows in ROWS.items():
        cursor.execute(f"CREATE TABLE {MYSQL_DATABASE}.{table} (id INT PRIMARY KEY, name VARCHAR(40), score INT)")
        cursor.execute(f"INSERT INTO {MYSQL_DATABASE}.{table} SELECT seq, CONCAT('user-', seq), seq % 100"
                       f" FROM {MYSQL_DATABASE}.seq_1_to_{rows}")
    cursor.execute(f"UPDATE {MYSQL_DATABASE}.gate_users SET score = 400 WHERE id = 7")
