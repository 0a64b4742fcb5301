"""Where a run keeps what its stages hand each other: plan, stats, snapshot, dirty records, verdicts.

A run folder is `<home>/runs/<sync name>/<run id>/`. The sync, gate and publish stages may run in
different processes (Airflow tasks), so everything they share lives here, written atomically.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


# What a run folder holds, named once. Each stage leaves its file for the next (they may run in
# different processes): the plan, the target's context, the tasks' counts, the sync's totals,
# the gate's verdict, the publish record, the summary; `run.json` says when the run started and
# `airflow.json` which Airflow run is behind the folder.
PLAN_FILE = "plan.json"
CONTEXT_FILE = "context.json"
WRITE_STATS_FILE = "write_stats.json"
SYNC_FILE = "sync.json"
GATE_FILE = "gate.json"
# A suite the gate evaluated on Arrow: GX's result JSON, drawn into Data Docs after the verdict.
SUITE_RESULT_FILE = "suite_result.json"
PUBLISHED_FILE = "published.json"
RUN_FILE = "run.json"
SUMMARY_FILE = "summary.json"
AIRFLOW_FILE = "airflow.json"
TRIES_FILE = "tries.json"  # the Airflow try of each task, for the summary's retried tasks
# Written when a stage fails, so `report` and the alert can say why (cleared when it starts again).
FAILURE_FILE = "failure.json"
# Folders the tasks write into: read counts, the rows for the gate, a sample of whole rows, dirty records.
STATS_FOLDER, SNAPSHOT_FOLDER, SAMPLE_FOLDER, DIRTY_FOLDER = "stats", "snapshot", "sample", "dirty"


def home() -> Path:
    """The project-local state folder (`ACCELSYNC_HOME`, default `./.accelsync`)."""
    return Path(os.environ.get("ACCELSYNC_HOME", ".accelsync")).absolute()


def data_docs_root() -> Path:
    """The Great Expectations file context whose Data Docs site holds every run's report
    (`ACCELSYNC_DATA_DOCS`, default `<home>/gx`)."""
    return Path(os.environ.get("ACCELSYNC_DATA_DOCS") or home() / "gx").absolute()


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


def safe_run_id(run_id: str) -> str:
    """Airflow run ids hold ':' and '+'; keep them readable but safe as a folder name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", run_id)


class RunDir:
    """The folder of one run of one sync."""

    def __init__(self, sync_name: str, run_id: str, root: Path | None = None):
        self.sync_name = sync_name
        self.run_id = run_id
        self.path = (root or home() / "runs") / sync_name / safe_run_id(run_id)

    def file(self, name: str) -> Path:
        return self.path / name

    def folder(self, name: str) -> Path:
        folder = self.path / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def exists(self, name: str) -> bool:
        return (self.path / name).exists()

    def write_json(self, name: str, data: Any) -> Path:
        return write_json_atomic(self.path / name, data)

    def read_json(self, name: str) -> Any:
        with open(self.path / name, encoding="utf-8") as handle:
            return json.load(handle)


def write_json_atomic(path: Path, data: Any) -> Path:
    """Write JSON so a reader never sees half a file, even if the process is killed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, default=str, ensure_ascii=False)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return path
