"""MySQL (and log files) -> Druid through the whole pipeline, against the devstack's Apache Druid:
exact rows and rollups read back with Druid SQL through the router, idempotent replace, nothing
visible before publish, a FAILED task and a timed-out task failing the run with Druid's words."""

from __future__ import annotations

import json
import os
from datetime import datetime
from decimal import Decimal

import pytest
from ports import free_port

from accelsync import pipeline
from accelsync.engine.dirty import read_dirty
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




@pytest.fixture(scope="module", autouse=True)
def druid_connection(druid_server):
    """`test_druid` is the devstack Druid's router; `test_druid_inline` too, sending rows inline."""
    conn = {"conn_type": "druid", "host": druid_server.address.split(":")[0],
            "port": int(druid_server.address.split(":")[1]), "schema": "http"}
    os.environ["AIRFLOW_CONN_TEST_DRUID"] = json.dumps(conn)
    # The rows sent inside the task, for a Druid that cannot read the run folder.
    os.environ["AIRFLOW_CONN_TEST_DRUID_INLINE"] = json.dumps(dict(conn, extra={"input_source": "inline"}))


@pytest.fixture()
def orders(mysql):
    cursor = mysql.cursor()
    cursor.execute(ORDERS_TABLE)
    cursor.executemany("INSERT INTO orders VALUES (%s, %s, %s, %s, %s, %s, %s)", ORDERS)
    return cursor


def make_spec(name: str, datasource: str, connection: str = "test_druid", timeout: str = "10m",
              error_limit: dict | None = None, quality: dict | None = None, **target) -> object:
    return parse_spec({
        "name": name,
        "source": {"type": "mysql", "connection": "test_mysql", "table": "orders", "split_pk": "id"},
        "target": {"type": "druid", "connection": connection, "datasource": datasource,
                   "timestamp": {"column": "ts"}, "dimensions": ["city", "channel", "store"],
                   "metrics": [{"type": "count", "name": "rows"}, {"type": "longSum", "name": "qty", "field": "qty"},
                               {"type": "doubleSum", "name": "amount", "field": "amount"}],
                   "granularity": {"segment": "day", "query": "none", "rollup": False}, **target},
        "speed": {"channels": 2},
        "error_limit": error_limit or {"records": 1},
        "quality": quality or {},
        "timeout": timeout,
    })


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def by_time_and(rows: list[dict], column: str) -> list[dict]:
    """Rows in (__time, column) order: Druid SQL orders a plain scan by __time only."""
    return sorted(rows, key=lambda r: (r["__time"], r[column]))


def expected_rows(rows) -> list[dict]:
    return sorted(({"__time": iso(ts), "city": city, "channel": channel, "store": store, "rows": 1, "qty": qty,
                    "amount": float(amount)} for _, ts, city, channel, store, qty, amount in rows if ts),
                  key=lambda r: (r["__time"], r["store"]))


def test_mysql_rows_land_exactly_and_a_replace_rerun_converges(spark, orders, druid, druid_datasource, run_id):
    datasource = druid_datasource("orders_exact")
    spec = make_spec("orders_to_druid", datasource)

    summary = pipeline.run(spec, run_id)

    assert summary["status"] == "published", summary["reason"]
    assert (summary["read"], summary["written"], summary["dirty"]) == (7, 6, 1)
    [dirty] = read_dirty(RunDir(spec.name, run_id).path / "dirty")
    assert dirty["reason"] == "timestamp column 'ts' is NULL" and dirty["record"]["id"] == 7
    gate = {c["name"]: c for c in summary["gate"]["checks"]}
    assert gate["reconcile"]["passed"] and gate["readback"]["passed"], gate
    assert by_time_and(druid.sql(f'SELECT * FROM "{datasource}"'), "store") == expected_rows(ORDERS)
    druid.wait_gone(f"{datasource}__accelsync_")  # staging dropped at publish

    # The source changes inside the same days: a rerun replaces those days, no duplicates, no loss.
    orders.execute("UPDATE orders SET qty = 99, city = 'Lyon' WHERE id = 2")
    orders.execute("DELETE FROM orders WHERE id = 6")
    orders.execute("INSERT INTO orders VALUES (8, '2024-03-02 12:00:00', 'Oslo', 'app', 4, 1, 2.00)")
    assert pipeline.run(spec, run_id + "b")["status"] == "published"

    cursor = orders
    cursor.execute("SELECT * FROM orders ORDER BY id")
    assert by_time_and(druid.sql(f'SELECT * FROM "{datasource}"'), "store") == expected_rows(cursor.fetchall())
    publish = RunDir(spec.name, run_id + "b").read_json("published.json")["target"]
    assert publish["intervals"] == ["2024-03-01T00:00:00.000Z/2024-03-03T00:00:00.000Z"]


