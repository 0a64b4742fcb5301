"""Stopping the tasks of this process when the run's time is up (the local engine's deadline).

Spark cancels its own tasks (`spark_engine._cancel_at`); the local engine runs tasks in this
process or in worker processes it can terminate. A task running in this process checks the flag
between batches, and the speed limit's sleep wakes up when it is set.
"""

from __future__ import annotations

import threading

from accelsync.errors import SyncTimeout

CANCELLED = threading.Event()
MESSAGE = "timeout: the sync ran past the spec's timeout and was cancelled"


def check() -> None:
    """Raise SyncTimeout once the run was cancelled."""
    if CANCELLED.is_set():
        raise SyncTimeout(MESSAGE)


def sleep(seconds: float) -> None:
    """Sleep, but wake up and raise when the run is cancelled meanwhile."""
    if CANCELLED.wait(seconds):
        raise SyncTimeout(MESSAGE)
