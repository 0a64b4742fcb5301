"""MySQL -> Redis on the real MariaDB and Redis: every key and field compared with the rows."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest

from accelsync import pipeline
from accelsync.targets.redis.codecs import decode_value
from accelsync.errors import GateFailed
from accelsync.runs import RunDir
from accelsync.spec import parse_spec
from accelsync.report.summary import render

pytestmark = pytest.mark.integration

TYPES_TABLE = """
CREATE TABLE typed (
  id BIGINT PRIMARY KEY,
  tiny TINYINT, flag TINYINT(1), small SMALLINT UNSIGNED, medium MEDIUMINT, plain INT UNSIGNED,
  big BIGINT, ubig BIGINT UNSIGNED,
  price DECIMAL(10,2), precise DECIMAL(30,10), ratio FLOAT, measure DOUBLE,
  name VARCHAR(50), note TEXT, tag ENUM('a','b'), doc JSON,
  day DATE, at DATETIME, at_micro DATETIME(6), stamp TIMESTAMP NULL, clock TIME, yr YEAR,
  raw BLOB, bits BIT(8)
) DEFAULT CHARSET utf8mb4
"""

TYPES_ROWS = [
    (1, -128, 1, 65535, -8388608, 4294967295, -9223372036854775808, 18446744073709551615,
     Decimal("12.50"), Decimal("12345678901234567890.0123456789"), 1.5, 0.1,
     "héllo wörld 😀", 'tab\there "quoted" back\\slash\nnewline', "a", '{"k": [1, 2]}',
     date(2024, 1, 2), datetime(2024, 1, 2, 3, 4, 5), datetime(2024, 1, 2, 3, 4, 5, 123456),
     datetime(2024, 1, 2, 3, 4, 5), timedelta(hours=12, minutes=34, seconds=56), 2024,
     b"\x00\xff\x10binary", b"\x81"),
    (2, 127, 0, 0, 8388607, 0, 9223372036854775807, 0,
     Decimal("-0.05"), Decimal("0E-10"), -2.25, 1e300,
     "中文 Ελληνικά", "", "b", "null",
     date(1970, 1, 1), datetime(1999, 12, 31, 23, 59, 59), datetime(2000, 1, 1, 0, 0, 0, 500),
     None, timedelta(0), 1999, b"", b"\x00"),
    (3, None, None, None, None, None, None, None, None, None, None, None,
     "only a name", None, None, None, None, None, None, None, None, None, None, None),
]


def mysql_text(value) -> bytes:
    """How a MySQL value reads back from Redis, written independently of the target's encoder."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
        return (text + (f".{value.microsecond:06d}" if value.microsecond else "")).encode()
    if isinstance(value, timedelta):
        total = int(value.total_seconds())
        return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}".encode()
    return str(value).encode("utf-8")


def make_spec(**overrides):
    spec = {
        "name": "test_mysql_redis",
        "source": {"type": "mysql", "connection": "test_mysql", "table": "typed", "split_pk": "id"},
        "target": {"type": "redis", "connection": "test_redis", "key": "typed:{id}",
                   "value": {"type": "hash"}},
        "speed": {"channels": 2},
    }
    for key, value in overrides.items():
        spec[key] = value
    return parse_spec(spec)


@pytest.fixture()
def typed_table(mysql):
    cursor = mysql.cursor()
    cursor.execute(TYPES_TABLE)
    cursor.executemany("INSERT INTO typed VALUES (" + ", ".join(["%s"] * 24) + ")", TYPES_ROWS)
    cursor.execute("SELECT * FROM typed ORDER BY id")
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def test_hash_holds_every_mysql_field_exactly(spark, typed_table, redis_client, run_id):
    summary = pipeline.run(make_spec(), run_id)

    assert summary["status"] == "published", summary["reason"]
    assert (summary["read"], summary["written"], summary["dirty"]) == (3, 3, 0)
    assert sorted(redis_client.keys("*")) == [b"typed:1", b"typed:2", b"typed:3"]
    for row in typed_table:
        stored = redis_client.hgetall(f"typed:{row['id']}")
        expected = {k.encode(): mysql_text(v) for k, v in row.items() if v is not None}
        floats = {b"ratio", b"measure"}
        assert {k: v for k, v in stored.items() if k not in floats} == \
               {k: v for k, v in expected.items() if k not in floats}, f"row {row['id']}"
        for name in floats & set(expected):
            assert float(stored[name]) == float(expected[name])  # shortest round-trip text
        assert set(stored) == set(expected)  # NULL fields are absent, not "None"
    gate = {c["name"]: c for c in summary["gate"]["checks"]}
    assert gate["reconcile"]["passed"] and gate["readback"]["passed"]


