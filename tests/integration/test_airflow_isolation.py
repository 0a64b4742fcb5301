"""Airflow isolation and alert plumbing on Airflow's real metadata database: pools created from
the specs' business lines, queues by setting, the DeadlineAlert as the scheduler stores it, and
the deadline callback's alert delivered to a real webhook."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest

from webhook import webhook_server

pytestmark = pytest.mark.integration

SPEC = """
name: {name}
business_line: {line}
priority: low
timeout: 5m
source: {{type: mysql, table: users}}
target: {{type: hbase, table: profiles, row_key: "u:{{id}}", family: p}}
"""


@pytest.fixture(autouse=True)
def default_isolation_settings(monkeypatch):
    """These tests start from the documented defaults, whatever the shell exports."""
    import os

    for name in list(os.environ):
        if name.startswith(("ACCELSYNC_QUEUE", "ACCELSYNC_POOL", "ACCELSYNC_DEADLINE")):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def airflow():
    from accelsync.dev import airflow_env

    airflow_env.migrate()
    return airflow_env


def load(tmp_path, name: str, line: str):
    from accelsync.spec import load_spec

    path = tmp_path / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, line=line), encoding="utf-8")
    return load_spec(path), path


def test_queue_is_set_only_when_asked_and_follows_the_template(airflow, tmp_path, monkeypatch):
    from accelsync.airflow.dags import build_dag

    spec, path = load(tmp_path, "iso_queue", "search")
    dag = build_dag(spec, path)
    assert {t.queue for t in dag.tasks} == {"default"}
    assert {(t.pool, t.priority_weight) for t in dag.tasks} == {("accelsync_search", 1)}
    assert [a.uri for a in dag.task_dict["publish"].outlets] == ["hbase://hbase_default/profiles"]

    monkeypatch.setenv("ACCELSYNC_QUEUES", "true")
    assert {t.queue for t in build_dag(spec, path).tasks} == {"accelsync.search"}
    monkeypatch.setenv("ACCELSYNC_QUEUE", "workers-{business_line}")
    monkeypatch.setenv("ACCELSYNC_POOL", "bl_{business_line}")
    dag = build_dag(spec, path)
    assert {(t.queue, t.pool) for t in dag.tasks} == {("workers-search", "bl_search")}
    assert "pool `bl_search`, priority weight 1, queue `workers-search`" in dag.doc_md


def test_missing_pools_are_created_sized_by_setting_and_existing_ones_kept(airflow, tmp_path, monkeypatch):
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    from accelsync.airflow.isolation import ensure_pools

    line = "iso_" + uuid.uuid4().hex[:8]
    spec, _ = load(tmp_path, "iso_pool", line)
    other, _ = load(tmp_path, "iso_pool_other", line)
    monkeypatch.setenv("ACCELSYNC_POOL_SLOTS", "3")
    monkeypatch.setenv(f"ACCELSYNC_POOL_SLOTS_{line.upper()}", "7")
    try:
        assert ensure_pools([spec, other]) == [f"accelsync_{line}"]
        assert Pool.get_pool(f"accelsync_{line}").slots == 7
        monkeypatch.setenv(f"ACCELSYNC_POOL_SLOTS_{line.upper()}", "9")
        assert ensure_pools([spec]) == []  # exists: never resized here
        assert Pool.get_pool(f"accelsync_{line}").slots == 7
    finally:
        with create_session() as session:
            session.query(Pool).filter(Pool.pool == f"accelsync_{line}").delete()


def test_pools_command_creates_them(airflow, tmp_path, capsys):
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    from accelsync.cli import main

    line = "iso_" + uuid.uuid4().hex[:8]
    load(tmp_path, "iso_cli", line)
    try:
        assert main(["pools", str(tmp_path)]) == 0
        assert capsys.readouterr().out == f"accelsync_{line}: created with 4 slots\n"
        assert main(["pools", str(tmp_path)]) == 0
        assert capsys.readouterr().out == f"accelsync_{line}: exists\n"
        assert Pool.get_pool(f"accelsync_{line}").slots == 4
    finally:
        with create_session() as session:
            session.query(Pool).filter(Pool.pool == f"accelsync_{line}").delete()


def test_deadline_alert_survives_serialization_as_the_scheduler_reads_it(airflow, tmp_path):
    from airflow.serialization.serialized_objects import DagSerialization

    from accelsync.airflow.dags import build_dag

    spec, path = load(tmp_path, "iso_deadline", "growth")
    data = DagSerialization.to_dict(build_dag(spec, path))
    [deadline] = data["dag"]["deadline"]
    text = json.dumps(deadline)
    assert "DagRunQueuedAtDeadline" in text and "accelsync.airflow.alerts.deadline_missed" in text
    assert '"sync": "iso_deadline"' in text and '"timeout": "5m"' in text
    assert DagSerialization.from_dict(data).dag_id == "iso_deadline"


def test_deadline_alerts_can_be_turned_off(airflow, tmp_path, monkeypatch):
    from accelsync.airflow.dags import build_dag

    spec, path = load(tmp_path, "iso_no_deadline", "growth")
    monkeypatch.setenv("ACCELSYNC_DEADLINE_ALERTS", "false")
    assert not build_dag(spec, path).deadline


def test_missed_deadline_alert_reaches_the_webhook(monkeypatch):
    from accelsync.airflow import alerts

    # The context the scheduler hands a deadline callback (models/deadline.py).
    context = {"dag_run": {"dag_id": "users_to_redis", "dag_run_id": "scheduled__2026-01-01T00:00:00+00:00",
                           "state": "running"}, "deadline": {"id": "1", "deadline_time": "2026-01-01T00:20:00"}}
    with webhook_server() as (url, received):
        monkeypatch.setenv("ACCELSYNC_NOTIFIERS", "webhook")
        monkeypatch.setenv("ACCELSYNC_ALERT_WEBHOOK_URL", url)
        asyncio.run(alerts.deadline_missed(context, sync="users_to_redis", timeout="20m"))
    [alert] = received
    assert alert["title"] == "accelsync: users_to_redis missed its deadline (dag run)"
    assert alert["reason"] == "timeout: the run is not finished 20m after it was queued (state running)"
    assert alert["log_url"].endswith("/dags/users_to_redis/runs/scheduled__2026-01-01T00%3A00%3A00%2B00%3A00")


def test_email_alert_goes_through_airflows_smtp_notifier(monkeypatch):
    from accelsync.airflow.alerts import Alert, send
    from smtp_sink import smtp_server

    with smtp_server() as (port, messages):
        monkeypatch.setenv("AIRFLOW_CONN_ALERTS_SMTP", json.dumps(
            {"conn_type": "smtp", "host": "127.0.0.1", "port": port,
             "extra": {"disable_tls": True, "disable_ssl": True, "from_email": "accelsync@example.com"}}))
        monkeypatch.setenv("ACCELSYNC_NOTIFIERS", "email")
        monkeypatch.setenv("ACCELSYNC_ALERT_EMAIL_TO", "oncall@example.com, data@example.com")
        monkeypatch.setenv("ACCELSYNC_ALERT_SMTP_CONN", "alerts_smtp")
        send(Alert(sync="users_to_redis", task="gate", kind="gate", run_id="manual__1",
                   reason="gate failed: reconcile: target has 3 of 4 expected rows", failed_checks=["reconcile"]))
    [message] = messages
    assert message["Subject"] == "accelsync: users_to_redis quality gate failed (gate)"
    assert "oncall@example.com" in message["To"] and "data@example.com" in message["To"]
    body = "".join(part.get_payload(decode=True).decode() for part in message.walk()
                   if part.get_content_type() == "text/html")
    assert "reason: gate failed: reconcile: target has 3 of 4 expected rows" in body
