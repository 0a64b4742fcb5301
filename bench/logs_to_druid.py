"""Benchmark: JSON log files -> Druid, accelsync beside the script a user would otherwise write.

    .venv/bin/python bench/logs_to_druid.py --rows 1000000

Both load the same JSON lines (over --files files, every other one gzip) into a datasource of
the devstack's Apache Druid (`accelsync devstack up druid`, started by this script when it is not
running; the version of docker/compose.yaml), with the same schema: `ts` as time, dimensions user, city, level, metrics count, longSum bytes, doubleSum
score, rollup off (every line is one Druid row), day segments.

- hand-written: read every file (gzip.open, json.loads), keep the lines with a timestamp,
  write the rows as newline JSON to one local file, submit an `index_parallel` task with a
  `local` input source, poll its status until SUCCESS, then poll Druid SQL until it serves every
  row (what accelsync's publish waits for too).
- accelsync: the logs source -> Druid target through `pipeline`: sync (Spark read, staged files,
  ingestion into the staging datasource), gate (reconcile + read-back against Druid SQL),
  publish (ingestion into the real datasource, staging dropped). Run cold, then once more warm.

Prints rows/s of each and the ratios: for accelsync's sync stage alone (what the run pays before
the gate, comparable to the hand-written load that has no gate) and end to end (sync + gate +
publish: the data ingested twice, staging then real, plus the checks). Both sides share one Druid
(its indexer runs one task at a time here, on the same two cores as Spark), whose ingestion
speed bounds both. The benchmark's datasources are dropped at the end.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

CITIES = ("Berlin", "Paris", "Lisbon", "Tokyo", "São Paulo", "Nairobi")
LEVELS = ("info", "info", "info", "warn", "error")
DATASOURCE = "bench_logs"


def make_files(folder: Path, rows: int, files: int) -> list[Path]:
    paths = []
    per_file = -(-rows // files)
    for index in range(files):
        first, last = index * per_file + 1, min(rows, (index + 1) * per_file)
        lines = "".join(
            json.dumps({"ts": f"2024-01-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{i % 59:02d}Z",
                        "user": f"user-{i % 50000}", "city": CITIES[i % 6], "level": LEVELS[i % 5],
                        "bytes": i % 5000, "score": (i % 10000) / 100}, ensure_ascii=False) + "\n"
            for i in range(first, last + 1)).encode()
        path = folder / (f"app-{index:02d}.log.gz" if index % 2 else f"app-{index:02d}.log")
        path.write_bytes(gzip.compress(lines, compresslevel=6) if index % 2 else lines)
        paths.append(path)
    return paths


def call(base: str, method: str, path: str, body=None):
    request = urllib.request.Request(base + path, method=method, headers={"Content-Type": "application/json"},
                                     data=None if body is None else json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=600) as reply:
        raw = reply.read()
        return json.loads(raw) if raw else None


def hand_written(base: str, paths: list[Path], folder: Path, rows: int) -> float:
    """What a user writes without accelsync: parse the logs, stage one file, submit, poll."""
    call(base, "DELETE", f"/druid/coordinator/v1/datasources/{DATASOURCE}_hand")
    started = time.perf_counter()
    staged = folder / "hand.json"
    with open(staged, "w", encoding="utf-8") as out:
        for path in paths:
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rt", encoding="utf-8") as handle:
                for line in handle:
                    if not line.strip():
                        continue
                    record = json.loads(line)
                    if not record.get("ts"):
                        continue
                    out.write(json.dumps({"ts": record["ts"], "user": record["user"], "city": record["city"],
                                          "level": record["level"], "bytes": record["bytes"],
                                          "score": record["score"]}, ensure_ascii=False) + "\n")
    task = {
        "type": "index_parallel",
        "spec": {
            "dataSchema": {
                "dataSource": f"{DATASOURCE}_hand",
                "timestampSpec": {"column": "ts", "format": "iso"},
                "dimensionsSpec": {"dimensions": ["user", "city", "level"]},
                "metricsSpec": [{"type": "count", "name": "rows"},
                                {"type": "longSum", "name": "bytes", "fieldName": "bytes"},
                                {"type": "doubleSum", "name": "score", "fieldName": "score"}],
                "granularitySpec": {"segmentGranularity": "day", "queryGranularity": "none", "rollup": False},
            },
            "ioConfig": {"type": "index_parallel", "inputSource": {"type": "local", "files": [str(staged)]},
                         "inputFormat": {"type": "json"}, "appendToExisting": False},
            "tuningConfig": {"type": "index_parallel"},
        },
    }
    task_id = call(base, "POST", "/druid/indexer/v1/task", task)["task"]
    while True:
        status = call(base, "GET", f"/druid/indexer/v1/task/{task_id}/status")["status"]
        if status["status"] != "RUNNING":
            break
        time.sleep(0.5)
    assert status["status"] == "SUCCESS", status
    while served(base, f"{DATASOURCE}_hand") != rows:
        time.sleep(0.5)
    return time.perf_counter() - started


def served(base: str, datasource: str) -> int:
    """Rows the broker serves (0 while SQL does not know the datasource yet)."""
    query = json.dumps({"query": f'SELECT COUNT(*) AS n FROM "{datasource}"'}).encode()
    request = urllib.request.Request(base + "/druid/v2/sql", data=query, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as reply:
            return json.loads(reply.read())[0]["n"]
    except urllib.error.HTTPError:
        return 0


def with_accelsync(base: str, folder: Path, rows: int, channels: int) -> dict:
    from accelsync import pipeline
    from accelsync.runs import new_run_id
    from accelsync.engine.spark_session import get_spark
    from accelsync.spec import parse_spec

    spec = parse_spec({
        "name": "bench_logs_to_druid",
        "source": {"type": "logs", "path": str(folder / "logs"), "format": "json",
                   "schema": {"ts": "string", "user": "string", "city": "string", "level": "string",
                              "bytes": "long", "score": "double"}},
        "target": {"type": "druid", "connection": "bench_druid", "datasource": DATASOURCE,
                   "timestamp": {"column": "ts", "format": "iso"}, "dimensions": ["user", "city", "level"],
                   "metrics": [{"type": "count", "name": "rows"}, {"type": "longSum", "name": "bytes", "field": "bytes"},
                               {"type": "doubleSum", "name": "score", "field": "score"}],
                   "granularity": {"segment": "day", "query": "none", "rollup": False}},
        "speed": {"channels": channels},
        "quality": {"readback": {"sample": 1000}},
    })
    started = time.perf_counter()
    get_spark()
    spark_start = time.perf_counter() - started
    run_id = new_run_id()
    started = time.perf_counter()
    stats = pipeline.stage_sync(spec, run_id)
    sync = time.perf_counter() - started
    verdict = pipeline.stage_gate(spec, run_id)
    gate = time.perf_counter() - started - sync
    pipeline.stage_publish(spec, run_id)
    total = time.perf_counter() - started
    count = call(base, "POST", "/druid/v2/sql", {"query": f"SELECT COUNT(*) AS n FROM {DATASOURCE}"})
    assert stats.written == rows and count == [{"n": rows}] and verdict["passed"], (stats, count, verdict)
    return {"sync": sync, "gate": gate, "publish": total - sync - gate, "total": total, "spark_start": spark_start}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--channels", type=int, default=2)
    args = parser.parse_args()
    from accelsync.dev import devstack
    from accelsync.dev.devstack.druid import Druid

    os.environ.setdefault("ACCELSYNC_DEVSTACK_HOME", str(Path(".accelsync/devstack").absolute()))
    [status] = devstack.up(["druid"])
    base = f"http://{status.address}"
    os.environ["AIRFLOW_CONN_BENCH_DRUID"] = Druid().connection()
    with tempfile.TemporaryDirectory() as home:
        os.environ.setdefault("ACCELSYNC_HOME", home)
        folder = Path(home)
        (folder / "logs").mkdir()
        paths = make_files(folder / "logs", args.rows, args.files)
        try:
            hand = hand_written(base, paths, folder, args.rows)
            cold = with_accelsync(base, folder, args.rows, args.channels)
            warm = with_accelsync(base, folder, args.rows, args.channels)
        finally:
            for datasource in (DATASOURCE, f"{DATASOURCE}_hand"):
                call(base, "DELETE", f"/druid/coordinator/v1/datasources/{datasource}")
                call(base, "POST", "/druid/indexer/v1/task", {"type": "kill", "dataSource": datasource,
                                                               "interval": "1000-01-01/3000-01-01"})
    rate = lambda seconds: round(args.rows / seconds)  # noqa: E731
    result = {
        "rows": args.rows, "files": args.files, "channels": args.channels,
        "hand_written_rows_per_s": rate(hand),
        "accelsync_sync_rows_per_s": rate(cold["sync"]), "accelsync_sync_warm_rows_per_s": rate(warm["sync"]),
        "accelsync_end_to_end_rows_per_s": rate(cold["total"]),
        "accelsync_end_to_end_warm_rows_per_s": rate(warm["total"]),
        "ratio_sync": round(hand / cold["sync"], 2), "ratio_sync_warm": round(hand / warm["sync"], 2),
        "ratio_end_to_end": round(hand / cold["total"], 2), "ratio_end_to_end_warm": round(hand / warm["total"], 2),
        "warm_seconds": {k: round(v, 2) for k, v in warm.items()}, "spark_start_s": round(cold["spark_start"], 2),
    }
    print(json.dumps(result))
    print(f"hand-written (json.loads, one file, index_parallel task): {result['hand_written_rows_per_s']:>9,} rows/s")
    print(f"accelsync sync stage, incl. staging ingestion (cold/warm): {result['accelsync_sync_rows_per_s']:>9,} / "
          f"{result['accelsync_sync_warm_rows_per_s']:,} rows/s  ratio {result['ratio_sync']}x / "
          f"{result['ratio_sync_warm']}x")
    print(f"accelsync sync + gate + publish (cold/warm)             : {result['accelsync_end_to_end_rows_per_s']:>9,} / "
          f"{result['accelsync_end_to_end_warm_rows_per_s']:,} rows/s  ratio {result['ratio_end_to_end']}x / "
          f"{result['ratio_end_to_end_warm']}x")
    print(f"warm stages: {result['warm_seconds']}; Spark session start {result['spark_start_s']}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