def test_rerun_removes_fields_that_became_null(spark, typed_table, mysql, redis_client, run_id):
    assert pipeline.run(make_spec(), run_id)["status"] == "published"
    mysql.cursor().execute("UPDATE typed SET name = NULL, price = 99.00 WHERE id = 1")

    assert pipeline.run(make_spec(), run_id + "b")["status"] == "published"

    stored = redis_client.hgetall("typed:1")
    assert b"name" not in stored and stored[b"price"] == b"99.00"
    assert redis_client.dbsize() == 3


def test_json_values_and_ttl(spark, typed_table, redis_client, run_id):
    spec = make_spec(target={"type": "redis", "connection": "test_redis", "key": "doc:{id}",
                             "value": {"type": "json", "fields": ["name", "note", "price", "at_micro",
                                                                  "measure", "raw", "flag"]},
                             "ttl": "2h"})
    summary = pipeline.run(spec, run_id)
    assert summary["status"] == "published", summary["reason"]

    import base64
    for row in typed_table:
        document = json.loads(redis_client.get(f"doc:{row['id']}"))
        assert document == {
            "name": row["name"], "note": row["note"],
            "price": None if row["price"] is None else str(row["price"]),
            "at_micro": None if row["at_micro"] is None else mysql_text(row["at_micro"]).decode(),
            "measure": row["measure"], "flag": row["flag"],
            "raw": None if row["raw"] is None else base64.b64encode(row["raw"]).decode(),
        }
        assert 7100 < redis_client.ttl(f"doc:{row['id']}") <= 7200


@pytest.mark.parametrize("codec", ["zstd", "snappy", "gzip"])
def test_compressed_values_carry_the_documented_marker_and_decode_with_standard_libraries(
        spark, typed_table, redis_client, run_id, codec):
    import gzip

    import cramjam
    import zstandard

    def target(prefix: str, **extra):
        return {"type": "redis", "connection": "test_redis", "key": prefix + ":{id}",
                "value": {"type": "json", "fields": ["name", "note", "price", "measure", "flag"]}, **extra}

    plain = pipeline.run(make_spec(name="plain_json", target=target("plain")), run_id + "p")
    packed = pipeline.run(make_spec(name="packed_json", target=target("packed", compression=codec)), run_id)
    assert plain["status"] == packed["status"] == "published", packed["reason"]

    decompress = {"zstd": zstandard.ZstdDecompressor().decompress, "gzip": gzip.decompress,
                  "snappy": lambda data: bytes(cramjam.snappy.decompress_raw(data))}[codec]
    stored_sizes = plain_sizes = 0
    for row in typed_table:
        stored = redis_client.get(f"packed:{row['id']}")
        original = redis_client.get(f"plain:{row['id']}")
        assert stored[:2] == b"\xff" + {"zstd": b"z", "snappy": b"s", "gzip": b"g"}[codec]
        assert decompress(stored[2:]) == original
        assert decode_value(stored) == original  # the library's reader helper agrees
        stored_sizes += len(stored)
        plain_sizes += len(original)
    assert packed["compression"] == {"codec": codec, "bytes_before": plain_sizes, "bytes_after": stored_sizes}
    assert f"Compression           : {codec}, values" in render(packed)
    assert next(c for c in packed["gate"]["checks"] if c["name"] == "readback")["passed"]


def test_speed_limit_holds_and_is_shown_in_the_summary(spark, mysql, redis_client, run_id):
    mysql.cursor().execute("CREATE TABLE paced (id INT PRIMARY KEY, name VARCHAR(20))")
    mysql.cursor().executemany("INSERT INTO paced VALUES (%s, %s)", [(i, f"n{i}") for i in range(1, 2001)])
    spec = make_spec(source={"type": "mysql", "connection": "test_mysql", "table": "paced", "split_pk": "id",
                             "fetch_size": 100},
                     target={"type": "redis", "connection": "test_redis", "key": "paced:{id}",
                             "value": {"type": "string", "fields": ["name"]}},
                     speed={"channels": 2, "records_per_second": 1000})
    summary = pipeline.run(spec, run_id)
    assert summary["status"] == "published" and summary["written"] == 2000
    assert summary["rows_per_second"] <= 1000 * 1.05  # a limit, so only an upper bound holds
    assert summary["speed_limit"] == 1000
    assert "Record write speed" in render(summary) and "(limit 1,000rec/s)" in render(summary)


