"""DAG parsing stays cheap: 50 specs parsed by Airflow's DagBag in a fresh interpreter with the
network blocked, with and without a Spark cluster configured, import no Spark and open no socket.
How long it takes is measured by bench/dag_parse.py against its budget, not asserted here."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "bench"))
from dag_parse import parse_folder, write_specs  # noqa: E402

SPECS = 50


@pytest.mark.parametrize("env, operator", [
    ({}, "SyncOperator"),
    ({"ACCELSYNC_SPARK_MASTER": "spark://spark-master:7077", "ACCELSYNC_SPARK_EXECUTORS": "8"}, "SparkSyncOperator"),
], ids=["local", "cluster"])
def test_fifty_specs_parse_without_spark_or_network(tmp_path, env, operator):
    names = write_specs(tmp_path / "specs", SPECS)

    report = parse_folder(tmp_path / "specs", env, timeout=240)

    assert report["errors"] == {}
    assert set(report["dags"]) == set(names)
    assert report["sync_operators"] == [operator]
    assert report["spark_modules"] == []
    assert report["network_attempts"] == []
