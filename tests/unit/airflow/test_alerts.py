"""The alert text and its delivery rules (pure logic; the webhook itself is tested for real in
tests/integration)."""

from __future__ import annotations

import logging

from accelsync.airflow.alerts import Alert, redact, send


def test_redact_masks_url_userinfo_and_password_values():
    text = ("cannot connect to mysql://app:s3cr3t@db:3306/x; redis://:hunter2@cache:6379/0 "
            "password=abc123, 'token': 'xyz'")
    masked = redact(text)
    for secret in ("s3cr3t", "hunter2", "abc123", "xyz"):
        assert secret not in masked
    assert "mysql://***@db:3306/x" in masked and "redis://***@cache:6379/0" in masked


def test_alert_text_says_which_sync_which_task_why_and_where_to_look():
    alert = Alert(sync="users_to_redis", task="gate", kind="gate", run_id="manual__1",
                  reason="gate failed: readback: 1 mismatches in 4 sampled rows: user:2 field name: ...",
                  failed_checks=["readback"], log_url="http://af/dags/users_to_redis/runs/manual__1/tasks/gate",
                  data_docs="http://af/accelsync/docs/x.html", report_url="http://af/accelsync/syncs/users_to_redis")
    assert alert.text().splitlines() == [
        "accelsync: users_to_redis quality gate failed (gate)",
        "  sync: users_to_redis",
        "  task: gate",
        "  run: manual__1",
        "  reason: gate failed: readback: 1 mismatches in 4 sampled rows: user:2 field name: ...",
        "  failed checks: readback",
        "  log: http://af/dags/users_to_redis/runs/manual__1/tasks/gate",
        "  report: http://af/accelsync/syncs/users_to_redis",
        "  data docs: http://af/accelsync/docs/x.html",
    ]


def test_a_notifier_that_fails_does_not_stop_the_others_nor_raise(monkeypatch, caplog):
    # Nothing listens on port 9 (discard) here: the webhook fails, the log still gets the alert.
    monkeypatch.setenv("ACCELSYNC_NOTIFIERS", "webhook,log")
    monkeypatch.setenv("ACCELSYNC_ALERT_WEBHOOK_URL", "http://127.0.0.1:9/hook?token=topsecret")
    alert = Alert(sync="s", task="sync", kind="timeout", reason="timeout: over 20m")
    with caplog.at_level(logging.ERROR, logger="accelsync.airflow.alerts"):
        send(alert)
    text = caplog.text
    assert "notifier WebhookNotifier could not deliver the alert" in text
    assert "accelsync: s timed out (sync)" in text
    assert "topsecret" not in text


def test_an_unknown_notifier_setting_still_logs_the_alert(monkeypatch, caplog):
    monkeypatch.setenv("ACCELSYNC_NOTIFIERS", "no.such.Notifier")
    with caplog.at_level(logging.ERROR, logger="accelsync.airflow.alerts"):
        send(Alert(sync="s", task="publish", kind="error", reason="redis is down"))
    assert "bad ACCELSYNC_NOTIFIERS" in caplog.text and "reason: redis is down" in caplog.text
