"""The Airflow side on the real services: the DAG folder, the DAG shape, and DAG runs of Airflow
itself (DAG.test on a project-local SQLite metadata database), checked through the task states
Airflow recorded and the exact Redis contents.

DAG runs are slow (Airflow's in-process API server and Spark start once per process), so this
module runs three: one that publishes, one whose gate fails, one of a broken spec's stand-in.
"""

from __future__ import annotations

import logging
import os
import textwrap
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration,
              # the loader's note for the DAG processor's log, expected here
              pytest.mark.filterwarnings("ignore:accelsync. broken spec:UserWarning")]

DATABASE = "accelsync_test_airflow"
PREFIX = "accelsync_test_airflow"
REPO = Path(__file__).resolve().parents[2]

USERS = [
    (1, "Zoë Müller", "Berlin", Decimal("10.50"), datetime(2024, 1, 1, 0, 0, 0)),
    (2, "李娜", "Paris", None, datetime(2024, 1, 2, 8, 30, 0)),
    (3, "José Silva", None, Decimal("99.99"), datetime(2024, 1, 3, 12, 0, 0, 250000)),
    (4, "Ngozi Okafor", "São Paulo", Decimal("0.00"), datetime(2024, 1, 4, 23, 59, 59)),
]

GOOD_SPEC = f"""
name: airflow_test_users
description: Test users into Redis hashes.
owner: test-owner
business_line: testing
priority: high
timeout: 7m
retries: 3
source: {{type: mysql, connection: airflow_test_mysql, table: users, split_pk: id}}
target:
  type: redis
  connection: airflow_test_redis
  key: "{PREFIX}:user:{{id}}"
  value: {{type: hash, fields: [name, city, score, updated_at]}}
speed: {{channels: 2}}
quality: {{reconcile: {{tolerance: 0}}, readback: {{sample: 100}}}}
"""

# Every row lands on one key: reconcile finds each row's key, but the read-back sees one name
# where the rows have four, so the gate fails.
GATE_FAILS_SPEC = f"""
name: airflow_test_gate_fails
retries: 2
source: {{type: mysql, connection: airflow_test_mysql, table: users}}
transform: {{select: [id, name, "'all' AS bucket"]}}
target:
  type: redis
  connection: airflow_test_redis
  key: "{PREFIX}:bucket:{{bucket}}"
  value: {{type: hash, fields: [name]}}
quality: {{readback: {{sample: 100}}}}
"""

BROKEN_SPEC = """
name: airflow_test_broken
schedule: "@daily"
source: {type: mysql, connection: airflow_test_mysql, table: users, colums: [id]}
target: {type: redis, key: "x:{id}"}
"""

NOT_YAML_SPEC = "name: [unclosed\n"


@pytest.fixture(scope="module")
def services():
    from accelsync.dev import devstack

    devstack.up(["mysql", "redis"])
    os.environ["AIRFLOW_CONN_AIRFLOW_TEST_MYSQL"] = f"mysql://root@127.0.0.1:3306/{DATABASE}"
    os.environ["AIRFLOW_CONN_AIRFLOW_TEST_REDIS"] = "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="module")
def users_table(services):
    import pymysql

    db = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", charset="utf8mb4",
                         autocommit=True)
    with db.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        cursor.execute(f"CREATE DATABASE {DATABASE} DEFAULT CHARSET utf8mb4")
        cursor.execute(f"USE {DATABASE}")
        cursor.execute("CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, city VARCHAR(50),"
                       " score DECIMAL(5,2), updated_at DATETIME(6) NOT NULL) DEFAULT CHARSET utf8mb4")
        cursor.executemany("INSERT INTO users VALUES (%s, %s, %s, %s, %s)", USERS)
    yield DATABASE
    with db.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    db.close()


@pytest.fixture(scope="module")
def redis(services):
    import redis as redis_py

    client = redis_py.Redis(host="127.0.0.1", port=6379, db=0)

    def clean():
        keys = list(client.scan_iter(f"{PREFIX}:*", count=1000))
        if keys:
            client.delete(*keys)

    clean()
    yield client
    clean()
    client.close()


@pytest.fixture(scope="module")
def spec_folder(tmp_path_factory):
    """Good and broken specs side by side, as the loader's spec folder (ACCELSYNC_SPECS)."""
    folder = tmp_path_factory.mktemp("syncs")
    for name, text in (("users.yaml", GOOD_SPEC), ("gate_fails.yaml", GATE_FAILS_SPEC),
                       ("broken.yaml", BROKEN_SPEC), ("not_yaml.yml", NOT_YAML_SPEC)):
        (folder / name).write_text(textwrap.dedent(text), encoding="utf-8")
    saved = os.environ.get("ACCELSYNC_SPECS")
    os.environ["ACCELSYNC_SPECS"] = str(folder)
    yield folder
    if saved is None:
        os.environ.pop("ACCELSYNC_SPECS", None)
    else:
        os.environ["ACCELSYNC_SPECS"] = saved


