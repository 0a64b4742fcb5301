"""End to end: what a user waits for, as fresh processes side by side, one run each, as ratios.

    .venv/bin/python bench/end_to_end.py [--rows 1000000] [--pairs mysql,kafka,logs] [--small 1000]
                                         [--suite] [--memory-rows 10000000]

For each pair (MySQL, Kafka, log files -> Redis hashes), one fresh process runs the script a user
would write by hand (the `hand_written` function of bench/<pair>_to_redis.py: a cursor or
consumer loop and a redis-py pipeline), then one fresh process runs `accelsync run SPEC --json`:
start-up, plan, sync, the gate (reconcile and a 1,000-row read-back) and publish. Both write the
same keys into a flushed Redis db; each is timed from launch to exit. The machine is shared and
noisy: compare the ratios of one run, not absolute figures across runs.

`--small` times a 1,000-row MySQL -> Redis `accelsync run`; `--suite` adds two MySQL runs gated by
the demo suite (expectations/demo_users.json), computed on Arrow (`suite_engine: auto`) and by
Great Expectations (`suite_engine: gx`), and reports the gate's share of the sync stage;
`--memory-rows` runs MySQL -> Redis over that many rows (gated by the demo suite too with `--suite`)
and reports the peak of the summed RSS of every accelsync process (sampled every 0.1 s).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import redis
import yaml

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

import kafka_to_redis  # noqa: E402
import logs_to_redis  # noqa: E402
import mysql_to_redis  # noqa: E402

ACCELSYNC = [sys.executable, "-m", "accelsync.cli"]


def hand_written(call: str) -> float:
    """Seconds of a fresh process running one bench module's hand-written script."""
    code = f"import sys; sys.path.insert(0, {str(BENCH)!r}); {call}"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.perf_counter() - started


