"""devstack against real servers: reuse, protocol round trips, env, and the start/stop paths.

The shared services (MariaDB 3306, Redis 6379, Kafka 9092) are brought up and left running.
Start/stop paths run private servers on free ports under a temporary ACCELSYNC_HOME, so the
machine's own servers are never stopped. Kafka is a JVM that takes seconds to start: one test
starts a private broker (and restarts it once), one watches a broker that cannot start fail.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import time
import uuid
from urllib.parse import urlsplit

import pytest
from ports import free_port

from accelsync.dev import devstack
from accelsync.dev.devstack import DevstackError, ServiceStatus

pytestmark = pytest.mark.integration


def port_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def listeners(port: int) -> int:
    """LISTEN sockets that serve 127.0.0.1:port (127.0.0.1, 0.0.0.0, :: or ::ffff:127.0.0.1)."""
    serving = {"0100007F", "00000000", "00000000000000000000000000000000",
               "0000000000000000FFFF00000100007F"}
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            for row in list(rows)[1:]:
                local, state = row.split()[1], row.split()[3]
                addr, hex_port = local.split(":")
                count += state == "0A" and int(hex_port, 16) == port and addr in serving
    return count


def by_name(results: list[ServiceStatus]) -> dict[str, ServiceStatus]:
    return {result.name: result for result in results}


def port_of(result: ServiceStatus) -> int:
    return int(result.address.rsplit(":", 1)[1])


# -- round trips, one per protocol ---------------------------------------------------------------

def mysql_round_trip(port: int) -> None:
    import pymysql

    db = f"accelsync_test_{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(host="127.0.0.1", port=port, user="root", password="", autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{db}`")
            cur.execute(f"CREATE TABLE `{db}`.t (id INT PRIMARY KEY, name VARCHAR(20))")
            cur.execute(f"INSERT INTO `{db}`.t VALUES (1, 'ünïcode'), (2, NULL)")
            cur.execute(f"SELECT id, name FROM `{db}`.t ORDER BY id")
            assert cur.fetchall() == ((1, "ünïcode"), (2, None))
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{db}`")
        conn.close()


def redis_round_trip(port: int) -> None:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port)
    key = f"accelsync:test:{uuid.uuid4().hex}"
    try:
        assert client.set(key, "v1", ex=60)
        assert client.get(key) == b"v1"
    finally:
        client.delete(key)
        client.close()


def kafka_round_trip(port: int) -> None:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    bootstrap = f"127.0.0.1:{port}"
    topic = f"accelsync-test-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
        future.result(timeout=30)
    producer = Producer({"bootstrap.servers": bootstrap})
    producer.produce(topic, key=b"k1", value=b"hello kafka")
    assert producer.flush(30) == 0
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic,
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 30
        message = None
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(1.0)
        assert message is not None, "no message consumed within 30 s"
        assert message.error() is None
        assert (message.key(), message.value()) == (b"k1", b"hello kafka")
    finally:
        consumer.close()
        for future in admin.delete_topics([topic]).values():  # the broker keeps its topics over restarts
            future.result(timeout=30)


ROUND_TRIPS = {"mysql": mysql_round_trip, "redis": redis_round_trip, "kafka": kafka_round_trip}


# -- the shared stack ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def stack() -> dict[str, ServiceStatus]:
    """`devstack.up()` on the default ports; whatever it starts stays up for the other tests."""
    return by_name(devstack.up())


def test_up_is_idempotent(stack):
    pids_before = {s.name: s.our_pid() for s in devstack.services()}
    again = by_name(devstack.up())
    assert {"mysql", "redis", "kafka"} <= set(again)
    for name, result in again.items():
        assert result.up, result
        assert "reused" in result.detail, result
        assert result.address == stack[name].address
        assert result.started_by_us == stack[name].started_by_us
        assert listeners(port_of(result)) == 1, f"{name}: more than one server on {result.address}"
    assert {s.name: s.our_pid() for s in devstack.services()} == pids_before


@pytest.mark.parametrize("name", ["mysql", "redis", "kafka"])
def test_service_answers_its_protocol(stack, name):
    ROUND_TRIPS[name](port_of(stack[name]))


def test_mysql_has_the_database_the_connection_names(stack):
    import pymysql

    uri = urlsplit(devstack.connection_env()["AIRFLOW_CONN_MYSQL_DEFAULT"])
    conn = pymysql.connect(host=uri.hostname, port=uri.port, user=uri.username, password="",
                           database=uri.path.lstrip("/"))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT DATABASE()")
            assert cur.fetchone() == (uri.path.lstrip("/"),)
    finally:
        conn.close()


def test_status_reports_up_with_addresses(stack):
    results = by_name(devstack.status())
    assert [results[name].address for name in ("mysql", "redis", "kafka")] == \
        ["127.0.0.1:3306", "127.0.0.1:6379", "127.0.0.1:9092"]
    for result in results.values():
        assert result.up
        assert result.line().split()[:3] == [result.name, "up", result.address]


def test_command_status_prints_and_exits_zero(stack, capsys):
    assert devstack.command("status") == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines][:3] == [["mysql", "up"], ["redis", "up"], ["kafka", "up"]]
    assert all(line.split()[1] == "up" for line in lines)


# -- connections ---------------------------------------------------------------------------------

def test_connection_env_parses_back():
    env = devstack.connection_env()
    assert {"AIRFLOW_CONN_MYSQL_DEFAULT", "AIRFLOW_CONN_REDIS_DEFAULT", "AIRFLOW_CONN_KAFKA_DEFAULT"} <= set(env)
    mysql = urlsplit(env["AIRFLOW_CONN_MYSQL_DEFAULT"])
    assert (mysql.scheme, mysql.username, mysql.password, mysql.hostname, mysql.port, mysql.path) == \
        ("mysql", "root", None, "127.0.0.1", 3306, "/accelsync")
    redis_uri = urlsplit(env["AIRFLOW_CONN_REDIS_DEFAULT"])
    assert (redis_uri.scheme, redis_uri.hostname, redis_uri.port, redis_uri.path) == \
        ("redis", "127.0.0.1", 6379, "/0")
    assert json.loads(env["AIRFLOW_CONN_KAFKA_DEFAULT"]) == \
        {"conn_type": "kafka", "extra": {"bootstrap.servers": "127.0.0.1:9092"}}


def test_env_lines_are_shell_exports_of_connection_env():
    parsed = {}
    for line in devstack.env_lines():
        export, assignment = shlex.split(line)
        assert export == "export"
        name, value = assignment.split("=", 1)
        parsed[name] = value
    assert parsed == devstack.connection_env()


def test_ports_are_overridable(monkeypatch):
    monkeypatch.setenv("ACCELSYNC_MYSQL_PORT", "13306")
    monkeypatch.setenv("ACCELSYNC_REDIS_PORT", "16379")
    monkeypatch.setenv("ACCELSYNC_KAFKA_PORT", "19092")
    env = devstack.connection_env()
    assert urlsplit(env["AIRFLOW_CONN_MYSQL_DEFAULT"]).port == 13306
    assert urlsplit(env["AIRFLOW_CONN_REDIS_DEFAULT"]).port == 16379
    assert json.loads(env["AIRFLOW_CONN_KAFKA_DEFAULT"])["extra"]["bootstrap.servers"] == "127.0.0.1:19092"


def test_devstack_home_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("ACCELSYNC_DEVSTACK_HOME", raising=False)
    monkeypatch.delenv("ACCELSYNC_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert devstack.devstack_home() == tmp_path / ".accelsync" / "devstack"
    monkeypatch.setenv("ACCELSYNC_HOME", str(tmp_path / "home"))
    assert devstack.devstack_home() == tmp_path / "home" / "devstack"
    monkeypatch.setenv("ACCELSYNC_DEVSTACK_HOME", str(tmp_path / "stack"))
    assert devstack.devstack_home() == tmp_path / "stack"
    assert devstack.services(["redis"])[0].dir == tmp_path / "stack" / "redis"


# -- start and stop paths, on private ports ------------------------------------------------------

@pytest.fixture
def private_home(tmp_path, monkeypatch):
    """A throwaway devstack folder, so pid files never point at the shared servers."""
    monkeypatch.setenv("ACCELSYNC_HOME", str(tmp_path))
    monkeypatch.delenv("ACCELSYNC_DEVSTACK_HOME", raising=False)
    assert devstack.devstack_home() == tmp_path / "devstack"
    return tmp_path


@pytest.mark.parametrize("name", ["redis", "mysql"])
def test_start_then_down_a_private_server(private_home, monkeypatch, name):
    port = free_port()
    monkeypatch.setenv(f"ACCELSYNC_{name.upper()}_PORT", str(port))
    try:
        [started] = devstack.up([name])
        assert started.up and started.started_by_us
        assert started.address == f"127.0.0.1:{port}"
        assert started.detail.startswith("started by devstack")
        assert (private_home / "devstack" / name / f"{name}.pid").exists()
        assert (private_home / "devstack" / name / f"{name}.log").exists()
        ROUND_TRIPS[name](port)

        [again] = devstack.up([name])
        assert "reused" in again.detail and again.started_by_us
        assert listeners(port) == 1
    finally:
        lines = devstack.down([name])
    assert lines == [f"stopped {name} on 127.0.0.1:{port} (pid {started.detail.split()[-1]})"]
    assert port_closed(port)
    [after] = devstack.status([name])
    assert not after.up and not after.started_by_us
    assert devstack.down([name]) == [f"{name} was not running on 127.0.0.1:{port}"]


def free_port_pair() -> int:
    """A free port whose next port is free too: Kafka's controller listens on port + 1."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two free ports in a row")


