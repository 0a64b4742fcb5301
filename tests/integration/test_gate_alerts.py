"""Each gate check fails for its own reason in a DAG run of Airflow itself, leaves `publish` not
run, and the on-call alert (delivered to a real local webhook) says which sync, which task and why.

Also: a run that is too slow is stopped with reason `timeout` (task failure alert), and the
timeliness check fails a gate reached after the spec's timeout.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from webhook import webhook_server

pytestmark = pytest.mark.integration

DATABASE = "accelsync_test_gate_alerts"
PREFIX = "accelsync_test_gate_alerts"
USERS = [(1, "Ana", "Lisbon", datetime(2024, 1, 1, 8, 0)), (2, "Bo", "Paris", datetime(2024, 1, 2, 9, 0)),
         (3, "Chen", "Tokyo", datetime(2024, 1, 3, 10, 0)), (4, "Dee", None, datetime(2024, 1, 4, 11, 0))]


@pytest.fixture(scope="module")
def users(services):
    import pymysql

    db = pymysql.connect(host="127.0.0.1", user="root", password="", charset="utf8mb4", autocommit=True)
    with db.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        cursor.execute(f"CREATE DATABASE {DATABASE} DEFAULT CHARSET utf8mb4")
        cursor.execute(f"CREATE TABLE {DATABASE}.users (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL,"
                       " city VARCHAR(40), updated_at DATETIME NOT NULL)")
        cursor.executemany(f"INSERT INTO {DATABASE}.users VALUES (%s, %s, %s, %s)", USERS)
    os.environ["AIRFLOW_CONN_GA_MYSQL"] = f"mysql://root@127.0.0.1:3306/{DATABASE}"
    redis_db = int(os.environ.get("ACCELSYNC_TEST_REDIS_DB", "14"))
    os.environ["AIRFLOW_CONN_GA_REDIS"] = f"redis://127.0.0.1:6379/{redis_db}"
    yield redis_db
    with db.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    db.close()


@pytest.fixture(scope="module")
def webhook():
    """The alerts go to the log and to a real local webhook; yields what the webhook received."""
    saved = {k: os.environ.get(k) for k in ("ACCELSYNC_NOTIFIERS", "ACCELSYNC_ALERT_WEBHOOK_URL")}
    with webhook_server() as (url, received):
        os.environ["ACCELSYNC_NOTIFIERS"] = "log,webhook"
        os.environ["ACCELSYNC_ALERT_WEBHOOK_URL"] = url
        yield received
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="module")
def airflow(users, webhook):
    from accelsync.dev import airflow_env

    airflow_env.migrate()
    return airflow_env


def run(airflow, tmp_path: Path, webhook: list, name: str, text: str):
    """One DAG run of the spec; returns (result, the alerts POSTed during it)."""
    path = tmp_path / "syncs" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"name: {name}\n" + text, encoding="utf-8")
    before = len(webhook)
    result = airflow.run_dag(path)
    return result, webhook[before:]


def gate_verdict(name: str, run_id: str) -> dict:
    from accelsync.runs import RunDir, safe_run_id

    run = RunDir(name, safe_run_id(run_id))
    assert not run.exists("published.json")
    return run.read_json("gate.json")


GATE_FAILED = {"sync": "success", "gate": "failed", "publish": "upstream_failed", "report": "success"}


def assert_gate_alert(alerts: list, name: str, run_id: str, check: str) -> dict:
    assert len(alerts) == 1, alerts
    alert = alerts[0]
    assert (alert["sync"], alert["task"], alert["kind"], alert["run_id"]) == (name, "gate", "gate", run_id)
    assert alert["failed_checks"] == [check]
    assert alert["reason"].startswith(f"gate failed: {check}: ")
    assert alert["title"] == f"accelsync: {name} quality gate failed (gate)"
    assert f"/dags/{name}/runs/" in alert["log_url"] and alert["log_url"].split("?")[0].endswith("/tasks/gate")
    assert alert["report_url"].endswith(f"/accelsync/syncs/{name}")
    assert "password" not in json.dumps(alert).lower()
    return alert


def test_wrong_value_in_the_target_fails_readback_naming_key_and_field(airflow, tmp_path, webhook):
    suite = tmp_path / "ga_suite.json"
    suite.write_text(json.dumps({"name": "ga_suite", "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}}]}))
    # Every row lands on one key, so the target holds one name where the rows have four.
    result, alerts = run(airflow, tmp_path, webhook, "ga_readback", f"""
source: {{type: mysql, connection: ga_mysql, table: users}}
transform: {{select: [id, name, "'all' AS bucket"]}}
target: {{type: redis, connection: ga_redis, key: "{PREFIX}:bucket:{{bucket}}", value: {{type: hash, fields: [name]}}}}
quality: {{suite: {suite}, readback: {{sample: 100}}}}
""")
    assert (result.state, result.tasks) == ("failed", GATE_FAILED)
    verdict = gate_verdict("ga_readback", result.run_id)
    failed = [c for c in verdict["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["readback"]
    assert f"{PREFIX}:bucket:all field name: expected " in failed[0]["detail"]
    alert = assert_gate_alert(alerts, "ga_readback", result.run_id, "readback")
    assert f"{PREFIX}:bucket:all field name" in alert["reason"]
    # The run's Data Docs page, as the report plugin serves it.
    assert "/accelsync/docs/" in alert["data_docs"] and alert["data_docs"].endswith(".html")
    from accelsync.runs import data_docs_root
    from urllib.parse import unquote
    page = data_docs_root() / unquote(alert["data_docs"].split("/accelsync/docs/", 1)[1])
    assert page.resolve() == Path(verdict["data_docs"]).resolve()


def test_missing_keys_fail_reconcile(airflow, tmp_path, webhook):
    # A 1 ms TTL: the keys are written, then gone before the gate counts them.
    result, alerts = run(airflow, tmp_path, webhook, "ga_reconcile", f"""
