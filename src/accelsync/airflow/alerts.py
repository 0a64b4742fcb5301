"""Alerts for on-call: which sync, which task, why, and where to look (task log, Data Docs).

Airflow calls `task_failed` (each task's `on_failure_callback`) and `deadline_missed` (the DAG's
DeadlineAlert, run by the triggerer). Both build an `Alert` and hand it to every configured
notifier. Notifiers are Airflow notifiers (`BaseNotifier` subclasses) chosen by setting:

- `ACCELSYNC_NOTIFIERS`: comma-separated, default `log`:
  `log` (the task's or triggerer's log), `webhook` (POST of the alert as JSON),
  `email` (Airflow's SMTP provider, `SmtpNotifier`), or `package.module.Class` (a BaseNotifier
  subclass whose constructor takes `alert=`);
- `ACCELSYNC_ALERT_WEBHOOK_URL`: the webhook's URL (it may hold a token: it is never logged);
- `ACCELSYNC_ALERT_EMAIL_TO`: comma-separated addresses; `ACCELSYNC_ALERT_SMTP_CONN`: the SMTP
  connection id (default `smtp_default`).

A notifier that fails is logged and does not hide the others, nor the task's own failure.
The alert never carries credentials: reasons pass through `redact` (userinfo of URLs, password=...).
"""

from __future__ import annotations

from accelsync.runs import GATE_FILE

import json
import logging
import os
import re
import urllib.request
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from airflow.sdk import BaseNotifier

log = logging.getLogger("accelsync.airflow.alerts")

_SECRETS = [
    (re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)[^/\s:@]*:[^/\s@]*@", re.I), r"\g<scheme>***@"),
    (re.compile(r"(?P<key>(password|passwd|pwd|secret|token)[\"']?\s*[=:]\s*[\"']?)[^\s,;\"'&}]+", re.I),
     r"\g<key>***"),
]