def accelsync_run(spec: dict, folder: Path, memory: bool = False) -> tuple[float, dict, int]:
    """Seconds of a fresh `accelsync run`, its summary, and (with `memory`) the peak summed RSS
    in bytes of its process tree."""
    path = folder / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    started = time.perf_counter()
    process = subprocess.Popen([*ACCELSYNC, "run", str(path), "--json"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    peak = [0]
    sampler = threading.Thread(target=_sample_rss, args=(process, peak), daemon=True) if memory else None
    if sampler:
        sampler.start()
    out, _ = process.communicate()
    seconds = time.perf_counter() - started
    if sampler:
        sampler.join()
    summary = json.loads(out.strip().splitlines()[-1])
    if summary["status"] != "published":
        raise SystemExit(f"{spec['name']} failed: {summary['reason']}")
    return seconds, summary, peak[0]


def _sample_rss(process: subprocess.Popen, peak: list[int]) -> None:
    import psutil

    root = psutil.Process(process.pid)
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            total = sum(p.memory_info().rss for p in tree if p.is_running())
            peak[0] = max(peak[0], total)
        except psutil.Error:
            pass
        time.sleep(0.1)


def redis_spec(name: str, source: dict, connection: str, key: str, fields: list[str], **extra) -> dict:
    return {"name": name, "source": source,
            "target": {"type": "redis", "connection": connection, "key": key,
                       "value": {"type": "hash", "fields": fields}},
            "speed": {"channels": 2}, "quality": {"readback": {"sample": 1000}}, **extra}


def mysql_source(table: str = "users") -> dict:
    return {"type": "mysql", "connection": "bench_mysql", "table": table, "split_pk": "id",
            "columns": ["id", "name", "city", "score", "updated_at"]}


def flush(db: int) -> None:
    redis.Redis(host="127.0.0.1", port=6379, db=db).flushdb()


def pair_mysql(rows: int, folder: Path) -> dict:
    mysql_to_redis.ensure_table(rows)
    flush(1)
    hand = hand_written(f"import mysql_to_redis as m; m.hand_written({rows})")
    flush(1)
    ours, summary, _ = accelsync_run(redis_spec("e2e_mysql", mysql_source(), "bench_redis", "user:{id}",
                                                ["name", "city", "score", "updated_at"]), folder)
    return row("MySQL -> Redis", rows, hand, ours, summary)


def pair_kafka(rows: int, folder: Path) -> dict:
    topic = f"bench_e2e_{uuid.uuid4().hex[:8]}"
    kafka_to_redis.produce(topic, rows, 3)
    try:
        flush(3)
        hand = hand_written(f"import kafka_to_redis as k; k.hand_written({topic!r}, {rows}, 3)")
        flush(3)
        source = {"type": "kafka", "connection": "bench_kafka", "topic": topic, "format": "json",
                  "group": f"bench.e2e.{uuid.uuid4().hex}",
                  "schema": {"order_id": "long", "user_id": "long", "amount": "decimal(10,2)", "status": "string"}}
        ours, summary, _ = accelsync_run(redis_spec("e2e_kafka", source, "bench_kafka_redis", "order:{order_id}",
                                                    ["user_id", "amount", "status"]), folder)
    finally:
        from confluent_kafka.admin import AdminClient
        admin = AdminClient({"bootstrap.servers": kafka_to_redis.SERVERS})  # alive until its futures end
        for future in admin.delete_topics([topic]).values():
            future.result(timeout=60)
    return row("Kafka -> Redis", rows, hand, ours, summary)


def pair_logs(rows: int, folder: Path) -> dict:
    logs = folder / "logs"
    logs.mkdir(exist_ok=True)
    paths = logs_to_redis.make_files(logs, rows, 8)
    flush(2)
    hand = hand_written(f"import logs_to_redis as l; from pathlib import Path; "
                        f"l.hand_written([Path(p) for p in {[str(p) for p in paths]!r}], {rows})")
    flush(2)
    source = {"type": "logs", "path": str(logs), "format": "json",
              "schema": {"id": "long", "user": "string", "city": "string", "score": "double", "ts": "string"}}
    ours, summary, _ = accelsync_run(redis_spec("e2e_logs", source, "bench_redis_logs", "ev:{id}",
                                                ["user", "city", "score", "ts"]), folder)
    return row("logs -> Redis", rows, hand, ours, summary)


def row(pair: str, rows: int, hand: float, ours: float, summary: dict) -> dict:
    stages = summary["stage_seconds"]
    return {"pair": pair, "rows": rows, "hand_written_s": round(hand, 2), "accelsync_s": round(ours, 2),
            "ratio": round(hand / ours, 2), "sync_s": stages["sync"], "gate_s": stages["gate"],
            "publish_s": stages["publish"], "gate_share_of_sync": round(stages["gate"] / stages["sync"], 3),
            "engine": summary["engine"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pairs", default="mysql,kafka,logs")
    parser.add_argument("--small", type=int, default=1000, help="rows of the small MySQL run (0: skip)")
    parser.add_argument("--suite", action="store_true", help="also a MySQL run gated by the demo suite")
    parser.add_argument("--memory-rows", type=int, default=0, help="rows of the memory run (0: skip)")
    args = parser.parse_args()

    os.environ.update({
        "AIRFLOW_CONN_BENCH_MYSQL": f"mysql://root@127.0.0.1:3306/{mysql_to_redis.DATABASE}",
        "AIRFLOW_CONN_BENCH_REDIS": "redis://127.0.0.1:6379/1",
        "AIRFLOW_CONN_BENCH_REDIS_LOGS": "redis://127.0.0.1:6379/2",
        "AIRFLOW_CONN_BENCH_KAFKA_REDIS": "redis://127.0.0.1:6379/3",
        "AIRFLOW_CONN_BENCH_KAFKA": json.dumps({"conn_type": "kafka",
                                                "extra": {"bootstrap.servers": kafka_to_redis.SERVERS}}),
    })
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        os.environ["ACCELSYNC_HOME"] = str(folder / "home")
        for pair in args.pairs.split(","):
            results.append({"mysql": pair_mysql, "kafka": pair_kafka, "logs": pair_logs}[pair](args.rows, folder))
            print(json.dumps(results[-1]), flush=True)
        if args.small:
            small = mysql_to_redis.DATABASE
            mysql_to_redis.ensure_table(args.rows)
            _small_table(small, args.small)
            flush(1)
            seconds, summary, _ = accelsync_run(redis_spec("e2e_small", mysql_source("users_small"), "bench_redis",
                                                           "small:{id}", ["name", "city"]), folder)
            results.append({"pair": f"MySQL -> Redis, {args.small:,} rows", "rows": args.small,
                            "accelsync_s": round(seconds, 2), "sync_s": summary["stage_seconds"]["sync"],
                            "gate_s": summary["stage_seconds"]["gate"], "engine": summary["engine"]})
        for engine in ("auto", "gx") if args.suite else ():
            flush(1)
            spec = redis_spec(f"e2e_suite_{engine}", mysql_source(), "bench_redis", "user:{id}",
                              ["name", "city", "score", "updated_at"])
            spec["quality"].update(suite=str(REPO / "expectations" / "demo_users.json"), suite_engine=engine)
            seconds, summary, _ = accelsync_run(spec, folder)
            stages = summary["stage_seconds"]
            results.append({"pair": f"MySQL -> Redis, demo suite ({'Arrow' if engine == 'auto' else 'GX'})",
                            "rows": args.rows, "accelsync_s": round(seconds, 2), "sync_s": stages["sync"],
                            "gate_s": stages["gate"], "data_docs_s": stages.get("data docs"),
                            "gate_share_of_sync": round(stages["gate"] / stages["sync"], 3)})
        if args.memory_rows:
            mysql_to_redis.ensure_table(args.memory_rows)
            flush(1)
            spec = redis_spec("e2e_memory", mysql_source(), "bench_redis", "user:{id}",
                              ["name", "city", "score", "updated_at"])
            if args.suite:  # the demo suite on Arrow as well: it reads every column of the snapshot
                spec["quality"]["suite"] = str(REPO / "expectations" / "demo_users.json")
            seconds, summary, peak = accelsync_run(spec, folder, memory=True)
            flush(1)
            results.append({"pair": "MySQL -> Redis, memory" + (", demo suite" if args.suite else ""), "rows": args.memory_rows, "accelsync_s": round(seconds, 2),
                            "peak_rss_mib": round(peak / 2**20), "sync_s": summary["stage_seconds"]["sync"],
                            "gate_s": summary["stage_seconds"]["gate"]})
    for result in results:
        print(json.dumps(result))
    print()
    print(f"{'what':<38} {'rows':>10} {'by hand':>8} {'accelsync':>10} {'ratio':>6} {'sync':>6} {'gate':>6} "
          f"{'gate/sync':>9}")
    for r in results:
        print(f"{r['pair']:<38} {r['rows']:>10,} {_s(r.get('hand_written_s')):>8} {_s(r['accelsync_s']):>10} "
              f"{(str(r['ratio']) + 'x') if 'ratio' in r else '':>6} {_s(r.get('sync_s')):>6} "
              f"{_s(r.get('gate_s')):>6} {_pct(r.get('gate_share_of_sync')):>9}"
              + (f"  peak RSS {r['peak_rss_mib']} MiB" if "peak_rss_mib" in r else "")
              + (f"  data docs {_s(r['data_docs_s'])} after publish" if r.get("data_docs_s") else ""))
    return 0


def _small_table(database: str, rows: int) -> None:
    import pymysql
    db = pymysql.connect(host="127.0.0.1", user="root", password="", database=database, autocommit=True)
    cursor = db.cursor()
    cursor.execute("DROP TABLE IF EXISTS users_small")
    cursor.execute(f"CREATE TABLE users_small (PRIMARY KEY (id)) AS SELECT * FROM users WHERE id <= {rows}")
    db.close()


def _s(value) -> str:
    return "" if value is None else f"{value:.1f}s"


def _pct(value) -> str:
    return "" if value is None else f"{value:.0%}"


if __name__ == "__main__":
    sys.exit(main())