source: {{type: mysql, connection: ga_mysql, table: users}}
target: {{type: redis, connection: ga_redis, key: "{PREFIX}:gone:{{id}}", value: {{type: hash, fields: [name]}},
         ttl: 1ms}}
quality: {{reconcile: {{tolerance: 1}}, readback: {{sample: 0}}}}
""")
    assert (result.state, result.tasks) == ("failed", GATE_FAILED)
    failed = [c for c in gate_verdict("ga_reconcile", result.run_id)["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["reconcile"]
    assert failed[0]["detail"].startswith("target has 0 of 4 expected rows")
    alert = assert_gate_alert(alerts, "ga_reconcile", result.run_id, "reconcile")
    assert "target has 0 of 4 expected rows" in alert["reason"] and "tolerance 1" in alert["reason"]


def test_late_data_fails_freshness(airflow, tmp_path, webhook):
    result, alerts = run(airflow, tmp_path, webhook, "ga_freshness", f"""
source: {{type: mysql, connection: ga_mysql, table: users}}
target: {{type: redis, connection: ga_redis, key: "{PREFIX}:fresh:{{id}}", value: {{type: hash, fields: [name]}}}}
quality: {{freshness: {{column: updated_at, max_lag: 2h}}}}
""")
    assert (result.state, result.tasks) == ("failed", GATE_FAILED)
    failed = [c for c in gate_verdict("ga_freshness", result.run_id)["checks"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["freshness"]
    assert failed[0]["detail"].startswith("newest updated_at is 2024-01-04 11:00:00 (")
    assert "max_lag 7200s" in failed[0]["detail"]
    alert = assert_gate_alert(alerts, "ga_freshness", result.run_id, "freshness")
    assert "newest updated_at is 2024-01-04 11:00:00" in alert["reason"]


def test_run_past_its_timeout_fails_with_reason_timeout_and_alerts(airflow, tmp_path, webhook):
    # A budget no sync can meet. (A budget that runs out *inside* a Spark job is cancelled by the
    # engine, see test_mysql_to_redis; here Airflow's execution_timeout fires before any Spark
    # call, so no half-read py4j answer is left behind in this shared test process.)
    result, alerts = run(airflow, tmp_path, webhook, "ga_slow", f"""
timeout: 1ms
source: {{type: mysql, connection: ga_mysql, table: users}}
target: {{type: redis, connection: ga_redis, key: "{PREFIX}:slow:{{id}}", value: {{type: hash, fields: [name]}}}}
""")
    assert result.state == "failed"
    assert result.tasks == {"sync": "failed", "gate": "upstream_failed", "publish": "upstream_failed",
                            "report": "success"}
    assert len(alerts) == 1, alerts
    alert = alerts[0]
    assert (alert["sync"], alert["task"], alert["kind"]) == ("ga_slow", "sync", "timeout")
    assert alert["reason"] == "timeout: the task ran past its execution_timeout (0:00:00.001000, the spec's timeout)"
    assert alert["title"] == "accelsync: ga_slow timed out (sync)"


def test_gate_reached_after_the_timeout_fails_timeliness(services, users, tmp_path, run_id):
    """The sync itself fits, but the run reaches its gate after the spec's budget (e.g. it waited
    for a pool slot): the timeliness check fails and publish is refused."""
    from accelsync import pipeline
    from accelsync.errors import GateFailed, TerminalError
    from accelsync.spec import load_spec

    path = tmp_path / "ga_timeliness.yaml"
    path.write_text(f"""name: ga_timeliness
timeout: 3s
source: {{type: mysql, connection: ga_mysql, table: users}}
target: {{type: redis, connection: ga_redis, key: "{PREFIX}:late:{{id}}", value: {{type: hash, fields: [name]}}}}
""", encoding="utf-8")
    spec = load_spec(path)
    stats = pipeline.stage_sync(spec, run_id)
    assert stats.written == 4
    started = datetime.fromisoformat(stats.started)
    time.sleep(max(0.0, 3.5 - (datetime.now(timezone.utc) - started).total_seconds()))
    with pytest.raises(GateFailed) as failure:
        pipeline.stage_gate(spec, run_id)
    failed = [c for c in failure.value.checks if not c["passed"]]
    assert [c["name"] for c in failed] == ["timeliness"]
    assert failed[0]["detail"].startswith("run took ") and failed[0]["detail"].endswith("of its 3s timeout")
    with pytest.raises(TerminalError, match="no passing gate"):
        pipeline.stage_publish(spec, run_id)
