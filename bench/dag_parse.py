"""DAG parse cost: Airflow's DagBag parses `dags/accelsync_dags.py` over N generated specs.

    python bench/dag_parse.py [--specs 50] [--repeat 3] [--cluster]

Each parse runs in a fresh interpreter, as the DAG processor's child would, with sockets blocked
(a parse must not touch the network) and reports what it imported. Prints the time of the
folder parse (the loader building every DAG) and of the imports before it, against BUDGET.

Airflow re-parses each DAG file every `min_file_process_interval` (30 s by default) and kills a
parse after `dagbag_import_timeout` (30 s); the budget keeps 50 specs well inside both, with room
for a machine that is busy with tasks.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUDGET_SECONDS = 1.0  # folder parse of 50 specs on this 2-core machine (imports not included)

# "@" stands for the spec's number.
SOURCES = [
    "{type: mysql, connection: mysql_default, table: t@, columns: [id, name, city], split_pk: id}",
    "{type: kafka, connection: kafka_default, topic: topic_@, schema: {id: long, name: string, city: string}}",
    "{type: logs, path: /var/log/app@/*.log.gz, format: json, schema: {id: long, name: string, city: string}}",
]
TARGETS = [
    "{type: redis, connection: redis_default, key: 'k@:{id}', value: {type: hash, fields: [name, city]}}",
    "{type: hbase, connection: hbase_default, table: t@, row_key: '{id}', family: cf}",
    "{type: druid, connection: druid_default, datasource: d@, timestamp: {column: name}, dimensions: [city]}",
]
LINES = ["growth", "commerce", "risk", "ads", "search"]

# Runs in the child: block the network, parse the folder with Airflow's DagBag, report.
PARSE = r"""
import json, socket, sys, time
attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args[:2]))
    raise OSError("network access at DAG parse time")
socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
started = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
imported = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1], safe_mode=True)
parsed = time.perf_counter()
print(json.dumps({"dags": sorted(bag.dag_ids), "errors": {k: v[-500:] for k, v in bag.import_errors.items()},
                  "import_seconds": imported - started, "parse_seconds": parsed - imported,
                  "sync_operators": sorted({type(d.get_task("sync")).__name__ for d in bag.dags.values()
                                            if "sync" in d.task_dict}),
                  "spark_modules": sorted(m for m in sys.modules if m.split(".")[0] in ("pyspark", "py4j")),
                  "network_attempts": attempts}))
"""


def write_specs(folder: Path, count: int) -> list[str]:
    """`count` valid specs of every source and target type, over five business lines; their names."""
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        name = f"bench_sync_{i:03d}"
        source, target = SOURCES[i % len(SOURCES)], TARGETS[(i // len(SOURCES)) % len(TARGETS)]
        (folder / f"{name}.yaml").write_text(
            f"name: {name}\nowner: team{i % 7}\nbusiness_line: {LINES[i % len(LINES)]}\n"
            f"priority: {['high', 'medium', 'low'][i % 3]}\nschedule: '@hourly'\ntimeout: 30m\nretries: 2\n"
            f"source: {source.replace('@', str(i))}\ntarget: {target.replace('@', str(i))}\n"
            "speed: {channels: 4}\n")
        names.append(name)
    return names


def parse_folder(specs: Path, env: dict[str, str] | None = None, timeout: float = 300) -> dict:
    """Parse the repository's DAG folder over `specs` in a fresh interpreter; its report."""
    home = tempfile.mkdtemp(prefix="accelsync_parse_")
    child_env = {**os.environ, **(env or {}), "ACCELSYNC_SPECS": str(specs), "AIRFLOW_HOME": home,
                 "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                 "AIRFLOW__CORE__UNIT_TEST_MODE": "False"}
    done = subprocess.run([sys.executable, "-c", PARSE, str(REPO / "dags")], env=child_env, capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"parse failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--specs", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cluster", action="store_true", help="with a Spark cluster configured (spark-submit tasks)")
    args = parser.parse_args()
    env = {"ACCELSYNC_SPARK_MASTER": "spark://spark-master:7077"} if args.cluster else {}
    with tempfile.TemporaryDirectory() as folder:
        names = write_specs(Path(folder), args.specs)
        reports = [parse_folder(Path(folder), env) for _ in range(args.repeat)]
    for report in reports:
        assert set(names) <= set(report["dags"]) and not report["errors"], report["errors"]
    parse = statistics.median(r["parse_seconds"] for r in reports)
    imports = statistics.median(r["import_seconds"] for r in reports)
    budget = BUDGET_SECONDS * args.specs / 50
    print(f"DAG folder parse, {args.specs} specs{' (cluster)' if args.cluster else ''}: "
          f"{parse:.2f}s median of {args.repeat} ({parse / args.specs * 1000:.1f} ms/spec), "
          f"imports before it {imports:.2f}s; budget {budget:.2f}s: {'OK' if parse <= budget else 'OVER'}")
    print(f"Spark modules imported: {reports[0]['spark_modules'] or 'none'}; "
          f"network attempts: {reports[0]['network_attempts'] or 'none'}")
    return 0 if parse <= budget else 1


if __name__ == "__main__":
    sys.exit(main())
