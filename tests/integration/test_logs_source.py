"""Log files -> Redis on real files and the real Redis: JSON, regex (Apache access log) and CSV,
plain and gzip, dirty lines with file and line, the error limit, and the incremental file ledger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accelsync import pipeline
from accelsync.engine.dirty import read_dirty
from accelsync.errors import GateFailed
from accelsync.runs import RunDir
from accelsync.spec import parse_spec
from logfiles import write_lines
from accelsync.state import load_state

pytestmark = pytest.mark.integration

ACCESS_PATTERN = (r'^(?P<ip>\S+) \S+ (?P<user>\S+) \[(?P<ts>[^\]]+)\] "(?P<method>[A-Z]+) (?P<path>\S+) [^"]*" '
                  r'(?P<status>\d{3}) (?:(?P<bytes>\d+)|-)')


def make_spec(name: str, source: dict, key: str, fields: list[str] | None = None, **overrides) -> object:
    spec = {
        "name": name,
        "source": source,
        "target": {"type": "redis", "connection": "test_redis", "key": key,
                   "value": {"type": "hash", **({"fields": fields} if fields else {})}},
        "speed": {"channels": 2},
    }
    spec.update(overrides)
    return parse_spec(spec)


def dirty_by_line(spec, run_id) -> dict[tuple[str, int], dict]:
    entries = read_dirty(RunDir(spec.name, run_id).path / "dirty")
    return {(Path(e["location"]["file"]).name, e["location"]["line"]): e for e in entries}


def test_json_plain_and_gzip_exact_fields_and_dirty_lines(spark, redis_client, run_id, tmp_path):
    folder = tmp_path / "app"
    write_lines(folder / "app.log", [
        json.dumps({"id": 1, "user": "ana", "amount": "12.5", "ok": True, "ts": "2024-01-02T03:04:05+02:00",
                    "day": "2024-01-02", "extra": {"ignored": 1}}),
        '{"id": 2, "user": "bo", "amount": 3',                                   # line 2: bad JSON
        "",                                                                      # blank: skipped
        json.dumps({"id": "3", "user": 33, "amount": 0.25, "ok": "false", "ts": 1700000000}),  # lenient types
        json.dumps({"id": 4, "user": "héllo wörld 😀", "ts": "10/Oct/2000:13:55:36 -0700"}),
        json.dumps({"id": 5, "user": "eve", "amount": "lots"}),                   # line 6: failed cast
        b'{"id": 6, "user": "\xff\xfe"}',                                        # line 7: not UTF-8
        json.dumps({"id": 7, "user": "null fields", "amount": None}),
    ])
    write_lines(folder / "nested" / "old.log.gz", [
        json.dumps({"id": 10, "user": "zed", "amount": 1, "ts": "2024-05-06 07:08:09.5"}),
        "[1, 2]",                                                                # line 2: not an object
        json.dumps({"id": 11, "user": "yu", "ok": 1}),
    ], zipped=True)
    (folder / ".hidden.log").write_text('{"id": 99}\n')
    spec = make_spec("test_logs_json", {"type": "logs", "path": str(folder), "format": "json",
                                        "schema": {"id": "long", "user": "string", "amount": "decimal(8,2)",
                                                   "ok": "boolean", "ts": "timestamp", "day": "date"}},
                     key="ev:{id}", error_limit={"records": 10})

    summary = pipeline.run(spec, run_id)

    assert summary["status"] == "published", summary["reason"]
    assert (summary["read"], summary["written"], summary["dirty"]) == (10, 6, 4)
    assert summary["read"] == summary["written"] + summary["dirty"]
    app, old = str(folder / "app.log"), str(folder / "nested" / "old.log.gz")
    assert sorted(redis_client.keys("*")) == [b"ev:1", b"ev:10", b"ev:11", b"ev:3", b"ev:4", b"ev:7"]
    assert redis_client.hgetall("ev:1") == {
        b"id": b"1", b"user": b"ana", b"amount": b"12.50", b"ok": b"true", b"ts": b"2024-01-02 01:04:05",
        b"day": b"2024-01-02", b"_file": app.encode(), b"_line": b"1"}
    assert redis_client.hgetall("ev:3") == {
        b"id": b"3", b"user": b"33", b"amount": b"0.25", b"ok": b"false", b"ts": b"2023-11-14 22:13:20",
        b"_file": app.encode(), b"_line": b"4"}
    assert redis_client.hgetall("ev:4") == {
        b"id": b"4", b"user": "héllo wörld 😀".encode(), b"ts": b"2000-10-10 20:55:36",
        b"_file": app.encode(), b"_line": b"5"}
    assert redis_client.hgetall("ev:7") == {b"id": b"7", b"user": b"null fields", b"_file": app.encode(),
                                            b"_line": b"8"}
    assert redis_client.hgetall("ev:10") == {
        b"id": b"10", b"user": b"zed", b"amount": b"1.00", b"ts": b"2024-05-06 07:08:09.500000",
        b"_file": old.encode(), b"_line": b"1"}
    assert redis_client.hgetall("ev:11") == {b"id": b"11", b"user": b"yu", b"ok": b"true",
                                             b"_file": old.encode(), b"_line": b"3"}

    dirty = dirty_by_line(spec, run_id)
    assert set(dirty) == {("app.log", 2), ("app.log", 6), ("app.log", 7), ("old.log.gz", 2)}
    assert dirty[("app.log", 2)]["reason"].startswith("bad JSON:")
    assert dirty[("app.log", 2)]["record"] == '{"id": 2, "user": "bo", "amount": 3'
    assert dirty[("app.log", 6)]["reason"] == "cast failed: field 'amount' (decimal(8,2)): 'lots'"
    assert dirty[("app.log", 7)]["reason"].startswith("bad encoding: not valid UTF-8")
    assert dirty[("old.log.gz", 2)]["reason"] == "bad JSON: an array where an object was expected"
    assert summary["dirty_reasons"] == {"bad JSON": 2, "cast failed": 1, "bad encoding": 1}
    gate = {c["name"]: c for c in summary["gate"]["checks"]}
    assert gate["reconcile"]["passed"] and gate["readback"]["passed"]
    plan = RunDir(spec.name, run_id).read_json("plan.json")["summary"]
    assert plan["partitions"] == 2 and plan["description"].startswith("2 files (1 gzip")
    assert set(plan["state"]["files"]) == {app, old}


def test_regex_apache_access_log(spark, redis_client, run_id, tmp_path):
    write_lines(tmp_path / "logs" / "access.log", [
        '127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326',
        '10.0.0.2 - - [11/Oct/2000:00:00:00 +0000] "POST /login HTTP/1.1" 304 -',
        'this is not an access log line',                                         # line 3: no match
        '10.0.0.3 - - [not a date] "GET / HTTP/1.1" 200 5',                       # line 4: failed cast
    ])
    write_lines(tmp_path / "logs" / "access.log.1.gz", [
        '192.168.1.9 - - [09/Oct/2000:23:59:59 +0200] "DELETE /item/7 HTTP/1.1" 500 0',
    ], zipped=True)
    spec = make_spec("test_logs_regex", {"type": "logs", "path": str(tmp_path / "logs" / "access.log*"),
                                         "format": "regex", "pattern": ACCESS_PATTERN,
                                         "schema": {"ts": "timestamp", "status": "int", "bytes": "long"}},
                     key="hit:{ip}:{_line}", fields=["user", "ts", "method", "path", "status", "bytes"],
                     error_limit={"records": 2})

    summary = pipeline.run(spec, run_id)

    assert summary["status"] == "published", summary["reason"]
    assert (summary["read"], summary["written"], summary["dirty"]) == (5, 3, 2)
    assert sorted(redis_client.keys("*")) == [b"hit:10.0.0.2:2", b"hit:127.0.0.1:1", b"hit:192.168.1.9:1"]
    assert redis_client.hgetall("hit:127.0.0.1:1") == {
        b"user": b"frank", b"ts": b"2000-10-10 20:55:36", b"method": b"GET", b"path": b"/apache_pb.gif",
        b"status": b"200", b"bytes": b"2326"}
    assert redis_client.hgetall("hit:10.0.0.2:2") == {  # "-" bytes: the group took no part -> NULL
        b"user": b"-", b"ts": b"2000-10-11 00:00:00", b"method": b"POST", b"path": b"/login", b"status": b"304"}
    assert redis_client.hgetall("hit:192.168.1.9:1") == {
        b"user": b"-", b"ts": b"2000-10-09 21:59:59", b"method": b"DELETE", b"path": b"/item/7",
        b"status": b"500", b"bytes": b"0"}
    dirty = dirty_by_line(spec, run_id)
    assert dirty[("access.log", 3)]["reason"].startswith("no match")
    assert dirty[("access.log", 3)]["record"] == "this is not an access log line"
    assert dirty[("access.log", 4)]["reason"] == "cast failed: field 'ts' (timestamp): 'not a date'"


def test_csv_with_header_and_delimiter(spark, redis_client, run_id, tmp_path):
    write_lines(tmp_path / "prices.csv", [
        "\ufeffsku;name;price;updated",
        'A-1;"Lamp; large";12.5;2024-03-04T05:06:07Z',
        "B-2;Chair;;2024-03-05",
        "C-3;too;many;fields;here",                                              # line 4: bad CSV
        "D-4;Desk;1.999;2024-03-06",                                             # line 5: failed cast
        "\r",
        "E-5;Ünïcode;7;2024-03-07",
    ])
    spec = make_spec("test_logs_csv", {"type": "logs", "path": str(tmp_path / "prices.csv"), "format": "csv",
                                       "header": True, "delimiter": ";",
                                       "schema": {"sku": "string", "name": "string", "price": "decimal(6,2)",
                                                  "updated": "timestamp"}},
                     key="sku:{sku}", fields=["name", "price", "updated", "_line"], error_limit={"records": 2})

    summary = pipeline.run(spec, run_id)

    assert summary["status"] == "published", summary["reason"]
    assert (summary["read"], summary["written"], summary["dirty"]) == (5, 3, 2)
    assert sorted(redis_client.keys("*")) == [b"sku:A-1", b"sku:B-2", b"sku:E-5"]
    assert redis_client.hgetall("sku:A-1") == {b"name": b"Lamp; large", b"price": b"12.50",
                                               b"updated": b"2024-03-04 05:06:07", b"_line": b"2"}
    assert redis_client.hgetall("sku:B-2") == {b"name": b"Chair", b"updated": b"2024-03-05 00:00:00",
                                               b"_line": b"3"}
    assert redis_client.hgetall("sku:E-5") == {b"name": "Ünïcode".encode(), b"price": b"7.00",
                                               b"updated": b"2024-03-07 00:00:00", b"_line": b"7"}
    dirty = dirty_by_line(spec, run_id)
    assert dirty[("prices.csv", 4)]["reason"] == "bad CSV: expected 4 columns, got 5"
    assert dirty[("prices.csv", 5)]["reason"] == "cast failed: field 'price' (decimal(6,2)): '1.999'"


def test_error_limit_exceeded_fails_and_leaves_the_ledger(spark, run_id, tmp_path):
    write_lines(tmp_path / "in" / "a.log", ['{"id": 1}', "{oops", '{"id": 3}'])
    spec = make_spec("test_logs_limit", {"type": "logs", "path": str(tmp_path / "in"), "format": "json",
                                         "schema": {"id": "long"}, "incremental": True}, key="lim:{id}")

    summary = pipeline.run(spec, run_id)

    assert summary["status"] == "failed"
    assert "error_limit" in summary["reason"] and "bad JSON" in summary["reason"]
    assert not RunDir(spec.name, run_id).exists("published.json")
    assert load_state(spec.name) == {}


def test_incremental_reads_new_files_reports_changed_ones_and_advances_only_at_publish(
        spark, redis_client, run_id, tmp_path):
    folder = tmp_path / "inc"
    write_lines(folder / "a.log", ['{"id": 1, "v": "a1"}', '{"id": 2, "v": "a2"}'])
    write_lines(folder / "b.log.gz", ['{"id": 3, "v": "b1"}'], zipped=True)
    spec = make_spec("test_logs_incremental", {"type": "logs", "path": str(folder), "format": "json",
                                               "schema": {"id": "long", "v": "string"}, "incremental": True},
                     key="inc:{id}", fields=["v", "_line"])

    first = pipeline.run(spec, run_id)
    assert first["status"] == "published", first["reason"]
    assert first["read"] == 3
    ledger = load_state(spec.name)["files"]
    assert set(ledger) == {str(folder / "a.log"), str(folder / "b.log.gz")}
    assert ledger[str(folder / "a.log")]["fingerprint"].startswith("sha256:")

    # A new file, and one already synced that grew: the new file and only the appended lines are
    # read (an append-only target never gets a line twice), with their line numbers.
    write_lines(folder / "c.log", ['{"id": 4, "v": "c1"}'])
    synced_size = (folder / "a.log").stat().st_size
    with open(folder / "a.log", "a") as handle:
        handle.write('{"id": 5, "v": "a3"}\n')
    second = pipeline.run(spec, run_id + "b")
    assert second["status"] == "published", second["reason"]
    assert second["read"] == 2  # a.log's new line + c.log; b.log.gz skipped
    plan = RunDir(spec.name, run_id + "b").read_json("plan.json")["summary"]
    assert set(plan["state"]["files"]) == {str(folder / "a.log"), str(folder / "c.log")}
    assert plan["state"]["changed"] == []
    assert plan["state"]["grown"] == [{"path": str(folder / "a.log"), "from": synced_size,
                                       "to": (folder / "a.log").stat().st_size}]
    assert "1 new, 1 grown (read from where the last sync ended), 1 already synced" in plan["description"]
    assert redis_client.hgetall("inc:5") == {b"v": b"a3", b"_line": b"3"}
    assert redis_client.hgetall("inc:1") == {b"v": b"a1", b"_line": b"1"}
    ledger = load_state(spec.name)["files"]
    assert ledger[str(folder / "a.log")]["size"] == (folder / "a.log").stat().st_size

    # A file rewritten (not appended to) is re-read in full and reported.
    write_lines(folder / "c.log", ['{"id": 4, "v": "c2"}', '{"id": 8, "v": "c3"}'])
    third = pipeline.run(spec, run_id + "x")
    assert third["read"] == 2 and redis_client.hget("inc:4", "v") == b"c2"
    plan = RunDir(spec.name, run_id + "x").read_json("plan.json")["summary"]
    [changed] = plan["state"]["changed"]
    assert changed["path"] == str(folder / "c.log") and changed["change"].startswith("grew from")
    assert "WARNING: 1 files changed since they were synced" in plan["description"]

    # A failed gate publishes nothing: the ledger stays, and the rerun reads the same file again.
    write_lines(folder / "d.log", ['{"id": 6, "v": "d1"}', '{"id": 7, "v": "d2"}'])
    before = load_state(spec.name)
    pipeline.stage_sync(spec, run_id + "c")
    redis_client.hset("inc:6", "v", "tampered")
    with pytest.raises(GateFailed, match="readback"):
        pipeline.stage_gate(spec, run_id + "c")
    assert load_state(spec.name) == before

    rerun = pipeline.run(spec, run_id + "d")
    assert rerun["status"] == "published", rerun["reason"]
    assert rerun["read"] == 2
    assert redis_client.hgetall("inc:6") == {b"v": b"d1", b"_line": b"1"}
    assert str(folder / "d.log") in load_state(spec.name)["files"]


# ---------------------------------------------------------------- plan and read, without Spark

