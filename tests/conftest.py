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


@pytest.fixture(scope="session")
def airflow_deployment(services, accelsync_home, tmp_path_factory):
    """A real Airflow deployment (devstack's `airflow` service) over the deployment tests' specs:
    scheduler, DAG processor, triggerer, API server and a Celery worker per business line
    (growth, commerce) and `default`, on PostgreSQL and a Redis broker. Started once per test
    session on a free port, in its own PostgreSQL database (dropped at the end) and Redis
    database (`ACCELSYNC_TEST_BROKER_DB`, default 8); stopped at the end of the session.

    Pools have one slot (ACCELSYNC_POOL_SLOTS=1), queues are on (ACCELSYNC_QUEUES=true), alerts
    go to the log and to a local webhook, and a task without a heartbeat for 20 s is failed
    (then retried when it has retries left)."""
    import json as _json

    import pymysql
    import redis as redis_lib

    from accelsync.dev import devstack
    from accelsync.dev.devstack.airflow import Airflow
    from airflow_deployment import MYSQL_DATABASE, SUITE, Deployment, make_tables, spec_files
    from ports import free_port
    from webhook import webhook_server

    folder = tmp_path_factory.mktemp("deployment")
    specs = folder / "specs"
    specs.mkdir()
    suite = folder / "deploy_gate.json"
    suite.write_text(_json.dumps(SUITE))
    for name, text in spec_files(suite).items():
        (specs / name).write_text(text)
    db = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    make_tables(db.cursor())
    broker_db = int(os.environ.get("ACCELSYNC_TEST_BROKER_DB", "8"))
    broker = redis_lib.Redis(host="127.0.0.1", port=6379, db=broker_db)
    broker.flushdb()
    database = f"airflow_test_{os.getpid()}"
    [postgres] = devstack.up(["postgres"])
    with webhook_server() as (url, received):
        settings = {
            "ACCELSYNC_SPECS": str(specs), "ACCELSYNC_POOL_SLOTS": "1", "ACCELSYNC_QUEUES": "true",
            "ACCELSYNC_AIRFLOW_DATABASE": database, "ACCELSYNC_AIRFLOW_BROKER_DB": str(broker_db),
            "ACCELSYNC_NOTIFIERS": "log,webhook", "ACCELSYNC_ALERT_WEBHOOK_URL": url,
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW_CONN_DEPLOY_MYSQL": f"mysql://root@127.0.0.1:3306/{MYSQL_DATABASE}",
            "AIRFLOW_CONN_DEPLOY_REDIS": f"redis://127.0.0.1:6379/{TEST_REDIS_DB}",
        }
        service = Airflow(port=free_port(), home=folder / "devstack")
        try:
            # The deployment's processes inherit these; the rest of the session must not (a test
            # of the default queue or pool size runs after this fixture is set up).
            with pytest.MonkeyPatch.context() as patch:
                for name, value in settings.items():
                    patch.setenv(name, value)
                service.up()
            deployment = Deployment(service, database, specs, received)
            deployment.wait_for_dags([name.removesuffix(".yaml") for name in spec_files(suite)])
            yield deployment
        finally:
            print(service.down())
            broker.flushdb()
            broker.close()
            db.cursor().execute(f"DROP DATABASE IF EXISTS {MYSQL_DATABASE}")
            db.close()
            devstack.SERVICES["postgres"]().drop_database(database)