def test_string_value_null_is_dirty_and_counted(spark, typed_table, redis_client, run_id):
    spec = make_spec(target={"type": "redis", "connection": "test_redis", "key": "note:{id}",
                             "value": {"type": "string", "column": "note"}},
                     error_limit={"records": 1})
    summary = pipeline.run(spec, run_id)

    assert summary["status"] == "published", summary["reason"]
    assert (summary["read"], summary["written"], summary["dirty"]) == (3, 2, 1)
    assert redis_client.get("note:1") == TYPES_ROWS[0][13].encode()
    assert redis_client.get("note:2") == b""
    assert redis_client.exists("note:3") == 0
    from accelsync.engine.dirty import read_dirty
    [entry] = read_dirty(RunDir(spec.name, run_id).path / "dirty")
    assert entry["reason"] == "value column 'note' is NULL" and entry["record"]["id"] == 3


def test_error_limit_exceeded_fails_and_publishes_nothing(spark, typed_table, run_id):
    spec = make_spec(target={"type": "redis", "connection": "test_redis", "key": "note:{id}",
                             "value": {"type": "string", "column": "note"}})
    summary = pipeline.run(spec, run_id)

    assert summary["status"] == "failed"
    assert "error_limit" in summary["reason"] and "value column 'note' is NULL" in summary["reason"]
    assert not RunDir(spec.name, run_id).exists("published.json")
    from accelsync.report import history
    [row] = [r for r in history.recent(spec.name) if r["run_id"] == run_id]
    assert (row["run_id"], row["status"], row["gate_passed"]) == (run_id, "failed", 0)
    assert "error_limit" in row["reason"]


def test_split_ranges_cover_every_row_once(spark, mysql, redis_client, run_id):
    cursor = mysql.cursor()
    cursor.execute("CREATE TABLE events (id INT AUTO_INCREMENT PRIMARY KEY, bucket INT NULL, label VARCHAR(20))")
    rows = [(None if i % 7 == 0 else i * 3 - 50, f"label-{i}") for i in range(1, 1001)]
    cursor.executemany("INSERT INTO events (bucket, label) VALUES (%s, %s)", rows)
    spec = make_spec(source={"type": "mysql", "connection": "test_mysql", "table": "events",
                             "columns": ["id", "bucket", "label"], "split_pk": "bucket",
                             "where": "label <> 'label-5'"},
                     target={"type": "redis", "connection": "test_redis", "key": "ev:{id}",
                             "value": {"type": "hash", "fields": ["label"]}},
                     speed={"channels": 4})
    summary = pipeline.run(spec, run_id)

    assert summary["status"] == "published", summary["reason"]
    assert summary["read"] == 999 and summary["written"] == 999
    assert redis_client.dbsize() == 999
    assert redis_client.exists("ev:5") == 0
    assert redis_client.hget("ev:7", "label") == b"label-7"  # bucket NULL rows are read too
    plan = RunDir(spec.name, run_id).read_json("plan.json")["summary"]
    assert plan["partitions"] == 4


def test_query_source_and_transform(spark, typed_table, redis_client, run_id):
    spec = make_spec(source={"type": "mysql", "connection": "test_mysql",
                             "query": "SELECT id, name, price FROM typed"},
                     transform={"select": ["id", "upper(name) AS shout", "price * 2 AS double_price"],
                                "filter": "price IS NOT NULL"},
                     target={"type": "redis", "connection": "test_redis", "key": "q:{id}",
                             "value": {"type": "hash", "fields": ["shout", "double_price"]}})
    summary = pipeline.run(spec, run_id)

    assert summary["status"] == "published", summary["reason"]
    assert (summary["read"], summary["written"], summary["filtered"]) == (3, 2, 1)
    assert redis_client.hgetall("q:1") == {b"shout": "HÉLLO WÖRLD 😀".encode(), b"double_price": b"25.00"}
    assert redis_client.hgetall("q:2") == {b"shout": "中文 ΕΛΛΗΝΙΚΆ".encode(), b"double_price": b"-0.10"}


