"""Retries of transient failures inside a sync: a plan partition is read and written again.

A DataX channel that loses its source or target connection (a restarted Redis, a MySQL
connection killed mid-read, a broker failover) does not fail the run at once: its partition is
run again from its start after a backoff of 1 s, 2 s, 4 s, ... (at most 30 s). Every target writes
idempotently (same keys, same cells, the same staged file), so the rows an attempt wrote before
it failed are simply written again. What a failed attempt left in the run folder (its dirty
records and its snapshot file) is removed, so the counts are those of the attempt that
succeeded. Terminal errors (bad spec, bad data) are never retried.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable

from accelsync.errors import TransientError, is_availability_failure
from accelsync.runs import DIRTY_FOLDER, SAMPLE_FOLDER, SNAPSHOT_FOLDER, STATS_FOLDER, write_json_atomic

BASE_DELAY = 1.0
MAX_DELAY = 30.0


def backoff(attempt: int) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based)."""
    return min(MAX_DELAY, BASE_DELAY * 2 ** (attempt - 1))


def retry_partition(attempt: Callable[[], dict[str, Any]], index: int, run_dir: str,
                    attempts: int = 4) -> dict[str, Any]:
    """Run `attempt` (read and write plan partition `index`) until it succeeds or fails
    `attempts` times; each failure is logged in `stats/retries-<index>.json`."""
    failures: list[dict[str, Any]] = []
    for number in range(1, attempts + 1):
        try:
            stats = attempt()
        except Exception as exc:
            if not is_availability_failure(exc):  # bad data, a bug: fail at once (errors.py lists what is retried)
                raise
            failures.append({"attempt": number, "error": str(exc)})
            _record(run_dir, index, failures)
            if number == attempts:
                raise TransientError(f"partition {index} failed {attempts} times; last error: {exc}") from None
            clear_attempt(run_dir, index)
            delay = backoff(number)
            print(f"accelsync: partition {index}, attempt {number} failed ({exc}); retrying in {delay:.0f}s",
                  file=sys.stderr, flush=True)
            time.sleep(delay)
        else:
            stats["attempts"] = number
            return stats
    raise AssertionError("unreachable")


def clear_attempt(run_dir: str, index: int) -> None:
    """Remove what a failed attempt at plan partition `index` left in the run folder."""
    folder = Path(run_dir)
    for pattern in (f"{DIRTY_FOLDER}/read-{index:05d}-*", f"{DIRTY_FOLDER}/write-p{index:05d}-*",
                    f"{SNAPSHOT_FOLDER}/write-p{index:05d}-*", f"{SAMPLE_FOLDER}/write-p{index:05d}-*",
                    f"{STATS_FOLDER}/read-{index:05d}.json"):
        for path in folder.glob(pattern):
            path.unlink(missing_ok=True)


def _record(run_dir: str, index: int, failures: list[dict[str, Any]]) -> None:
    write_json_atomic(Path(run_dir) / STATS_FOLDER / f"retries-{index:05d}.json", failures)
