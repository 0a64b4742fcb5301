"""accelsync under a real Airflow deployment (devstack's `airflow` service): a scheduler, a DAG
processor, a triggerer, an API server and one Celery worker per business line, on PostgreSQL and a
Redis broker. Runs are triggered through Airflow's REST API, never `dag.test()`; the facts are
read from the metadata database (task_instance, dag_run, deadline) with psycopg2, and the targets
with redis-py.

Isolation (pools of one slot, priority weights, queues), a DeadlineAlert fired by the triggerer,
a Celery worker killed in the middle of a sync, and a failed gate seen by on-call: the alert's
links, and the DAG in a real browser (Debian's chromium, headless), whose screenshot is kept as
the test's artifact: `$ACCELSYNC_TEST_ARTIFACTS` (default `.accelsync/test-artifacts/`)
`/airflow_ui/gate_failed.png`.
"""

from __future__ import annotations

import os
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from airflow_deployment import MYSQL_DATABASE, ROWS, alive, overlaps

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def run_id(label: str) -> str:
    return f"test_{label}_{uuid.uuid4().hex[:8]}"


@pytest.fixture()
def target():
    """redis-py on the tests' Redis database, where the deployment's syncs write."""
    import redis

    # conftest points the test_redis connection at the session's database
    client = redis.Redis.from_url(os.environ["AIRFLOW_CONN_TEST_REDIS"], decode_responses=True)
    yield client
    client.close()


def keys(client, prefix: str) -> set[str]:
    return set(client.scan_iter(f"{prefix}:*", count=5000))


@pytest.fixture()
def mysql_source():
    import pymysql

    db = pymysql.connect(host="127.0.0.1", user="root", password="", database=MYSQL_DATABASE, autocommit=True)
    yield db
    db.close()


@pytest.fixture(scope="module")
def pool_runs(airflow_deployment):
    """Three syncs triggered together: two of business line growth, one of commerce, each line's
    pool of one slot."""
    runs = {dag: run_id("pools") for dag in ("pool_growth_a", "pool_growth_b", "pool_commerce")}
    for dag, rid in runs.items():
        airflow_deployment.trigger(dag, rid)
    for dag, rid in runs.items():
        airflow_deployment.wait_finished(dag, rid)
    return {dag: (rid, airflow_deployment.run_row(dag, rid), airflow_deployment.tasks(dag, rid))
            for dag, rid in runs.items()}


def test_pools_keep_one_line_to_its_slot_while_the_other_line_runs_beside_it(airflow_deployment, pool_runs, target):
    for dag, (_, run, tasks) in pool_runs.items():
        assert run["state"] == "success", (dag, {t: r["state"] for t, r in tasks.items()})
        assert {t: r["state"] for t, r in tasks.items()} == dict.fromkeys(["sync", "gate", "publish", "report"],
                                                                         "success")
    growth = [task | {"dag": dag} for dag in ("pool_growth_a", "pool_growth_b") for task in pool_runs[dag][2].values()]
    assert {t["pool"] for t in growth} == {"accelsync_growth"}
    assert {t["pool"] for t in pool_runs["pool_commerce"][2].values()} == {"accelsync_commerce"}
    # No two task instances of the growth line ever ran at the same time (its pool has one slot) ...
    for i, first in enumerate(growth):
        for second in growth[i + 1:]:
            assert not overlaps(first, second), (first, second)
    # ... while commerce's sync ran beside one of them.
    commerce_sync = pool_runs["pool_commerce"][2]["sync"]
    assert any(overlaps(commerce_sync, task) for task in growth), (commerce_sync, growth)
    # The pool's one slot, as the metadata database holds it.
    slots = airflow_deployment.query("SELECT pool, slots FROM slot_pool WHERE pool LIKE 'accelsync_%%' ORDER BY pool")
    assert slots == [{"pool": "accelsync_commerce", "slots": 1}, {"pool": "accelsync_growth", "slots": 1}]
    for prefix in ("pga", "pgb", "pc"):
        assert len(keys(target, prefix)) == ROWS["users"]
    assert target.hgetall("pc:42") == {"name": "user-42", "score": "42"}


