"""The local engine: a sync's partitions run by worker processes on this machine, no JVM.

The same tasks as the Spark engine (`accelsync.engine.tasks`: a plan partition read and written by the
shared loops, retried when a service was unavailable) run in up to `speed.channels` worker
processes, DataX's channels; a plan with one partition, or a spec with one channel, runs in this
process and pays no process start at all. Workers are forked from this process when it runs no
other thread, native ones included (cheap: nothing is imported again), else from a fork server;
`ACCELSYNC_LOCAL_START` (fork, spawn, forkserver) overrides that.

At the run's deadline the workers are terminated (a task in this process stops at its next
batch) and the sync fails with `timeout`; the first task that fails stops the others.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, wait
from pathlib import Path

from accelsync.engine import cancel
from accelsync.errors import AccelsyncError, SyncTimeout, classify
from accelsync.engine.plan import Plan
from accelsync.runs import RunDir, WRITE_STATS_FILE
from accelsync.spec import Spec
from accelsync.engine.tasks import sync_partition


def copy(spec: Spec, plan: Plan, options: dict[str, str], run: RunDir, deadline: float | None) -> None:
    """Copy the plan's partitions; leaves the tasks' stats in `write_stats.json`."""
    work = list(enumerate(plan.partitions))
    workers = min(spec.speed.channels, len(work))
    if deadline is not None and deadline <= time.monotonic():
        raise SyncTimeout("timeout: the run's time budget was used up before the sync started")
    if workers <= 1:
        stats = _in_process(options, work, deadline)
    else:
        stats = _in_workers(options, work, workers, deadline)
    run.write_json(WRITE_STATS_FILE, stats)


def _in_process(options: dict[str, str], work: list[tuple[int, dict]], deadline: float | None) -> list[dict]:
    cancel.CANCELLED.clear()
    timer = None
    if deadline is not None:
        timer = threading.Timer(max(0.0, deadline - time.monotonic()), cancel.CANCELLED.set)
        timer.daemon = True
        timer.start()
    try:
        return [_task_error_mapped(sync_partition, options, 0, index, value) for index, value in work]
    finally:
        if timer is not None:
            timer.cancel()
        cancel.CANCELLED.clear()


# Pools running now, so a killed Airflow task can stop their workers (stop_all).
_ACTIVE: set[ProcessPoolExecutor] = set()


def stop_all() -> None:
    """Stop every sync task of this process: those in it at their next batch, workers now."""
    cancel.CANCELLED.set()
    for pool in list(_ACTIVE):
        _stop(pool)


def _allow_children() -> None:
    """Lift the "daemonic" mark this process may have inherited, so it can start its workers.

    A Celery prefork worker marks its pool processes daemonic, and the Airflow task process forked
    from one inherits the mark; multiprocessing then refuses any child ("daemonic processes are not
    allowed to have children") and every multi-channel sync on a Celery worker would fail. The
    rule keeps a daemon from leaving orphans when it is ended; this engine waits for its workers,
    terminates them at the deadline and on kill, and a killed task takes them down with its
    process group. (No public setter exists for the current process's flag.)"""
    process = multiprocessing.current_process()
    if process.daemon:
        process._config["daemon"] = False


def _in_workers(options: dict[str, str], work: list[tuple[int, dict]], workers: int,
                deadline: float | None) -> list[dict]:
    _allow_children()
    pool = _pool(workers)
    _ACTIVE.add(pool)
    futures: list[Future] = [pool.submit(sync_partition, options, index % workers, index, value)
                             for index, value in work]
    clean = False
    try:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        done, pending = wait(futures, timeout=timeout, return_when=FIRST_EXCEPTION)
        if pending and not any(f.exception() for f in done):
            raise SyncTimeout(cancel.MESSAGE)
        for future in futures:  # in plan order: the first failed partition names the error
            if future.done() and future.exception() is not None:
                raise _mapped(future.exception())
        clean = True
        return [future.result() for future in futures]
    finally:
        _ACTIVE.discard(pool)
        if clean:
            pool.shutdown(wait=True)
        else:
            _stop(pool)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Terminate the workers now (a failed or timed-out sync): their partial writes are the
    failed run's, which it discards."""
    processes = list((pool._processes or {}).values())  # the executor has no public kill
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)
        if process.is_alive():
            process.kill()


def _start_method() -> str:
    chosen = os.environ.get("ACCELSYNC_LOCAL_START")
    if chosen:
        return chosen
    # fork copies this process as it is: safe only when no other thread holds a lock it copies.
    # Native libraries start threads Python does not count (ConnectorX's connection pool and
    # runtime, librdkafka, a JVM): a worker forked after one ran hangs in its first call to it.
    # Else a fork server: a clean process started once per process (the next syncs of a
    # long-lived process, a `dag.test()` session say, fork their workers from it at once).
    return "fork" if _only_fork_safe_threads() else "forkserver"


def _pool(workers: int) -> ProcessPoolExecutor:
    # A fork server started by an earlier sync holds the environment of that moment: workers take
    # this process's as it is now (settings such as ACCELSYNC_PAUSE_AT, connections set since).
    return ProcessPoolExecutor(max_workers=workers, mp_context=_context(_start_method()),
                               initializer=_adopt_environment, initargs=(dict(os.environ),))


def _adopt_environment(environment: dict[str, str]) -> None:
    os.environ.clear()
    os.environ.update(environment)


def _context(method: str) -> multiprocessing.context.BaseContext:
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["accelsync.engine.tasks"])  # imported once, in the server
    return context


# Threads a fork copies safely: jemalloc's background thread and Arrow's own thread pools (both
# register at-fork handlers), which leave their names as the process's. Native libraries that do
# not survive a fork name theirs: ConnectorX's connection pool (`r2d2-worker-N`, started with
# its runtime), librdkafka (`rdk:...`), a JVM's (`GC Thread#0`, ...).
_FORK_SAFE_NAMES = {"jemalloc_bg_thd"}


def _only_fork_safe_threads() -> bool:
    if threading.active_count() > 1:
        return False
    try:
        tasks = os.listdir("/proc/self/task")
        own = Path("/proc/self/comm").read_text().strip()
        names = [Path(f"/proc/self/task/{task}/comm").read_text().strip() for task in tasks]
    except OSError:  # no procfs, or a thread that just ended: do not guess
        return False
    return all(name == own or name in _FORK_SAFE_NAMES for name in names)


def _task_error_mapped(function, *args):
    try:
        return function(*args)
    except Exception as exc:
        raise _mapped(exc) from None


def _mapped(exc: BaseException) -> BaseException:
    """A task's failure as an accelsync error: its own, or a bug or outage classified."""
    if isinstance(exc, AccelsyncError):
        return exc
    return classify(exc, f"sync task failed: {type(exc).__name__}: {exc}")
