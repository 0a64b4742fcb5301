"""spark-submit entry point: `spark-submit jobs/sync_job.py SPEC [--run-id ID] [--stage sync]`.

Runs the same plan, sync, gate and publish as `accelsync run` (or, with `--stage sync`, the sync
stage of an Airflow DAG run) in the Spark driver that spark-submit started; master, executors
and memory come from spark-submit's options. See `accelsync.engine.spark_job`.
"""

import sys

from accelsync.engine.spark_job import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