def test_gate_readback_names_the_changed_field_and_publish_is_refused(spark, typed_table, redis_client, run_id):
    spec = make_spec()
    pipeline.stage_sync(spec, run_id)
    redis_client.hset("typed:2", "name", "tampered")
    redis_client.delete("typed:3")

    with pytest.raises(GateFailed) as failure:
        pipeline.stage_gate(spec, run_id)

    message = str(failure.value)
    assert "reconcile: target has 2 of 3 expected rows" in message
    assert "typed:2 field name: expected '中文 Ελληνικά', got 'tampered'" in message
    assert "typed:3" in message and "missing" in message
    with pytest.raises(Exception, match="no passing gate"):
        pipeline.stage_publish(spec, run_id)
    assert not RunDir(spec.name, run_id).exists("published.json")


def test_incremental_watermark_moves_only_at_publish(spark, mysql, redis_client, run_id):
    cursor = mysql.cursor()
    cursor.execute("CREATE TABLE profiles (id INT PRIMARY KEY, city VARCHAR(20), updated_at DATETIME)")
    cursor.executemany("INSERT INTO profiles VALUES (%s, %s, %s)",
                       [(i, "Paris", datetime(2024, 1, 1, 0, 0, i)) for i in range(1, 6)])
    spec = make_spec(source={"type": "mysql", "connection": "test_mysql", "table": "profiles",
                             "incremental": {"column": "updated_at"}},
                     target={"type": "redis", "connection": "test_redis", "key": "p:{id}",
                             "value": {"type": "hash", "fields": ["city"]}})
    pipeline.stage_sync(spec, run_id)
    from accelsync.state import load_state
    assert load_state(spec.name) == {}  # synced, not yet published
    pipeline.stage_gate(spec, run_id)
    pipeline.stage_publish(spec, run_id)
    assert load_state(spec.name)["watermark"] == "2024-01-01 00:00:05"

    cursor.execute("UPDATE profiles SET city = 'Lisbon', updated_at = '2024-02-01' WHERE id = 2")
    summary = pipeline.run(spec, run_id + "b")  # the row at the old watermark (id 5) is read again
    assert summary["status"] == "published" and summary["read"] == 2
    assert redis_client.hget("p:2", "city") == b"Lisbon" and redis_client.hget("p:1", "city") == b"Paris"
    assert pipeline.run(spec, run_id + "c")["read"] == 1  # only the row at the watermark


