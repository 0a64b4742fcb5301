"""The Druid emulator through its HTTP API, started by its devstack Service on a free port: tasks
(inline and local input, json and csv), statuses, reports, SQL, rollup, replace vs append,
Druid's failures, and shutdown of a slow task."""

from __future__ import annotations

import gzip
import json
import time
import urllib.error
import urllib.request

import pytest
from ports import free_port

from accelsync.devstack.druid import DruidEmulator

pytestmark = pytest.mark.integration




class Druid:
    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"

    def call(self, method: str, path: str, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                raw = reply.read()
                return reply.status, (json.loads(raw) if raw and reply.headers.get_content_type() ==
                                      "application/json" else raw.decode())
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            return exc.code, json.loads(raw) if raw else None

    def submit(self, task: dict) -> str:
        status, body = self.call("POST", "/druid/indexer/v1/task", task)
        assert status == 200, body
        return body["task"]

    def status(self, task_id: str) -> dict:
        return self.call("GET", f"/druid/indexer/v1/task/{task_id}/status")[1]["status"]

    def wait(self, task_id: str, timeout: float = 30) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            status = self.status(task_id)
            if status["status"] != "RUNNING":
                return status
            assert time.monotonic() < deadline, f"task {task_id} still RUNNING"
            time.sleep(0.05)

    def run(self, task: dict) -> dict:
        return self.wait(self.submit(task))

    def sql(self, query: str, **extra):
        status, body = self.call("POST", "/druid/v2/sql", {"query": query, **extra})
        assert status == 200, body
        return body


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    home = tmp_path_factory.mktemp("druid_home")
    druid = DruidEmulator(port=free_port(), home=home)
    druid.up()
    yield druid
    druid.down()


@pytest.fixture()
def druid(service) -> Druid:
    return Druid(service.port)


def task(datasource: str, source: dict, *, fmt=None, dimensions=("city",), metrics=None, granularity=None,
         timestamp=None, append=False, tuning=None, context=None, **io) -> dict:
    return {
        "type": "index_parallel",
        "spec": {
            "dataSchema": {
                "dataSource": datasource,
                "timestampSpec": timestamp or {"column": "ts", "format": "iso"},
                "dimensionsSpec": {"dimensions": list(dimensions)},
                "metricsSpec": metrics if metrics is not None else [
                    {"type": "count", "name": "count"}, {"type": "longSum", "name": "qty", "fieldName": "qty"}],
                "granularitySpec": granularity or {"segmentGranularity": "day", "queryGranularity": "none",
                                                   "rollup": False},
            },
            "ioConfig": {"type": "index_parallel", "inputSource": source, "inputFormat": fmt or {"type": "json"},
                         "appendToExisting": append, **io},
            "tuningConfig": {"type": "index_parallel", **(tuning or {})},
        },
        **({"context": context} if context else {}),
    }


def inline(*rows: dict) -> dict:
    return {"type": "inline", "data": "\n".join(json.dumps(r) for r in rows)}


ORDERS = [
    {"ts": "2024-01-01T10:15:00Z", "city": "Paris", "qty": 2, "price": 1.5},
    {"ts": "2024-01-01T10:45:00Z", "city": "Paris", "qty": 3, "price": 2.25},
    {"ts": "2024-01-01T11:05:00Z", "city": "Lisbon", "qty": 1, "price": 10.0},
    {"ts": "2024-01-02T09:00:00Z", "city": "Paris", "qty": 7, "price": 0.5},
]


def test_health_status_and_connection(service, druid):
    assert service.check(2.0)
    assert druid.call("GET", "/status/health") == (200, True)
    assert "version" in druid.call("GET", "/status")[1]
    assert json.loads(service.connection()) == {"conn_type": "druid", "host": "127.0.0.1",
                                                "port": service.port, "schema": "http"}


def test_inline_json_rows_read_back_exactly_with_druid_time(druid):
    status = druid.run(task("orders_plain", inline(*ORDERS)))

    assert status["status"] == "SUCCESS" and status["statusCode"] == "SUCCESS"
    assert status["errorMsg"] is None and status["duration"] >= 0 and status["dataSource"] == "orders_plain"
    rows = druid.sql('SELECT __time, city, "count", qty FROM "orders_plain" ORDER BY __time')
    assert rows == [
        {"__time": "2024-01-01T10:15:00.000Z", "city": "Paris", "count": 1, "qty": 2},
        {"__time": "2024-01-01T10:45:00.000Z", "city": "Paris", "count": 1, "qty": 3},
        {"__time": "2024-01-01T11:05:00.000Z", "city": "Lisbon", "count": 1, "qty": 1},
        {"__time": "2024-01-02T09:00:00.000Z", "city": "Paris", "count": 1, "qty": 7},
    ]
    assert "orders_plain" in druid.call("GET", "/druid/coordinator/v1/datasources")[1]
    report = druid.call("GET", f"/druid/indexer/v1/task/{status['id']}/reports")[1]
    stats = report["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]
    assert (stats["processed"], stats["unparseable"], stats["thrownAway"]) == (4, 0, 0)


def test_rollup_by_query_granularity(druid):
    metrics = [{"type": "count", "name": "count"}, {"type": "longSum", "name": "qty", "fieldName": "qty"},
               {"type": "doubleSum", "name": "revenue", "fieldName": "price"},
               {"type": "doubleMin", "name": "min_price", "fieldName": "price"},
               {"type": "longMax", "name": "max_qty", "fieldName": "qty"}]
    status = druid.run(task("orders_hourly", inline(*ORDERS), metrics=metrics,
                            granularity={"segmentGranularity": "day", "queryGranularity": "hour", "rollup": True}))
    assert status["status"] == "SUCCESS", status

    rows = druid.sql("SELECT * FROM orders_hourly ORDER BY __time, city")
    assert rows == [
        {"__time": "2024-01-01T10:00:00.000Z", "city": "Paris", "count": 2, "qty": 5, "revenue": 3.75,
         "min_price": 1.5, "max_qty": 3},
        {"__time": "2024-01-01T11:00:00.000Z", "city": "Lisbon", "count": 1, "qty": 1, "revenue": 10.0,
         "min_price": 10.0, "max_qty": 1},
        {"__time": "2024-01-02T09:00:00.000Z", "city": "Paris", "count": 1, "qty": 7, "revenue": 0.5,
         "min_price": 0.5, "max_qty": 7},
    ]
    by_day = druid.sql("SELECT FLOOR(__time TO DAY) AS \"day\", SUM(\"count\") AS n, SUM(qty) AS q "
                       "FROM druid.orders_hourly GROUP BY 1 ORDER BY 1")
    assert by_day == [{"day": "2024-01-01T00:00:00.000Z", "n": 3, "q": 6},
                      {"day": "2024-01-02T00:00:00.000Z", "n": 1, "q": 7}]


def test_local_csv_with_header_gzip_and_typed_dimensions(druid, tmp_path):
    folder = tmp_path / "csv"
    (folder / "nested").mkdir(parents=True)
    (folder / "a.csv").write_text("ts,city,store,score,qty\n1704103200000,Paris,12,0.5,4\n"
                                  "1704106800000,,13,,1\n")
    with gzip.open(folder / "nested" / "b.csv.gz", "wt") as handle:
        handle.write("ts,city,store,score,qty\n1704189600000,Lisbon,12,2.5,6\n")
    (folder / "ignored.txt").write_text("not,matched\n")
    dims = ["city", {"type": "long", "name": "store"}, {"type": "double", "name": "score"}]
    status = druid.run(task("stores", {"type": "local", "baseDir": str(folder), "filter": "*.csv*"},
                            fmt={"type": "csv", "findColumnsFromHeader": True}, dimensions=dims,
                            timestamp={"column": "ts", "format": "millis"}))
    assert status["status"] == "SUCCESS", status

    rows = druid.sql("SELECT __time, city, store, score, qty FROM stores ORDER BY __time")
    assert rows == [
        {"__time": "2024-01-01T10:00:00.000Z", "city": "Paris", "store": 12, "score": 0.5, "qty": 4},
        {"__time": "2024-01-01T11:00:00.000Z", "city": None, "store": 13, "score": None, "qty": 1},
        {"__time": "2024-01-02T10:00:00.000Z", "city": "Lisbon", "store": 12, "score": 2.5, "qty": 6},
    ]
    assert druid.sql("SELECT store, SUM(qty) AS q FROM stores WHERE store = 12 GROUP BY store") == \
        [{"store": 12, "q": 10}]


def test_local_files_json_posix_time_and_schemaless_dimensions(druid, tmp_path):
    path = tmp_path / "events.json"
    path.write_text(json.dumps({"t": 1704067200, "page": "home", "user": "ü", "qty": 1}) + "\n" +
                    json.dumps({"t": 1704067260, "page": "cart", "user": 7, "qty": 2}) + "\n")
    spec = task("events", {"type": "local", "files": [str(path)]}, dimensions=(),
                timestamp={"column": "t", "format": "posix"})
    assert druid.run(spec)["status"] == "SUCCESS"

    rows = druid.sql("SELECT __time, page, \"user\", qty FROM events ORDER BY __time")
    assert rows == [{"__time": "2024-01-01T00:00:00.000Z", "page": "home", "user": "ü", "qty": 1},
                    {"__time": "2024-01-01T00:01:00.000Z", "page": "cart", "user": "7", "qty": 2}]


def test_replace_overshadows_only_the_chunks_with_new_data_and_append_adds(druid):
    assert druid.run(task("orders_rw", inline(*ORDERS)))["status"] == "SUCCESS"

    replacement = {"ts": "2024-01-02T12:00:00Z", "city": "Rome", "qty": 100}
    assert druid.run(task("orders_rw", inline(replacement)))["status"] == "SUCCESS"
    days = druid.sql("SELECT TIME_FLOOR(__time, 'P1D') AS d, COUNT(*) AS n, SUM(qty) AS q FROM orders_rw "
                     "GROUP BY 1 ORDER BY 1")
    assert days == [{"d": "2024-01-01T00:00:00.000Z", "n": 3, "q": 6},   # untouched chunk kept
                    {"d": "2024-01-02T00:00:00.000Z", "n": 1, "q": 100}]  # chunk replaced whole

    again = druid.run(task("orders_rw", inline(replacement), append=True))
    assert again["status"] == "SUCCESS"
    assert druid.sql("SELECT COUNT(*) AS n FROM orders_rw WHERE __time >= TIMESTAMP '2024-01-02 00:00:00'") == \
        [{"n": 2}]

    dropped = task("orders_rw", inline(replacement), dropExisting=True,
                   granularity={"segmentGranularity": "day", "queryGranularity": "none", "rollup": False,
                                "intervals": ["2024-01-01/2024-01-03"]})
    assert druid.run(dropped)["status"] == "SUCCESS"
    assert druid.sql("SELECT city, qty FROM orders_rw") == [{"city": "Rome", "qty": 100}]


def test_rows_outside_intervals_are_thrown_away(druid):
    spec = task("orders_window", inline(*ORDERS),
                granularity={"segmentGranularity": "day", "queryGranularity": "none", "rollup": False,
                             "intervals": ["2024-01-02T00:00:00Z/2024-01-03T00:00:00Z"]})
    status = druid.run(spec)
    report = druid.call("GET", f"/druid/indexer/v1/task/{status['id']}/reports")[1]
    assert report["ingestionStatsAndErrors"]["payload"]["rowStats"]["buildSegments"]["thrownAway"] == 3
    assert druid.sql("SELECT COUNT(*) AS n FROM orders_window") == [{"n": 1}]


def test_unparseable_rows_are_skipped_by_default_and_fail_past_max_parse_exceptions(druid):
    rows = [{"ts": "yesterday", "city": "Paris", "qty": 1}, {"ts": "2024-13-45", "city": "Oslo", "qty": 2}]
    status = druid.run(task("bad_times", inline(*rows), tuning={"maxSavedParseExceptions": 5}))
    # As Druid: every row unparseable is not a failure (maxParseExceptions is unlimited by default);
    # the task succeeds, publishes nothing, and its report says why.
    assert status["status"] == "SUCCESS"
    payload = druid.call("GET", f"/druid/indexer/v1/task/{status['id']}/reports")[1]["ingestionStatsAndErrors"]["payload"]
    assert payload["rowStats"]["buildSegments"]["unparseable"] == 2
    assert payload["unparseableEvents"]["buildSegments"][0]["details"] == \
        ["Timestamp[yesterday] is unparseable! Event: {ts=yesterday, city=Paris, qty=1} (Record: 1)"]
    assert "bad_times" not in druid.call("GET", "/druid/coordinator/v1/datasources")[1]

    failed = druid.run(task("bad_times", inline(*rows), tuning={"maxParseExceptions": 0}))
    assert failed["status"] == "FAILED" and failed["statusCode"] == "FAILED"
    assert failed["errorMsg"] == "org.apache.druid.java.util.common.RE: Max parse exceptions[0] exceeded"

    metric = druid.run(task("bad_metric", inline({"ts": "2024-01-01T00:00:00Z", "city": "Paris", "qty": "n/a"}),
                            tuning={"maxParseExceptions": 0, "maxSavedParseExceptions": 1}))
    assert metric["status"] == "FAILED"
    events = druid.call("GET", f"/druid/indexer/v1/task/{metric['id']}/reports")[1][
        "ingestionStatsAndErrors"]["payload"]["unparseableEvents"]["buildSegments"]
    assert events[-1]["details"] == ["Unable to parse value[n/a] for field[qty]"]


def test_long_error_messages_are_cut_like_druid_and_whole_in_the_report(druid):
    message = "java.lang.RuntimeException: " + "x" * 200
    status = druid.run(task("cut", inline(*ORDERS), context={"emulatorFailWith": message}))
    assert status["status"] == "FAILED" and status["errorMsg"] == message[:100] + "..."
    report = druid.call("GET", f"/druid/indexer/v1/task/{status['id']}/reports")[1]
    assert report["ingestionStatsAndErrors"]["payload"]["errorMsg"] == message


@pytest.mark.parametrize("change, expected", [
    (lambda t: t["spec"]["dataSchema"].pop("dataSource"),
     "Cannot construct instance of `org.apache.druid.segment.indexing.DataSchema`, problem: Invalid value for "
     "field [dataSource]: must not be null"),
    (lambda t: t["spec"]["dataSchema"]["metricsSpec"].append({"type": "longSumm", "name": "x", "fieldName": "x"}),
     "Could not resolve type id 'longSumm' as a subtype of `org.apache.druid.query.aggregation.AggregatorFactory`"),
    (lambda t: t["spec"]["ioConfig"].update(inputSource={"type": "ftp", "uris": ["ftp://x"]}),
     "Could not resolve type id 'ftp' as a subtype of `org.apache.druid.data.input.InputSource`"),
    (lambda t: t.update(type="index_parallell"),
     "Could not resolve type id 'index_parallell' as a subtype of `org.apache.druid.indexing.common.task.Task`"),
    (lambda t: t["spec"]["dataSchema"]["dimensionsSpec"].update(dimensions=["qty"]),
     "Cannot specify a column more than once: [qty]"),
])
def test_specs_druid_cannot_read_are_refused_at_submit(druid, change, expected):
    spec = task("refused", inline(*ORDERS))
    change(spec)
    status, body = druid.call("POST", "/druid/indexer/v1/task", spec)
    assert status == 400
    assert expected in body["error"], body


def test_missing_local_input_fails_the_task(druid, tmp_path):
    status = druid.run(task("nowhere", {"type": "local", "baseDir": str(tmp_path / "absent"), "filter": "*.json"}))
    assert status["status"] == "FAILED"
    assert status["errorMsg"].startswith("java.lang.IllegalArgumentException: Parameter 'directory' is not a directory")


def test_shutdown_of_a_slow_task_fails_it_and_publishes_nothing(druid):
    task_id = druid.submit(task("slow", inline(*ORDERS), context={"emulatorDelaySeconds": 60}))
    time.sleep(0.3)
    running = druid.status(task_id)
    assert (running["status"], running["runnerStatusCode"], running["duration"]) == ("RUNNING", "RUNNING", -1)
    assert druid.call("GET", "/druid/indexer/v1/tasks?state=running")[1][0]["id"] == task_id

    assert druid.call("POST", f"/druid/indexer/v1/task/{task_id}/shutdown") == (200, {"task": task_id})

    status = druid.wait(task_id, timeout=5)
    assert status["status"] == "FAILED" and status["errorMsg"] == "Shutdown request from user"
    time.sleep(0.3)
    assert "slow" not in druid.call("GET", "/druid/coordinator/v1/datasources")[1]
    assert druid.call("GET", "/druid/indexer/v1/task/nope/status") == (404, {"task": "nope", "status": None})


def test_sql_errors_formats_and_parameters(druid):
    assert druid.run(task("orders_sql", inline(*ORDERS)))["status"] == "SUCCESS"

    status, body = druid.call("POST", "/druid/v2/sql", {"query": "SELECT * FROM missing_ds"})
    assert status == 400 and body["error"] == "druidException" and body["errorMessage"] == "Object 'missing_ds' not found"
    status, body = druid.call("POST", "/druid/v2/sql", {"query": "SELECT nope FROM orders_sql"})
    assert status == 400 and body["errorMessage"] == "Column 'nope' not found in any table"
    status, body = druid.call("POST", "/druid/v2/sql", {"query": "INSERT INTO orders_sql SELECT * FROM orders_sql"})
    assert status == 400 and "not supported by requested SQL engine [native]" in body["errorMessage"]
    status, body = druid.call("POST", "/druid/v2/sql", {"query": "SELECT 1; DROP TABLE orders_sql"})
    assert status == 400
    assert druid.sql("SELECT COUNT(*) FROM orders_sql") == [{"EXPR$0": 4}]

    assert druid.sql("SELECT city, COUNT(*) AS n FROM orders_sql GROUP BY city ORDER BY n DESC",
                     resultFormat="array", header=True) == [["city", "n"], ["Paris", 3], ["Lisbon", 1]]
    assert druid.sql("SELECT city FROM orders_sql WHERE qty > ? AND __time < ? ORDER BY city", resultFormat="csv",
                     parameters=[{"type": "BIGINT", "value": 1},
                                 {"type": "TIMESTAMP", "value": "2024-01-02 00:00:00"}]) == "Paris\nParis\n\n"
    assert druid.sql("SELECT APPROX_COUNT_DISTINCT(city) AS c, TIMESTAMP_TO_MILLIS(MIN(__time)) AS first "
                     "FROM orders_sql") == [{"c": 2, "first": 1704104100000}]
    assert druid.sql("SELECT city FROM orders_sql WHERE TIME_IN_INTERVAL(__time, '2024-01-02/P1D')") == \
        [{"city": "Paris"}]


def test_coordinator_marks_unused_and_load_status(druid):
    assert druid.run(task("to_drop", inline(*ORDERS)))["status"] == "SUCCESS"
    assert druid.call("GET", "/druid/coordinator/v1/datasources/to_drop/loadstatus") == (200, {"to_drop": 100.0})
    assert druid.call("GET", "/druid/coordinator/v1/datasources/to_drop")[1]["segments"]["count"] == 2

    assert druid.call("DELETE", "/druid/coordinator/v1/datasources/to_drop") == (200, {"numChangedSegments": 2})

    assert "to_drop" not in druid.call("GET", "/druid/coordinator/v1/datasources")[1]
    assert druid.call("GET", "/druid/coordinator/v1/datasources/to_drop/loadstatus")[0] == 204
    assert druid.call("POST", "/druid/v2/sql", {"query": "SELECT * FROM to_drop"})[0] == 400


def test_datasources_survive_a_restart(service, druid):
    assert druid.run(task("kept", inline(*ORDERS)))["status"] == "SUCCESS"
    service.down()
    service.up()
    assert druid.sql("SELECT COUNT(*) AS n FROM kept") == [{"n": 4}]