def kafka_topic_messages(port: int, topic: str) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of partition 0 of `topic`, read by kafka-python."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=f"127.0.0.1:{port}", enable_auto_commit=False,
                             consumer_timeout_ms=5000)
    try:
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        return [(m.key, m.value) for m in consumer]
    finally:
        consumer.close()


def test_private_kafka_starts_formatted_once_and_keeps_its_data_over_down(private_home, monkeypatch):
    from kafka import KafkaAdminClient, KafkaProducer
    from kafka.admin import NewTopic

    from accelsync.dev.devstack.kafka import KAFKA_VERSION

    port = free_port_pair()
    monkeypatch.setenv("ACCELSYNC_KAFKA_PORT", str(port))
    folder = private_home / "devstack" / "kafka"
    topic = f"kept-{uuid.uuid4().hex[:8]}"
    # A cluster id that starts with "-" (one random id in 32 does) must not read as an option.
    from accelsync.dev.devstack import kafka as kafka_service
    monkeypatch.setattr(kafka_service.uuid, "uuid4", lambda: uuid.UUID(bytes=b"\xf8" + bytes(15)))
    try:
        [started] = devstack.up(["kafka"])
        assert (started.up, started.started_by_us, started.address) == (True, True, f"127.0.0.1:{port}")
        assert started.detail.startswith("started by devstack")
        assert started.version == f"Apache Kafka {KAFKA_VERSION}"
        properties = (folder / "server.properties").read_text()
        assert f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{port + 1}\n" in properties
        assert f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}\n" in properties
        cluster = (folder / "data" / "meta.properties").read_text()
        assert "cluster.id=" in cluster and "node.id=1" in cluster
        assert listeners(port) == 1 and listeners(port + 1) == 1
        kafka_round_trip(port)

        admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{port}")
        admin.create_topics([NewTopic(topic, 1, 1)])
        admin.close()
        producer = KafkaProducer(bootstrap_servers=f"127.0.0.1:{port}")
        producer.send(topic, key=b"k", value=b"kept over down").get(timeout=30)
        producer.close()

        [again] = devstack.up(["kafka"])
        assert "reused" in again.detail and again.started_by_us
        assert listeners(port) == 1

        pid = started.detail.split()[-1]
        assert devstack.down(["kafka"]) == [f"stopped kafka on 127.0.0.1:{port} (pid {pid})"]
        assert port_closed(port) and port_closed(port + 1)
        [after] = devstack.status(["kafka"])
        assert not after.up and not after.started_by_us

        # Started again: the same cluster (formatted once), its topic and message still there.
        [restarted] = devstack.up(["kafka"])
        assert restarted.detail.startswith("started by devstack") and restarted.detail.split()[-1] != pid
        assert (folder / "data" / "meta.properties").read_text() == cluster
        assert kafka_topic_messages(port, topic) == [(b"k", b"kept over down")]
    finally:
        lines = devstack.down(["kafka"])
    assert lines[0].startswith(f"stopped kafka on 127.0.0.1:{port} (pid ")
    assert port_closed(port)
    assert devstack.down(["kafka"]) == [f"kafka was not running on 127.0.0.1:{port}"]