def test_queues_each_line_ran_on_its_own_worker(pool_runs):
    for dag, line in (("pool_growth_a", "growth"), ("pool_growth_b", "growth"), ("pool_commerce", "commerce")):
        tasks = pool_runs[dag][2]
        assert {t["queue"] for t in tasks.values()} == {f"accelsync.{line}"}, dag
        # The worker records itself as the task's hostname (`[core] hostname_callable`).
        hosts = {t["hostname"] for t in tasks.values()}
        assert len(hosts) == 1 and hosts.pop().startswith(f"accelsync-{line}."), (dag, tasks)


def test_priority_a_high_sync_queued_after_two_low_ones_runs_first(airflow_deployment, target):
    runs = {}
    for dag in ("prio_low_a", "prio_low_b"):
        runs[dag] = run_id("prio")
        airflow_deployment.trigger(dag, runs[dag])
    # The growth pool (one slot) is taken by a low sync before the high one is queued.
    airflow_deployment.wait_task_state("prio_low_a", runs["prio_low_a"], "sync", ("running", "success"))
    runs["prio_high"] = run_id("prio")
    airflow_deployment.trigger("prio_high", runs["prio_high"])
    for dag, rid in runs.items():
        assert airflow_deployment.wait_finished(dag, rid)["state"] == "success", dag
    tasks = {dag: airflow_deployment.tasks(dag, rid) for dag, rid in runs.items()}
    high_queued = airflow_deployment.run_row("prio_high", runs["prio_high"])["queued_at"]
    low_b_queued = airflow_deployment.run_row("prio_low_b", runs["prio_low_b"])["queued_at"]
    assert low_b_queued < high_queued
    assert tasks["prio_low_a"]["sync"]["start_date"] < high_queued  # the pool was full
    assert {t["priority_weight"] for t in tasks["prio_high"].values()} == {100}
    assert {t["priority_weight"] for t in tasks["prio_low_b"].values()} == {1}
    # prio_high was queued last but its whole run went before prio_low_b's sync started.
    assert tasks["prio_high"]["report"]["end_date"] <= tasks["prio_low_b"]["sync"]["start_date"]
    assert len(keys(target, "ph")) == ROWS["users"]


def test_deadline_alert_fires_in_the_triggerer_for_a_run_held_past_its_timeout(airflow_deployment, mysql_source):
    rid = run_id("deadline")
    locker = mysql_source.cursor()
    locker.execute("LOCK TABLES deadline_users WRITE")  # the sync's read waits for the lock
    try:
        airflow_deployment.trigger("deadline_users", rid)
        alert = wait_for_alert(airflow_deployment, lambda a: a["kind"] == "deadline" and a["run_id"] == rid, 120)
    finally:
        locker.execute("UNLOCK TABLES")
    assert alert["sync"] == "deadline_users" and alert["task"] == "dag run"
    assert alert["title"] == "accelsync: deadline_users missed its deadline (dag run)"
    assert alert["reason"].startswith("timeout: the run is not finished 20s after it was queued")
    assert alert["report_url"] == f"{airflow_deployment.base_url}/accelsync/syncs/deadline_users"
    deadlines = airflow_deployment.query(
        "SELECT d.missed, d.deadline_time, r.queued_at FROM deadline d JOIN dag_run r ON r.id = d.dagrun_id "
        "WHERE r.run_id = %s", (rid,))
    assert len(deadlines) == 1 and deadlines[0]["missed"] is True
    assert (deadlines[0]["deadline_time"] - deadlines[0]["queued_at"]).total_seconds() == 20
    run = airflow_deployment.wait_finished("deadline_users", rid)
    assert run["state"] == "failed"  # its timeout stopped it too


