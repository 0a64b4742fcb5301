"""One SparkSession per process, configured for Arrow batches and our data sources.

Local mode by default (`local[*]`); a cluster by the deployment's settings or a spec's `spark:`
section (`accelsync.engine.spark_settings`), or by spark-submit's own options when run under it. Spark's
Python workers must run the driver's interpreter (or, on a cluster, the configured one), or they
would miss accelsync's packages; accelsync itself is shipped as a zip unless the workers have it.
"""

from __future__ import annotations

import os
import sys

from accelsync.engine.spark_settings import SparkSettings, deployment


_SESSION = None

DEFAULTS = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "32768",
    "spark.python.worker.reuse": "true",
    "spark.sql.shuffle.partitions": "8",
    "spark.driver.memory": "2g",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
    "spark.log.level": "WARN",
}


def get_spark(settings: SparkSettings | None = None):
    """The process's SparkSession, created on first use (start-up costs seconds: reuse it).

    `settings` (default: the deployment's) apply when this call creates the session; a session
    already running is reused as it is.
    """
    global _SESSION
    if _SESSION is not None and _SESSION.sparkContext._jsc is not None:
        return _SESSION
    settings = settings or deployment()
    os.environ["PYSPARK_PYTHON"] = os.environ.get("PYSPARK_PYTHON") or sys.executable
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from accelsync.engine.spark_io import AccelsyncSnapshot, AccelsyncSource, AccelsyncTarget

    builder = SparkSession.builder
    if "PYSPARK_GATEWAY_PORT" not in os.environ:  # not under spark-submit, which sets name and master
        builder = builder.appName("accelsync").master(settings.master or "local[*]")
    for key, value in {**DEFAULTS, **settings.spark_conf()}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    if settings.is_cluster and settings.code == "ship":
        _ship_code(session.sparkContext)
    session.dataSource.register(AccelsyncSource)
    session.dataSource.register(AccelsyncTarget)
    session.dataSource.register(AccelsyncSnapshot)
    _SESSION = session
    return session


def _ship_code(context) -> None:
    """Send accelsync's zip to the executors, unless spark-submit's --py-files already did."""
    from accelsync.engine.spark_code import build_zip, default_folder

    path = build_zip(default_folder())
    shipped = context.getConf().get("spark.submit.pyFiles", "") or ""
    if path.name not in shipped:
        context.addPyFile(str(path))


def stop_spark() -> None:
    global _SESSION
    if _SESSION is not None:
        _SESSION.stop()
        _SESSION = None
