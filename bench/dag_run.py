"""A sync as a real DAG run: Airflow's scheduler, DAG processor and API server.

    .venv/bin/python bench/dag_run.py [--rows 10000] [--runs 2] [--executor local|celery|dagtest]

`local` (default): a throwaway Airflow (its own AIRFLOW_HOME, SQLite metadata, LocalExecutor),
runs triggered with the CLI. `celery`: devstack's Airflow deployment (`accelsync devstack up
airflow`: PostgreSQL, Redis broker, Celery workers per business line) started in a scratch folder
on a free port, runs triggered through the REST API. `dagtest`: the same DAG run in this process
with `DAG.test()` (`accelsync.dev.airflow_env.run_dag`, what `accelsync demo` and most tests use).

The spec is the demo's users_to_redis over a `rows`-row MySQL table; it is triggered `runs` times
one after the other, and the metadata database says how long each DAG run took from queued to the
end of its `report` task, and where that time went: per task, waiting (queued, or the previous
task's end, to start) and running. Needs the devstack (MySQL, Redis; `celery` also PostgreSQL and
the `celery` extra). A benchmark, not a test: compare figures of one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))

from accelsync.dev import airflow_env, devstack  # noqa: E402
from ports import free_port  # noqa: E402  (tests/ports.py, added to the path below)

DATABASE = "accelsync_bench"
SPEC = """\
name: bench_dag_run
owner: bench
business_line: bench
priority: high
timeout: 20m
source: {{type: mysql, connection: bench_mysql, table: users_dag, columns: [id, name, city, score, updated_at],
          split_pk: id}}
