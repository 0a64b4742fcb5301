"""spark-submit entry point: `spark-submit jobs/sync_job.py SPEC [--run-id ID]`.

Runs the same plan, sync, gate and publish as `accelsync run`, in the Spark driver that
spark-submit started (master, executors and memory come from spark-submit's options).
"""

import sys

from accelsync.cli import main

if __name__ == "__main__":
    sys.exit(main(["run", *sys.argv[1:]]))
