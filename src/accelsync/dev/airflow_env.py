"""A project-local Airflow for the demo and the tests, and a way to run one DAG through it.

`configure()` points Airflow at `$ACCELSYNC_HOME/airflow` (default `./.accelsync/airflow`): a
SQLite metadata database, the repository's `dags/` folder, no example DAGs. `migrate()` creates
or upgrades the database once (skipped when it is already at this Airflow's head revision).
`run_dag()` runs one DAG run through Airflow itself with `DAG.test()`: the scheduler's own
dependency loop, real task instances in the metadata database, tasks executed in this process
(so they share one SparkSession).

Airflow reads its database settings when `airflow` is first imported, so call `configure()`
before importing Airflow or anything that imports it (`accelsync.airflow.dags`,
`accelsync.airflow.operators`); when Airflow is already imported, `configure()` re-points its ORM.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Iterator

from accelsync import runs


def repo_root() -> Path:
    """The repository this package runs from (src layout: <repo>/src/accelsync), else the cwd."""
    root = Path(__file__).resolve().parents[3]  # <repo>/src/accelsync/dev/airflow_env.py
    return root if (root / "dags").is_dir() else Path.cwd()


def airflow_home() -> Path:
    """`$ACCELSYNC_HOME/airflow`: the project-local AIRFLOW_HOME."""
    return runs.home() / "airflow"


def airflow_environ(home: Path | None = None, dags_folder: Path | None = None) -> dict[str, str]:
    """The environment of the project-local Airflow (also usable for `airflow standalone`)."""
    home = Path(home or airflow_home()).absolute()
    dags_folder = Path(dags_folder or repo_root() / "dags").absolute()
    return {
        "AIRFLOW_HOME": str(home),
        "ACCELSYNC_HOME": str(runs.home()),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__LOGGING__DAG_PROCESSOR_CHILD_PROCESS_LOG_DIRECTORY": str(home / "logs" / "dag_processor"),
    }


def configure(home: Path | None = None, dags_folder: Path | None = None) -> dict[str, str]:
    """Export the project-local Airflow environment into this process; return it."""
    env = airflow_environ(home, dags_folder)
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    os.environ.update(env)
    if "airflow.settings" in sys.modules:
        from airflow import settings

        if settings.SQL_ALCHEMY_CONN != env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]:
            settings.configure_vars()
            settings.reconfigure_orm()
    return env


def is_migrated(home: Path | None = None) -> bool:
    """Whether the metadata database exists at this Airflow's head revision (one SQLite read)."""
    database = Path(home or airflow_home()).absolute() / "airflow.db"
    if not database.exists():
        return False
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as connection:
            rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.Error:
        return False
    return bool(rows) and rows[0][0] == _head_revision()


def _head_revision() -> str | None:
    """The newest schema revision this Airflow knows (None: unknown, so always migrate)."""
    try:
        from airflow.utils.db import _REVISION_HEADS_MAP
    except ImportError:
        return None
    return list(_REVISION_HEADS_MAP.values())[-1] if _REVISION_HEADS_MAP else None


def migrate(home: Path | None = None, dags_folder: Path | None = None) -> None:
    """Configure, then run `airflow db migrate` unless the database is already migrated."""
    env = configure(home, dags_folder)
    if is_migrated(home):
        return
    # One migration at a time per home (the demo and the tests may start together).
    with open(Path(env["AIRFLOW_HOME"]) / ".migrate.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_migrated(home):
            return
        result = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env={**os.environ, **env},
                                capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed ({result.returncode}):\n{result.stdout[-3000:]}"
                           f"\n{result.stderr[-3000:]}")


def load_dags(dags_folder: Path | None = None) -> tuple[dict[str, Any], dict[str, str]]:
    """Parse the DAG folder the way Airflow's DAG processor does: (DAGs by id, import errors)."""
    from airflow.dag_processing.dagbag import DagBag

    folder = dags_folder or Path(os.environ.get("AIRFLOW__CORE__DAGS_FOLDER") or repo_root() / "dags")
    bag = DagBag(dag_folder=str(folder), safe_mode=True)
    return dict(bag.dags), dict(bag.import_errors)


