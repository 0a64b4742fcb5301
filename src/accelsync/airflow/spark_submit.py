"""What the `sync` task needs to spark-submit a sync to a cluster (`accelsync.airflow.spark_operator`).

With a cluster master in the deployment's Spark settings or the spec's `spark:` section, the DAG's
`sync` task (`accelsync.airflow.dags.sync_task`) is the Spark provider's SparkSubmitOperator
running `jobs/sync_job.py SPEC --run-id RUN --stage sync`; without one, the in-process
`SyncOperator`.

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

from accelsync.engine.spark_settings import SparkSettings

SPARK_CONN_ID = "accelsync_spark"
JOB_ENV = "ACCELSYNC_SPARK_JOB"


def job_path() -> str:
    """`jobs/sync_job.py`: `ACCELSYNC_SPARK_JOB`, else the one beside this source tree."""
    configured = os.environ.get(JOB_ENV)
    if configured:
        return configured
    return str(Path(__file__).resolve().parents[3] / "jobs" / "sync_job.py")  # <repo>/src/accelsync/airflow/


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

