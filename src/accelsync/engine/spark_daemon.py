"""Spark's Python worker daemon with accelsync's heavy imports done once, before it forks.

Spark forks every Python worker from one daemon process. Importing pyarrow, pydantic, the spec
and the connectors in the daemon means each forked worker starts with them loaded, instead of
paying a second or more of imports per task (set as `spark.python.daemon.module`).
"""

import importlib

import pyarrow  # noqa: F401
import pyarrow.compute  # noqa: F401
import pyarrow.ipc  # noqa: F401  (the run snapshot files)

import accelsync.engine.spark_io  # noqa: F401
import accelsync.spec  # noqa: F401
from accelsync.registry import implementation_modules

for _module in implementation_modules():
    try:
        importlib.import_module(_module)
    except Exception:  # a connector whose client library is missing here
        pass

from pyspark.daemon import manager  # noqa: E402

if __name__ == "__main__":
    manager()