def redact(text: str) -> str:
    """The text with URL userinfo and `password=...`-style values masked."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


@dataclass
class Alert:
    """One alert: what failed and why, with links for the person on call."""

    sync: str
    task: str
    kind: str            # gate | timeout | error | deadline
    reason: str
    run_id: str = ""
    failed_checks: list[str] = field(default_factory=list)
    log_url: str | None = None
    data_docs: str | None = None
    report_url: str | None = None

    @property
    def title(self) -> str:
        what = {"gate": "quality gate failed", "timeout": "timed out",
                "deadline": "missed its deadline"}.get(self.kind, "failed")
        return f"accelsync: {self.sync} {what} ({self.task})"

    def text(self) -> str:
        lines = [self.title, f"  sync: {self.sync}", f"  task: {self.task}", f"  run: {self.run_id}",
                 f"  reason: {self.reason}"]
        if self.failed_checks:
            lines.append(f"  failed checks: {', '.join(self.failed_checks)}")
        for label, value in (("log", self.log_url), ("report", self.report_url), ("data docs", self.data_docs)):
            if value:
                lines.append(f"  {label}: {value}")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return dict(asdict(self), title=self.title)


# -- notifiers -------------------------------------------------------------------------------


class AlertNotifier(BaseNotifier):
    """Base of accelsync's notifiers: holds the alert; `notify(context)` delivers it."""

    def __init__(self, *, alert: Alert, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.alert = alert


class LogNotifier(AlertNotifier):
    """Writes the alert to the log of whatever runs the callback (the task log in Airflow)."""

    def notify(self, context: Any) -> None:
        log.error("%s", self.alert.text())


class WebhookNotifier(AlertNotifier):
    """POSTs the alert as JSON (`title`, `text`, and every field of the alert) to a URL."""

    def __init__(self, *, alert: Alert, url: str | None = None, timeout: float = 10, **kwargs: Any) -> None:
        super().__init__(alert=alert, **kwargs)
        self.url = url or os.environ.get("ACCELSYNC_ALERT_WEBHOOK_URL", "")
        self.timeout = timeout

    def notify(self, context: Any) -> None:
        if not self.url:
            raise ValueError("webhook notifier: ACCELSYNC_ALERT_WEBHOOK_URL is not set")
        body = json.dumps(dict(self.alert.as_dict(), text=self.alert.text())).encode()
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            response.read()


class EmailNotifier(AlertNotifier):
    """E-mails the alert through Airflow's SMTP provider (connection `smtp_default` by default)."""

    def notify(self, context: Any) -> None:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        to = [a.strip() for a in os.environ.get("ACCELSYNC_ALERT_EMAIL_TO", "").split(",") if a.strip()]
        if not to:
            raise ValueError("email notifier: ACCELSYNC_ALERT_EMAIL_TO is not set")
        html = "<pre>" + self.alert.text().replace("&", "&amp;").replace("<", "&lt;") + "</pre>"
        SmtpNotifier(to=to, subject=self.alert.title, html_content=html,
                     smtp_conn_id=os.environ.get("ACCELSYNC_ALERT_SMTP_CONN", "smtp_default")).notify(context)


NOTIFIERS: dict[str, type[AlertNotifier]] = {"log": LogNotifier, "webhook": WebhookNotifier,
                                             "email": EmailNotifier}


def notifiers(alert: Alert) -> list[BaseNotifier]:
    """The configured notifiers (ACCELSYNC_NOTIFIERS), each holding the alert."""
    names = [n.strip() for n in os.environ.get("ACCELSYNC_NOTIFIERS", "log").split(",") if n.strip()]
    result = []
    for name in names:
        cls = NOTIFIERS.get(name) or _import(name)
        result.append(cls(alert=alert))
    return result


def _import(path: str) -> type[BaseNotifier]:
    """`package.module.Class` -> the class."""
    import importlib

    module, _, attribute = path.rpartition(".")
    if not module:
        raise ImportError(f"{path!r} is neither a notifier name nor a dotted path")
    return getattr(importlib.import_module(module), attribute)


def send(alert: Alert, context: Any = None) -> None:
    """Deliver the alert through every configured notifier; one failing never stops the others."""
    try:
        targets = notifiers(alert)
    except Exception as exc:  # a bad setting must not hide the alert itself
        log.error("accelsync: bad ACCELSYNC_NOTIFIERS (%s); logging the alert instead", exc)
        targets = [LogNotifier(alert=alert)]
    for notifier in targets:
        try:
            notifier.notify(context or {})
        except Exception as exc:
            log.error("accelsync: notifier %s could not deliver the alert: %s", type(notifier).__name__,
                      redact(str(exc)))
            if not isinstance(notifier, LogNotifier):
                log.error("%s", alert.text())


# -- building alerts from Airflow callbacks --------------------------------------------------


def task_failed(context: Any) -> None:
    """`on_failure_callback` of every accelsync task: alert with the sync, task and reason."""
    try:
        alert = alert_from_context(context)
    except Exception as exc:  # never let the alert's own bug hide the failure
        log.exception("accelsync: could not build the alert: %s", exc)
        ti = context.get("ti")
        alert = Alert(sync=getattr(ti, "dag_id", "?"), task=getattr(ti, "task_id", "?"), kind="error",
                      reason=redact(str(context.get("exception") or "unknown")))
    send(alert, context)


def alert_from_context(context: Any) -> Alert:
    """The alert of a failed task, from Airflow's context and the run folder's verdicts."""
    from accelsync.runs import FAILURE_FILE
    from accelsync.runs import RunDir, safe_run_id

    ti = context["ti"]
    exception = context.get("exception")
    run = RunDir(ti.dag_id, safe_run_id(ti.run_id))
    reason = _first_line(str(exception)) if exception else "the task failed"
    if run.exists(FAILURE_FILE):
        failure = run.read_json(FAILURE_FILE)
        if failure.get("task") == ti.task_id:
            reason = failure["error"]
    if ti.task_id == "spec_error":
        reason = str(exception) if exception else reason
    gate = run.read_json(GATE_FILE) if run.exists(GATE_FILE) else {}
    failed = [c["name"] for c in gate.get("checks", []) if not c["passed"]] if ti.task_id == "gate" else []
    kind = ("gate" if failed else
            "timeout" if reason.startswith("timeout") or type(exception).__name__ == "AirflowTaskTimeout"
            else "error")
    if type(exception).__name__ == "AirflowTaskTimeout":
        limit = getattr(context.get("task"), "execution_timeout", None)
        reason = f"timeout: the task ran past its execution_timeout ({limit}, the spec's timeout)"
    return Alert(sync=ti.dag_id, task=ti.task_id, kind=kind, reason=redact(reason), run_id=ti.run_id,
                 failed_checks=failed, log_url=getattr(ti, "log_url", None),
                 data_docs=data_docs_url(gate.get("data_docs")), report_url=report_url(ti.dag_id))


async def deadline_missed(context: dict, sync: str, timeout: str) -> None:
    """DeadlineAlert callback (run by the triggerer): the run is not done `timeout` after queueing."""
    import asyncio

    dag_run = (context or {}).get("dag_run") or {}
    run_id = dag_run.get("dag_run_id") or dag_run.get("run_id") or ""
    if finished_before_deadline(dag_run, (context or {}).get("deadline") or {}):
        # Airflow 3.3 drops the deadline of a run that *succeeded* in time, but keeps that of a run
        # that failed in time (a failed gate, an error), and calls us when it passes: that run
        # already alerted through its failed task, and it did finish within its budget.
        log.info("accelsync: %s run %s ended (%s) before its deadline; no deadline alert", sync, run_id,
                 dag_run.get("state"))
        return
    alert = Alert(sync=sync, task="dag run", kind="deadline", run_id=run_id,
                  reason=f"timeout: the run is not finished {timeout} after it was queued "
                         f"(state {dag_run.get('state', 'unknown')})",
                  log_url=f"{_base_url()}/dags/{sync}/runs/{quote(run_id, safe='')}" if run_id else None,
                  report_url=report_url(sync))
    await asyncio.to_thread(send, alert, context)


def finished_before_deadline(dag_run: dict, deadline: dict) -> bool:
    """Whether the run (the DAG run of a deadline callback's context) had ended before the deadline."""
    from datetime import datetime

    ended, due = dag_run.get("end_date"), deadline.get("deadline_time")
    if dag_run.get("state") not in {"success", "failed"} or not ended:
        return False
    try:
        ended = datetime.fromisoformat(str(ended).replace("Z", "+00:00"))
        due = due if isinstance(due, datetime) else datetime.fromisoformat(str(due).replace("Z", "+00:00"))
    except ValueError:  # no readable deadline: the run had ended by the time Airflow found it missed
        return True
    return ended <= due


def deadline_alert(spec: Any) -> Any:
    """Airflow 3's DeadlineAlert for a spec: alert when a run is not done `timeout` after it was
    queued. dagrun_timeout counts from the run's start, so this also catches a run that waited
    for a pool slot. Off with ACCELSYNC_DEADLINE_ALERTS=false (needs a running triggerer)."""
    if os.environ.get("ACCELSYNC_DEADLINE_ALERTS", "true").strip().lower() in {"0", "false", "no", "off"}:
        return None
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    from accelsync.spec import format_duration

    return DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=spec.timeout,
                         callback=AsyncCallback(deadline_missed,
                                                kwargs={"sync": spec.name,
                                                        "timeout": format_duration(spec.timeout)}),
                         name=f"{spec.name} within {format_duration(spec.timeout)}")


# -- links -----------------------------------------------------------------------------------


def _base_url() -> str:
    from airflow.configuration import conf

    return conf.get("api", "base_url", fallback="http://localhost:8080").rstrip("/")


def report_url(sync: str) -> str:
    """The sync's page of the accelsync Airflow plugin."""
    return f"{_base_url()}/accelsync/syncs/{quote(sync)}"


def data_docs_url(path: str | None) -> str | None:
    """A Data Docs page as served by the accelsync plugin, else as a file URL."""
    if not path:
        return None
    from accelsync.runs import data_docs_root

    page = Path(path.removeprefix("file://"))
    try:
        relative = page.resolve().relative_to(data_docs_root().resolve())
    except ValueError:
        return path
    return f"{_base_url()}/accelsync/docs/{quote(relative.as_posix())}"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text
