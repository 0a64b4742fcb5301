"""Transient failures during a sync, on real services: a Redis server restarted mid-run and a
MySQL connection killed mid-read. The partition that lost its connection is read and written
again (accelsync.engine.retry); the run then ends exactly right or fails with the cause, and never
publishes a partial version."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time

import pytest
import redis as redis_py

from accelsync import pipeline
from accelsync.spec import parse_spec
from ports import free_port

pytestmark = pytest.mark.integration

ROWS = 6000


class RedisServer:
    """A redis-server of this test's own, which the test can stop and start again."""

    def __init__(self, folder, persistent: bool):
        self.port = free_port()
        self.folder = folder
        self.persistent = persistent
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        persistence = ["--appendonly", "yes", "--appendfsync", "always"] if self.persistent else ["--appendonly", "no"]
        self.process = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                         "--dir", str(self.folder), *persistence],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            try:
                if self.client().ping():
                    return
            except redis_py.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()  # as a crash: only what the append-only file holds survives
            self.process.wait(timeout=20)

    def client(self) -> redis_py.Redis:
        return redis_py.Redis(host="127.0.0.1", port=self.port, socket_timeout=10)


@pytest.fixture()
def own_redis(services, tmp_path, monkeypatch):
    servers = []

    def make(persistent: bool) -> RedisServer:
        server = RedisServer(tmp_path, persistent)
        server.start()
        servers.append(server)
        monkeypatch.setenv("AIRFLOW_CONN_RETRY_REDIS", f"redis://127.0.0.1:{server.port}/0")
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture()
def items(mysql):
    cursor = mysql.cursor()
    cursor.execute("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40), pad VARCHAR(600))")
    cursor.executemany("INSERT INTO items VALUES (%s, %s, %s)",
                       [(i, f"item {i}", "x" * 600) for i in range(1, ROWS + 1)])
    return mysql


def items_spec(name: str, connection: str, mode: str = "upsert", rate: int = 1500):
    return parse_spec({
        "name": name,
        "source": {"type": "mysql", "connection": "test_mysql", "table": "items", "split_pk": "id",
                   "fetch_size": 100},
        "target": {"type": "redis", "connection": connection, "key": "item:{id}", "mode": mode,
                   "value": {"type": "string", "fields": ["name"]}},
        "speed": {"channels": 2, "records_per_second": rate},
        "timeout": "5m",
    })


def in_background(spec) -> tuple[threading.Thread, dict]:
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(pipeline.run(spec)), daemon=True)
    thread.start()
    return thread, result


def wait_for(condition, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def live_items(client, prefix: str = "") -> dict[bytes, bytes]:
    keys = sorted(client.scan_iter(match=f"{prefix}item:*", count=10_000))
    return dict(zip(keys, client.mget(keys))) if keys else {}


def expected_items(prefix: str = "") -> dict[bytes, bytes]:
    return {f"{prefix}item:{i}".encode(): f"item {i}".encode() for i in range(1, ROWS + 1)}


def sync_through_an_outage(server: RedisServer, name: str, down_for: float | None,
                           after_partition: int | None = None) -> dict:
    """Sync `items` into the server in swap mode; once 800 keys are in (and, with
    `after_partition`, once that plan partition was read in full), stop the server and start it
    again `down_for` seconds later (None: leave it down). Returns the summary."""
    from accelsync.runs import home

    client = server.client()
    thread, summary = in_background(items_spec(name, "retry_redis", mode="swap"))
    wait_for(lambda: client.dbsize() > 800, 120, "the first writes")
    if after_partition is not None:
        wait_for(lambda: any((home() / "runs" / name).glob(f"*/stats/read-{after_partition:05d}.json")), 120,
                 f"partition {after_partition} to be read in full")
    server.stop()
    if down_for is not None:
        time.sleep(down_for)
        server.start()
    thread.join(300)
    assert not thread.is_alive(), "the run did not end"
    return summary


def test_redis_restarted_mid_write_is_retried_and_the_run_converges(spark, items, own_redis):
    server = own_redis(persistent=True)
    summary = sync_through_an_outage(server, "retry_redis_restart", down_for=1.0)

    assert summary["status"] == "published", summary["reason"]
    assert summary["retries"] >= 1
    assert summary["read"] == ROWS and summary["written"] == ROWS and summary["dirty"] == 0
    client = server.client()
    prefix = client.get("accelsync:live:retry_redis_restart").decode()
    assert live_items(client, prefix) == expected_items(prefix)


def test_redis_that_loses_its_data_in_a_restart_fails_the_gate_and_publishes_nothing(spark, items, own_redis):
    # Uneven split ranges: the first partition (100 rows) is done long before the restart, so
    # its rows are lost with the server's memory and no retry writes them again.
    items.cursor().execute("UPDATE items SET id = id + 100000 WHERE id > 100")
    server = own_redis(persistent=False)
    summary = sync_through_an_outage(server, "retry_redis_lost", down_for=0.5, after_partition=0)

    assert summary["status"] == "failed"
    assert summary["retries"] >= 1
    assert "reconcile" in summary["reason"], summary["reason"]
    assert server.client().get("accelsync:live:retry_redis_lost") is None


def test_redis_down_for_good_fails_with_the_cause_after_retries(spark, items, own_redis):
    summary = sync_through_an_outage(own_redis(persistent=False), "retry_redis_down", down_for=None)

    assert summary["status"] == "failed"
    assert "failed 4 times" in summary["reason"] and "Redis" in summary["reason"], summary["reason"]
    assert summary["gate"]["checks"] == []  # the gate never ran on a partial version


def test_mysql_connection_killed_mid_read_is_retried(spark, items, redis_client):
    import pymysql

    # SLEEP() per row keeps each partition's query running on the server for a few seconds.
    spec = parse_spec(dict(items_spec("retry_mysql_kill", "test_redis").model_dump(by_alias=True, mode="json"),
                           source={"type": "mysql", "connection": "test_mysql", "table": "items",
                                   "split_pk": "id", "where": "SLEEP(0.002) = 0", "fetch_size": 100},
                           speed={"channels": 2}))
    thread, summary = in_background(spec)
    admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", autocommit=True)
    killed = []

    def kill_a_reader() -> bool:
        cursor = admin.cursor()
        cursor.execute("SELECT id FROM information_schema.processlist "
                       "WHERE info LIKE '%FROM `items`%SLEEP%' AND info NOT LIKE '%MIN(%' "
                       "AND id <> CONNECTION_ID()")
        found = [row[0] for row in cursor.fetchall()]
        if found:
            cursor.execute(f"KILL {int(found[0])}")
            killed.append(found[0])
        return bool(killed)

    wait_for(kill_a_reader, 120, "a reading connection to kill")
    admin.close()
    thread.join(300)

    assert summary["status"] == "published", summary["reason"]
    assert summary["retries"] == 1
    assert summary["read"] == ROWS and summary["written"] == ROWS
    assert live_items(redis_client) == expected_items()
