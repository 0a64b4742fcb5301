"""What the sync-stage benchmarks share: timing accelsync's sync stage and gate in this process,
and printing the result beside the hand-written script's."""

from __future__ import annotations

import json
import time
from typing import Callable


def time_stages(spec, check: Callable[[object], None]) -> tuple[float, dict]:
    """Seconds of one sync stage of `spec`, and the gate's seconds and verdict; `check(stats)`
    asserts what the target holds. The run then ends unpublished (report: its summary, its lock)."""
    from accelsync import pipeline
    from accelsync.runs import new_run_id

    run_id = new_run_id()
    started = time.perf_counter()
    stats = pipeline.stage_sync(spec, run_id)
    seconds = time.perf_counter() - started
    gate_started = time.perf_counter()
    verdict = pipeline.stage_gate(spec, run_id)
    gate_seconds = time.perf_counter() - gate_started
    pipeline.report(spec, run_id)
    check(stats)
    return seconds, {"gate_seconds": round(gate_seconds, 2), "gate_passed": verdict["passed"]}


def redis_check(db: int, rows: int) -> Callable[[object], None]:
    """Flush Redis db `db` now; the check that a run wrote exactly `rows` keys into it."""
    import redis

    target = redis.Redis(host="127.0.0.1", port=6379, db=db)
    target.flushdb()

    def check(stats) -> None:
        assert stats.written == rows and target.dbsize() == rows, (stats, target.dbsize())
    return check


def print_result(rows: int, channels: int, hand: float, ours: float, ours_warm: float, gate: dict,
                 hand_label: str, **extra) -> None:
    """The JSON line (with `extra` figures) and the table: rows/s of each, and the ratios."""
    result = {
        "rows": rows, "channels": channels,
        "hand_written_rows_per_s": round(rows / hand),
        "accelsync_rows_per_s": round(rows / ours),
        "accelsync_warm_rows_per_s": round(rows / ours_warm),
        "ratio": round(hand / ours, 2), "ratio_warm": round(hand / ours_warm, 2),
        **gate, **extra,
    }
    print(json.dumps(result))
    print(f"hand-written ({hand_label}): {result['hand_written_rows_per_s']:>9,} rows/s")
    print(f"accelsync sync stage (first run): {result['accelsync_rows_per_s']:>9,} rows/s  ratio {result['ratio']}x")
    print(f"accelsync sync stage (second run, warm): {result['accelsync_warm_rows_per_s']:>9,} rows/s"
          f"  ratio {result['ratio_warm']}x")
    print(f"gate (reconcile and read-back, after the sync): {gate['gate_seconds']}s")
