"""SparkSyncOperator: the `sync` task as spark-submit of `jobs/sync_job.py --stage sync`.

Imported only when a DAG needs it (a cluster is configured; see `accelsync.airflow.spark_submit`), so a
DAG folder without a cluster never imports the Spark provider. Client deploy mode: the driver runs
beside this task, which passes it, in spark-submit's process environment (never its command
line), the master as the Spark connection `accelsync_spark` and the spec's connections as
resolved here. Airflow runs each task in a process of its own, so the environment set here stays
with this task.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.sdk.exceptions import AirflowFailException

from accelsync.errors import TransientError
from accelsync.airflow.spark_submit import SPARK_CONN_ID, job_path, submit_environment

if TYPE_CHECKING:
    from airflow.sdk import Context

    from accelsync.engine.spark_settings import SparkSettings


class SparkSyncOperator(SparkSubmitOperator):
    """spark-submit of the sync stage; a terminal accelsync error fails at once (no retry), a
    transient one (a service unavailable) is left to the task's retries."""

    template_fields = ("spec_path",)
    ui_color = "#cfe3f7"

    def __init__(self, *, spec_path: str, spec_name: str, settings: SparkSettings, **kwargs: Any) -> None:
        super().__init__(application=job_path(), conn_id=SPARK_CONN_ID, name=f"accelsync-{spec_name}",
                         conf=settings.spark_conf(), deploy_mode="client", **kwargs)
        self.spec_path = spec_path
        self.spec_name = spec_name
        self.settings = settings

    def execute(self, context: Context) -> None:
        from accelsync.runs import RunDir, safe_run_id
        from accelsync.engine.spark_code import build_zip, default_folder
        from accelsync.runs import FAILURE_FILE

        run = RunDir(self.spec_name, safe_run_id(context["run_id"]))
        run.file(FAILURE_FILE).unlink(missing_ok=True)
        self.application_args = [self.spec_path, "--run-id", run.run_id, "--stage", "sync"]
        if self.settings.code == "ship":
            self.py_files = str(build_zip(default_folder()))
        os.environ.update(submit_environment(self.spec_path, self.settings))
        try:
            super().execute(context)
        except Exception as exc:
            if not run.exists(FAILURE_FILE):  # spark-submit itself failed: the provider's error
                raise
            failure = run.read_json(FAILURE_FILE)
            if failure.get("retryable"):
                raise TransientError(failure["error"]) from exc
            raise AirflowFailException(failure["error"]) from exc
