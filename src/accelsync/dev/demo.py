"""`accelsync demo`: the local services, deterministic demo data, every demo DAG run through
Airflow, and one DataX job file run unchanged.

    devstack up (MariaDB, Redis, Kafka, HBase, Druid)
    -> demo data: database `accelsync` (`users`, `orders`), Kafka topic `demo_events`, access logs
       in .accelsync/demo/logs/, the HBase table of the DataX job
    -> each spec in dags/syncs run as a DAG run of the project-local Airflow (DAG.test):
       MySQL -> Redis (users, orders), Kafka -> HBase (events), log files -> Druid (access logs),
       each gated by its GX suite
    -> examples/datax/users_to_hbase.json (a DataX mysqlreader -> hbase11xwriter job) run as it is
    -> each run's DataX-style summary, one state line per sync, a check of every target, and
       where to look (report pages, Data Docs, a redis-cli / HBase / Druid SQL line).

Exit status 0 only when every run succeeded and every target holds what it should.
The data is the same for the same `rows`, and reloading it drops and recreates the tables.
"""

from __future__ import annotations

from accelsync.runs import SUMMARY_FILE

import logging
import os
import sys
import time
from contextlib import ExitStack, contextmanager
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator, TextIO

DEMO_SERVICES = ["mysql", "redis", "kafka", "hbase", "druid"]
CITIES = ["Berlin", "Paris", "Lisbon", "Tokyo", "São Paulo", "Nairobi"]
FIRST_NAMES = ["Zoë", "José", "Søren", "Aiko", "Ngozi", "François", "Łukasz", "Mëlanie", "Jürgen",
               "Siobhán", "Ahmet", "Chloé", "李娜", "Дмитрий", "Ολυμπία", "Renée"]
LAST_NAMES = ["Müller", "Dubois", "Silva", "Tanaka", "Okafor", "García", "Nowak", "Ødegaard",
              "Kowalczyk", "Brontë", "Yılmaz", "王", "Иванова", "Παπαδοπούλου"]
# Mixed case on purpose: the orders spec lower-cases status and drops the cancelled ones.
STATUSES = ["paid", "Shipped", "NEW", "delivered", "CANCELLED", "paid", "shipped", "cancelled"]
EPOCH = datetime(2024, 1, 1)
CHUNK = 5000

USERS_DDL = """
CREATE TABLE users (
  id INT PRIMARY KEY,
  name VARCHAR(100) NOT NULL,
  city VARCHAR(50),
  score DECIMAL(5,2),
  updated_at DATETIME NOT NULL
) DEFAULT CHARSET utf8mb4
"""
ORDERS_DDL = """
CREATE TABLE orders (
  order_id BIGINT PRIMARY KEY,
  user_id INT NOT NULL,
  amount DECIMAL(10,2) NOT NULL,
  status VARCHAR(20) NOT NULL,
  created_at DATETIME NOT NULL
) DEFAULT CHARSET utf8mb4
"""


def user_row(i: int) -> tuple:
    """User `i` (1-based). Every 13th has no city and every 17th no score (both nullable)."""
    name = f"{FIRST_NAMES[i % len(FIRST_NAMES)]} {LAST_NAMES[(i // len(FIRST_NAMES)) % len(LAST_NAMES)]}"
    city = None if i % 13 == 0 else CITIES[i % len(CITIES)]
    score = None if i % 17 == 0 else Decimal((i * 7919) % 10001) / 100
    updated_at = EPOCH + timedelta(minutes=i * 7, seconds=i % 60)
    return i, name, city, score, updated_at


def order_row(i: int, users: int) -> tuple:
    status = STATUSES[i % len(STATUSES)]
    amount = Decimal((i * 104729) % 100000 + 99) / 100
    return i, (i * 31) % users + 1, amount, status, EPOCH + timedelta(minutes=i * 3)


def order_is_live(i: int) -> bool:
    return STATUSES[i % len(STATUSES)].lower() != "cancelled"


