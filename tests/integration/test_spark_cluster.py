"""The same specs on a real Spark standalone cluster: a master and two 1-core workers started
here with the pip pyspark's `spark-class`, and `accelsync run` as a user runs it (its own
process, the cluster named in its environment or in the spec).

The session's own SparkSession (fixture `spark`) is local, so every cluster run is a subprocess.
Each run is checked on the cluster's side too: the master lists the finished application with
the requested cores, and in `ship` mode the workers received accelsync's zip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

import test_kafka_source as kafka_case
import test_mysql_to_redis as mysql_case
# Their fixtures: a fresh 3-partition topic, and the typed MySQL table with its rows.
from test_kafka_source import topic  # noqa: F401
from test_mysql_to_redis import typed_table  # noqa: F401
from ports import free_port

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent
START_TIMEOUT = 90
RUN_TIMEOUT = 240


class StandaloneCluster:
    """A Spark standalone master and workers on 127.0.0.1; every process in its own group."""

    def __init__(self, folder: Path, workers: int = 2):
        self.folder = folder
        self.port, self.ui_port = free_port(), free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.workers = workers
        self.processes: list[subprocess.Popen] = []
        self.env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "SPARK_DAEMON_MEMORY": "256m",
                    "PYSPARK_PYTHON": sys.executable, "SPARK_NO_DAEMONIZE": "1"}

    def start(self) -> None:
        self._spawn("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                    "--port", str(self.port), "--webui-port", str(self.ui_port))
        for index in range(self.workers):
            self._spawn(f"worker{index}", "org.apache.spark.deploy.worker.Worker", self.url,
                        "--host", "127.0.0.1", "--port", str(free_port()), "--webui-port", str(free_port()),
                        "--cores", "1", "--memory", "1g", "--work-dir", str(self.work_dir(index)))
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(f"a Spark daemon exited ({process.args[1]}): {self.logs()}")
            try:
                alive = [w for w in self.state()["workers"] if w["state"] == "ALIVE"]
            except OSError:
                alive = []
            if len(alive) == self.workers:
                return
            time.sleep(1)
        raise RuntimeError(f"the cluster did not come up in {START_TIMEOUT}s: {self.logs()}")

    def _spawn(self, name: str, main_class: str, *args: str) -> None:
        log = open(self.folder / f"{name}.log", "wb")
        self.processes.append(subprocess.Popen([str(BIN / "spark-class"), main_class, *args], env=self.env,
                                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        log.close()

    def work_dir(self, index: int) -> Path:
        return self.folder / f"work{index}"

    def state(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.ui_port}/json/", timeout=5) as answer:
            return json.load(answer)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.folder.glob("*.log")))

    def stop(self) -> None:
        for process in reversed(self.processes):  # workers first; each group holds its executors
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    spark_cluster = StandaloneCluster(tmp_path_factory.mktemp("spark_cluster"))
    try:
        spark_cluster.start()
        yield spark_cluster
    finally:
        spark_cluster.stop()


def run_on_cluster(cluster: StandaloneCluster, spec: dict, folder: Path, **settings: str) -> dict:
    """`accelsync run SPEC --json` in its own process, with the cluster settings in its environment."""
    path = folder / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True))
    env = {**os.environ, "ACCELSYNC_SPARK_MASTER": cluster.url, "SPARK_LOCAL_IP": "127.0.0.1",
           "PYSPARK_PYTHON": sys.executable, **settings}
    done = subprocess.run([str(BIN / "accelsync"), "run", str(path), "--json"], env=env, capture_output=True,
                          text=True, timeout=RUN_TIMEOUT)
    lines = done.stdout.strip().splitlines()
    assert done.returncode == 0 and lines, f"exit {done.returncode}\n{done.stderr[-4000:]}\n{cluster.logs()}"
    return json.loads(lines[-1])


def finished_app(cluster: StandaloneCluster, known: set[str]) -> dict:
    """The one application the master saw finish since `known`."""
    apps = [a for a in cluster.state()["completedapps"] if a["id"] not in known]
    assert len(apps) == 1, apps
    known.add(apps[0]["id"])
    return apps[0]


@pytest.fixture(scope="module")
def known_apps() -> set[str]:
    return set()


def test_mysql_to_redis_on_the_cluster_ships_accelsync(cluster, known_apps, typed_table, redis_client, tmp_path):
    spec = {"name": "test_cluster_mysql_redis",
            "source": {"type": "mysql", "connection": "test_mysql", "table": "typed", "split_pk": "id"},
            "target": {"type": "redis", "connection": "test_redis", "key": "typed:{id}",
                       "value": {"type": "hash"}},
            "speed": {"channels": 2}}

    summary = run_on_cluster(cluster, spec, tmp_path, ACCELSYNC_SPARK_EXECUTORS="2",
                             ACCELSYNC_SPARK_EXECUTOR_CORES="1", ACCELSYNC_SPARK_EXECUTOR_MEMORY="512m")

    assert summary["status"] == "published", summary["reason"]
    assert (summary["read"], summary["written"], summary["dirty"]) == (3, 3, 0)
    assert sorted(redis_client.keys("*")) == [b"typed:1", b"typed:2", b"typed:3"]
    for row in typed_table:
        stored = redis_client.hgetall(f"typed:{row['id']}")
        expected = {k.encode(): mysql_case.mysql_text(v) for k, v in row.items() if v is not None}
        floats = {b"ratio", b"measure"}
        assert {k: v for k, v in stored.items() if k not in floats} == \
               {k: v for k, v in expected.items() if k not in floats}, f"row {row['id']}"
        for name in floats & set(expected):
            assert float(stored[name]) == float(expected[name])
        assert set(stored) == set(expected)
    app = finished_app(cluster, known_apps)
    assert app["name"] == "accelsync" and app["cores"] == 2, app
    shipped = [p for i in range(cluster.workers) for p in cluster.work_dir(i).glob(f"{app['id']}/*/accelsync-*.zip")]
    assert shipped, f"no worker received accelsync's zip for {app['id']}"


def test_kafka_to_redis_on_the_cluster_with_the_spec_override(cluster, known_apps, topic, redis_client,
                                                              tmp_path):
    placed = {i: (i % 3, i // 3) for i in range(60)}
    kafka_case.produce(topic, [(p, f"key-{i}".encode(), json.dumps(kafka_case.order(i)).encode())
                                     for i, (p, _) in placed.items()])
    suffix = topic.rsplit("_", 1)[-1]
    spec = {"name": "test_cluster_kafka_" + suffix,
            "source": {"type": "kafka", "connection": "kafka_default", "topic": topic,
                       "schema": kafka_case.SCHEMA},
            "target": {"type": "redis", "connection": "test_redis", "key": kafka_case.key_prefix(topic)
                       + ":{order_id}", "value": {"type": "hash", "fields": kafka_case.FIELDS}},
            "speed": {"channels": 2},
            "spark": {"executors": 1, "executor_cores": 1, "executor_memory": "512m"}}

    # The workers run this very venv, so accelsync is preloaded there instead of shipped.
    summary = run_on_cluster(cluster, spec, tmp_path, ACCELSYNC_SPARK_CODE="installed")

    assert summary["status"] == "published", summary["reason"]
    assert (summary["read"], summary["written"], summary["dirty"]) == (60, 60, 0)
    kafka_case.assert_stored(redis_client, topic, placed)
    app = finished_app(cluster, known_apps)
    assert app["name"] == "accelsync" and app["cores"] == 1, app  # the spec's executors: 1


SUBMIT_SCRIPT = """
import json, sys
from accelsync.airflow.dags import build_dags

