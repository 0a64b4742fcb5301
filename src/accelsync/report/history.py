"""Run history: one row per finished run, for the Airflow UI page and for people.

SQLite at `$ACCELSYNC_HOME/history.sqlite` by default (`ACCELSYNC_HISTORY_DB` names another file).
A row is keyed by (name, run_id): a rerun of the same run id replaces its row.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from accelsync.runs import home

COLUMNS = ("name", "run_id", "status", "source", "target", "started", "ended", "seconds", "read",
           "written", "dirty", "filtered", "rows_per_second", "bytes_per_second", "gate_passed",
           "reason", "data_docs", "run_dir", "checks", "airflow_run_id", "end_to_end_rows_per_second",
           "sync_seconds")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
  name TEXT NOT NULL, run_id TEXT NOT NULL, status TEXT NOT NULL, source TEXT, target TEXT,
  started TEXT, ended TEXT, seconds REAL, read INTEGER, written INTEGER, dirty INTEGER,
  filtered INTEGER, rows_per_second REAL, bytes_per_second REAL, gate_passed INTEGER,
  reason TEXT, data_docs TEXT, run_dir TEXT, checks TEXT, airflow_run_id TEXT,
  end_to_end_rows_per_second REAL, sync_seconds REAL,
  PRIMARY KEY (name, run_id)
)"""


def database() -> Path:
    return Path(os.environ.get("ACCELSYNC_HISTORY_DB") or home() / "history.sqlite")


def _connect() -> sqlite3.Connection:
    path = database()
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=30)
    connection.execute(_SCHEMA)
    # Databases written by older versions lack the newer columns.
    present = {row[1] for row in connection.execute("PRAGMA table_info(runs)")}
    for column in COLUMNS:
        if column not in present:
            connection.execute(f"ALTER TABLE runs ADD COLUMN {column}")
    return connection


def record(summary: dict[str, Any]) -> None:
    """Save a run summary (replacing an earlier row of the same run)."""
    row = {column: summary.get(column) for column in COLUMNS}
    row["gate_passed"] = int(bool((summary.get("gate") or {}).get("passed")))
    row["checks"] = json.dumps((summary.get("gate") or {}).get("checks", []), ensure_ascii=False)
    with closing(_connect()) as connection, connection:
        connection.execute(f"INSERT OR REPLACE INTO runs ({', '.join(COLUMNS)}) "
                           f"VALUES ({', '.join('?' for _ in COLUMNS)})", [row[c] for c in COLUMNS])


def recent(name: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """The newest runs, of one sync or of all."""
    if not database().exists():
        return []
    with closing(_connect()) as connection:
        connection.row_factory = sqlite3.Row
        query = "SELECT * FROM runs" + (" WHERE name = ?" if name else "") + " ORDER BY ended DESC LIMIT ?"
        rows = connection.execute(query, ([name] if name else []) + [limit]).fetchall()
    return [dict(row, checks=json.loads(row["checks"] or "[]")) for row in rows]
