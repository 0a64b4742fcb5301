"""Spark's Python worker daemon with accelsync's heavy imports done once, before it forks.

Spark forks every Python worker from one daemon process. Importing pyarrow, pydantic, the spec
and the connectors in the daemon means each forked worker starts with them loaded, instead of
paying a second or more of imports per task (set as `spark.python.daemon.module`).
"""

import pyarrow  # noqa: F401
import pyarrow.compute  # noqa: F401
import pyarrow.ipc  # noqa: F401

import accelsync.spark_io  # noqa: F401
import accelsync.spec  # noqa: F401
from accelsync.registry import sink_class, source_class

for _name in ("mysql", "kafka", "logs"):
    try:
        source_class(_name)
    except Exception:  # a connector that is not built yet, or whose client is missing
        pass
for _name in ("redis", "hbase", "druid"):
    try:
        sink_class(_name)
    except Exception:
        pass

from pyspark.daemon import manager  # noqa: E402

if __name__ == "__main__":
    manager()