def _chunks(rows: Iterator[tuple], size: int = CHUNK) -> Iterator[list[tuple]]:
    chunk: list[tuple] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def load_data(rows: int, conn_id: str = "mysql_default") -> dict[str, int]:
    """(Re)create `users` (rows) and `orders` (2 x rows) in the connection's database."""
    import pymysql

    from accelsync.connections import get_connection

    conn = get_connection(conn_id)
    database = conn.schema or "accelsync"
    db = pymysql.connect(host=conn.host or "127.0.0.1", port=conn.port or 3306, user=conn.login or "root",
                         password=conn.password or "", charset="utf8mb4", autocommit=False)
    try:
        with db.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{database}` DEFAULT CHARSET utf8mb4")
            cursor.execute(f"USE `{database}`")
            for table, ddl in (("users", USERS_DDL), ("orders", ORDERS_DDL)):
                cursor.execute(f"DROP TABLE IF EXISTS `{table}`")
                cursor.execute(ddl)
            # pymysql turns executemany of one INSERT ... VALUES into multi-row INSERTs.
            for chunk in _chunks(user_row(i) for i in range(1, rows + 1)):
                cursor.executemany("INSERT INTO users VALUES (%s, %s, %s, %s, %s)", chunk)
            for chunk in _chunks(order_row(i, rows) for i in range(1, 2 * rows + 1)):
                cursor.executemany("INSERT INTO orders VALUES (%s, %s, %s, %s, %s)", chunk)
        db.commit()
    finally:
        db.close()
    return {"users": rows, "orders": 2 * rows}


def expected_keys(rows: int) -> dict[str, tuple[list[str], list[str]]]:
    """Per DAG: the Redis keys the demo syncs must leave, and those they must not write."""
    orders = range(1, 2 * rows + 1)
    return {"users_to_redis": ([f"user:{i}" for i in range(1, rows + 1)], []),
            "orders_to_redis": ([f"order:{i}" for i in orders if order_is_live(i)],
                                [f"order:{i}" for i in orders if not order_is_live(i)])}


def count_present(keys: list[str], conn_id: str = "redis_default") -> int:
    from accelsync.connections import get_connection
    from accelsync.targets.redis.target import redis_client

    client = redis_client(get_connection(conn_id))
    try:
        return sum(client.exists(*keys[start:start + 10_000]) for start in range(0, len(keys), 10_000))
    finally:
        client.close()


def main(rows: int = 10_000) -> int:
    """Run the demo; return the exit status (0: every demo DAG run succeeded and Redis is right)."""
    from accelsync import runs
    from accelsync.dev import airflow_env, devstack
    from accelsync.spec import spec_files

    if rows < 1:
        print("accelsync demo: --rows must be at least 1", file=sys.stderr)
        return 2
    # Spec paths (quality suites) are relative to the project root: run from there.
    os.environ["ACCELSYNC_HOME"] = str(runs.home())
    root = airflow_env.repo_root()
    os.chdir(root)

    print("== devstack")
    try:
        for status in devstack.up(DEMO_SERVICES):
            print(status.line())
    except devstack.DevstackError as exc:
        print(f"accelsync demo: devstack up failed: {exc}", file=sys.stderr)
        return 1
    os.environ.update(devstack.connection_env())

    from accelsync.dev import demo_data

    print(f"== demo data: {rows:,} users and {2 * rows:,} orders (MySQL), {rows:,} events (Kafka topic "
          f"{demo_data.EVENTS_TOPIC}), {rows:,} access log lines ({demo_data.LOG_FOLDER}/)")
    clock = time.monotonic()
    load_data(rows)
    demo_data.produce_events(rows)
    demo_data.write_logs(rows, root)
    demo_data.ensure_datax_table()
    print(f"loaded in {time.monotonic() - clock:.1f}s")

    print("== Airflow")
    airflow_env.migrate()
    log_path = runs.home() / "demo.log"
    print(f"AIRFLOW_HOME={os.environ['AIRFLOW_HOME']}")
    print(f"Airflow and Spark logs of the DAG runs: {log_path}")
    results = run_dags(spec_files([str(root / "dags" / "syncs")]), log_path)
    print(f"== DataX job {demo_data.DATAX_JOB}, run unchanged (accelsync run {demo_data.DATAX_JOB})")
    datax = run_datax_job(root / demo_data.DATAX_JOB, log_path)
    logging.getLogger("py4j").setLevel(logging.WARNING)  # its goodbyes at exit are noise here
    ok = report(results, rows, datax)
    where_to_look(results, datax)
    print("demo " + ("succeeded" if ok else "FAILED"))
    return 0 if ok else 1


def run_datax_job(job: Path, log_path: Path) -> dict[str, Any] | None:
    """Run the DataX job file as `accelsync run JOB.json` does; its summary (None if it could not start)."""
    from accelsync import pipeline
    from accelsync.datax import load_spec_from_job
    from accelsync.errors import SpecError

    try:
        spec = load_spec_from_job(job)
    except SpecError as exc:
        print("\n".join(exc.lines()))
        return None
    with _output_to(log_path, append=True) as terminal:
        summary = pipeline.run(spec)
        terminal.write(f"-- DataX job {spec.name}: {summary['status']}\n")
    return summary


def run_dags(specs: list[Path], log_path: Path) -> list[tuple[Any, Any]]:
    """Run each spec's DAG through Airflow, logs to `log_path`; [(spec, DagRunResult or None)]."""
    from accelsync.dev import airflow_env
    from accelsync.engine.spark_session import stop_spark
    from accelsync.spec import load_spec

    results: list[tuple[Any, Any]] = []
    with _output_to(log_path) as terminal, ExitStack() as cleanup:
        cleanup.callback(stop_spark)  # inside the redirect: py4j logs as it shuts down
        for path in specs:
            spec = load_spec(path)
            terminal.write(f"-- DAG {spec.name}: running ...\n")
            terminal.flush()
            try:
                result = airflow_env.run_dag(path)
            except Exception as exc:  # the demo reports every DAG, even when one cannot start
                terminal.write(f"{spec.name}: could not run: {type(exc).__name__}: {exc}\n")
                result = None
            else:
                terminal.write(f"-- DAG {spec.name}: {result.state} in {result.seconds:.1f}s\n")
            terminal.flush()
            results.append((spec, result))
    return results


def report(results: list[tuple[Any, Any]], rows: int, datax: dict[str, Any] | None = None) -> bool:
    """Print each run's summary, a line per run and the check of every target; True when all is well."""
    from accelsync.report.summary import render

    for spec, result in results:
        if result is not None:
            print(render(_summary(spec, result.run_id)))
    if datax is not None:
        print(render(datax))
    print("\n== result")
    ok = bool(results)
    for spec, result in results:
        if result is None:
            ok = False
            print(f"{spec.name:<20} not run")
            continue
        tasks = " ".join(f"{task}={state}" for task, state in sorted(result.tasks.items(),
                                                                      key=lambda item: _order(item[0])))
        print(f"{spec.name:<20} {result.state:<8} {result.seconds:6.1f}s  {tasks}")
        ok = ok and result.state == "success"
    ran = {spec.name for spec, _ in results}
    for dag_id, (keys, absent) in expected_keys(rows).items():
        if dag_id not in ran:
            continue
        present, unexpected = count_present(keys), count_present(absent)
        print(f"{dag_id:<20} redis: {present:,} of {len(keys):,} expected keys present"
              + (f", {unexpected:,} of {len(absent):,} filtered-out keys present" if absent else ""))
        ok = ok and present == len(keys) and unexpected == 0
    return _check_other_targets(ran, rows, datax) and ok


def _check_other_targets(ran: set[str], rows: int, datax: dict[str, Any] | None) -> bool:
    """HBase rows of the Kafka events and of the DataX job, Druid requests of the access logs."""
    from accelsync.dev import demo_data

    ok = True
    if "events_to_hbase" in ran:
        keys = demo_data.event_keys(rows)
        present = demo_data.hbase_present(demo_data.EVENTS_TABLE, keys)
        print(f"{'events_to_hbase':<20} hbase: {present:,} of {len(keys):,} expected rows in {demo_data.EVENTS_TABLE}")
        ok = ok and present == len(keys)
    if "access_logs_to_druid" in ran:
        requests = demo_data.druid_requests(rows)
        print(f"{'access_logs_to_druid':<20} druid: {requests:,} of {rows:,} requests in {demo_data.ACCESS_DATASOURCE}")
        ok = ok and requests == rows
    if datax is None:
        print(f"{'DataX job':<20} not run")
        return False
    keys = [f"user_{i}".encode() for i in range(1, rows + 1)]
    present = demo_data.hbase_present(demo_data.DATAX_TABLE, keys)
    print(f"{datax['name']:<20} {datax['status']:<8} (DataX job {demo_data.DATAX_JOB}) hbase: {present:,} of "
          f"{rows:,} expected rows in {demo_data.DATAX_TABLE}")
    return ok and datax["status"] == "published" and present == rows


def where_to_look(results: list[tuple[Any, Any]], datax: dict[str, Any] | None) -> None:
    """The closing lines: the report pages, the Data Docs of each run, a line to see each target."""
    from accelsync import runs
    from accelsync.dev import airflow_env, demo_data

    print("\n== where to look")
    print("Sync report pages (Airflow UI): in another shell, from this folder:")
    print(f"  export AIRFLOW_HOME={airflow_env.airflow_home()} AIRFLOW__CORE__DAGS_FOLDER={airflow_env.repo_root() / 'dags'} "
          f"AIRFLOW__CORE__PLUGINS_FOLDER={airflow_env.repo_root() / 'plugins'} AIRFLOW__CORE__LOAD_EXAMPLES=False "
          f"ACCELSYNC_HOME={runs.home()}")
    print("  .venv/bin/airflow standalone    # then open http://localhost:8080/accelsync/ "
          "(one sync: http://localhost:8080/accelsync/syncs/<name>)")
    print("Data Docs (Great Expectations, each gated run):")
    for spec, result in results:
        docs = _summary(spec, result.run_id).get("data_docs") if result is not None else None
        if docs:
            print(f"  {spec.name}: {docs}")
    print(f"Run folders: {runs.home() / 'runs'}/<sync>/<run id>/ (summary.json, gate.json, dirty/)")
    print("See the data:")
    print("  redis-cli -p 6379 HGETALL user:7")
    print(f"  .venv/bin/python -c \"import happybase; t = happybase.Connection('127.0.0.1', 9090)"
          f".table('{demo_data.EVENTS_TABLE}'); print(list(t.scan(row_prefix=b'14_', limit=3)))\"")
    print(f"  .venv/bin/python -c \"import happybase; print(happybase.Connection('127.0.0.1', 9090)"
          f".table('{demo_data.DATAX_TABLE}').row(b'user_7'))\"")
    print("  curl -s -X POST -H 'Content-Type: application/json' http://127.0.0.1:8888/druid/v2/sql -d "
          f"'{{\"query\": \"SELECT path, status, SUM(requests) AS requests, SUM(bytes) AS bytes FROM "
          f"{demo_data.ACCESS_DATASOURCE} GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 5\"}}'")
    if datax is not None:
        print(f"  accelsync import-datax {demo_data.DATAX_JOB}    # the DataX job as a spec, with comments")


@contextmanager
def _output_to(path: Path, append: bool = False) -> Iterator[TextIO]:
    """Send this process's stdout and stderr (Airflow task logs, Spark's JVM) to `path`; yield
    the terminal. At file-descriptor level, so child processes started meanwhile write there too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    terminal = os.fdopen(os.dup(saved[0]), "w", encoding="utf-8", errors="replace")
    with open(path, "ab" if append else "wb") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield terminal
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        terminal.close()


def _summary(spec, airflow_run_id: str) -> dict[str, Any]:
    """The summary the DAG's `report` task saved; rebuilt from the run folder if it did not run."""
    from accelsync.airflow.operators import run_summary
    from accelsync.runs import RunDir, safe_run_id

    run_id = safe_run_id(airflow_run_id)
    run = RunDir(spec.name, run_id)
    if run.exists(SUMMARY_FILE):
        return run.read_json(SUMMARY_FILE)
    return run_summary(spec, run_id)


def _order(task_id: str) -> int:
    order = ["sync", "gate", "publish", "report"]
    return order.index(task_id) if task_id in order else len(order)


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
