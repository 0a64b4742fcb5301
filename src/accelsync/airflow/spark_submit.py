"""The `sync` task of a DAG: in-process Spark by default, spark-submit to a cluster when one is set.

`sync_task(spec, spec_path)` decides at DAG parse time from the deployment's Spark settings and
the spec's `spark:` section (`accelsync.engine.spark_settings`): no cluster master means the in-process
`SyncOperator` (local mode); a cluster master means `SparkSyncOperator`
(`accelsync.airflow.spark_operator`), the Spark provider's SparkSubmitOperator running
`jobs/sync_job.py SPEC --run-id RUN --stage sync`.

How the submitted driver gets what it needs (client deploy mode: the driver runs beside the
Airflow task, which can reach Airflow's connections and the run folder):
- the master (from the settings) becomes the Spark connection `accelsync_spark` that the
  provider's hook reads, defined in the task's environment;
- the spec's connections: resolved in the task (Airflow connections, secrets backends) and passed
  to spark-submit's process environment as `AIRFLOW_CONN_<ID>`, never on its command line;
- accelsync's code: the zip of `accelsync.engine.spark_code` as `--py-files` (code: ship).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from accelsync.engine.spark_settings import SparkSettings, for_spec

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

    from accelsync.spec import Spec

SPARK_CONN_ID = "accelsync_spark"
JOB_ENV = "ACCELSYNC_SPARK_JOB"
SYNC_DOC = "Read the source and write the target where readers do not yet rely on it."


def sync_task(spec: Spec, spec_path: str) -> BaseOperator:
    """The DAG's `sync` task for this spec (call inside the DAG's context)."""
    settings = for_spec(spec)
    if not settings.is_cluster:
        from accelsync.airflow.operators import SyncOperator

        return SyncOperator(task_id="sync", spec_path=spec_path, doc_md=SYNC_DOC)
    from accelsync.airflow.spark_operator import SparkSyncOperator  # the provider: only when needed

    return SparkSyncOperator(task_id="sync", spec_path=spec_path, spec_name=spec.name, settings=settings,
                             doc_md=SYNC_DOC + f" Submitted to the Spark cluster `{settings.master}`.")


def job_path() -> str:
    """`jobs/sync_job.py`: `ACCELSYNC_SPARK_JOB`, else the one beside this source tree."""
    configured = os.environ.get(JOB_ENV)
    if configured:
        return configured
    return str(Path(__file__).resolve().parents[2] / "jobs" / "sync_job.py")


def submit_environment(spec_path: str, settings: SparkSettings) -> dict[str, str]:
    """What spark-submit's process needs in its environment: the Spark connection naming the
    master, the spec's connections as resolved here, and spark-submit on PATH."""
    from accelsync.connections import env_name, for_spec as connections_for_spec
    from accelsync.spec import load_spec

    env = {env_name(SPARK_CONN_ID): json.dumps({"conn_type": "spark", "host": settings.master,
                                                "extra": {"deploy-mode": "client"}})}
    for conn_id, fields in json.loads(connections_for_spec(load_spec(spec_path))).items():
        env[env_name(conn_id)] = json.dumps({k: v for k, v in fields.items() if k != "conn_id"})
    if shutil.which("spark-submit") is None:  # pip's pyspark puts it beside the interpreter
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return env

