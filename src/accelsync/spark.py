"""One SparkSession per process, configured for Arrow batches and our data sources.

Local mode by default (`local[*]`); any master by `ACCELSYNC_SPARK_MASTER` or `spark.master`
given to spark-submit. Spark's Python workers must run the driver's interpreter, or they would
miss accelsync and its packages.
"""

from __future__ import annotations

import os
import sys

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
    "spark.python.daemon.module": "accelsync.spark_daemon",
}


def get_spark():
    """The process's SparkSession, created on first use (start-up costs seconds: reuse it)."""
    global _SESSION
    if _SESSION is not None and _SESSION.sparkContext._jsc is not None:
        return _SESSION
    os.environ["PYSPARK_PYTHON"] = os.environ.get("PYSPARK_PYTHON") or sys.executable
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    from accelsync.spark_io import AccelsyncSink, AccelsyncSnapshot, AccelsyncSource

    builder = SparkSession.builder.appName("accelsync")
    master = os.environ.get("ACCELSYNC_SPARK_MASTER")
    if master:
        builder = builder.master(master)
    elif "PYSPARK_GATEWAY_PORT" not in os.environ:  # not under spark-submit, which sets the master
        builder = builder.master("local[*]")
    for key, value in DEFAULTS.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("WARN")
    session.dataSource.register(AccelsyncSource)
    session.dataSource.register(AccelsyncSink)
    session.dataSource.register(AccelsyncSnapshot)
    _SESSION = session
    return session


def stop_spark() -> None:
    global _SESSION
    if _SESSION is not None:
        _SESSION.stop()
        _SESSION = None
