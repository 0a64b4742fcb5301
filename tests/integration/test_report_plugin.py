"""The accelsync Airflow plugin's sync page, loaded in a real headless browser (Debian's chromium)
from a real `airflow api-server`, over the run history of real runs: one DAG run through Airflow
that publishes, one run whose gate fails."""

from __future__ import annotations

import html.parser
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from browser import chromium
from ports import free_port

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DATABASE = "accelsync_test_report_plugin"
NAME = "rp_users"
SUITE = {"name": "rp_users", "expectations": [
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "score", "min_value": 0, "max_value": 100}},
]}


@pytest.fixture(scope="module")
def history_of_real_runs(services, tmp_path_factory):
    """Two runs of one sync: a published DAG run through Airflow, then a run whose gate fails."""
    import pymysql

    from accelsync import pipeline
    from accelsync.dev import airflow_env
    from accelsync.spec import load_spec

    db = pymysql.connect(host="127.0.0.1", user="root", password="", charset="utf8mb4", autocommit=True)
    cursor = db.cursor()
    cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
    cursor.execute(f"CREATE DATABASE {DATABASE}")
    cursor.execute(f"CREATE TABLE {DATABASE}.users (id INT PRIMARY KEY, name VARCHAR(40), score INT)")
    cursor.executemany(f"INSERT INTO {DATABASE}.users VALUES (%s, %s, %s)",
                       [(1, "Ana", 10), (2, "Bo", 20), (3, "Chen", 30)])
    redis_db = int(os.environ.get("ACCELSYNC_TEST_REDIS_DB", "14"))
    os.environ["AIRFLOW_CONN_RP_MYSQL"] = f"mysql://root@127.0.0.1:3306/{DATABASE}"
    os.environ["AIRFLOW_CONN_RP_REDIS"] = f"redis://127.0.0.1:6379/{redis_db}"
    folder = tmp_path_factory.mktemp("rp_syncs")
    (folder / "rp_users.json").write_text(json.dumps(SUITE), encoding="utf-8")
    spec_path = folder / "rp_users.yaml"
    spec_path.write_text(f"""name: {NAME}
source: {{type: mysql, connection: rp_mysql, table: users}}
target: {{type: redis, connection: rp_redis, key: "rp:user:{{id}}", value: {{type: hash, fields: [name, score]}}}}
quality: {{suite: {folder / 'rp_users.json'}}}
""", encoding="utf-8")
    try:
        airflow_env.migrate()
        published = airflow_env.run_dag(spec_path)
        assert published.state == "success", published
        cursor.execute(f"INSERT INTO {DATABASE}.users VALUES (4, 'Dee', 400)")
        failed = pipeline.run(load_spec(spec_path))
        assert failed["status"] == "failed"
        yield published, failed
    finally:
        cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
        db.close()


@pytest.fixture(scope="module")
def api_server(history_of_real_runs, tmp_path_factory):
    """A real `airflow api-server` with the repository's plugins folder, on a free port."""
    from accelsync.dev import airflow_env

    port = free_port()
    env = {**os.environ, **airflow_env.airflow_environ(),
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
           "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}"}
    log = tmp_path_factory.mktemp("api_server") / "api-server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([sys.executable, "-m", "airflow", "api-server", "-H", "127.0.0.1", "-p", str(port),
                                   "-w", "1", "--apps", "core"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{base}/accelsync/", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"airflow api-server did not serve the plugin:\n{log.read_text()[-3000:]}")
            time.sleep(1)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def browser_dom(url: str) -> str:
    """The page's DOM after chromium rendered it (headless, bounded in time)."""
    profile = Path(os.environ.get("ACCELSYNC_HOME", "/tmp")) / "chromium-profile"
    result = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                             "--no-first-run", f"--user-data-dir={profile}", "--timeout=20000", "--dump-dom", url],
                            capture_output=True, text=True, timeout=90)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


class Rows(html.parser.HTMLParser):
    """The runs table: one dict per row (cell class -> text), plus every link and the plot's dots."""

    def __init__(self):
        super().__init__()
        self.rows: list[dict] = []
        self.links: list[tuple[str, str]] = []
        self.dots = 0
        self._cell: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "tr" and "run" in classes:
            self.rows.append({"run_id": attrs.get("data-run-id")})
        elif tag == "td" and self.rows:
            self._cell = next((c for c in classes if c != "text"), None)
        elif tag == "a":
            self.links.append(((attrs.get("class") or ""), attrs.get("href") or ""))
        elif tag == "circle":
            self.dots += 1

    def handle_endtag(self, tag):
        if tag == "td":
            self._cell = None

    def handle_data(self, data):
        if self._cell and self.rows:
            row = self.rows[-1]
            row[self._cell] = row.get(self._cell, "") + data


def test_sync_page_shows_the_real_runs_in_a_browser(api_server, history_of_real_runs):
    published, failed = history_of_real_runs
    from accelsync.runs import safe_run_id

    page = Rows()
    page.feed(browser_dom(f"{api_server}/accelsync/syncs/{NAME}"))

    assert [row["run_id"] for row in page.rows] == [failed["run_id"], safe_run_id(published.run_id)]
    newest, oldest = page.rows
    assert (newest["status"], newest["read"], newest["written"], newest["dirty"]) == ("failed", "4", "4", "0")
    assert newest["gate"].startswith("FAILED: suite: ") and "score" in newest["gate"]
    assert (oldest["status"], oldest["read"], oldest["written"], oldest["dirty"]) == ("published", "3", "3", "0")
    assert oldest["gate"] == "passed (5/5)"  # two expectations, reconcile, read-back, timeliness
    assert oldest["rps"].replace(",", "").isdigit() and oldest["duration"].endswith("s")
    assert page.dots == 2  # one throughput point per run

    # Each run links to its Data Docs page, served by the plugin, and the Airflow run is linked.
    docs = [href for cls, href in page.links if cls == "data-docs"]
    assert len(docs) == 2 and all(href.startswith("../docs/") for href in docs)
    with urllib.request.urlopen(f"{api_server}/accelsync/{docs[1][3:]}", timeout=30) as response:
        assert response.status == 200
        report = response.read().decode()
    # The suite's expectations and the gate's own checks, in one report.
    for shown in ("rp_users", "score", "accelsync_reconcile", "accelsync_readback", "accelsync_timeliness"):
        assert shown in report, shown
    from urllib.parse import quote
    runs = [href for cls, href in page.links if cls == "airflow-run"]
    assert runs == [f"../../dags/{NAME}/runs/{quote(published.run_id, safe='')}"]


def test_plugin_is_registered_with_the_airflow_ui(api_server):
    with urllib.request.urlopen(f"{api_server}/api/v2/plugins", timeout=30) as response:
        plugins = json.loads(response.read())["plugins"]
    plugin = next(p for p in plugins if p["name"] == "accelsync")
    views = {view["url_route"]: view for view in plugin["external_views"]}
    assert views["accelsync"]["href"] == "accelsync/" and views["accelsync"]["destination"] == "nav"
    assert views["accelsync_sync"]["href"] == "accelsync/syncs/{DAG_ID}"
    assert views["accelsync_sync"]["destination"] == "dag"
    index = Rows()
    index.feed(browser_dom(f"{api_server}/accelsync/"))
    assert ("", f"syncs/{NAME}") in index.links
