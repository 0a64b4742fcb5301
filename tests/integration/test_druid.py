"""MySQL (and log files) -> Druid through the whole pipeline, against the Druid emulator: exact
rows and rollups read back with Druid SQL, idempotent replace, nothing visible before publish, a
FAILED task and a timed-out task failing the run with Druid's words."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from datetime import datetime
from decimal import Decimal

import pytest
from ports import free_port

from accelsync import pipeline
from accelsync.devstack.druid import DruidEmulator
from accelsync.dirty import read_dirty
from accelsync.runs import RunDir
from accelsync.spec import parse_spec

pytestmark = pytest.mark.integration

ORDERS_TABLE = """
CREATE TABLE orders (
  id INT PRIMARY KEY, ts DATETIME(3) NULL, city VARCHAR(30), channel VARCHAR(10), store INT,
  qty INT, amount DECIMAL(10,2)
) DEFAULT CHARSET utf8mb4
"""
ORDERS = [
    (1, datetime(2024, 3, 1, 9, 15, 0, 250000), "Paris", "web", 12, 2, Decimal("12.50")),
    (2, datetime(2024, 3, 1, 9, 45, 0), "Paris", "web", 12, 3, Decimal("7.25")),
    (3, datetime(2024, 3, 1, 10, 5, 0), "São Paulo", "app", 7, 1, Decimal("100.00")),
    (4, datetime(2024, 3, 1, 10, 6, 0), None, "app", 7, 4, Decimal("-0.05")),
    (5, datetime(2024, 3, 2, 23, 59, 59, 999000), "Zürich \"HQ\"", "store", 3, 10, Decimal("1.10")),
    (6, datetime(2024, 3, 2, 8, 0, 0), "Paris", "web", 12, 5, Decimal("3.00")),
    (7, None, "Nowhere", "web", 1, 1, Decimal("1.00")),          # no event time: a dirty record
]




@pytest.fixture(scope="module")
def druid(tmp_path_factory):
    """A private emulator; `test_druid` points at it, `test_druid_slow` adds a 2-minute task delay."""
    service = DruidEmulator(port=free_port(), home=tmp_path_factory.mktemp("druid"))
    service.up()
    conn = {"conn_type": "druid", "host": "127.0.0.1", "port": service.port, "schema": "http"}
    os.environ["AIRFLOW_CONN_TEST_DRUID"] = json.dumps(conn)
    os.environ["AIRFLOW_CONN_TEST_DRUID_SLOW"] = json.dumps(
        dict(conn, extra={"task_context": {"emulatorDelaySeconds": 120}, "poll_seconds": 0.2}))
    yield Api(service.port)
    service.down()


class Api:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, body=None):
        request = urllib.request.Request(self.base + path, method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                raw = reply.read()
                return reply.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def sql(self, query: str) -> list[dict]:
        status, body = self.call("POST", "/druid/v2/sql", {"query": query})
        assert status == 200, body
        return body

    def datasources(self) -> list[str]:
        return self.call("GET", "/druid/coordinator/v1/datasources")[1]

    def tasks(self) -> list[dict]:
        return self.call("GET", "/druid/indexer/v1/tasks")[1]


@pytest.fixture()
def orders(mysql):
    cursor = mysql.cursor()
    cursor.execute(ORDERS_TABLE)
    cursor.executemany("INSERT INTO orders VALUES (%s, %s, %s, %s, %s, %s, %s)", ORDERS)
    return cursor


def make_spec(name: str, datasource: str, connection: str = "test_druid", timeout: str = "10m", **target) -> object:
    return parse_spec({
        "name": name,
        "source": {"type": "mysql", "connection": "test_mysql", "table": "orders", "split_pk": "id"},
        "target": {"type": "druid", "connection": connection, "datasource": datasource,
                   "timestamp": {"column": "ts"}, "dimensions": ["city", "channel", "store"],
                   "metrics": [{"type": "count", "name": "rows"}, {"type": "longSum", "name": "qty", "field": "qty"},
                               {"type": "doubleSum", "name": "amount", "field": "amount"}],
                   "granularity": {"segment": "day", "query": "none", "rollup": False}, **target},
        "speed": {"channels": 2},
        "error_limit": {"records": 1},
        "timeout": timeout,
    })


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def expected_rows(rows) -> list[dict]:
    return sorted(({"__time": iso(ts), "city": city, "channel": channel, "store": store, "rows": 1, "qty": qty,
                    "amount": float(amount)} for _, ts, city, channel, store, qty, amount in rows if ts),
                  key=lambda r: (r["__time"], r["store"]))


def test_mysql_rows_land_exactly_and_a_replace_rerun_converges(spark, orders, druid, run_id):
    spec = make_spec("orders_to_druid", "orders_exact")

    summary = pipeline.run(spec, run_id)

    assert summary["status"] == "published", summary["reason"]
    assert (summary["read"], summary["written"], summary["dirty"]) == (7, 6, 1)
    [dirty] = read_dirty(RunDir(spec.name, run_id).path / "dirty")
    assert dirty["reason"] == "timestamp column 'ts' is NULL" and dirty["record"]["id"] == 7
    gate = {c["name"]: c for c in summary["gate"]["checks"]}
    assert gate["reconcile"]["passed"] and gate["readback"]["passed"], gate
    rows = druid.sql('SELECT * FROM "orders_exact" ORDER BY __time, store')
    assert rows == expected_rows(ORDERS)
    assert not any("__accelsync" in name for name in druid.datasources())  # staging dropped at publish

    # The source changes inside the same days: a rerun replaces those days, no duplicates, no loss.
    orders.execute("UPDATE orders SET qty = 99, city = 'Lyon' WHERE id = 2")
    orders.execute("DELETE FROM orders WHERE id = 6")
    orders.execute("INSERT INTO orders VALUES (8, '2024-03-02 12:00:00', 'Oslo', 'app', 4, 1, 2.00)")
    assert pipeline.run(spec, run_id + "b")["status"] == "published"

    cursor = orders
    cursor.execute("SELECT * FROM orders ORDER BY id")
    assert druid.sql('SELECT * FROM "orders_exact" ORDER BY __time, store') == expected_rows(cursor.fetchall())
    publish = RunDir(spec.name, run_id + "b").read_json("published.json")["target"]
    assert publish["intervals"] == ["2024-03-01T00:00:00.000Z/2024-03-03T00:00:00.000Z"]


def test_rollup_is_exact_and_nothing_is_visible_before_publish(spark, orders, druid, run_id):
    spec = make_spec("orders_rollup", "orders_hourly",
                     metrics=[{"type": "count", "name": "rows"}, {"type": "longSum", "name": "qty", "field": "qty"},
                              {"type": "doubleSum", "name": "amount", "field": "amount"},
                              {"type": "longMax", "name": "max_qty", "field": "qty"},
                              {"type": "doubleMin", "name": "min_amount", "field": "amount"}],
                     dimensions=["channel"], granularity={"segment": "day", "query": "hour", "rollup": True})

    pipeline.stage_sync(spec, run_id)
    staging = f"orders_hourly__accelsync_{run_id}"
    assert "orders_hourly" not in druid.datasources() and staging in druid.datasources()
    pipeline.stage_gate(spec, run_id)
    assert "orders_hourly" not in druid.datasources()
    assert druid.call("POST", "/druid/v2/sql", {"query": "SELECT * FROM orders_hourly"})[0] == 400
    pipeline.stage_publish(spec, run_id)

    expected: dict[tuple, dict] = {}
    for _, ts, _, channel, _, qty, amount in ORDERS:
        if ts is None:
            continue
        hour = iso(ts.replace(minute=0, second=0, microsecond=0))
        group = expected.setdefault((hour, channel), {"__time": hour, "channel": channel, "rows": 0, "qty": 0,
                                                     "amount": 0.0, "max_qty": None, "min_amount": None})
        group["rows"] += 1
        group["qty"] += qty
        group["amount"] += float(amount)
        group["max_qty"] = qty if group["max_qty"] is None else max(group["max_qty"], qty)
        group["min_amount"] = float(amount) if group["min_amount"] is None else min(group["min_amount"], float(amount))
    rows = druid.sql("SELECT * FROM orders_hourly ORDER BY __time, channel")
    assert [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()} for r in rows] == \
        [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in expected[key].items()}
         for key in sorted(expected)]
    assert staging not in druid.datasources()
    verdict = RunDir(spec.name, run_id).read_json("gate.json")
    assert all(c["passed"] for c in verdict["checks"]), verdict


def test_failed_task_fails_the_run_with_druids_message(spark, mysql, druid, run_id):
    cursor = mysql.cursor()
    cursor.execute("CREATE TABLE orders (id INT PRIMARY KEY, ts DATETIME, city VARCHAR(10), channel VARCHAR(5), "
                   "store INT, qty VARCHAR(10), amount DOUBLE)")
    cursor.executemany("INSERT INTO orders VALUES (%s, %s, 'Paris', 'web', 1, %s, 1.0)",
                       [(1, datetime(2024, 3, 1), "3"), (2, datetime(2024, 3, 1, 1), "n/a")])
    spec = make_spec("orders_failing", "orders_failing")

    summary = pipeline.run(spec, run_id)

    assert summary["status"] == "failed"
    assert summary["reason"].startswith("Druid staging task index_parallel_orders_failing__accelsync_")
    assert "FAILED: org.apache.druid.java.util.common.RE: Max parse exceptions[0] exceeded" in summary["reason"]
    assert "Unable to parse value[n/a] for field[qty]" in summary["reason"]
    assert not RunDir(spec.name, run_id).exists("published.json")
    assert not any(name.startswith("orders_failing") for name in druid.datasources())


def test_slow_task_past_the_timeout_is_shut_down_and_the_run_fails(spark, orders, druid, run_id):
    spec = make_spec("orders_slow", "orders_slow", connection="test_druid_slow", timeout="45s")

    summary = pipeline.run(spec, run_id)

    assert summary["status"] == "failed"
    reason = summary["reason"]
    assert reason.startswith("timeout: Druid staging task ") and "it was shut down" in reason, reason
    task_id = reason.split("task ")[1].split(" ")[0]
    status = druid.call("GET", f"/druid/indexer/v1/task/{task_id}/status")[1]["status"]
    assert status["status"] == "FAILED" and status["errorMsg"] == "Shutdown request from user"
    assert not any(name.startswith("orders_slow") for name in druid.datasources())
    assert not RunDir(spec.name, run_id).exists("published.json")


ACCESS_PATTERN = (r'^(?P<ip>\S+) \S+ \S+ \[(?P<ts>[^\]]+)\] "(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" '
                  r'(?P<status>\d{3}) (?:(?P<bytes>\d+)|-)')


def test_access_logs_roll_up_into_druid(spark, services, druid, tmp_path, run_id):
    lines = [
        '10.0.0.1 - - [10/Oct/2023:13:55:36 -0700] "GET /home HTTP/1.1" 200 2326',
        '10.0.0.2 - - [10/Oct/2023:13:58:01 -0700] "GET /home HTTP/1.1" 200 100',
        '10.0.0.3 - - [10/Oct/2023:14:02:00 -0700] "GET /home HTTP/1.1" 200 50',
        '10.0.0.1 - - [10/Oct/2023:13:59:59 -0700] "POST /cart HTTP/1.1" 500 -',
        '10.0.0.9 - - [yesterday] "GET /home HTTP/1.1" 200 1',
    ]
    (tmp_path / "access.log").write_text("\n".join(lines) + "\n")
    spec = parse_spec({
        "name": "access_to_druid",
        "source": {"type": "logs", "path": str(tmp_path / "access.log"), "format": "regex",
                   "pattern": ACCESS_PATTERN, "schema": {"status": "int", "bytes": "long"}},
        "target": {"type": "druid", "connection": "test_druid", "datasource": "access",
                   "timestamp": {"column": "ts", "format": "dd/MMM/yyyy:HH:mm:ss Z"},
                   "dimensions": ["path", "status"],
                   "metrics": [{"type": "count", "name": "hits"}, {"type": "longSum", "name": "bytes", "field": "bytes"}],
                   "granularity": {"segment": "day", "query": "hour", "rollup": True}},
        "error_limit": {"records": 1},
    })

    summary = pipeline.run(spec, run_id)

    assert summary["status"] == "published", summary["reason"]
    assert (summary["written"], summary["dirty"]) == (4, 1)
    assert summary["dirty_reasons"] == {"timestamp does not parse": 1}
    assert druid.sql("SELECT * FROM access ORDER BY __time, path") == [
        {"__time": "2023-10-10T20:00:00.000Z", "path": "/cart", "status": 500, "hits": 1, "bytes": None},
        {"__time": "2023-10-10T20:00:00.000Z", "path": "/home", "status": 200, "hits": 2, "bytes": 2426},
        {"__time": "2023-10-10T21:00:00.000Z", "path": "/home", "status": 200, "hits": 1, "bytes": 50},
    ]


def test_unreachable_druid_is_a_transient_error(services, monkeypatch):
    from accelsync.errors import TransientError
    from accelsync.registry import sink_class

    monkeypatch.setenv("AIRFLOW_CONN_TEST_DRUID_DOWN", json.dumps(
        {"conn_type": "druid", "host": "127.0.0.1", "port": free_port(), "schema": "http"}))
    spec = make_spec("orders_unreachable", "orders_unreachable", connection="test_druid_down")

    with pytest.raises(TransientError, match=r"Druid at druid://127\.0\.0\.1:\d+ is unavailable"):
        sink_class("druid")(spec).prepare("test-unreachable")
