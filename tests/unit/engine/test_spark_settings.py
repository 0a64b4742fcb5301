"""Spark deployment settings: file, environment, spec override, and the properties they become."""

from __future__ import annotations

import sys
import zipfile

import pytest

from accelsync.errors import SpecError, TerminalError
from accelsync.engine.spark_code import build_zip, package_files
from accelsync.engine.spark_settings import DAEMON_MODULE, deployment, for_spec
from accelsync.spec import parse_spec

BASE = {"name": "s", "source": {"type": "mysql", "table": "t", "columns": ["id"]},
        "target": {"type": "redis", "key": "k:{id}"}}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for name in ("CONFIG", "MASTER", "EXECUTORS", "EXECUTOR_CORES", "EXECUTOR_MEMORY", "DRIVER_MEMORY",
                 "CODE", "PYTHON"):
        monkeypatch.delenv(f"ACCELSYNC_SPARK_{name}", raising=False)
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)


def test_default_is_local_mode_with_the_preloading_daemon():
    settings = deployment()
    assert settings.master is None and not settings.is_cluster
    conf = settings.spark_conf()
    assert conf["spark.python.daemon.module"] == DAEMON_MODULE
    assert conf["spark.pyspark.python"] == sys.executable
    assert "spark.executor.instances" not in conf


def test_file_then_environment_then_spec(tmp_path, monkeypatch):
    config = tmp_path / "spark.yaml"
    config.write_text("master: yarn\nexecutors: 10\nexecutor_cores: 4\nexecutor_memory: 8g\n"
                      "conf: {spark.yarn.queue: etl, spark.dynamicAllocation.enabled: false}\n")
    monkeypatch.setenv("ACCELSYNC_SPARK_CONFIG", str(config))
    monkeypatch.setenv("ACCELSYNC_SPARK_EXECUTORS", "20")
    spec = parse_spec({**BASE, "spark": {"executor_memory": "16g", "conf": {"spark.yarn.queue": "growth"}}})

    settings = for_spec(spec)

    assert (settings.master, settings.executors, settings.executor_cores, settings.executor_memory) == \
           ("yarn", 20, 4, "16g")
    conf = settings.spark_conf()
    assert conf["spark.executor.instances"] == "20" and conf["spark.executor.cores"] == "4"
    assert conf["spark.executor.memory"] == "16g"
    assert conf["spark.yarn.queue"] == "growth" and conf["spark.dynamicAllocation.enabled"] == "false"
    assert "spark.cores.max" not in conf  # YARN sizes by instances
    assert "spark.python.daemon.module" not in conf  # code: ship (default): workers lack accelsync


def test_standalone_sizes_by_total_cores_and_installed_code_preloads(monkeypatch):
    monkeypatch.setenv("ACCELSYNC_SPARK_MASTER", "spark://master:7077")
    monkeypatch.setenv("ACCELSYNC_SPARK_EXECUTORS", "3")
    monkeypatch.setenv("ACCELSYNC_SPARK_EXECUTOR_CORES", "2")
    monkeypatch.setenv("ACCELSYNC_SPARK_CODE", "installed")
    monkeypatch.setenv("ACCELSYNC_SPARK_PYTHON", "/opt/venv/bin/python")
    conf = deployment().spark_conf()
    assert conf["spark.cores.max"] == "6"
    assert conf["spark.python.daemon.module"] == DAEMON_MODULE
    assert conf["spark.pyspark.python"] == "/opt/venv/bin/python"


def test_a_spec_can_keep_a_sync_local():
    assert not for_spec(parse_spec({**BASE, "spark": {"master": "local[2]"}})).is_cluster


@pytest.mark.parametrize("env, value, message", [
    ("ACCELSYNC_SPARK_EXECUTORS", "many", "is not a whole number"),
    ("ACCELSYNC_SPARK_EXECUTOR_MEMORY", "lots", "executor_memory"),
    ("ACCELSYNC_SPARK_CODE", "copy", "code: must be ship or installed"),
])
def test_bad_settings_are_named(monkeypatch, env, value, message):
    monkeypatch.setenv(env, value)
    with pytest.raises(TerminalError, match=message):
        deployment()


def test_spec_spark_section_is_checked():
    with pytest.raises(SpecError) as failure:
        parse_spec({**BASE, "spark": {"executors": 0, "memory": "4g"}})
    lines = failure.value.lines()
    assert any("spark.executors:" in line for line in lines)
    assert any("spark.memory: unknown field" in line for line in lines)


def test_code_zip_holds_the_package_and_is_reused(tmp_path):
    first = build_zip(tmp_path)
    assert build_zip(tmp_path) == first
    with zipfile.ZipFile(first) as archive:
        names = set(archive.namelist())
    assert {"accelsync/__init__.py", "accelsync/engine/spark_io.py", "accelsync/targets/redis/target.py"} <= names
    assert names == {name for name, _ in package_files()}
    assert not any("__pycache__" in name for name in names)


def test_sync_task_is_in_process_without_a_cluster(tmp_path):
    from airflow.sdk import DAG

    from accelsync.airflow.operators import SyncOperator
    from accelsync.airflow.dags import sync_task

    with DAG("d", schedule=None, auto_register=False):
        task = sync_task(parse_spec(BASE), str(tmp_path / "s.yaml"))
    assert type(task) is SyncOperator and task.task_id == "sync"


def test_sync_task_submits_with_a_cluster(tmp_path, monkeypatch):
    from airflow.sdk import DAG

    from accelsync.airflow.dags import sync_task
    from accelsync.airflow.spark_submit import job_path

    monkeypatch.setenv("ACCELSYNC_SPARK_MASTER", "yarn")
    monkeypatch.setenv("ACCELSYNC_SPARK_EXECUTORS", "8")
    with DAG("d", schedule=None, auto_register=False):
        task = sync_task(parse_spec(BASE), str(tmp_path / "s.yaml"))
    assert type(task).__name__ == "SparkSyncOperator" and task.task_id == "sync"
    assert task.application == job_path() and job_path().endswith("jobs/sync_job.py")
    assert task.conf["spark.executor.instances"] == "8"
