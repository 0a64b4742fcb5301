"""`accelsync demo` end to end, as a user runs it: a subprocess with its own ACCELSYNC_HOME.

It loads the demo tables into the `accelsync` database, produces the demo events into Kafka,
writes the demo access logs, and fills the devstack Redis (`user:*`, `order:*`), HBase
(`demo_events`, `datax_users`) and Druid (`demo_access_logs`): that is the demo's product, so
it is left in place. Every source (MySQL, Kafka, log files) and every target (Redis, HBase,
Druid) runs, and so does the DataX job file examples/datax/users_to_hbase.json.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from accelsync.dev.demo import expected_keys, user_row

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ROWS = 500


def test_demo_runs_every_dag_and_fills_every_target(tmp_path, kafka_server, hbase_server, druid_server,
                                                    hbase_rest):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AIRFLOW") and k not in ("ACCELSYNC_SPECS", "ACCELSYNC_HOME")}
    env["ACCELSYNC_HOME"] = str(tmp_path / "home")
    done = subprocess.run([sys.executable, "-m", "accelsync.cli", "demo", "--rows", str(ROWS)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    log = tmp_path / "home" / "demo.log"
    assert done.returncode == 0, (done.stdout[-4000:], done.stderr[-4000:],
                                  log.read_text(errors="replace")[-6000:] if log.exists() else "")
    out = done.stdout
    assert "accelsync job summary: users_to_redis (mysql -> redis)" in out
    assert "accelsync job summary: orders_to_redis (mysql -> redis)" in out
    assert "accelsync job summary: events_to_hbase (kafka -> hbase)" in out
    assert "accelsync job summary: access_logs_to_druid (logs -> druid)" in out
    assert "accelsync job summary: users_to_hbase (mysql -> hbase)" in out  # the DataX job
    lines = out.splitlines()
    for dag_id in ("users_to_redis", "orders_to_redis", "events_to_hbase", "access_logs_to_druid"):
        assert any(line.startswith(dag_id) and " success " in line for line in lines), out
    assert f"events_to_hbase      hbase: {ROWS:,} of {ROWS:,} expected rows in demo_events" in lines
    assert f"access_logs_to_druid druid: {ROWS:,} of {ROWS:,} requests in demo_access_logs" in lines
    assert (f"users_to_hbase       published (DataX job examples/datax/users_to_hbase.json) hbase: {ROWS:,} of "
            f"{ROWS:,} expected rows in datax_users") in lines
    # where to look: the report pages, each gated run's Data Docs page, a line per target
    where = lines[lines.index("== where to look"):]
    assert any("http://localhost:8080/accelsync/" in line for line in where)
    docs = [line.split(": ", 1)[1] for line in where if line.startswith("  ") and ".html" in line]
    assert len(docs) == 4 and all(Path(page).is_file() for page in docs), where
    assert "  redis-cli -p 6379 HGETALL user:7" in where
    assert any("table('demo_events')" in line for line in where)
    assert any("/druid/v2/sql" in line and "demo_access_logs" in line for line in where)
    assert "demo succeeded" in lines

    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=0)
    try:
        keys = expected_keys(ROWS)
        users, _ = keys["users_to_redis"]
        orders, cancelled = keys["orders_to_redis"]
        assert client.exists(*users) == ROWS
        assert client.exists(*orders) == len(orders) and 0 < len(orders) < 2 * ROWS
        assert client.exists(*cancelled) == 0
        user_id, name, city, score, updated_at = user_row(7)
        assert client.hgetall("user:7") == {b"name": name.encode(), b"city": city.encode(),
                                            b"score": f"{score:.2f}".encode(),
                                            b"updated_at": updated_at.strftime("%Y-%m-%d %H:%M:%S").encode()}
        assert client.ttl(orders[0]) > 6 * 86400
    finally:
        client.close()

    # HBase through its REST server: a Kafka event's cells stamped with the event time, and a row
    # of the DataX job (row key "user_" + id, versionColumn updated_at)
    from accelsync.dev.demo_data import event

    item = event(7, ROWS)
    stamp = int(datetime.strptime(item["ts"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp() * 1000)
    key = f"{item['user_id']}_{item['event_id']}".encode()
    assert hbase_rest.cells("demo_events")[key] == {b"e:kind": [(item["kind"].encode(), stamp)],
                                                    b"e:amount": [(item["amount"].encode(), stamp)]}
    row = hbase_rest.cells("datax_users")[b"user_7"]
    updated = int(updated_at.replace(tzinfo=timezone.utc).timestamp() * 1000)
    assert {cell: versions[0] for cell, versions in row.items()} == {
        b"cf:name": (name.encode(), updated), b"cf:city": (city.encode(), updated),
        b"cf:score": (f"{score:.2f}".encode(), updated)}