def test_a_worker_killed_mid_sync_is_retried_and_the_run_converges(airflow_deployment, mysql_source, target):
    from accelsync.runs import RunDir, safe_run_id

    rid = run_id("kill")
    target.delete(*keys(target, "ru")) if keys(target, "ru") else None
    locker = mysql_source.cursor()
    locker.execute("LOCK TABLES retry_users WRITE")  # holds the sync in the middle of its task
    try:
        airflow_deployment.trigger("retry_users", rid)
        first = airflow_deployment.wait_task_state("retry_users", rid, "sync", ("running",))
        wait_for_blocked_read(mysql_source, "retry_users")
        killed = airflow_deployment.kill_worker("accelsync.growth")
        # the worker, its two pool processes and the task process (waiting in the sync's plan)
        assert len(killed) >= 4 and first["pid"] in killed, (killed, first)
        time.sleep(1)
        assert not [pid for pid in killed if alive(pid)], killed
    finally:
        locker.execute("UNLOCK TABLES")
    run = airflow_deployment.wait_finished("retry_users", rid, timeout=300)
    tasks = airflow_deployment.tasks("retry_users", rid)
    assert run["state"] == "success", {t: r["state"] for t, r in tasks.items()}
    assert first["try_number"] == 1 and tasks["sync"]["try_number"] == 2, (killed, tasks["sync"])
    history = airflow_deployment.query("SELECT try_number, state, hostname FROM task_instance_history "
                                       "WHERE run_id = %s AND task_id = 'sync'", (rid,))
    assert [(h["try_number"], h["state"]) for h in history] == [(1, "failed")]
    # Exactly the source rows in the target, and the summary says the task ran twice.
    assert len(keys(target, "ru")) == ROWS["retry_users"]
    assert target.hgetall("ru:1999") == {"name": "user-1999", "score": "99"}
    summary = RunDir("retry_users", safe_run_id(rid)).read_json("summary.json")
    assert (summary["status"], summary["read"], summary["written"]) == ("published", 2000, 2000)
    assert summary["retried_tasks"] == {"sync": 2}
    from accelsync.report.summary import render
    assert "Retried tasks         : sync (ran 2 times)" in render(summary)


@pytest.fixture(scope="module")
def gate_run(airflow_deployment):
    rid = run_id("gate")
    airflow_deployment.trigger("gate_users", rid)
    run = airflow_deployment.wait_finished("gate_users", rid)
    return rid, run


def test_a_failed_gate_makes_a_red_run_whose_alert_links_open(airflow_deployment, gate_run):
    rid, run = gate_run
    tasks = airflow_deployment.tasks("gate_users", rid)
    assert run["state"] == "failed"
    assert {t: r["state"] for t, r in tasks.items()} == {"sync": "success", "gate": "failed",
                                                         "publish": "upstream_failed", "report": "success"}
    alert = wait_for_alert(airflow_deployment, lambda a: a["kind"] == "gate" and a["run_id"] == rid, 30)
    assert alert["sync"] == "gate_users" and alert["task"] == "gate"
    assert alert["failed_checks"] == ["suite: expect_column_values_to_be_between(score)"]
    assert "400" in alert["reason"]
    # The links answer from the API server: the task's log page, the sync's report page.
    assert alert["log_url"].startswith(f"{airflow_deployment.base_url}/dags/gate_users/runs/")
    assert alert["report_url"] == f"{airflow_deployment.base_url}/accelsync/syncs/gate_users"
    for url in (alert["log_url"], alert["report_url"]):
        with urllib.request.urlopen(url, timeout=30) as reply:
            assert reply.status == 200, url
    # The log behind the link, through the REST API, says why.
    log = airflow_deployment.api("GET", f"/api/v2/dags/gate_users/dagRuns/{rid}/taskInstances/gate/logs/1"
                                        "?full_content=true")
    text = str(log["content"])
    assert "[FAIL] suite: expect_column_values_to_be_between(score)" in text


