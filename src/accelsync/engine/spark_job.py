"""What `spark-submit jobs/sync_job.py` runs in the Spark driver.

    sync_job.py SPEC [--run-id ID] [--json]        plan, sync, gate, publish (as `accelsync run`)
    sync_job.py SPEC --run-id ID --stage sync      only the sync stage of an Airflow DAG run

The `sync` stage leaves its outcome where the Airflow tasks look: the run folder's stats, and on
failure `failure.json` (the file `accelsync.airflow.operators` writes) with the error's retry policy, so
the `sync` task can fail at once on a bad spec or bad data and retry only an unavailable service.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

DEADLINE_SHARE = 0.95  # of the spec's timeout, leaving Airflow's execution_timeout the last word


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sync_job.py")
    parser.add_argument("spec")
    parser.add_argument("--run-id", default=None)
    parser.add_argument("--stage", choices=["all", "sync"], default="all")
    args, rest = parser.parse_known_args(argv)
    if args.stage == "all":  # every other option is `accelsync run`'s (--json ...)
        from accelsync.cli import main as cli_main

        return cli_main(["run", args.spec, *(["--run-id", args.run_id] if args.run_id else []), *rest])
    if rest:
        parser.error(f"unknown options for --stage sync: {' '.join(rest)}")
    if not args.run_id:
        parser.error("--stage sync needs the DAG run's --run-id")
    return sync_stage(args.spec, args.run_id)


def sync_stage(spec_path: str, run_id: str) -> int:
    from accelsync import pipeline
    from accelsync.errors import AccelsyncError
    from accelsync.runs import FAILURE_FILE, RunDir
    from accelsync.spec import load_spec

    try:
        spec = load_spec(spec_path)
    except AccelsyncError as exc:
        print(exc, file=sys.stderr)
        return 1
    run = RunDir(spec.name, run_id)
    run.file(FAILURE_FILE).unlink(missing_ok=True)
    deadline = time.monotonic() + DEADLINE_SHARE * spec.timeout.total_seconds()
    try:
        stats = pipeline.stage_sync(spec, run_id, deadline)
    except AccelsyncError as exc:
        run.write_json(FAILURE_FILE, {"task": "sync", "error": str(exc), "retryable": exc.retryable})
        print(f"accelsync sync failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps({"read": stats.read, "written": stats.written, "dirty": stats.dirty,
                      "filtered": stats.filtered, "seconds": stats.seconds}))
    return 0