@pytest.fixture(scope="session")
def airflow():
    """The project-local Airflow under ACCELSYNC_HOME, its database migrated once per session."""
    from accelsync.dev import airflow_env

    airflow_env.migrate()
    yield airflow_env
    # py4j says goodbye from __del__ at exit, after pytest closed the stream logging writes to.
    logging.getLogger("py4j").setLevel(logging.WARNING)


@pytest.fixture(scope="module")
def parsed(airflow, spec_folder):
    return airflow.load_dags()


def test_dag_folder_yields_good_dags_beside_a_broken_spec(parsed, spec_folder):
    dags, import_errors = parsed
    assert import_errors == {}
    assert {"airflow_test_users", "airflow_test_gate_fails"} <= set(dags)
    assert dags["airflow_test_users"].fileloc == str(REPO / "dags" / "accelsync_dags.py")

    # The broken spec keeps its DAG id, now a red stand-in showing file and field.
    broken = dags["airflow_test_broken"]
    assert "BROKEN SPEC" in broken.dag_display_name
    assert f"{spec_folder / 'broken.yaml'}: source.colums: unknown field" in broken.doc_md
    assert "source.colums: unknown field" in broken.description
    assert list(broken.task_dict) == ["spec_error"]
    assert "accelsync:broken-spec" in broken.tags
    assert broken.schedule == "@daily"  # a scheduled sync that broke still fails on time

    # A spec whose name cannot be read gets an id from its file name.
    unreadable = dags["broken_spec__not_yaml"]
    assert f"{spec_folder / 'not_yaml.yml'}: line 2, column 1: not valid YAML" in unreadable.doc_md
    assert len(dags) == 4


def test_repository_specs_build(airflow):
    from accelsync.airflow.dags import build_dags

    dags, errors = build_dags(REPO / "dags" / "syncs")
    assert errors == {}
    assert {"users_to_redis", "orders_to_redis"} <= set(dags)


def test_dag_shape_comes_from_the_spec(parsed):
    from airflow.sdk import TriggerRule

    dag = parsed[0]["airflow_test_users"]
    assert dag.dag_id == "airflow_test_users"
    assert [t.task_id for t in dag.topological_sort()] == ["sync", "gate", "publish", "report"]
    assert dag.task_dict["sync"].downstream_task_ids == {"gate"}
    assert dag.task_dict["gate"].downstream_task_ids == {"publish"}
    assert dag.task_dict["publish"].downstream_task_ids == {"report"}
    for task_id in ("sync", "gate", "publish"):
        task = dag.task_dict[task_id]
        assert task.execution_timeout == timedelta(minutes=7)
        assert task.retries == 3
        assert task.retry_exponential_backoff == 2.0
        assert task.owner == "test-owner"
        assert task.trigger_rule == TriggerRule.ALL_SUCCESS
        assert task.spec_path.endswith("users.yaml")
    report = dag.task_dict["report"]
    assert report.is_teardown and report.retries == 0
    # Isolation as the README documents it: priority -> weight, business line -> pool (queue off).
    for task in dag.tasks:
        assert (task.pool, task.priority_weight, task.weight_rule) == ("accelsync_testing", 100, "absolute")
        assert task.queue == "default"
        assert task.on_failure_callback
    assert [a.uri for a in dag.task_dict["publish"].outlets] == [f"redis://airflow_test_redis/{PREFIX}:user:%7Bid%7D"]
    assert [a.uri for t in ("sync", "gate", "report") for a in dag.task_dict[t].outlets] == []
    [deadline] = dag.deadline
    assert deadline.interval == timedelta(minutes=7)
    assert deadline.callback.path == "accelsync.airflow.alerts.deadline_missed"
    assert dag.dagrun_timeout == timedelta(minutes=7)
    assert dag.catchup is False
    assert dag.schedule is None
    assert set(dag.tags) >= {"source:mysql", "target:redis", "business_line:testing"}
    assert "Test users into Redis hashes." in dag.doc_md
    assert "| source | mysql |" in dag.doc_md and "| target | redis |" in dag.doc_md


