"""Shared fixtures: the real local services (started by `accelsync devstack`), a private
ACCELSYNC_HOME, one SparkSession, and clean per-test MySQL tables and Redis keys."""

from __future__ import annotations

import os
import uuid

import pytest

# One database per test session, so two sessions on one machine do not drop each other's tables.
TEST_DATABASE = f"accelsync_test_{os.getpid()}"
# Sessions that run side by side (e.g. two work trees) set ACCELSYNC_TEST_REDIS_DB apart.
TEST_REDIS_DB = int(os.environ.get("ACCELSYNC_TEST_REDIS_DB", "14"))


@pytest.fixture(scope="session", autouse=True)
def accelsync_home(tmp_path_factory):
    # Services outlive the test session: keep their pid files and data in the project folder,
    # where `accelsync devstack down` finds them; everything else goes to a temporary home.
    from pathlib import Path
    os.environ.setdefault("ACCELSYNC_DEVSTACK_HOME", str(Path(".accelsync/devstack").absolute()))
    home = tmp_path_factory.mktemp("accelsync_home")
    os.environ["ACCELSYNC_HOME"] = str(home)
    return home


@pytest.fixture(scope="session")
def services():
    """Start (or reuse) MariaDB and Redis, and point the connection ids at the local services.

    Kafka, HBase and Druid are JVM servers, slow to start on a small machine: only the tests
    that use one ask for it (`kafka_server`, `hbase_server`, `druid_server`)."""
    from accelsync.dev import devstack

    devstack.up(["mysql", "redis"])
    os.environ.update(devstack.connection_env())
    os.environ["AIRFLOW_CONN_TEST_MYSQL"] = f"mysql://root@127.0.0.1:3306/{TEST_DATABASE}"
    os.environ["AIRFLOW_CONN_TEST_REDIS"] = f"redis://127.0.0.1:6379/{TEST_REDIS_DB}"
    return devstack


def _server(name: str):
    from accelsync.dev import devstack

    [status] = devstack.up([name])
    return status


@pytest.fixture(scope="session")
def kafka_server(services):
    """The devstack Kafka broker (`kafka_default`), started once per test session."""
    return _server("kafka")


@pytest.fixture(scope="session")
def hbase_server(services):
    """The devstack HBase and its Thrift server (`hbase_default`), started once per test session."""
    return _server("hbase")


@pytest.fixture(scope="session")
def hbase_rest(hbase_server, tmp_path_factory):
    """HBase's own REST server on the devstack HBase: the third-party client the tests read
    HBase with (tests/hbase_gateways.py), started once per test session."""
    from hbase_gateways import RestGateway

    gateway = RestGateway(tmp_path_factory.mktemp("hbase_rest"))
    yield gateway
    gateway.stop()


@pytest.fixture(scope="session")
def druid_server(services):
    """The devstack Druid (`druid_default`, the router), started once per test session."""
    return _server("druid")


@pytest.fixture(scope="session")
def druid(druid_server):
    """Druid's HTTP API on the devstack router, through plain urllib (the tests' own read path)."""
    from druid_api import DruidApi

    return DruidApi(druid_server.address)


@pytest.fixture()
def druid_datasource(druid, run_id):
    """`make(prefix)` names a datasource unique to this test; each is dropped when the test ends
    (the devstack Druid keeps its datasources across test sessions)."""
    names: list[str] = []

    def make(prefix: str) -> str:
        names.append(f"{prefix}_{run_id.replace('-', '_')}")
        return names[-1]

    yield make
    for name in names:
        druid.drop(name)


@pytest.fixture(scope="session")
def spark(services):
    from accelsync.engine.spark_session import get_spark

    return get_spark()


@pytest.fixture()
def mysql(services):
    """A pymysql connection to a fresh test database."""
    import pymysql

    db = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", charset="utf8mb4",
                         autocommit=True)
    cursor = db.cursor()
    cursor.execute(f"DROP DATABASE IF EXISTS {TEST_DATABASE}")
    cursor.execute(f"CREATE DATABASE {TEST_DATABASE} DEFAULT CHARSET utf8mb4")
    cursor.execute(f"USE {TEST_DATABASE}")
    yield db
    db.cursor().execute(f"DROP DATABASE IF EXISTS {TEST_DATABASE}")
    db.close()


@pytest.fixture()
def test_database() -> str:
    """The name of the per-session MySQL test database (connection id `test_mysql`)."""
    return TEST_DATABASE


@pytest.fixture()
def redis_client(services):
    import redis

    client = redis.Redis(host="127.0.0.1", port=6379, db=TEST_REDIS_DB)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture()
def run_id():
    return "test-" + uuid.uuid4().hex[:10]
