"""How a spec's `priority` and `business_line` map to Airflow's isolation: pool, weight, queue.

    priority       -> priority_weight (high 100, medium 10, low 1; absolute, not summed)
    business_line  -> pool `accelsync_<business_line>`, one per line, created when missing
    business_line  -> queue `accelsync.<business_line>`, only when ACCELSYNC_QUEUES is on

Settings (environment variables, read when a DAG is built or pools are created):
- `ACCELSYNC_POOL`: the pool name template (default `accelsync_{business_line}`);
- `ACCELSYNC_POOL_SLOTS`: slots of a pool created here (default 4);
  `ACCELSYNC_POOL_SLOTS_<BUSINESS_LINE>` sizes one line's pool (e.g. `ACCELSYNC_POOL_SLOTS_GROWTH=8`);
- `ACCELSYNC_QUEUES`: `true` sets each task's queue (Celery / Kubernetes / edge workers listen
  on it); off by default, since a worker that does not listen on the queue never runs the task,
  and the LocalExecutor ignores queues anyway;
- `ACCELSYNC_QUEUE`: the queue name template (default `accelsync.{business_line}`).

Airflow's scheduler does not run a task whose pool does not exist, so the pools must exist
before the first run: `accelsync pools` creates the missing ones (a deployment step), and the
local runs (`accelsync demo`, the tests) create theirs. An existing pool is never resized here:
its slots belong to whoever tuned it in the UI.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from accelsync.spec import Spec

PRIORITY_WEIGHT = {"high": 100, "medium": 10, "low": 1}
DEFAULT_POOL = "accelsync_{business_line}"
DEFAULT_QUEUE = "accelsync.{business_line}"
DEFAULT_POOL_SLOTS = 4
_TRUE = {"1", "true", "yes", "on"}


def pool_name(business_line: str) -> str:
    return os.environ.get("ACCELSYNC_POOL", DEFAULT_POOL).format(business_line=business_line)


def pool_slots(business_line: str) -> int:
    """Slots of a newly created pool: the line's own setting, else the general one, else 4."""
    for name in (f"ACCELSYNC_POOL_SLOTS_{business_line.upper()}", "ACCELSYNC_POOL_SLOTS"):
        value = os.environ.get(name)
        if value:
            try:
                slots = int(value)
            except ValueError:
                raise ValueError(f"{name}={value!r}: not a whole number of pool slots") from None
            if slots < 1:
                raise ValueError(f"{name}={value!r}: a pool needs at least one slot")
            return slots
    return DEFAULT_POOL_SLOTS


def queue_name(business_line: str) -> str | None:
    """The queue of a line's tasks, or None (Airflow's default queue) when queues are off."""
    if os.environ.get("ACCELSYNC_QUEUES", "").strip().lower() not in _TRUE:
        return None
    return os.environ.get("ACCELSYNC_QUEUE", DEFAULT_QUEUE).format(business_line=business_line)


def task_args(spec: Spec) -> dict[str, Any]:
    """The isolation arguments of every task of a spec's DAG."""
    args: dict[str, Any] = {"pool": pool_name(spec.business_line),
                            "priority_weight": PRIORITY_WEIGHT[spec.priority],
                            "weight_rule": "absolute"}
    queue = queue_name(spec.business_line)
    if queue:
        args["queue"] = queue
    return args


def ensure_pools(specs: Iterable[Spec]) -> list[str]:
    """Create the pool of each spec's business line when it is missing; return the created ones.

    Needs Airflow's metadata database (the scheduler, the API server, a deployment job).
    """
    from airflow.models.pool import Pool
    from airflow.utils.session import create_session

    created = []
    lines = sorted({spec.business_line for spec in specs})
    with create_session() as session:
        for line in lines:
            name = pool_name(line)
            if Pool.get_pool(name, session=session) is None:
                Pool.create_or_update_pool(name, pool_slots(line), f"accelsync syncs of business line {line}",
                                           include_deferred=False, session=session)
                created.append(name)
    return created
