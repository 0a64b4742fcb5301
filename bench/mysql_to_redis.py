"""Benchmark: MySQL -> Redis (hash), accelsync beside the script a user would otherwise write.

    .venv/bin/python bench/mysql_to_redis.py --rows 1000000

Both runs read the same table and write the same hashes into Redis db 1 (flushed before each
run), in the same process, one after the other. Prints rows/s of each and the ratio. The gate
is timed apart.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import pymysql
import redis

from harness import print_result, redis_check, time_stages

DATABASE = "accelsync_bench"
CITIES = ("Berlin", "Paris", "Lisbon", "Tokyo", "São Paulo", "Nairobi")

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

def hand_written(rows: int) -> float:
    """What a user writes without accelsync: a streaming cursor and a redis-py pipeline."""
    target = redis.Redis(host="127.0.0.1", port=6379, db=1)
    target.flushdb()
    started = time.perf_counter()
    db = pymysql.connect(host="127.0.0.1", user="root", password="", database=DATABASE, charset="utf8mb4",
                         cursorclass=pymysql.cursors.SSCursor)
    cur = db.cursor()
    cur.execute("SELECT id, name, city, score, updated_at FROM users")
    pipe = target.pipeline(transaction=False)
    pending = 0
    for id_, name, city, score, updated_at in cur:
        mapping = {"name": name, "updated_at": str(updated_at)}
        if city is not None:
            mapping["city"] = city
        if score is not None:
            mapping["score"] = str(score)
        pipe.hset(f"user:{id_}", mapping=mapping)
        pending += 1
        if pending == 10_000:
            pipe.execute()
            pending = 0
    pipe.execute()
    db.close()
    seconds = time.perf_counter() - started
    assert target.dbsize() == rows, target.dbsize()
    return seconds

def with_accelsync(rows: int, channels: int) -> tuple[float, dict]:
    from accelsync.spec import parse_spec

    os.environ["AIRFLOW_CONN_BENCH_MYSQL"] = f"mysql://root@127.0.0.1:3306/{DATABASE}"
    os.environ["AIRFLOW_CONN_BENCH_REDIS"] = "redis://127.0.0.1:6379/1"
    spec = parse_spec({
        "name": "bench_mysql_to_redis",
        "source": {"type": "mysql", "connection": "bench_mysql", "table": "users", "split_pk": "id",
                   "columns": ["id", "name", "city", "score", "updated_at"]},
        "target": {"type": "redis", "connection": "bench_redis", "key": "user:{id}",
                   "value": {"type": "hash", "fields": ["name", "city", "score", "updated_at"]}},
        "speed": {"channels": channels},
        "quality": {"readback": {"sample": 1000}},
    })
    return time_stages(spec, redis_check(1, rows))

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--channels", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ.setdefault("ACCELSYNC_HOME", home)
        ensure_table(args.rows)
        hand = hand_written(args.rows)
        ours, gate = with_accelsync(args.rows, args.channels)
        # Once more, warm: a long-lived worker (Airflow, the CLI daemon) pays start-up once.
        ours_warm, _ = with_accelsync(args.rows, args.channels)
    print_result(args.rows, args.channels, hand, ours, ours_warm, gate, "pymysql + redis-py pipeline")
    return 0

if __name__ == "__main__":
    sys.exit(main())