target: {{type: redis, connection: bench_redis, key: "dagrun:{{id}}", value: {{type: hash, fields: [name, city, score, updated_at]}}}}
speed: {{channels: 2}}
quality: {{suite: {suite}, reconcile: {{tolerance: 0}}, readback: {{sample: 200}}}}
"""


def make_table(rows: int) -> None:
    import pymysql

    db = pymysql.connect(host="127.0.0.1", user="root", password="", charset="utf8mb4", autocommit=True)
    cursor = db.cursor()
    cursor.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    cursor.execute(f"USE {DATABASE}")
    cursor.execute("DROP TABLE IF EXISTS users_dag")
    cursor.execute("CREATE TABLE users_dag (id BIGINT PRIMARY KEY, name VARCHAR(32) NOT NULL, city VARCHAR(16),"
                   " score DECIMAL(6,2), updated_at DATETIME NOT NULL)")
    cursor.execute(f"INSERT INTO users_dag SELECT seq, CONCAT('user-', seq), ELT(1 + seq % 6, 'Berlin', 'Paris',"
                   f" 'Lisbon', 'Tokyo', 'São Paulo', 'Nairobi'), (seq % 10000) / 100,"
                   f" TIMESTAMP('2024-01-01') + INTERVAL seq SECOND FROM seq_1_to_{rows}")
    db.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--executor", choices=["local", "celery", "dagtest"], default="local")
    args = parser.parse_args()
    devstack.up(["mysql", "redis"])
    make_table(args.rows)
    if args.executor != "local":
        return (celery if args.executor == "celery" else dag_test)(args)
    with tempfile.TemporaryDirectory(prefix="accelsync_dagrun_") as scratch:
        scratch = Path(scratch)
        specs = scratch / "specs"
        specs.mkdir()
        (specs / "bench_dag_run.yaml").write_text(SPEC.format(suite=REPO / "expectations" / "demo_users.json"))
        port = free_port()
        env = {**os.environ, **airflow_env.airflow_environ(scratch / "airflow"),
               "ACCELSYNC_HOME": str(scratch / "home"), "ACCELSYNC_SPECS": str(specs),
               "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
               "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
               "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
               "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
               "AIRFLOW_CONN_BENCH_MYSQL": f"mysql://root@127.0.0.1:3306/{DATABASE}",
               "AIRFLOW_CONN_BENCH_REDIS": "redis://127.0.0.1:6379/4",
               "PYSPARK_PYTHON": sys.executable}
        airflow = [sys.executable, "-m", "airflow"]
        subprocess.run([*airflow, "db", "migrate"], env=env, check=True, capture_output=True)
        subprocess.run([sys.executable, "-m", "accelsync.cli", "pools", str(specs)], env=env, check=True,
                       capture_output=True)
        logs = scratch / "logs"
        logs.mkdir()
        processes = [subprocess.Popen([*airflow, *command], env=env, stdout=open(logs / f"{command[0]}.log", "w"),
                                      stderr=subprocess.STDOUT, start_new_session=True)
                     for command in (["api-server", "--port", str(port)], ["scheduler"], ["dag-processor"])]
        try:
            database = scratch / "airflow" / "airflow.db"
            _wait(lambda: _healthy(port), 180, "the API server")
            _wait(lambda: _query(database, "SELECT 1 FROM serialized_dag WHERE dag_id = 'bench_dag_run'"), 180,
                  "the DAG processor to parse the DAG")
            subprocess.run([*airflow, "dags", "unpause", "bench_dag_run"], env=env, check=True, capture_output=True)
            results = []
            for number in range(args.runs):
                run_id = f"bench__{number}_{int(time.time())}"
                subprocess.run([*airflow, "dags", "trigger", "bench_dag_run", "--run-id", run_id], env=env,
                               check=True, capture_output=True)
                _wait(lambda: _query(database, "SELECT 1 FROM dag_run WHERE run_id = ? AND state IN "
                                               "('success', 'failed')", (run_id,)), 600, f"DAG run {run_id}")
                _wait(lambda: _query(database, "SELECT 1 FROM task_instance WHERE run_id = ? AND task_id = 'report'"
                                               " AND end_date IS NOT NULL", (run_id,)), 120, "the report task")
                results.append(_timings(database, run_id))
                print(json.dumps(results[-1]), flush=True)
        finally:
            for process in processes:
                os.killpg(process.pid, 15)
            for process in processes:
                process.wait(timeout=60)
    print()
    for result in results:
        tasks = ", ".join(f"{t['task']} waited {t['waited']:.1f}s ran {t['ran']:.1f}s" for t in result["tasks"])
        print(f"{result['run_id']}: {result['state']}, queued -> end of report {result['seconds']:.1f}s ({tasks})")
    return 0


def _env(scratch: Path) -> tuple[Path, dict[str, str]]:
    specs = scratch / "specs"
    specs.mkdir()
    (specs / "bench_dag_run.yaml").write_text(SPEC.format(suite=REPO / "expectations" / "demo_users.json"))
    return specs, {"ACCELSYNC_HOME": str(scratch / "home"), "ACCELSYNC_SPECS": str(specs),
                   "AIRFLOW_CONN_BENCH_MYSQL": f"mysql://root@127.0.0.1:3306/{DATABASE}",
                   "AIRFLOW_CONN_BENCH_REDIS": "redis://127.0.0.1:6379/4", "PYSPARK_PYTHON": sys.executable}


def celery(args) -> int:
    """The runs under devstack's CeleryExecutor deployment, triggered through the REST API."""
    import psycopg2

    from accelsync.dev.devstack.airflow import Airflow

    scratch = Path(tempfile.mkdtemp(prefix="accelsync_dagrun_"))
    if True:
        _, env = _env(scratch)
        database = f"airflow_bench_{os.getpid()}"
        env.update({"ACCELSYNC_AIRFLOW_DATABASE": database, "ACCELSYNC_AIRFLOW_BROKER_DB": "9",
                    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False"})
        os.environ.update(env)
        [postgres] = devstack.services(["postgres"])
        devstack.up(["postgres"])
        service = Airflow(port=free_port(), home=scratch / "devstack")
        clock = time.monotonic()
        service.up()
        print(f"deployment up in {time.monotonic() - clock:.0f}s: {service.base_url}", flush=True)
        results = []
        try:
            token = service.token()
            _wait(lambda: _api_ok(service, token, "/api/v2/dags/bench_dag_run"), 180, "the DAG to be parsed")

            def query(sql, params=(), many=False):
                conn = psycopg2.connect(host=postgres.host, port=postgres.port, user="postgres", dbname=database)
                try:
                    with conn.cursor() as cursor:
                        cursor.execute(sql.replace("?", "%s"), params)
                        return cursor.fetchall() if many else cursor.fetchone()
                finally:
                    conn.close()

            for number in range(args.runs):
                run_id = f"bench__{number}_{int(time.time())}"
                service.api("POST", "/api/v2/dags/bench_dag_run/dagRuns", {"dag_run_id": run_id, "logical_date": None},
                            token=token)
                _wait(lambda: query("SELECT 1 FROM task_instance WHERE run_id = ? AND task_id = 'report'"
                                    " AND end_date IS NOT NULL", (run_id,)), 600, f"DAG run {run_id}")
                _wait(lambda: query("SELECT 1 FROM dag_run WHERE run_id = ? AND state IN ('success', 'failed')",
                                    (run_id,)), 120, "the run's state")
                results.append(_timings_from(query, run_id))
                print(json.dumps(results[-1]), flush=True)
        finally:
            print(service.down())
            postgres.drop_database(database)
    if all(r["state"] == "success" for r in results):
        shutil.rmtree(scratch, ignore_errors=True)
    else:
        print(f"a run failed: logs kept in {scratch}/devstack/airflow/")
    _print(results, "CeleryExecutor (PostgreSQL, Redis broker)")
    return 0


def dag_test(args) -> int:
    """The runs with DAG.test() in this process (SQLite metadata), as `accelsync demo` does."""
    with tempfile.TemporaryDirectory(prefix="accelsync_dagtest_") as scratch:
        scratch = Path(scratch)
        specs, env = _env(scratch)
        os.environ.update(env)
        airflow_env.configure(scratch / "airflow")
        results = []
        for _ in range(args.runs):
            clock = time.monotonic()
            result = airflow_env.run_dag(specs / "bench_dag_run.yaml")
            seconds = time.monotonic() - clock
            # dag.test() itself (the run, queued to the end of report), and with the DAG folder's parse
            results.append({"run_id": result.run_id, "state": result.state, "seconds": round(result.seconds, 2),
                            "with_parse": round(seconds, 2), "tasks": []})
            print(json.dumps(results[-1]), flush=True)
    _print(results, "DAG.test() in one process")
    return 0


def _api_ok(service, token: str, path: str) -> bool:
    try:
        service.api("GET", path, token=token)
        return True
    except OSError:
        return False


def _print(results: list[dict], label: str) -> None:
    print(f"\n{label}")
    for result in results:
        tasks = ", ".join(f"{t['task']} waited {t['waited']:.1f}s ran {t['ran']:.1f}s" for t in result["tasks"])
        print(f"{result['run_id']}: {result['state']}, queued -> end of report {result['seconds']:.1f}s"
              + (f" ({tasks})" if tasks else ""))


def _timings_from(query, run_id: str) -> dict:
    """Like `_timings`, over any metadata database (`query(sql, params, many)`, `?` placeholders)."""
    queued, state = query("SELECT queued_at, state FROM dag_run WHERE run_id = ?", (run_id,))
    rows = query("SELECT task_id, queued_dttm, start_date, end_date FROM task_instance WHERE run_id = ?"
                 " ORDER BY start_date", (run_id,), many=True)
    tasks, previous_end = [], queued
    for task_id, _, start, end in rows:
        tasks.append({"task": task_id, "waited": (start - previous_end).total_seconds(),
                      "ran": (end - start).total_seconds()})
        previous_end = end
    report_end = max(r[3] for r in rows)
    return {"run_id": run_id, "state": state, "seconds": round((report_end - queued).total_seconds(), 2),
            "tasks": tasks}


def _timings(database: Path, run_id: str) -> dict:
    queued_at = _query(database, "SELECT queued_at, state FROM dag_run WHERE run_id = ?", (run_id,))
    rows = _query(database, "SELECT task_id, queued_dttm, start_date, end_date FROM task_instance WHERE run_id = ?"
                            " ORDER BY start_date", (run_id,), many=True)
    queued, state = _time(queued_at[0]), queued_at[1]
    tasks, previous_end = [], queued
    for task_id, task_queued, start, end in rows:
        start, end = _time(start), _time(end)
        tasks.append({"task": task_id, "waited": (start - previous_end).total_seconds(),
                      "ran": (end - start).total_seconds()})
        previous_end = end
    report_end = max(_time(r[3]) for r in rows)
    return {"run_id": run_id, "state": state, "seconds": round((report_end - queued).total_seconds(), 2),
            "tasks": tasks}


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace(" ", "T"))


def _query(database: Path, sql: str, params: tuple = (), many: bool = False):
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as connection:
            cursor = connection.execute(sql, params)
            return cursor.fetchall() if many else cursor.fetchone()
    except sqlite3.Error:
        return None


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def _wait(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
