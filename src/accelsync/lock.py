"""One run of a sync at a time: a lock file per sync, shared by the CLI and Airflow.

Two runs of one sync at once would race for the target (two swap versions, two Druid ingestions)
and for the source position (both commit Kafka offsets, both move the watermark). So the first
stage of a run takes `$ACCELSYNC_HOME/locks/<sync name>.json`, every later stage of the same run
takes it again (re-entrant by run id: Airflow runs each stage in its own process), and the run
gives it back when it ends (`accelsync run` at its end, the Airflow `report` task, which runs
whatever happened upstream). A second run is refused with an error naming the holder.

A lock outlives a killed run only as long as it must: it expires at the spec's `timeout` after it
was taken (no run lives longer), and a lock taken by `accelsync run` on this host whose process is
gone is stale at once, so a rerun after a crash is not kept waiting.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

from accelsync.errors import TerminalError
from accelsync.runs import home, write_json_atomic


class SyncAlreadyRunning(TerminalError):
    """Another run of the same sync holds its lock."""


def _path(sync_name: str) -> Path:
    return home() / "locks" / f"{sync_name}.json"


def holder(sync_name: str) -> dict[str, Any] | None:
    """The lock's content when a live run holds it, else None."""
    path = _path(sync_name)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return None if _stale(data) else data


def acquire(sync_name: str, run_id: str, timeout: timedelta, via: str) -> None:
    """Take the sync's lock for `run_id` (again, if it already holds it); `via` says who runs it
    (`accelsync run`, `airflow`). Raises SyncAlreadyRunning when another live run holds it."""
    now = datetime.now(timezone.utc)
    with _exclusive(sync_name):
        current = holder(sync_name)
        if current is not None and current["run_id"] != run_id:
            raise SyncAlreadyRunning(
                f"{sync_name} is already running: run {current['run_id']} ({current['via']}, pid "
                f"{current['pid']} on {current['host']}) since {current['acquired']}; a second run at once would "
                f"race it for the target and the source position. Wait for it to end (its lock expires at "
                f"{current['expires']}, the spec's timeout after it started)")
        acquired = current["acquired"] if current else now.isoformat(timespec="seconds")
        expires = current["expires"] if current else (now + timeout).isoformat(timespec="seconds")
        write_json_atomic(_path(sync_name), {"run_id": run_id, "via": via, "pid": os.getpid(),
                                             "host": socket.gethostname(), "acquired": acquired,
                                             "expires": expires})


def release(sync_name: str, run_id: str) -> None:
    """Give the lock back if `run_id` holds it (a no-op otherwise)."""
    with _exclusive(sync_name):
        path = _path(sync_name)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if data.get("run_id") == run_id:
            path.unlink(missing_ok=True)


def _stale(data: dict[str, Any]) -> bool:
    try:
        if datetime.fromisoformat(data["expires"]) <= datetime.now(timezone.utc):
            return True
    except (KeyError, ValueError):
        return True
    # A CLI run is one process: on this host, a lock whose process is gone was left by a crash.
    # (An Airflow run spans several task processes, so only expiry frees its lock.)
    if data.get("via") == "accelsync run" and data.get("host") == socket.gethostname():
        return not _alive(int(data.get("pid") or 0))
    return False


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    try:
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


@contextmanager
def _exclusive(sync_name: str) -> Iterator[None]:
    """Serialise look-and-take across processes."""
    path = _path(sync_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".guard"), "w") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(guard, fcntl.LOCK_UN)
