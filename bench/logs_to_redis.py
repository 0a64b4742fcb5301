"""Benchmark: JSON log files -> Redis (hash), accelsync beside the script a user would otherwise write.

    .venv/bin/python bench/logs_to_redis.py --rows 1000000

The same JSON lines (spread over --files files, every other one gzip) are written as the same
hashes into Redis db 2 (flushed before each run), in the same process, one after the other:
first by a hand-written loop (gzip.open, json.loads, redis-py pipeline HSET), then by accelsync
(logs source -> Redis hash), cold and once more warm. Prints rows/s of each and the ratios. The gate
is timed apart.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
from pathlib import Path


import redis

from harness import print_result, redis_check, time_stages

CITIES = ("Berlin", "Paris", "Lisbon", "Tokyo", "São Paulo", "Nairobi")
REDIS_DB = 2


def make_files(folder: Path, rows: int, files: int) -> list[Path]:
    """`rows` JSON lines over `files` files; odd-numbered files are gzip."""
    paths = []
    per_file = -(-rows // files)
    for index in range(files):
        first, last = index * per_file + 1, min(rows, (index + 1) * per_file)
        lines = "".join(
            json.dumps({"id": i, "user": f"user-{i}", "city": CITIES[i % 6], "score": (i % 10000) / 100,
                        "ts": f"2024-01-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{i % 59:02d}Z",
                        "level": "info"}, ensure_ascii=False) + "\n"
            for i in range(first, last + 1)).encode()
        path = folder / (f"app-{index:02d}.log.gz" if index % 2 else f"app-{index:02d}.log")
        path.write_bytes(gzip.compress(lines, compresslevel=6) if index % 2 else lines)
        paths.append(path)
    return paths


def hand_written(paths: list[Path], rows: int) -> float:
    """What a user writes without accelsync: read each file, json.loads each line, pipeline HSETs."""
    target = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    target.flushdb()
    started = time.perf_counter()
    pipe = target.pipeline(transaction=False)
    pending = 0
    for path in paths:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                record = json.loads(line)
                mapping = {"user": record["user"], "city": record["city"], "score": repr(record["score"]),
                           "ts": record["ts"]}
                pipe.hset(f"ev:{record['id']}", mapping=mapping)
                pending += 1
                if pending == 10_000:
                    pipe.execute()
                    pending = 0
    pipe.execute()
    seconds = time.perf_counter() - started
    assert target.dbsize() == rows, target.dbsize()
    return seconds


def with_accelsync(folder: Path, rows: int, channels: int) -> tuple[float, dict]:
    from accelsync.spec import parse_spec

    os.environ["AIRFLOW_CONN_BENCH_REDIS_LOGS"] = f"redis://127.0.0.1:6379/{REDIS_DB}"
    spec = parse_spec({
        "name": "bench_logs_to_redis",
        "source": {"type": "logs", "path": str(folder), "format": "json",
                   "schema": {"id": "long", "user": "string", "city": "string", "score": "double",
                              "ts": "string"}},
        "target": {"type": "redis", "connection": "bench_redis_logs", "key": "ev:{id}",
                   "value": {"type": "hash", "fields": ["user", "city", "score", "ts"]}},
        "speed": {"channels": channels},
        "quality": {"readback": {"sample": 1000}},
    })
    return time_stages(spec, redis_check(REDIS_DB, rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--channels", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        os.environ.setdefault("ACCELSYNC_HOME", home)
        folder = Path(home) / "logs"
        folder.mkdir()
        paths = make_files(folder, args.rows, args.files)
        size = sum(p.stat().st_size for p in paths)
        hand = hand_written(paths, args.rows)
        ours, gate = with_accelsync(folder, args.rows, args.channels)
        # Once more, warm: a long-lived worker (Airflow, the CLI daemon) pays start-up once.
        ours_warm, _ = with_accelsync(folder, args.rows, args.channels)
    print_result(args.rows, args.channels, hand, ours, ours_warm, gate, "gzip/json.loads + redis-py pipeline",
                 bytes=size)
    return 0


if __name__ == "__main__":
    sys.exit(main())