def wait_for_alert(deployment, match, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [a for a in list(deployment.webhook) if match(a)]
        if found:
            return found[0]
        time.sleep(0.5)
    raise AssertionError(f"no matching alert after {timeout:.0f}s; received: {deployment.webhook}")


def wait_for_blocked_read(db, table: str, timeout: float = 60) -> None:
    """Until a session waits for the table lock on `table` (the sync's read, mid-task)."""
    deadline = time.monotonic() + timeout
    cursor = db.cursor()
    while time.monotonic() < deadline:
        cursor.execute("SELECT COUNT(*) FROM information_schema.processlist WHERE db = %s AND "
                       "state LIKE 'Waiting for table%%' AND info LIKE %s", (MYSQL_DATABASE, f"%{table}%"))
        if cursor.fetchone()[0]:
            return
        time.sleep(0.2)
    raise AssertionError(f"no read of {table} is waiting for its lock after {timeout:.0f}s")


def artifacts() -> Path:
    folder = Path(os.environ.get("ACCELSYNC_TEST_ARTIFACTS") or REPO / ".accelsync" / "test-artifacts") / "airflow_ui"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_on_call_sees_the_failed_gate_in_the_airflow_ui(airflow_deployment, gate_run, tmp_path):
    """Log in as on-call would (the simple auth manager's form), open the DAG of the run whose gate
    failed, then that run's failed `gate` task, and find the failed task, its reason and the link
    to the sync report. Screenshots are kept: `<artifacts>/airflow_ui/gate_failed_dag.png` (the
    DAG) and `gate_failed.png` (the failed task and its log); see the module docstring."""
    from browser import Browser

    rid, _ = gate_run
    base = airflow_deployment.base_url
    folder = artifacts()
    browser = Browser(tmp_path / "chromium")
    try:
        browser.goto(f"{base}/dags/gate_users")
        browser.wait_for("!!document.querySelector('input[name=username]')", "the login form")
        browser.type_into("input[name=username]", "admin")
        browser.type_into("input[name=password]", "admin")
        browser.evaluate("document.querySelector('button[type=submit]').click()")
        browser.wait_for("location.pathname === '/dags/gate_users'", "the login to land on the DAG")
        try:
            browser.wait_for("document.body.innerText.includes('Sync report') && "
                             "/\\b1\\s+Failed Runs?\\b/.test(document.body.innerText)", "the DAG's failed run")
        finally:
            browser.screenshot(folder / "gate_failed_dag.png")
        dag_links = browser.links()
        browser.goto(f"{base}/dags/gate_users/runs/{rid}/tasks/gate")
        try:
            browser.wait_for("document.body.innerText.includes('[FAIL] suite')", "the gate's log", timeout=90)
            # The alert (the failure callback's log) is in the log's collapsed "Post Execute" group.
            browser.evaluate("Array.from(document.querySelectorAll('*')).filter(e => "
                             "e.textContent.includes('Post Execute')).pop().click()")
            browser.wait_for("document.body.innerText.includes('report: ')", "the alert in the log")
        finally:
            browser.screenshot(folder / "gate_failed.png")
            (folder / "gate_failed.txt").write_text(browser.text())
        text = browser.text()
    finally:
        browser.close()
    # The DAG: one failed run, and its "Sync report" tab (the accelsync plugin's page).
    assert {"text": "Sync report", "href": f"{base}/dags/gate_users/plugin/accelsync_sync"} in dag_links
    assert any(link["href"].endswith("/runs?state=failed") and link["text"].startswith("1") for link in dag_links)
    # The failed task and its reason (the failed check, the offending value) ...
    assert "gate" in text and "Failed" in text
    assert "[FAIL] suite: expect_column_values_to_be_between(score)" in text
    assert "400" in text
    # ... and the alert logged beside it, with the link to the sync report.
    assert "accelsync: gate_users quality gate failed (gate)" in text
    assert f"report: {base}/accelsync/syncs/gate_users" in text
    assert (folder / "gate_failed.png").stat().st_size > 10_000


def test_a_run_that_failed_before_its_deadline_gets_no_deadline_alert(airflow_deployment, gate_run):
    """Airflow 3.3 keeps the deadline of a run that failed (it drops only a successful run's) and
    runs the callback when it passes: accelsync's callback sees the run ended in time and stays
    quiet (the failed task already alerted)."""
    rid, run = gate_run
    deadline = time.monotonic() + 120
    while True:
        rows = airflow_deployment.query(
            "SELECT d.missed, d.deadline_time, c.state FROM deadline d JOIN dag_run r ON r.id = d.dagrun_id "
            "JOIN callback c ON c.id = d.callback_id WHERE r.run_id = %s", (rid,))
        if rows and rows[0]["state"] in ("success", "failed"):
            break
        assert time.monotonic() < deadline, rows
        time.sleep(1)
    assert rows[0]["missed"] is True and rows[0]["state"] == "success"
    assert run["end_date"] < rows[0]["deadline_time"]
    assert [a["kind"] for a in airflow_deployment.webhook if a["run_id"] == rid] == ["gate"]