def test_cli_run_json_and_exit_status(services, typed_table, redis_client, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("name: cli_good\nsource: {type: mysql, connection: test_mysql, table: typed}\n"
                    "target: {type: redis, connection: test_redis, key: 'cli:{id}', value: {type: hash, fields: [name]}}\n")
    result = subprocess.run([sys.executable, "-m", "accelsync.cli", "run", str(good), "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"name", "run_id", "status", "read", "written", "dirty", "seconds", "rows_per_second", "gate",
            "reason"} <= set(summary)
    assert summary["status"] == "published" and summary["written"] == 3
    assert redis_client.hget("cli:1", "name") == "héllo wörld 😀".encode()
    assert "Total read records" in result.stderr


def test_password_never_shows_in_logs_errors_summary_or_history(services, typed_table, mysql, test_database,
                                                                 tmp_path):
    import os

    secret = "Sup3r-Secret-pw"
    cursor = mysql.cursor()
    cursor.execute("DROP USER IF EXISTS 'accelsync_pw'@'%'")
    cursor.execute(f"CREATE USER 'accelsync_pw'@'%' IDENTIFIED BY '{secret}'")
    cursor.execute(f"GRANT SELECT ON {test_database}.* TO 'accelsync_pw'@'%'")
    spec = tmp_path / "secret.yaml"
    spec.write_text("name: cli_secret\nsource: {type: mysql, connection: secret_mysql, table: typed, split_pk: id}\n"
                    "target: {type: redis, connection: test_redis, key: 'secret:{id}', value: {type: hash, fields: [name]}}\n"
                    "speed: {channels: 2}\n")
    outputs = []
    for password, status in ((secret, 0), (secret + "-wrong", 1)):
        env = dict(os.environ, ACCELSYNC_HOME=str(tmp_path / "home"),
                   AIRFLOW_CONN_SECRET_MYSQL=f"mysql://accelsync_pw:{password}@127.0.0.1:3306/{test_database}")
        result = subprocess.run([sys.executable, "-m", "accelsync.cli", "run", str(spec), "--json"],
                                capture_output=True, text=True, timeout=300, env=env)
        assert result.returncode == status, result.stderr[-2000:]
        outputs += [result.stdout, result.stderr]
    summary = json.loads(outputs[-2].strip().splitlines()[-1])
    assert "Access denied" in summary["reason"]
    assert not any(secret in text for text in outputs)
    for path in (tmp_path / "home").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    cursor.execute("DROP USER 'accelsync_pw'@'%'")


def test_swap_serves_old_version_until_publish_then_removes_it(spark, typed_table, mysql, redis_client, run_id):
    from accelsync.targets.redis.readers import RedisSwapReader

    spec = make_spec(target={"type": "redis", "connection": "test_redis", "key": "user:{id}",
                             "value": {"type": "hash", "fields": ["name"]}, "mode": "swap"})
    reader = RedisSwapReader(redis_client, spec.name)
    summary = pipeline.run(spec, run_id)
    assert summary["status"] == "published", summary["reason"]
    assert reader.hgetall("user:1") == {b"name": "héllo wörld 😀".encode()}
    first = reader.prefix()

    mysql.cursor().execute("UPDATE typed SET name = 'new name' WHERE id = 1")
    pipeline.stage_sync(spec, run_id + "b")
    assert reader.prefix() == first  # written beside the live version, not visible yet
    assert reader.hgetall("user:1") == {b"name": "héllo wörld 😀".encode()}
    redis_client.delete(f"{spec.name}:{run_id}b:user:2")
    with pytest.raises(GateFailed, match="reconcile"):
        pipeline.stage_gate(spec, run_id + "b")
    assert reader.hgetall("user:1") == {b"name": "héllo wörld 😀".encode()}  # failed gate: old version
    assert redis_client.keys(f"{spec.name}:{run_id}b:*") == []  # the failed version went with its gate

    summary = pipeline.run(spec, run_id + "c")
    assert summary["status"] == "published"
    assert reader.hgetall("user:1") == {b"name": b"new name"}
    assert reader.prefix() == f"{spec.name}:{run_id}c:"
    # the superseded version stays readable for the grace period (5m by default), then expires
    superseded = list(redis_client.scan_iter(match=f"{first}*"))
    assert len(superseded) == 3 and all(0 < redis_client.pttl(key) <= 300_000 for key in superseded)
    leftover = [k for k in redis_client.keys("*") if not k.startswith(reader.prefix().encode())
                and not k.startswith(first.encode()) and not k.startswith(b"accelsync:")]
    assert leftover == []


def test_timeout_stops_the_run_and_publishes_nothing(spark, typed_table, run_id):
    spec = make_spec(timeout="1s", speed={"channels": 2, "records_per_second": 1})
    summary = pipeline.run(spec, run_id)

    assert summary["status"] == "failed"
    assert summary["reason"].startswith("timeout:")
    assert not RunDir(spec.name, run_id).exists("published.json")


def test_spark_submit_entry_point_runs_the_same_sync(services, typed_table, redis_client, tmp_path):
    import os
    from pathlib import Path

    spec = tmp_path / "submit.yaml"
    spec.write_text("name: submit_sync\nsource: {type: mysql, connection: test_mysql, table: typed, split_pk: id}\n"
                    "target: {type: redis, connection: test_redis, key: 'submit:{id}', value: {type: hash, fields: [name]}}\n"
                    "speed: {channels: 2}\n")
    spark_submit = Path(sys.executable).parent / "spark-submit"
    job = Path(__file__).parents[2] / "jobs" / "sync_job.py"
    env = dict(os.environ, PYSPARK_PYTHON=sys.executable)
    result = subprocess.run([str(spark_submit), "--master", "local[2]", str(job), str(spec), "--json"],
                            capture_output=True, text=True, timeout=600, env=env)

    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["status"] == "published" and summary["written"] == 3
    assert redis_client.hget("submit:2", "name") == "中文 Ελληνικά".encode()