def test_rollup_is_exact_and_nothing_is_visible_before_publish(spark, orders, druid, druid_datasource, run_id):
    datasource = druid_datasource("orders_hourly")
    spec = make_spec("orders_rollup", datasource,
                     metrics=[{"type": "count", "name": "rows"}, {"type": "longSum", "name": "qty", "field": "qty"},
                              {"type": "doubleSum", "name": "amount", "field": "amount"},
                              {"type": "longMax", "name": "max_qty", "field": "qty"},
                              {"type": "doubleMin", "name": "min_amount", "field": "amount"}],
                     dimensions=["channel"], granularity={"segment": "day", "query": "hour", "rollup": True})

    pipeline.stage_sync(spec, run_id)
    staging = f"{datasource}__accelsync_{run_id}"
    assert datasource not in druid.datasources() and staging in druid.datasources()
    pipeline.stage_gate(spec, run_id)
    assert datasource not in druid.datasources()
    assert druid.call("POST", "/druid/v2/sql", {"query": f"SELECT * FROM {datasource}"})[0] == 400
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
    rows = by_time_and(druid.sql(f"SELECT * FROM {datasource}"), "channel")
    assert [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items()} for r in rows] == \
        [{k: (round(v, 6) if isinstance(v, float) else v) for k, v in expected[key].items()}
         for key in sorted(expected)]
    druid.wait_gone(staging)
    verdict = RunDir(spec.name, run_id).read_json("gate.json")
    assert all(c["passed"] for c in verdict["checks"]), verdict


def test_failed_task_fails_the_run_with_druids_message(spark, mysql, druid, druid_datasource, run_id):
    cursor = mysql.cursor()
    cursor.execute("CREATE TABLE orders (id INT PRIMARY KEY, ts DATETIME, city VARCHAR(10), channel VARCHAR(5), "
                   "store INT, qty VARCHAR(10), amount DOUBLE)")
    cursor.executemany("INSERT INTO orders VALUES (%s, %s, 'Paris', 'web', 1, %s, 1.0)",
                       [(1, datetime(2024, 3, 1), "3"), (2, datetime(2024, 3, 1, 1), "n/a")])
    datasource = druid_datasource("orders_failing")
    spec = make_spec("orders_failing", datasource)

    summary = pipeline.run(spec, run_id)

    assert summary["status"] == "failed"
    task = summary["reason"].split()[3]
    assert task.startswith(f"index_parallel_{datasource}__accelsync_{run_id}_")
    assert summary["reason"] == (f"Druid staging task {task} FAILED: org.apache.druid.java.util.common.RE: Max "
                                 f"parse exceptions[0] exceeded; parse errors: Unable to parse value[n/a] for "
                                 f"field[qty]")
    assert not RunDir(spec.name, run_id).exists("published.json")
    druid.wait_removed(f"{datasource}__accelsync_{run_id}")
    assert datasource not in druid.all_datasources()


def test_task_past_the_timeout_is_shut_down_and_the_run_fails(spark, orders, druid, druid_datasource, run_id):
    """Every indexer slot is busy with a `noop` task, so the staging task waits for a slot past
    the spec's timeout: the run shuts it down and fails with reason timeout."""
    datasource = druid_datasource("orders_slow")
    spec = make_spec("orders_slow", datasource, timeout="45s")

    blockers = druid.fill_workers()
    try:
        summary = pipeline.run(spec, run_id)
    finally:
        druid.shutdown(blockers)

    assert summary["status"] == "failed"
    reason = summary["reason"]
    assert reason.startswith("timeout: Druid staging task ") and "it was shut down" in reason, reason
    task_id = reason.split("task ")[1].split(" ")[0]
    status = druid.task_status(task_id)
    assert status["status"] == "FAILED" and status["errorMsg"] == "Shutdown request from user"
    druid.wait_removed(f"{datasource}__accelsync_{run_id}")
    assert datasource not in druid.all_datasources()
    assert not RunDir(spec.name, run_id).exists("published.json")


