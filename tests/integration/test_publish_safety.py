"""Publishing never pulls data from under a reader, and one sync never runs twice at once.

Promises tested here, against the real Redis and MariaDB:
- swap: the version a publish replaces stays readable for `grace`, then Redis expires it; a
  version that never went live (failed gate, error limit, exception, killed run) is removed by
  its run, or by the next run after a kill;
- upsert: a failed gate's summary says the rows stay live and the source did not advance;
- a second run of a sync while one runs is refused, from `accelsync run` and from Airflow's
  stages alike, and a crashed run's lock does not block the next one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import yaml

from accelsync import lock, pipeline
from accelsync.targets.redis.readers import RedisSwapReader
from accelsync.spec import load_spec, parse_spec

pytestmark = pytest.mark.integration
ROWS = 200


@pytest.fixture()
def items(mysql):
    cursor = mysql.cursor()
    cursor.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40), price INT)")
    cursor.executemany("INSERT INTO items VALUES (%s, %s, %s)", [(i, f"item {i}", i) for i in range(1, ROWS + 1)])
    return cursor


def spec_data(name: str, **target) -> dict:
    return {"name": name,
            "source": {"type": "mysql", "connection": "test_mysql", "table": "items", "split_pk": "id"},
            "target": {"type": "redis", "connection": "test_redis", "key": "it:{id}",
                       "value": {"type": "hash", "fields": ["name", "price"]}, **target},
            "speed": {"channels": 2}}


def new_name(stem: str) -> str:
    return f"{stem}_{uuid.uuid4().hex[:6]}"


def test_a_superseded_version_stays_readable_for_its_grace_then_expires(spark, items, redis_client):
    spec = parse_spec(spec_data(new_name("grace"), mode="swap", grace="3s"))
    reader = RedisSwapReader(redis_client, spec.name)
    assert pipeline.run(spec)["status"] == "published"
    old = reader.prefix()  # a reader looked the pointer up just before the next publish

    items.execute("UPDATE items SET price = price + 1000")
    summary = pipeline.run(spec)
    assert summary["status"] == "published"
    assert reader.prefix() != old
    assert redis_client.hget(f"{old}it:7", "price") == b"7"  # still there for the slow reader
    assert redis_client.hget(reader.key("it:7"), "price") == b"1007"

    time.sleep(3.5)
    assert list(redis_client.scan_iter(match=f"{old}*")) == []  # expired by Redis after the grace
    assert pipeline.run(spec)["status"] == "published"  # and forgotten by the next publish
    versions = redis_client.smembers(f"accelsync:versions:{spec.name}")
    assert old.encode() not in versions and reader.prefix().encode() in versions and len(versions) == 2


def test_an_error_limit_failure_removes_its_swap_version_at_once(spark, items, redis_client):
    items.execute("ALTER TABLE items MODIFY name VARCHAR(40) NULL")
    items.execute("UPDATE items SET name = NULL, price = NULL WHERE id <= 5")  # all-NULL hash rows: dirty
    spec = parse_spec(spec_data(new_name("limit"), mode="swap"))
    summary = pipeline.run(spec)
    assert summary["status"] == "failed" and "error_limit" in summary["reason"]
    assert [k for k in redis_client.scan_iter(match=f"{spec.name}:*")] == []
    assert redis_client.smembers(f"accelsync:versions:{spec.name}") == set()


def test_an_exception_in_the_sync_removes_its_swap_version(spark, items, redis_client):
    # a failure in the middle of the write (Spark's ANSI division by zero at id 150)
    spec = parse_spec(dict(spec_data(new_name("boom"), mode="swap"),
                           transform={"select": ["id", "name", "price", "1 DIV (id - 150) AS x"]}))
    summary = pipeline.run(spec)
    assert summary["status"] == "failed" and "DIVIDE_BY_ZERO" in summary["reason"], summary["reason"]
    assert [k for k in redis_client.scan_iter(match=f"{spec.name}:*")] == []


def test_a_killed_runs_version_and_lock_are_cleared_by_the_next_run(spark, items, redis_client, tmp_path):
    name = new_name("killed")
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec_data(name, mode="swap")))
    marker = tmp_path / "synced"
    process = subprocess.Popen([sys.executable, "-m", "accelsync.cli", "run", str(path)],
                               env=dict(os.environ, ACCELSYNC_PAUSE_AT=f"synced:{marker}"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    _wait_for(marker, process)
    held = lock.holder(name)
    assert held is not None and held["via"] == "accelsync run"
    killed_version = held["run_id"]
    assert list(redis_client.scan_iter(match=f"{name}:*"))  # its version is staged

    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=60)
    summary = pipeline.run(load_spec(path))  # the dead run's lock is stale at once

    assert summary["status"] == "published", summary["reason"]
    live = RedisSwapReader(redis_client, name).prefix()
    assert {k.decode().split(":")[1] for k in redis_client.scan_iter(match=f"{name}:*")} == {live.split(":")[1]}
    assert killed_version not in live


def test_a_second_run_is_refused_while_one_runs_from_the_cli_and_from_airflow(spark, items, redis_client, tmp_path):
    name = new_name("single")
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec_data(name)))
    marker = tmp_path / "synced"
    first = subprocess.Popen([sys.executable, "-m", "accelsync.cli", "run", str(path)],
                             env=dict(os.environ, ACCELSYNC_PAUSE_AT=f"synced:{marker}"),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for(marker, first)
        second = subprocess.run([sys.executable, "-m", "accelsync.cli", "run", str(path)], capture_output=True,
                                text=True, timeout=300)
        assert second.returncode == 1
        assert f"Reason                : {name} is already running: run " in second.stdout
        assert "(accelsync run, pid" in second.stdout and "a second run at once would race it" in second.stdout
        # an Airflow task's stage is refused the same way
        with pytest.raises(lock.SyncAlreadyRunning, match=f"{name} is already running"):
            pipeline.stage_sync(load_spec(path), "manual__2026-12-01T00:00:00+00:00")
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=60)


def test_an_airflow_run_holds_the_lock_from_sync_to_report(spark, items, redis_client):
    spec = parse_spec(spec_data(new_name("airflow")))
    run_id = "scheduled__2026-12-01T00:00:00+00:00"
    pipeline.stage_sync(spec, run_id)  # the sync task ended; gate and publish are still to come
    assert lock.holder(spec.name)["run_id"] == run_id

    refused = pipeline.run(spec)
    assert refused["status"] == "failed" and f"{spec.name} is already running: run {run_id} (airflow" in refused["reason"]

    pipeline.stage_gate(spec, run_id)
    pipeline.stage_publish(spec, run_id)
    pipeline.report(spec, run_id)
    assert lock.holder(spec.name) is None
    assert pipeline.run(spec)["status"] == "published"


def test_a_failed_upsert_gate_says_the_rows_stay_live(spark, items, redis_client):
    spec = parse_spec(dict(spec_data(new_name("upsert")), quality={"reconcile": {"tolerance": 0}}))
    run_id = "upsert-" + uuid.uuid4().hex[:6]
    pipeline.stage_sync(spec, run_id)
    redis_client.delete("it:3")  # the target lost a row: the gate's reconcile fails
    with pytest.raises(Exception, match="reconcile"):
        pipeline.stage_gate(spec, run_id)
    summary = pipeline.report(spec, run_id)
    assert summary["status"] == "failed"
    assert summary["note"] == "rows written in upsert mode stay live; the source position was not advanced"
    assert redis_client.hget("it:4", "name") == b"item 4"  # live indeed


def _wait_for(marker: Path, process: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not marker.exists():
        assert process.poll() is None, f"the run ended (exit {process.returncode}) before its pause point"
        assert time.monotonic() < deadline, "the run did not reach its pause point"
        time.sleep(0.2)
