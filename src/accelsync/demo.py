"""`accelsync demo`: the local services, deterministic demo data, every demo DAG run through Airflow.

    devstack up (MariaDB, Redis) -> database `accelsync` with `users` and `orders`
    -> each spec in dags/syncs run as a DAG run of the project-local Airflow (DAG.test)
    -> each run's DataX-style summary, one state line per DAG, and a check of the Redis keys.

Exit status 0 only when every demo DAG run succeeded and Redis holds every expected demo key.
The data is the same for the same `rows`, and reloading it drops and recreates the tables.
"""

from __future__ import annotations

import os
import sys
import time
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Iterator

DEMO_SERVICES = ["mysql", "redis"]
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


def expected_keys(rows: int) -> dict[str, list[str]]:
    """The Redis keys the demo syncs must leave, per DAG."""
    return {"users_to_redis": [f"user:{i}" for i in range(1, rows + 1)],
            "orders_to_redis": [f"order:{i}" for i in range(1, 2 * rows + 1) if order_is_live(i)]}


def count_present(keys: list[str], conn_id: str = "redis_default") -> int:
    from accelsync.connections import get_connection
    from accelsync.sinks.redis import redis_client

    client = redis_client(get_connection(conn_id))
    try:
        return sum(client.exists(*keys[start:start + 10_000]) for start in range(0, len(keys), 10_000))
    finally:
        client.close()


def main(rows: int = 10_000) -> int:
    """Run the demo; return the exit status (0: every demo DAG run succeeded and Redis is right)."""
    from accelsync import airflow_env, devstack, runs
    from accelsync.spec import load_spec, spec_files

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

    print(f"== demo data: {rows:,} users, {2 * rows:,} orders")
    clock = time.monotonic()
    load_data(rows)
    print(f"loaded in {time.monotonic() - clock:.1f}s")

    print("== Airflow")
    airflow_env.migrate()
    print(f"AIRFLOW_HOME={os.environ['AIRFLOW_HOME']}")
    results: list[tuple[Any, Any]] = []
    specs = spec_files([str(root / "dags" / "syncs")])
    for path in specs:
        spec = load_spec(path)
        print(f"-- running DAG {spec.name}")
        try:
            result = airflow_env.run_dag(path)
        except Exception as exc:  # the demo reports every DAG, even when one cannot start
            print(f"{spec.name}: could not run: {type(exc).__name__}: {exc}", file=sys.stderr)
            result = None
        results.append((spec, result))

    from accelsync.summary import render

    for spec, result in results:
        if result is not None:
            print(render(_summary(spec, result.run_id)))

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
    for dag_id, keys in expected_keys(rows).items():
        if dag_id not in {spec.name for spec, _ in results}:
            continue
        present = count_present(keys)
        print(f"{dag_id:<20} redis: {present:,} of {len(keys):,} expected keys present")
        ok = ok and present == len(keys)
    print("demo " + ("succeeded" if ok else "FAILED"))
    return 0 if ok else 1


def _summary(spec, airflow_run_id: str) -> dict[str, Any]:
    """The summary the DAG's `report` task saved; rebuilt from the run folder if it did not run."""
    from accelsync.operators import run_summary
    from accelsync.runs import RunDir, safe_run_id

    run_id = safe_run_id(airflow_run_id)
    run = RunDir(spec.name, run_id)
    if run.exists("summary.json"):
        return run.read_json("summary.json")
    return run_summary(spec, run_id)


def _order(task_id: str) -> int:
    order = ["sync", "gate", "publish", "report"]
    return order.index(task_id) if task_id in order else len(order)


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000))