dags, errors = build_dags(sys.argv[1])
assert not errors, errors
task = dags[sys.argv[2]].get_task("sync")
try:
    task.execute({"run_id": sys.argv[3]})
    error = None
except Exception as exc:
    error = [type(exc).__name__, str(exc)]
print(json.dumps({"operator": type(task).__name__, "error": error}))
"""


def submit(cluster: StandaloneCluster, spec: dict, folder: Path, run_id: str) -> dict:
    """Build the spec's DAG with the cluster configured and execute its `sync` task, in a subprocess."""
    specs = folder / "specs"
    specs.mkdir()
    (specs / "spec.yaml").write_text(yaml.safe_dump(spec))
    env = {**os.environ, "ACCELSYNC_SPARK_MASTER": cluster.url, "ACCELSYNC_SPARK_EXECUTORS": "2",
           "ACCELSYNC_SPARK_EXECUTOR_MEMORY": "512m", "SPARK_LOCAL_IP": "127.0.0.1"}
    done = subprocess.run([sys.executable, "-c", SUBMIT_SCRIPT, str(specs), spec["name"], run_id], env=env,
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_airflow_sync_task_submits_to_the_cluster(cluster, known_apps, typed_table, redis_client, tmp_path):
    """The DAG's `sync` task, built with a cluster configured, runs spark-submit jobs/sync_job.py."""
    from accelsync.runs import RunDir

    spec = {"name": "test_cluster_submit",
            "source": {"type": "mysql", "connection": "test_mysql", "table": "typed", "split_pk": "id"},
            "target": {"type": "redis", "connection": "test_redis", "key": "sub:{id}",
                       "value": {"type": "hash", "fields": ["name", "price"]}},
            "speed": {"channels": 2}}
    run_id = "manual__2024-01-01T00:00:00+00:00"

    assert submit(cluster, spec, tmp_path, run_id) == {"operator": "SparkSyncOperator", "error": None}

    stats = RunDir(spec["name"], run_id).read_json("sync.json")
    assert (stats["read"], stats["written"], stats["dirty"]) == (3, 3, 0)
    assert sorted(redis_client.keys("*")) == [b"sub:1", b"sub:2", b"sub:3"]
    for row in typed_table:
        expected = {k.encode(): mysql_case.mysql_text(row[k]) for k in ("name", "price") if row[k] is not None}
        assert redis_client.hgetall(f"sub:{row['id']}") == expected
    app = finished_app(cluster, known_apps)
    assert app["name"] == "accelsync-test_cluster_submit" and app["cores"] == 2, app


def test_airflow_sync_task_fails_at_once_on_a_bad_spec(cluster, known_apps, typed_table, tmp_path):
    """A terminal error in the submitted driver (a transform naming no column) fails the task
    without retries (AirflowFailException), with accelsync's message."""
    spec = {"name": "test_cluster_submit_bad",
            "source": {"type": "mysql", "connection": "test_mysql", "table": "typed", "split_pk": "id"},
            "transform": {"filter": "no_such_column > 0"},
            "target": {"type": "redis", "connection": "test_redis", "key": "bad:{id}"}}

    outcome = submit(cluster, spec, tmp_path, "manual__2024-01-02T00:00:00+00:00")

    assert outcome["operator"] == "SparkSyncOperator"
    kind, message = outcome["error"]
    assert kind == "AirflowFailException" and message.startswith("transform: "), outcome
    assert "no_such_column" in message
    finished_app(cluster, known_apps)