def test_operators_keep_the_retry_policy_of_errors(airflow, spec_folder, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    from accelsync import pipeline
    from accelsync.errors import DataError, TransientError
    from accelsync.airflow.operators import FAILURE_FILE, SyncOperator
    from accelsync.runs import RunDir, safe_run_id

    operator = SyncOperator(task_id="sync", spec_path=str(spec_folder / "users.yaml"))
    context = {"run_id": "manual__2024-01-01T00:00:00+00:00"}
    run = RunDir("airflow_test_users", safe_run_id(context["run_id"]))

    def failing(exc):
        def stage(*args, **kwargs):
            raise exc
        return stage

    monkeypatch.setattr(pipeline, "stage_sync", failing(TransientError("redis is down")))
    with pytest.raises(TransientError):  # propagates: Airflow retries it
        operator.execute(context)
    monkeypatch.setattr(pipeline, "stage_sync", failing(DataError("12 dirty records exceed error_limit")))
    with pytest.raises(AirflowFailException, match="12 dirty records"):  # fails at once, no retry
        operator.execute(context)
    assert run.read_json(FAILURE_FILE) == {"task": "sync", "error": "12 dirty records exceed error_limit",
                                           "retryable": False}


def _text(value) -> bytes:
    if isinstance(value, datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
        return (text + (f".{value.microsecond:06d}" if value.microsecond else "")).encode()
    return str(value).encode()


def asset_events(uri: str, run_id: str) -> list[tuple[str, str]]:
    """(source DAG, source task) of every event of the asset from this DAG run."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        rows = session.execute(select(AssetEvent.source_dag_id, AssetEvent.source_task_id)
                               .join(AssetModel, AssetModel.id == AssetEvent.asset_id)
                               .where(AssetModel.uri == uri, AssetEvent.source_run_id == run_id)).all()
    return [tuple(row) for row in rows]


def test_dag_run_publishes_to_redis(airflow, spec_folder, users_table, redis):
    result = airflow.run_dag(spec_folder / "users.yaml")
    state, tasks = result
    assert state == "success", result
    assert tasks == {"sync": "success", "gate": "success", "publish": "success", "report": "success"}

    expected = {}
    for user_id, name, city, score, updated_at in USERS:
        fields = {"name": name, "city": city, "score": score, "updated_at": updated_at}
        expected[f"{PREFIX}:user:{user_id}".encode()] = {k.encode(): _text(v) for k, v in fields.items()
                                                       if v is not None}
    keys = sorted(redis.scan_iter(f"{PREFIX}:user:*"))
    assert keys == sorted(expected)
    for key, fields in expected.items():
        assert redis.hgetall(key) == fields

    from accelsync.runs import RunDir, home, safe_run_id

    run = RunDir("airflow_test_users", safe_run_id(result.run_id))
    assert run.path == home() / "runs" / "airflow_test_users" / safe_run_id(result.run_id)
    assert run.exists("published.json")
    summary = run.read_json("summary.json")  # written by the report task
    assert summary["status"] == "published" and summary["read"] == 4 and summary["written"] == 4
    assert summary["airflow_run_id"] == result.run_id

    # publish emitted the target's Asset, so DAGs scheduled on it run after this sync.
    events = asset_events(f"redis://airflow_test_redis/{PREFIX}:user:%7Bid%7D", result.run_id)
    assert events == [("airflow_test_users", "publish")]


def test_failed_gate_leaves_publish_not_run(airflow, spec_folder, users_table, redis):
    result = airflow.run_dag(spec_folder / "gate_fails.yaml")
    state, tasks = result
    assert state == "failed", result
    assert tasks == {"sync": "success", "gate": "failed", "publish": "upstream_failed", "report": "success"}

    from accelsync.runs import RunDir, home, safe_run_id

    run_id = safe_run_id(result.run_id)
    run = RunDir("airflow_test_gate_fails", run_id)
    assert (home() / "runs" / "airflow_test_gate_fails" / run_id).is_dir()
    assert not run.exists("published.json")
    verdict = run.read_json("gate.json")
    assert not verdict["passed"]
    assert [c["name"] for c in verdict["checks"] if not c["passed"]] == ["readback"]
    summary = run.read_json("summary.json")
    assert summary["status"] == "failed" and summary["reason"].startswith("gate failed: readback")
    assert asset_events(f"redis://airflow_test_redis/{PREFIX}:bucket:%7Bbucket%7D", result.run_id) == []


def test_broken_spec_dag_fails_with_its_error(airflow, spec_folder):
    state, tasks = airflow.run_dag("airflow_test_broken")
    assert state == "failed"
    assert tasks == {"spec_error": "failed"}
