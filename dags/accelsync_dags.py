"""Airflow DAG file: one accelsync DAG per sync spec in `dags/syncs/` (or `$ACCELSYNC_SPECS`).

A broken spec must neither hide the good DAGs nor go unnoticed. Airflow 3.3 shows import errors
per DAG *file*, and only when the file raises; raising here would drop every good DAG of this
file along with the bad one, and warnings emitted while parsing only reach the DAG processor's
log. So a broken spec becomes a stand-in DAG instead (`dag_factory.broken_spec_dag`):
- its id is the spec's `name` when that can still be read (else `broken_spec__<file stem>`), and
  its display name ends in "(BROKEN SPEC)", so the DAG list shows it;
- its description and documentation carry the error lines, `path: field: message`;
- its one task, `spec_error`, fails with the same lines (red task, alert), and it keeps the
  spec's schedule when usable, so a scheduled sync that broke fails visibly on time.
Only a failure of accelsync itself (it cannot be imported) raises, and so shows as an import
error of this file.
"""

# Module names all start with "_": spec names cannot ([a-z][a-z0-9_]*), so no DAG id shadows them.
import os as _os
from pathlib import Path as _Path

from accelsync.airflow.dags import broken_spec_dag as _broken_spec_dag, build_dags as _build_dags

_SPECS_FOLDER = _Path(_os.environ.get("ACCELSYNC_SPECS") or _Path(__file__).parent / "syncs")

_dags, _errors = _build_dags(_SPECS_FOLDER)
for _dag_id, _dag in _dags.items():
    globals()[_dag_id] = _dag
for _path, _error in _errors.items():
    _dag = _broken_spec_dag(_path, _error, taken=set(_dags) | set(globals()))
    globals()[_dag.dag_id] = _dag