ACCESS_PATTERN = (r'^(?P<ip>\S+) \S+ \S+ \[(?P<ts>[^\]]+)\] "(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" '
                  r'(?P<status>\d{3}) (?:(?P<bytes>\d+)|-)')


def test_access_logs_roll_up_into_druid(spark, services, druid, druid_datasource, tmp_path, run_id):
    datasource = druid_datasource("access")
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
        "target": {"type": "druid", "connection": "test_druid_inline", "datasource": datasource,
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
    assert by_time_and(druid.sql(f"SELECT * FROM {datasource}"), "path") == [
        {"__time": "2023-10-10T20:00:00.000Z", "path": "/cart", "status": 500, "hits": 1, "bytes": None},
        {"__time": "2023-10-10T20:00:00.000Z", "path": "/home", "status": 200, "hits": 2, "bytes": 2426},
        {"__time": "2023-10-10T21:00:00.000Z", "path": "/home", "status": 200, "hits": 1, "bytes": 50},
    ]


def test_unreachable_druid_is_a_transient_error(services, monkeypatch):
    from accelsync.errors import TransientError
    from accelsync.registry import target_class

    monkeypatch.setenv("AIRFLOW_CONN_TEST_DRUID_DOWN", json.dumps(
        {"conn_type": "druid", "host": "127.0.0.1", "port": free_port(), "schema": "http"}))
    spec = make_spec("orders_unreachable", "orders_unreachable", connection="test_druid_down")

    with pytest.raises(TransientError, match=r"Druid at druid://127\.0\.0\.1:\d+ is unavailable"):
        target_class("druid")(spec).prepare("test-unreachable")


# ---------------------------------------------------------------- what a run may remove

@pytest.mark.parametrize("connection", ["test_druid", "test_druid_inline"])
def test_full_read_replace_empties_days_that_lost_every_row_and_an_empty_read_empties_all(
        spark, orders, druid, druid_datasource, run_id, connection):
    """Replace means "the datasource holds exactly what the source holds": a day whose rows
    were all deleted is emptied too, and a source with no row left empties the datasource
    (with the rows read from the run folder, and sent inline)."""
    datasource = druid_datasource("orders_days")
    spec = make_spec("orders_days", datasource, connection=connection)
    assert spec.target.mode == "replace"  # the default for a full read
    assert pipeline.run(spec, run_id)["status"] == "published"
    day_two = f"SELECT COUNT(*) AS n FROM \"{datasource}\" WHERE __time >= TIMESTAMP '2024-03-02 00:00:00'"
    assert druid.sql(day_two) == [{"n": 2}]

    orders.execute("DELETE FROM orders WHERE ts >= '2024-03-02' OR ts IS NULL")  # 2 March lost every row
    summary = pipeline.run(spec, run_id + "b")
    assert summary["status"] == "published", summary["reason"]
    assert druid.sql(day_two) == [{"n": 0}]
    orders.execute("SELECT * FROM orders ORDER BY id")
    assert by_time_and(druid.sql(f'SELECT * FROM "{datasource}"'), "store") == expected_rows(orders.fetchall())
    publish = RunDir(spec.name, run_id + "b").read_json("published.json")["target"]
    assert publish["intervals"] == ["2024-03-01T00:00:00.000Z/2024-03-03T00:00:00.000Z"]  # both days replaced

    orders.execute("DELETE FROM orders")
    summary = pipeline.run(spec, run_id + "c")
    assert (summary["status"], summary["read"]) == ("published", 0), summary["reason"]
    assert druid.sql(f'SELECT COUNT(*) AS n FROM "{datasource}"') == [{"n": 0}]


def hourly_lines(count: int, city: str, hour: int) -> str:
    return "".join(json.dumps({"ts": f"2026-11-30T{hour:02d}:{i // 60:02d}:{i % 60:02d}Z", "city": city,
                               "amount": i}) + "\n" for i in range(count))


def test_incremental_logs_append_and_no_run_removes_what_an_earlier_run_published(
        spark, services, druid, druid_datasource, tmp_path, run_id):
    """The issue's case: h10.log (100 rows, city A) then h11.log (50 rows, city B), same day,
    synced incrementally: Druid ends with all 150 rows."""
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "h10.log").write_text(hourly_lines(100, "A", 10))
    datasource = druid_datasource("hits")
    spec = parse_spec({
        "name": "hits_to_druid",
        "source": {"type": "logs", "path": str(folder), "format": "json", "incremental": True,
                   "schema": {"ts": "timestamp", "city": "string", "amount": "long"}},
        "target": {"type": "druid", "connection": "test_druid", "datasource": datasource,
                   "timestamp": {"column": "ts"}, "dimensions": ["city"],
                   "metrics": [{"type": "count", "name": "rows"}, {"type": "longSum", "name": "amount", "field": "amount"}],
                   "granularity": {"segment": "day", "query": "none", "rollup": False}},
    })
    assert spec.target.mode == "append"  # the default for a delta source
    by_city = f'SELECT city, COUNT(*) AS n, SUM(amount) AS amount FROM "{datasource}" GROUP BY city ORDER BY city'

    assert pipeline.run(spec, run_id)["written"] == 100
    (folder / "h11.log").write_text(hourly_lines(50, "B", 11))
    summary = pipeline.run(spec, run_id + "b")
    assert (summary["status"], summary["read"]) == ("published", 50), summary["reason"]
    assert druid.sql(by_city) == [{"city": "A", "n": 100, "amount": sum(range(100))},
                                  {"city": "B", "n": 50, "amount": sum(range(50))}]
    assert RunDir(spec.name, run_id + "b").read_json("published.json")["target"]["mode"] == "append"

    summary = pipeline.run(spec, run_id + "c")  # nothing new: nothing appended, nothing removed
    assert (summary["status"], summary["read"]) == ("published", 0), summary["reason"]
    assert druid.sql(by_city)[0]["n"] == 100 and druid.sql(by_city)[1]["n"] == 50


