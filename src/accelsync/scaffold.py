"""`accelsync new NAME --source S --target T`: a commented starter spec and GX suite.

Every source block yields the same columns (id, name, city, amount, updated_at), so each of the
nine source/target pairs validates as written; the user then points it at real data.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

SOURCES = {
    "mysql": """\
source:
  type: mysql
  connection: mysql_default         # an Airflow connection id (AIRFLOW_CONN_MYSQL_DEFAULT outside Airflow)
  table: {name}                     # or query: "SELECT ..." (then no columns / where / split_pk)
  columns: [id, name, city, amount, updated_at]   # default: every column
  # where: "updated_at >= '2024-01-01'"
  split_pk: id                      # an integer column: one key range per channel
  # incremental: {{column: updated_at, lookback: 5m}}   # only rows at or above the last run's maximum
""",
    "kafka": """\
source:
  type: kafka
  connection: kafka_default         # {{"conn_type": "kafka", "extra": {{"bootstrap.servers": "host:9092"}}}}
  topic: {name}
  start: earliest                   # where a new consumer group starts; offsets are committed at publish
  format: json                      # json | csv | raw
  schema: {{id: long, name: string, city: string, amount: "decimal(10,2)", updated_at: timestamp}}
""",
    "logs": """\
source:
  type: logs
  path: /var/log/{name}/*.log.gz    # a glob or folder; plain and gzip files
  format: json                      # json | regex (with pattern) | csv (with delimiter, header)
  schema: {{id: long, name: string, city: string, amount: "decimal(10,2)", updated_at: timestamp}}
  incremental: true                 # skip files already synced (recorded at publish)
""",
}

TARGETS = {
    "redis": """\
target:
  type: redis
  connection: redis_default
  key: "{name}:{{id}}"                # a template over columns
  value: {{type: hash, fields: [name, city, amount, updated_at]}}   # hash | string (column) | json (fields)
  mode: upsert                      # upsert: in place; swap: a new version made live at publish (full reads only)
  # ttl: 7d
""",
    "hbase": """\
target:
  type: hbase
  connection: hbase_default         # hbase://thrift-host:9090 (HBase's Thrift server)
  table: {name}
  row_key: "{{id}}"
  columns: {{"cf:name": name, "cf:city": city, "cf:amount": amount}}   # or family: cf (every column)
  version_column: updated_at        # the cell timestamp (else the server's clock)
  create_table: true                # else a missing table fails the run
""",
    "druid": """\
target:
  type: druid
  connection: druid_default         # the router: http://host:8888
  datasource: {name}
  timestamp: {{column: updated_at, format: auto}}
  dimensions: [name, city]
  metrics: [{{type: count, name: rows}}, {{type: doubleSum, name: amount, field: amount}}]
  granularity: {{segment: day, query: none, rollup: false}}
  mode: {druid_mode:<28}# append: each run adds its rows | replace: the time chunks a run covers
""",
}

HEAD = """\
# {name}: {source} -> {target}. A starter written by `accelsync new`; every field is explained
# in the README (Spec reference). Check it with: accelsync validate {spec_path}
name: {name}
description: "{source} -> {target}: say what the data is and who reads it"
owner: data-team                    # the Airflow owner
business_line: default              # one Airflow pool (and queue) per business line
priority: medium                    # high | medium | low
schedule: "@hourly"                 # cron, an Airflow preset, or null (manual)
timeout: 30m                        # the whole run's budget
retries: 2                          # retried only when a service was unavailable

"""

TAIL = """
speed:
  channels: 2                       # parallel read/write tasks (DataX channel)
  records_per_second: 0             # 0: unlimited
error_limit:
  records: 0                        # fail on more dirty records than this (DataX errorLimit.record)
  # percentage: 0.01                # or on a dirty share above 1%
quality:
  suite: {suite_path}
  reconcile: {{tolerance: 0}}         # rows in the target must match rows read - dirty - filtered
  readback: {{sample: 200}}           # rows read back from the target and compared field by field
"""


def suite(name: str) -> dict:
    return {"name": name, "meta": {"notes": f"Starter suite of {name}, written by `accelsync new`."},
            "expectations": [
                {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1},
                 "meta": {"why": "an empty run usually means the source read failed"}},
                {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
                {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"},
                 "meta": {"why": "the key: duplicates would overwrite each other"}},
                {"type": "expect_column_values_to_be_between",
                 "kwargs": {"column": "amount", "min_value": 0, "mostly": 0.99}},
            ]}


def starter(name: str, source: str, target: str, spec_path: str, suite_path: str) -> str:
    """The spec text of one source/target pair."""
    # Druid keeps every row it is given: an append target with a source that re-reads would count twice;
    # replace (the time chunks a run covers) suits a source read in full, append a stream.
    mode = "append" if source in ("kafka", "logs") else "replace"
    return (HEAD.format(name=name, source=source, target=target, spec_path=spec_path)
            + SOURCES[source].format(name=name) + "\n"
            + TARGETS[target].format(name=name, druid_mode=mode)
            + TAIL.format(suite_path=suite_path))


def write_starter(name: str, source: str, target: str, folder: str = ".") -> list[Path]:
    """Write dags/syncs/NAME.yaml and expectations/NAME.json under `folder`; never overwrite."""
    if not re.match(r"^[a-z][a-z0-9_]*$", name):
        raise ValueError(f"{name!r} is not a sync name: lower-case letters, digits and _, starting with a letter")
    if source not in SOURCES or target not in TARGETS:
        raise ValueError(f"choose --source from {sorted(SOURCES)} and --target from {sorted(TARGETS)}")
    root = Path(folder)
    spec_path = root / "dags" / "syncs" / f"{name}.yaml"
    suite_path = root / "expectations" / f"{name}.json"
    for path in (spec_path, suite_path):
        if path.exists():
            raise FileExistsError(f"{path} exists; choose another name or remove it")
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    suite_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(starter(name, source, target, str(spec_path), f"expectations/{name}.json"),
                         encoding="utf-8")
    suite_path.write_text(json.dumps(suite(name), indent=2) + "\n", encoding="utf-8")
    return [spec_path, suite_path]