@dataclass
class DagRunResult:
    """One DAG run's outcome. Unpacks as `(state, tasks)`; also has the run id and duration."""

    dag_id: str
    run_id: str
    state: str
    tasks: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def __iter__(self) -> Iterator[Any]:
        return iter((self.state, self.tasks))


def run_dag(target: str | Path, logical_date: datetime | None = None) -> DagRunResult:
    """Run one DAG (by DAG id, or by spec file path) through Airflow with `DAG.test()`.

    A spec path outside the DAG folder's spec folder becomes the spec folder for this run
    (`ACCELSYNC_SPECS`), so the DAG is parsed from the real loader file as Airflow would.
    Task states are read back from the metadata database after the run.
    """
    dag_id = str(target)
    saved_specs = os.environ.get("ACCELSYNC_SPECS")
    if str(target).endswith((".yaml", ".yml")) or Path(target).is_file():
        from accelsync.spec import load_spec

        path = Path(target).absolute()
        dag_id = load_spec(path).name
        specs = Path(saved_specs or repo_root() / "dags" / "syncs").absolute()
        if specs not in path.parents:
            os.environ["ACCELSYNC_SPECS"] = str(path.parent)
    try:
        return _run(dag_id, logical_date)
    finally:
        if saved_specs is None:
            os.environ.pop("ACCELSYNC_SPECS", None)
        else:
            os.environ["ACCELSYNC_SPECS"] = saved_specs


def _run(dag_id: str, logical_date: datetime | None) -> DagRunResult:
    migrate()
    dags, import_errors = load_dags()
    if dag_id not in dags:
        problems = "; ".join(f"{f}: {e.strip().splitlines()[-1]}" for f, e in import_errors.items())
        raise KeyError(f"no DAG {dag_id!r} in {os.environ['AIRFLOW__CORE__DAGS_FOLDER']}"
                       + (f" (import errors: {problems})" if problems else ""))
    dag = dags[dag_id]
    _ensure_pools(dag)
    # DAG.test() of Airflow 3.3 looks deadline alerts up by the ids a *serialized* DAG carries and
    # fails on the DeadlineAlert objects of a parsed one; the scheduler evaluates them, not DAG.test.
    dag.deadline = None
    clock = time.monotonic()
    from airflow.sdk import timezone

    dag_run = dag.test(logical_date=logical_date or timezone.utcnow())
    seconds = time.monotonic() - clock
    state, tasks = dag_run_states(dag_id, dag_run.run_id)
    return DagRunResult(dag_id=dag_id, run_id=dag_run.run_id, state=state, tasks=tasks, seconds=seconds)


def _ensure_pools(dag: Any) -> None:
    """Create the pools the DAG's specs need, as a deployment would with `accelsync pools`."""
    from accelsync.errors import SpecError
    from accelsync.airflow.isolation import ensure_pools
    from accelsync.spec import load_spec

    specs = []
    for path in {getattr(task, "spec_path", None) for task in dag.tasks} - {None}:
        try:
            specs.append(load_spec(path))
        except SpecError:
            pass  # a broken spec's stand-in DAG runs in the default pool
    ensure_pools(specs)


def dag_run_states(dag_id: str, run_id: str) -> tuple[str, dict[str, str]]:
    """The DAG run's state and each task's state, as the metadata database holds them."""
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        run_state = session.scalar(select(DagRun.state).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
        rows = session.execute(select(TaskInstance.task_id, TaskInstance.state)
                               .where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)).all()
    return _text(run_state), {task_id: _text(state) for task_id, state in rows}


def _text(state: Any) -> str:
    return "none" if state is None else str(getattr(state, "value", state))