# ---------------------------------------------------------------- nothing staged outlives a failed run

def test_error_limit_failure_removes_the_staging_datasource(spark, orders, druid, druid_datasource, run_id):
    datasource = druid_datasource("orders_limit")
    # A share of the rows alone: checked once the whole run is staged (a count fails the write task
    # early, and so would a share of a source that knows its size at plan time, as Kafka does).
    spec = make_spec("orders_limit", datasource, error_limit={"percentage": 0.1})

    summary = pipeline.run(spec, run_id)

    assert summary["status"] == "failed"
    assert summary["reason"].startswith("1 dirty records of 7 read (14.2857%) exceed error_limit (percentage: 0.1)")
    context = RunDir(spec.name, run_id).read_json("context.json")
    assert druid.task_status(context["staging_task"])["status"] == "SUCCESS"  # it was staged, then removed
    druid.wait_removed(f"{datasource}__accelsync_{run_id}")
    assert datasource not in druid.all_datasources()


def test_an_error_after_staging_removes_the_staging_datasource(spark, orders, druid, druid_datasource, run_id,
                                                                monkeypatch):
    """The staging task succeeded, then the broker stopped answering: the run fails with that
    error and still removes what it staged."""
    from accelsync.errors import TransientError
    from accelsync.targets.druid.client import DruidClient

    def broker_gone(self, query):
        raise TransientError("Druid at druid://127.0.0.1 is unavailable: broker gone")

    monkeypatch.setattr(DruidClient, "sql_if_known", broker_gone)
    datasource = druid_datasource("orders_broken")
    spec = make_spec("orders_broken", datasource)

    summary = pipeline.run(spec, run_id)

    assert (summary["status"], summary["reason"]) == ("failed", "Druid at druid://127.0.0.1 is unavailable: broker gone")
    tasks = druid.call("GET", "/druid/indexer/v1/tasks?state=complete&max=50")[1]
    [staged] = [t for t in tasks if t["dataSource"] == f"{datasource}__accelsync_{run_id}" and t["type"] == "index_parallel"]
    assert staged["status"] == "SUCCESS"
    druid.wait_removed(f"{datasource}__accelsync_{run_id}")


def test_failed_gate_removes_the_staging_datasource(spark, orders, druid, druid_datasource, run_id):
    datasource = druid_datasource("orders_stale")
    spec = make_spec("orders_stale", datasource, quality={"freshness": {"column": "ts", "max_lag": "1d"}})

    summary = pipeline.run(spec, run_id)

    assert summary["status"] == "failed" and summary["reason"].startswith("gate failed: freshness: "), summary
    context = RunDir(spec.name, run_id).read_json("context.json")
    assert druid.task_status(context["staging_task"])["status"] == "SUCCESS"
    druid.wait_removed(f"{datasource}__accelsync_{run_id}")
    assert datasource not in druid.all_datasources()
