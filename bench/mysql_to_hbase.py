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
import os
import sys
import tempfile
import time

import happybase
import pymysql

from harness import print_result, time_stages
from mysql_to_redis import DATABASE, ensure_table  # the same users table

TABLE = "bench_users"
PORT = int(os.environ.get("ACCELSYNC_HBASE_PORT") or 9090)


def fresh_table() -> happybase.Connection:
    connection = happybase.Connection("127.0.0.1", PORT)
    if TABLE.encode() in connection.tables():
        connection.delete_table(TABLE, disable=True)
    connection.create_table(TABLE, {"cf": {}})
    return connection


def count_rows() -> int:
    # A connection of its own: HBase's Thrift server closes one idle for 60 s
    # (hbase.thrift.server.socket.read.timeout), as one opened before a long sync would be.
    connection = happybase.Connection("127.0.0.1", PORT)
    try:
        return sum(1 for _ in connection.table(TABLE).scan(filter="FirstKeyOnlyFilter() AND KeyOnlyFilter()",
                                                            batch_size=10_000))
    finally:
        connection.close()


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
    connection.close()
    assert count_rows() == rows
    return seconds


def with_accelsync(rows: int, channels: int) -> tuple[float, dict]:
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
    fresh_table().close()

    def check(stats):
        assert stats.written == rows and count_rows() == rows, stats

    return time_stages(spec, check)


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
    print_result(args.rows, args.channels, hand, ours, ours_warm, gate, "pymysql + happybase batch")
    return 0


if __name__ == "__main__":
    sys.exit(main())
