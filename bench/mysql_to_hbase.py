"""Benchmark: MySQL -> HBase, accelsync beside the script a user would otherwise write.

    .venv/bin/python bench/mysql_to_hbase.py --rows 1000000

Both runs read the same table (the one bench/mysql_to_redis.py makes) and write the same rows
(`user:<id>`, family `cf`: name, city, score, updated_at) into the HBase table `bench_users`
(re-created before each run, dropped at the end) through the Thrift server of devstack's Apache
HBase (`accelsync devstack up hbase`; ACCELSYNC_HBASE_PORT, default 9090), in the same process,
one after the other. Prints rows/s of
each and the ratio. The gate is timed apart.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import happybase
import pymysql

DATABASE = "accelsync_bench"
CITIES = ("Berlin", "Paris", "Lisbon", "Tokyo", "São Paulo", "Nairobi")
TABLE = "bench_users"
PORT = int(os.environ.get("ACCELSYNC_HBASE_PORT") or 9090)


def ensure_table(rows: int) -> None:
    """A 5-column users table with `rows` rows, made by MariaDB's sequence engine (fast)."""
    db = pymysql.connect(host="127.0.0.1", user="root", password="", charset="utf8mb4", autocommit=True)
    cur = db.cursor()
    cur.execute(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    cur.execute(f"USE {DATABASE}")
    cur.execute("SHOW TABLES LIKE 'users'")
    if cur.fetchone():
        cur.execute("SELECT COUNT(*) FROM users")
        if cur.fetchone()[0] == rows:
            return
        cur.execute("DROP TABLE users")
    cur.execute("CREATE TABLE users (id BIGINT PRIMARY KEY, name VARCHAR(32) NOT NULL, city VARCHAR(16),"
                " score DECIMAL(6,2), updated_at DATETIME NOT NULL) DEFAULT CHARSET utf8mb4")
    cities = ", ".join(f"'{c}'" for c in CITIES)
    cur.execute(f"INSERT INTO users SELECT seq, CONCAT('user-', seq), ELT(1 + seq % 6, {cities}),"
                f" (seq % 10000) / 100, TIMESTAMP('2024-01-01') + INTERVAL seq SECOND FROM seq_1_to_{rows}")
    db.close()


def fresh_table() -> happybase.Connection:
    connection = happybase.Connection("127.0.0.1", PORT)
    if TABLE.encode() in connection.tables():
        connection.delete_table(TABLE, disable=True)
    connection.create_table(TABLE, {"cf": {}})
    return connection


def count_rows(connection: happybase.Connection) -> int:
    return sum(1 for _ in connection.table(TABLE).scan(filter="FirstKeyOnlyFilter() AND KeyOnlyFilter()",
                                                        batch_size=10_000))


def hand_written(rows: int) -> float:
    """What a user writes without accelsync: a streaming cursor and a happybase batch."""
    connection = fresh_table()
    started = time.perf_counter()
    db = pymysql.connect(host="127.0.0.1", user="root", password="", database=DATABASE, charset="utf8mb4",
                         cursorclass=pymysql.cursors.SSCursor)
    cur = db.cursor()
    cur.execute("SELECT id, name, city, score, updated_at FROM users")
    table = connection.table(TABLE)
    with table.batch(batch_size=1000) as batch:
        for id_, name, city, score, updated_at in cur:
            data = {b"cf:name": name.encode(), b"cf:updated_at": str(updated_at).encode()}
            if city is not None:
                data[b"cf:city"] = city.encode()
            if score is not None:
                data[b"cf:score"] = str(score).encode()
            batch.put(f"user:{id_}".encode(), data)
    db.close()
    seconds = time.perf_counter() - started
    assert count_rows(connection) == rows
    connection.close()
    return seconds


def with_accelsync(rows: int, channels: int) -> tuple[float, dict]:
    from accelsync import pipeline
    from accelsync.runs import new_run_id
    from accelsync.spec import parse_spec

    os.environ["AIRFLOW_CONN_BENCH_MYSQL"] = f"mysql://root@127.0.0.1:3306/{DATABASE}"
    os.environ["AIRFLOW_CONN_BENCH_HBASE"] = f"hbase://127.0.0.1:{PORT}"
    spec = parse_spec({
        "name": "bench_mysql_to_hbase",
        "source": {"type": "mysql", "connection": "bench_mysql", "table": "users", "split_pk": "id",
                   "columns": ["id", "name", "city", "score", "updated_at"]},
        "target": {"type": "hbase", "connection": "bench_hbase", "table": TABLE, "row_key": "user:{id}",
                   "family": "cf"},
        "speed": {"channels": channels},
        "quality": {"readback": {"sample": 1000}},
    })
    connection = fresh_table()
    run_id = new_run_id()
    started = time.perf_counter()
    stats = pipeline.stage_sync(spec, run_id)
    seconds = time.perf_counter() - started
    gate_started = time.perf_counter()
    verdict = pipeline.stage_gate(spec, run_id)
    gate_seconds = time.perf_counter() - gate_started
    pipeline.report(spec, run_id)  # the run ends here, unpublished: its summary, and the sync's lock back
    assert stats.written == rows and count_rows(connection) == rows, stats
    connection.close()
    return seconds, {"gate_seconds": round(gate_seconds, 2), "gate_passed": verdict["passed"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--channels", type=int, default=2)
    args = parser.parse_args()
    try:
        with tempfile.TemporaryDirectory() as home:
            os.environ.setdefault("ACCELSYNC_HOME", home)
            ensure_table(args.rows)
            hand = hand_written(args.rows)
            ours, gate = with_accelsync(args.rows, args.channels)
            # Once more, warm: a long-lived worker (Airflow, the CLI daemon) pays start-up once.
            ours_warm, _ = with_accelsync(args.rows, args.channels)
    finally:
        connection = happybase.Connection("127.0.0.1", PORT)
        if TABLE.encode() in connection.tables():
            connection.delete_table(TABLE, disable=True)
        connection.close()
    result = {
        "rows": args.rows, "channels": args.channels,
        "hand_written_rows_per_s": round(args.rows / hand),
        "accelsync_rows_per_s": round(args.rows / ours),
        "accelsync_warm_rows_per_s": round(args.rows / ours_warm),
        "ratio": round(hand / ours, 2), "ratio_warm": round(hand / ours_warm, 2),
        **gate,
    }
    print(json.dumps(result))
    print(f"hand-written (pymysql + happybase batch)  : {result['hand_written_rows_per_s']:>9,} rows/s")
    print(f"accelsync sync stage (first run)          : {result['accelsync_rows_per_s']:>9,} rows/s"
          f"  ratio {result['ratio']}x")
    print(f"accelsync sync stage (second run, warm)   : {result['accelsync_warm_rows_per_s']:>9,} rows/s"
          f"  ratio {result['ratio_warm']}x")
    print(f"gate (reconcile and read-back, after the sync): {gate['gate_seconds']}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