def test_kafka_that_cannot_listen_fails_with_its_log(private_home, monkeypatch):
    port = free_port_pair()
    monkeypatch.setenv("ACCELSYNC_KAFKA_PORT", str(port))
    with socket.socket() as squatter:  # takes the controller's port
        squatter.bind(("127.0.0.1", port + 1))
        squatter.listen()
        started = time.monotonic()
        # Kafka ends its JVM after a fatal fault, or at times hangs in its shutdown hooks: either
        # way `up` fails at once, with the cause from the log.
        with pytest.raises(DevstackError, match=r"Kafka did not become healthy on 127\.0\.0\.1:"
                                                rf"{port} within \d+s \((it exited with status 1|it logged "
                                                r"'Encountered fatal fault' and was stopped)\); "
                                                r"(.|\n)*kafka\.log ends:(.|\n)*Address already in use"):
            devstack.up(["kafka"])
        assert time.monotonic() - started < 60, "a dead server should fail fast, not wait out the timeout"
    assert port_closed(port)
    assert devstack.status(["kafka"])[0].detail == "not running"


@pytest.mark.parametrize("reaped", [False, True], ids=["exit-unseen", "exit-reaped"])
def test_a_server_that_logs_a_fatal_error_and_hangs_is_stopped_at_once(private_home, monkeypatch, reaped):
    """A server whose log says it will never be healthy (Kafka's "Encountered fatal fault") but
    whose process lingers is stopped, and `up` fails with its log, without waiting out the timeout,
    and without trying again: also when the stop was seen as "killed by signal 15" (a child reaped
    while stopping it, as happened under load in CI: the old code took our own SIGTERM for a
    crash, started the server twice more and blamed the signal)."""
    import sys

    from accelsync.dev.devstack import base, process
    from accelsync.dev.devstack.base import Service
    from accelsync.dev.devstack.process import pid_alive, read_pid, spawn_detached

    if reaped:
        def terminate_and_reap(pid, *args, **kwargs):
            stopped = process.terminate(pid, *args, **kwargs)
            process.EXITED[pid] = -15
            return stopped
        monkeypatch.setattr(base, "terminate", terminate_and_reap)

    class Hanging(Service):
        name, label, process_name = "hanging", "Hanging", "hanging_server_marker"
        default_port = free_port()
        fatal_marks = ("Encountered fatal fault",)

        def check(self, timeout: float) -> bool:
            return False

        def connection(self) -> str:
            return ""

        def start(self) -> None:
            script = "import time; print('Encountered fatal fault: caught exception', flush=True); time.sleep(600)"
            spawn_detached([sys.executable, "-c", script, self.process_name], self.log_file, self.pid_file,
                           cwd=self.dir)

    service = Hanging()
    started = time.monotonic()
    with pytest.raises(DevstackError, match=r"Hanging did not become healthy on 127\.0\.0\.1:\d+ within \d+s "
                                            r"\(it logged 'Encountered fatal fault' and was stopped\); "
                                            r"(.|\n)*hanging\.log ends:\nEncountered fatal fault: caught exception"):
        service.up()
    assert time.monotonic() - started < 30
    assert read_pid(service.pid_file) is None
    assert not any(pid_alive(int(pid), "hanging_server_marker") for pid in os.listdir("/proc") if pid.isdigit())
    assert service.log_file.read_text().count("Encountered fatal fault") == 1  # started once


