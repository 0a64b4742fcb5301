"""Crash safety: a run killed with SIGKILL at any point, then rerun, ends exactly right.

Each test starts `accelsync run` as its own process group, lets it reach a named point
(`accelsync.engine.faults`: during read, during write, between write and gate, during publish), kills
the whole group with SIGKILL there (driver, JVM and Python workers, as `kill -9` or an OOM kill
would), checks what the killed run left (no source position passed unwritten or ungated data,
nothing half-published), reruns, and compares the target with the source.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from accelsync import pipeline
from accelsync.report import history
from accelsync.targets.redis.readers import RedisSwapReader
from accelsync.spec import load_spec
from accelsync.state import load_state

from test_kafka_source import NOT_COMMITTED, committed, produce, topic  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

PAUSE_WAIT = 240  # seconds for the killed run to reach its point (Spark start included)


def kill_at(spec_path: Path, point: str, tmp_path: Path) -> None:
    """Run the spec in a new process group until it reaches `point`, then SIGKILL the group."""
    marker = tmp_path / f"reached-{point}-{uuid.uuid4().hex[:6]}"
    env = dict(os.environ, ACCELSYNC_PAUSE_AT=f"{point}:{marker}", PYSPARK_PYTHON=sys.executable)
    log = open(tmp_path / f"killed-{point}.log", "w+")
    process = subprocess.Popen([sys.executable, "-m", "accelsync.cli", "run", str(spec_path)], env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + PAUSE_WAIT
        while not marker.exists():
            if process.poll() is not None:
                log.seek(0)
                pytest.fail(f"the run ended (exit {process.returncode}) before reaching {point}:\n"
                            f"{log.read()[-3000:]}")
            assert time.monotonic() < deadline, f"the run did not reach {point} in {PAUSE_WAIT}s"
            time.sleep(0.2)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)
        _wait_group_gone(process.pid)
        log.close()


def _wait_group_gone(group: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    raise AssertionError(f"processes of group {group} outlived SIGKILL")


def write_spec(tmp_path: Path, spec: dict) -> Path:
    path = tmp_path / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    return path


def rerun(spec_path: Path) -> dict:
    summary = pipeline.run(load_spec(spec_path))
    assert summary["status"] == "published", summary["reason"]
    return summary


# ---------------------------------------------------------------- MySQL: full into swap, incremental upserted

ROWS = 3000


@pytest.fixture()
def accounts(mysql):
    cursor = mysql.cursor()
    cursor.execute("CREATE TABLE accounts (id INT PRIMARY KEY, name VARCHAR(40), balance DECIMAL(12,2), "
                   "version BIGINT NOT NULL)")
    insert_accounts(mysql, range(1, ROWS + 1))
    return mysql


def insert_accounts(mysql, ids) -> None:
    mysql.cursor().executemany("INSERT INTO accounts VALUES (%s, %s, %s, %s)",
                               [(i, f"account {i} ü", Decimal(i) / 4, i) for i in ids])


def mysql_spec(tmp_path: Path, name: str, mode: str) -> Path:
    """Full reads into a swapped keyspace, or incremental reads (by `version`) upserted."""
    source = {"type": "mysql", "connection": "test_mysql", "table": "accounts", "split_pk": "id",
              "fetch_size": 200}
    if mode == "upsert":
        source["incremental"] = {"column": "version"}
    return write_spec(tmp_path, {
        "name": name,
        "source": source,
        "target": {"type": "redis", "connection": "test_redis", "key": f"{name}:acct:{{id}}", "mode": mode,
                   "value": {"type": "hash", "fields": ["name", "balance"]}},
        "speed": {"channels": 2},
    })


def assert_accounts(redis_client, name: str, ids, prefix: str = "") -> None:
    """Exactly these accounts are stored (under `prefix`, the live version in swap mode)."""
    keys = {k.decode() for k in redis_client.scan_iter(match=f"{name}:*", count=10_000)}
    assert keys == {f"{prefix}{name}:acct:{i}" for i in ids}
    pipe = redis_client.pipeline()
    for i in ids:
        pipe.hgetall(f"{prefix}{name}:acct:{i}")
    for i, stored in zip(ids, pipe.execute()):
        assert stored == {b"name": f"account {i} ü".encode(), b"balance": f"{Decimal(i) / 4:.2f}".encode()}, i


def test_mysql_swap_killed_during_read_serves_nothing_half_written(spark, accounts, redis_client, tmp_path):
    name = "crash_mysql_read"
    spec_path = mysql_spec(tmp_path, name, "swap")
    kill_at(spec_path, "read", tmp_path)

    assert redis_client.get(f"accelsync:live:{name}") is None  # readers see no half-written version
    insert_accounts(accounts, range(ROWS + 1, ROWS + 51))  # committed while the run was down

    summary = rerun(spec_path)
    assert summary["read"] == ROWS + 50 and summary["written"] == ROWS + 50
    prefix = RedisSwapReader(redis_client, name).prefix()
    assert_accounts(redis_client, name, range(1, ROWS + 51), prefix)  # the killed run's keys are gone
    assert redis_client.smembers(f"accelsync:versions:{name}") == {prefix.encode()}


def test_mysql_incremental_killed_during_write_keeps_the_watermark(spark, accounts, redis_client, tmp_path):
    name = "crash_mysql_write"
    spec_path = mysql_spec(tmp_path, name, "upsert")
    kill_at(spec_path, "write", tmp_path)

    assert load_state(name).get("watermark") is None  # nothing published: the watermark did not move
    insert_accounts(accounts, range(ROWS + 1, ROWS + 51))

    summary = rerun(spec_path)
    assert summary["read"] == ROWS + 50 and summary["written"] == ROWS + 50
    assert_accounts(redis_client, name, range(1, ROWS + 51))
    assert load_state(name)["watermark"] == str(ROWS + 50)


def test_mysql_killed_during_publish_is_finished_by_the_next_run(spark, accounts, redis_client, tmp_path):
    name = "crash_mysql_publish"
    spec_path = mysql_spec(tmp_path, name, "upsert")
    kill_at(spec_path, "publish", tmp_path)

    # The target went live, but the watermark was not saved yet.
    assert load_state(name).get("watermark") is None
    assert_accounts(redis_client, name, range(1, ROWS + 1))
    insert_accounts(accounts, range(ROWS + 1, ROWS + 11))

    # The next run first finishes that publish (the watermark catches up with what is live),
    # then reads only the rows committed since.
    summary = rerun(spec_path)
    assert summary["finished_publish_of"] is not None
    runs = {row["run_id"]: row for row in history.recent(name)}
    assert runs[summary["finished_publish_of"]]["status"] == "published"  # the killed run, now
    assert summary["read"] == 11  # the 10 new rows, and the watermark's own row read again (>=)
    assert_accounts(redis_client, name, range(1, ROWS + 11))
    assert load_state(name)["watermark"] == str(ROWS + 10)
    assert "publishing" not in load_state(name)


# ---------------------------------------------------------------- Kafka

MESSAGES = 600


@pytest.fixture()
def orders_topic(topic):
    produce(topic, [(i % 3, f"k{i}".encode(), json.dumps({"order_id": i, "amount": i * 1.5}).encode())
                    for i in range(MESSAGES)])
    return topic


def kafka_spec(tmp_path: Path, topic: str) -> Path:
    suffix = topic.rsplit("_", 1)[-1]
    return write_spec(tmp_path, {
        "name": f"crash_kafka_{suffix}",
        "source": {"type": "kafka", "connection": "kafka_default", "topic": topic,
                   "schema": {"order_id": "long", "amount": "double"}},
        "target": {"type": "redis", "connection": "test_redis", "key": f"o{suffix}:{{order_id}}",
                   "value": {"type": "string", "fields": ["amount"]}},
        "speed": {"channels": 2},
    })


def assert_orders(redis_client, spec, topic: str) -> None:
    suffix = topic.rsplit("_", 1)[-1]
    keys = {k.decode() for k in redis_client.scan_iter(match=f"o{suffix}:*", count=10_000)}
    assert keys == {f"o{suffix}:{i}" for i in range(MESSAGES)}
    values = redis_client.mget([f"o{suffix}:{i}" for i in range(MESSAGES)])
    assert values == [amount_text(i * 1.5) for i in range(MESSAGES)]


def amount_text(value: float) -> bytes:
    """A double as the Redis target writes it: shortest round trip, no `.0` on whole numbers."""
    return (str(int(value)) if value.is_integer() else repr(value)).encode()


def test_kafka_killed_during_write_commits_nothing_and_rerun_converges(spark, orders_topic, redis_client,
                                                                        tmp_path):
    spec_path = kafka_spec(tmp_path, orders_topic)
    spec = load_spec(spec_path)
    kill_at(spec_path, "write", tmp_path)

    assert committed(spec, orders_topic) == {0: NOT_COMMITTED, 1: NOT_COMMITTED, 2: NOT_COMMITTED}

    summary = rerun(spec_path)
    assert summary["read"] == MESSAGES and summary["dirty"] == 0
    assert_orders(redis_client, spec, orders_topic)
    assert committed(spec, orders_topic) == {0: 200, 1: 200, 2: 200}


def test_kafka_killed_during_publish_commits_at_the_next_run_and_never_rereads(spark, orders_topic, redis_client,
                                                                             tmp_path):
    spec_path = kafka_spec(tmp_path, orders_topic)
    spec = load_spec(spec_path)
    kill_at(spec_path, "publish", tmp_path)

    # Live in Redis, but the offsets were not committed yet.
    assert_orders(redis_client, spec, orders_topic)
    assert committed(spec, orders_topic) == {0: NOT_COMMITTED, 1: NOT_COMMITTED, 2: NOT_COMMITTED}

    summary = rerun(spec_path)
    assert summary["finished_publish_of"] is not None and summary["read"] == 0
    assert_orders(redis_client, spec, orders_topic)
    assert committed(spec, orders_topic) == {0: 200, 1: 200, 2: 200}


# ---------------------------------------------------------------- logs, incremental ledger

def test_logs_killed_between_write_and_gate_leave_the_ledger_empty(spark, services, redis_client, tmp_path):
    import gzip

    folder = tmp_path / "logs"
    folder.mkdir()
    expected = {}
    for number in range(4):
        lines = []
        for i in range(250):
            event = number * 1000 + i
            expected[event] = f"user-{event % 17}"
            lines.append(json.dumps({"event": event, "user": f"user-{event % 17}"}))
        data = ("\n".join(lines) + "\n").encode()
        if number % 2:
            (folder / f"app-{number}.log.gz").write_bytes(gzip.compress(data))
        else:
            (folder / f"app-{number}.log").write_bytes(data)
    name = "crash_logs_" + uuid.uuid4().hex[:8]
    spec_path = write_spec(tmp_path, {
        "name": name,
        "source": {"type": "logs", "path": str(folder), "format": "json", "incremental": True,
                   "schema": {"event": "long", "user": "string"}},
        "target": {"type": "redis", "connection": "test_redis", "key": f"{name}:{{event}}",
                   "value": {"type": "string", "fields": ["user"]}},
        "speed": {"channels": 2},
    })
    kill_at(spec_path, "synced", tmp_path)

    assert not load_state(name).get("files")  # written but never gated: no file is in the ledger

    summary = rerun(spec_path)
    assert summary["read"] == 1000
    keys = sorted(expected)
    assert {k.decode() for k in redis_client.scan_iter(match=f"{name}:*")} == {f"{name}:{e}" for e in keys}
    assert redis_client.mget([f"{name}:{e}" for e in keys]) == [expected[e].encode() for e in keys]
    assert sorted(Path(p).name for p in load_state(name)["files"]) == [
        "app-0.log", "app-1.log.gz", "app-2.log", "app-3.log.gz"]
    assert rerun(spec_path)["read"] == 0


# ---------------------------------------------------------------- logs -> Druid

def sales_logs(folder: Path) -> None:
    folder.mkdir()
    for day in (1, 2):
        (folder / f"sales-{day}.log").write_text("".join(
            json.dumps({"ts": f"2024-03-0{day}T{hour:02d}:00:00Z", "shop": f"s{hour % 3}", "amount": hour}) + "\n"
            for hour in range(24)))


def druid_spec(tmp_path: Path, name: str, datasource: str, folder: Path) -> Path:
    """Incremental logs into Druid: `mode` is not given, so it is append (a delta source)."""
    return write_spec(tmp_path, {
        "name": name,
        "source": {"type": "logs", "path": str(folder), "format": "json", "incremental": True,
                   "schema": {"ts": "string", "shop": "string", "amount": "long"}},
        "target": {"type": "druid", "connection": "druid_default", "datasource": datasource,
                   "timestamp": {"column": "ts"}, "dimensions": ["shop"],
                   "metrics": [{"type": "count", "name": "rows"},
                               {"type": "longSum", "name": "amount", "field": "amount"}],
                   "granularity": {"segment": "day", "query": "none", "rollup": False}},
    })


def test_druid_append_killed_during_publish_never_appends_twice(spark, druid, druid_datasource, tmp_path):
    datasource = druid_datasource("sales")
    sales_logs(tmp_path / "sales")
    spec_path = druid_spec(tmp_path, "crash_druid_append", datasource, tmp_path / "sales")
    assert load_spec(spec_path).target.mode == "append"
    kill_at(spec_path, "publish", tmp_path)

    totals = f'SELECT COUNT(*) AS n, SUM(amount) AS amount FROM "{datasource}"'
    assert druid.sql(totals) == [{"n": 48, "amount": 2 * sum(range(24))}]  # appended once, live
    assert not load_state("crash_druid_append").get("files")

    summary = rerun(spec_path)
    assert summary["finished_publish_of"] is not None and summary["read"] == 0
    assert druid.sql(totals) == [{"n": 48, "amount": 2 * sum(range(24))}]  # not appended again
    assert sorted(Path(p).name for p in load_state("crash_druid_append")["files"]) == [
        "sales-1.log", "sales-2.log"]


def test_druid_killed_after_staging_is_cleaned_up_by_the_next_run(spark, druid, druid_datasource, tmp_path):
    """SIGKILL between staging and gate: the staging datasource outlives the run, and the next
    run of the sync removes it (marked unused, then killed) and publishes the rows once."""
    datasource = druid_datasource("sales_staged")
    sales_logs(tmp_path / "sales")
    spec_path = druid_spec(tmp_path, "crash_druid_staged", datasource, tmp_path / "sales")
    kill_at(spec_path, "synced", tmp_path)

    [staging] = [d for d in druid.datasources() if d.startswith(f"{datasource}__accelsync_")]
    assert druid.sql(f'SELECT COUNT(*) AS n FROM "{staging}"') == [{"n": 48}]
    assert datasource not in druid.datasources()  # nothing published

    summary = rerun(spec_path)
    assert summary["read"] == 48
    druid.wait_removed(staging)
    assert druid.sql(f'SELECT COUNT(*) AS n, SUM(amount) AS amount FROM "{datasource}"') == [
        {"n": 48, "amount": 2 * sum(range(24))}]
    druid.wait_gone(f"{datasource}__accelsync_")  # the second run's own staging went at publish