def test_down_leaves_servers_it_did_not_start(stack, private_home):
    lines = devstack.down(["mysql", "redis"])
    assert lines == ["left redis on 127.0.0.1:6379 running (not started by devstack)",
                     "left mysql on 127.0.0.1:3306 running (not started by devstack)"]
    assert all(result.up for result in devstack.status(["mysql", "redis"]))


def test_port_taken_by_something_else_fails_clearly(private_home, monkeypatch):
    with socket.socket() as squatter:  # accepts connections, never speaks Redis
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        monkeypatch.setenv("ACCELSYNC_REDIS_PORT", str(port))
        with pytest.raises(DevstackError, match=f"127.0.0.1:{port} is in use but does not answer as Redis"):
            devstack.up(["redis"])


def test_a_server_that_dies_fails_with_its_log(private_home, monkeypatch):
    port = free_port()
    monkeypatch.setenv("ACCELSYNC_MYSQL_PORT", str(port))
    (private_home / "devstack" / "mysql" / "data" / "mysql").mkdir(parents=True)  # no system tables
    started = time.monotonic()
    with pytest.raises(DevstackError, match=r"did not become healthy(.|\n)*mysql\.log ends:(.|\n)*\[ERROR\]"):
        devstack.up(["mysql"])
    assert time.monotonic() - started < 30, "a dead server should fail fast, not wait out the timeout"
    assert port_closed(port)


def test_unknown_service_is_named():
    with pytest.raises(DevstackError, match="unknown service nosuch; known: mysql, redis, kafka"):
        devstack.up(["nosuch"])
