"""One Airflow DAG per sync spec: `sync` -> `gate` -> `publish`, then `report`.

The DAG is thin: its tasks call the library (see `accelsync.airflow.operators`) and hold no sync logic.
Building a DAG reads only the spec file: no Spark, no network, so the DAG processor parses the
folder in well under a second.

Failure semantics. `report` runs whatever happened upstream, but it is a *teardown* task, which
Airflow leaves out when it decides the DAG run state: a run whose sync or gate failed ends
`failed` (publish is `upstream_failed`), not `success` because its last task succeeded. A plain
`all_done` leaf would do the opposite.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import warnings
from airflow.sdk import DAG, Asset, BaseOperator

from accelsync.airflow import alerts, isolation
from accelsync.airflow.operators import GateOperator, PublishOperator, ReportOperator, SpecErrorOperator
from accelsync.errors import SpecError
from accelsync.spec import NAME_PATTERN, Spec, format_duration, load_spec, spec_files


# A fixed start in the past: with catchup off, a scheduled DAG starts at its next interval.
START_DATE = datetime(2024, 1, 1, tzinfo=timezone.utc)
# Retries wait 30s, 60s, 120s, ... at most 10 minutes (TransientError only; see operators).
RETRY_DELAY = timedelta(seconds=30)
MAX_RETRY_DELAY = timedelta(minutes=10)
REPORT_TIMEOUT = timedelta(minutes=10)
BROKEN_TAG = "accelsync:broken-spec"


def build_dag(spec: Spec, spec_path: str | Path) -> DAG:
    """The DAG of one spec. DAG id = spec name; tasks sync -> gate -> publish -> report.

    The DAG is not auto-registered: the caller puts it in a DAG file's globals (see
    `dags/accelsync_dags.py`), so a DAG that fails half-way through building never shows up.
    """
    spec_path = str(Path(spec_path).absolute())
    default_args = {
        "owner": spec.owner,
        "retries": spec.retries,
        "retry_delay": RETRY_DELAY,
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": MAX_RETRY_DELAY,
        "execution_timeout": spec.timeout,
        "on_failure_callback": alerts.task_failed,
        **isolation.task_args(spec),  # pool, priority_weight, queue: see accelsync.airflow.isolation
    }
    with DAG(
        dag_id=spec.name,
        description=_first_line(spec.description) or f"{spec.source.type} -> {spec.target.type}",
        schedule=spec.schedule,
        start_date=START_DATE,
        catchup=False,
        dagrun_timeout=spec.timeout,
        max_active_runs=1,  # runs of one sync publish in order; two at once would race
        deadline=alerts.deadline_alert(spec),
        default_args=default_args,
        tags=tags(spec),
        doc_md=doc_md(spec, spec_path),
        auto_register=False,
    ) as dag:
        sync = sync_task(spec, spec_path)  # in-process, or spark-submit to a configured cluster
        gate = GateOperator(task_id="gate", spec_path=spec_path,
                            doc_md="Great Expectations suite, reconciliation, read-back sample, timeliness.")
        publish = PublishOperator(task_id="publish", spec_path=spec_path, outlets=[target_asset(spec)],
                                  doc_md="Make the run live and advance the source; only after a passing gate. "
                                         "Emits the target's Asset, so downstream DAGs can schedule on it.")
        report = ReportOperator(task_id="report", spec_path=spec_path, retries=0,
                                execution_timeout=REPORT_TIMEOUT,
                                doc_md="The DataX-style run summary; runs whatever happened upstream.")
        # Teardown: trigger rule all_done (there is no setup task) and left out of the run state.
        report.as_teardown()
        sync >> gate >> publish >> report
    dag.validate()
    return dag


def target_asset(spec: Spec) -> Asset:
    """The sync's target as an Airflow Asset (`redis://`, `hbase://`, `druid://<connection id>/...`).

    The URI names the connection id rather than a host: it is known at parse time without a
    connection lookup, stays the same across environments, and holds no credentials.
    """
    return Asset(uri=spec.target.asset_uri(), group="accelsync",
                 extra={"sync": spec.name, "target": spec.target.type})


def tags(spec: Spec) -> list[str]:
    return ["accelsync", f"source:{spec.source.type}", f"target:{spec.target.type}",
            f"business_line:{spec.business_line}", f"priority:{spec.priority}"]


def doc_md(spec: Spec, spec_path: str) -> str:
    """The DAG's documentation in the UI: what the sync does, from where to where, how checked."""
    quality = spec.quality
    checks = [f"suite `{quality.suite}`" if quality.suite else None,
              f"reconcile (tolerance {quality.reconcile.tolerance})",
              f"read-back sample of {quality.readback.sample}" if quality.readback.sample else None,
              (f"freshness of `{quality.freshness.column}` within {format_duration(quality.freshness.max_lag)}"
               if quality.freshness else None),
              f"timeliness (within {format_duration(spec.timeout)})"]
    queue = isolation.queue_name(spec.business_line)
    lines = [f"### {spec.name}", ""]
    if spec.description:
        lines += [spec.description.strip(), ""]
    lines += [
        "| | type | settings |",
        "| --- | --- | --- |",
        f"| source | {spec.source.type} | {_settings(spec.source)} |",
    ]
    if spec.transform:
        lines.append(f"| transform | spark sql | {_settings(spec.transform)} |")
    lines += [
        f"| target | {spec.target.type} | {_settings(spec.target)} |",
        "",
        f"- schedule: `{spec.schedule or 'manual'}`, timeout {format_duration(spec.timeout)}, "
        f"retries {spec.retries}, priority {spec.priority}, owner `{spec.owner}`, "
        f"business line `{spec.business_line}`",
        f"- isolation: pool `{isolation.pool_name(spec.business_line)}`, priority weight "
        f"{isolation.PRIORITY_WEIGHT[spec.priority]}" + (f", queue `{queue}`" if queue else ""),
        f"- publishes Asset `{spec.target.asset_uri()}`",
        f"- speed: {spec.speed.channels} channel(s), "
        f"{spec.speed.records_per_second or 'unlimited'} records/s; error limit: {spec.error_limit.describe()}",
        "- gate: " + ", ".join(c for c in checks if c),
        *[f"- **note** `{field}`: {note}" for field, note in spec.notes()],
        f"- spec: `{spec_path}`",
    ]
    return "\n".join(lines)


def _settings(model: Any) -> str:
    """A model's non-default settings as `key: value` pairs, escaped for a Markdown table cell."""
    data = model.model_dump(mode="json", by_alias=True, exclude_defaults=True, exclude={"type"})
    connection = getattr(model, "connection", None)
    if connection and "connection" not in data:
        data = {"connection": connection, **data}
    text = ", ".join(f"{key}: `{_compact(value)}`" for key, value in data.items())
    return text.replace("|", "\\|").replace("\n", " ") or "-"


def _compact(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_compact(v) for v in value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_compact(v)}" for k, v in value.items()) + "}"
    return str(value)


def _first_line(text: str | None) -> str | None:
    return text.strip().splitlines()[0] if text and text.strip() else None


def build_dags(folder: str | Path) -> tuple[dict[str, DAG], dict[str, str]]:
    """A DAG per good spec in `folder`, and the error text (`path: field: message` lines) per bad one.

    A bad spec never hides the good ones. Two specs with one name: the first (in file order)
    keeps it, the second is an error.
    """
    dags: dict[str, DAG] = {}
    owners: dict[str, str] = {}
    errors: dict[str, str] = {}
    for path in spec_files([str(folder)]):
        key = str(path)
        try:
            spec = load_spec(path)
        except SpecError as exc:
            errors[key] = "\n".join(exc.lines())
            continue
        if spec.name in dags:
            errors[key] = f"{path}: name: {spec.name!r} is already the name of {owners[spec.name]}"
            continue
        try:
            dags[spec.name] = build_dag(spec, path)
        except Exception as exc:  # e.g. a schedule Airflow does not understand
            errors[key] = f"{path}: {_field_of(exc)}{type(exc).__name__}: {_first_line(str(exc)) or ''}"
            continue
        owners[spec.name] = key
    return dags, errors


def _field_of(exc: Exception) -> str:
    """Airflow's own checks at DAG build time are almost all about the schedule."""
    text = f"{type(exc).__name__} {exc}".lower()
    return "schedule: " if any(w in text for w in ("cron", "timetable", "schedule")) else ""


def broken_spec_dag(spec_path: str | Path, error: str, taken: set[str] | frozenset[str] = frozenset()) -> DAG:
    """A stand-in DAG for a spec that does not load, so the error shows where on-call looks.

    Its id is the spec's `name` when that can be read (the DAG people know keeps its page and
    history, now red), else `broken_spec__<file stem>`. Its documentation and description show
    the error; its one task, `spec_error`, fails with it. It keeps the spec's schedule when that
    schedule is usable, so the next scheduled run fails and alerts instead of silently stopping.
    """
    path = Path(spec_path)
    raw = _raw_fields(path)
    name = raw.get("name")
    if not (isinstance(name, str) and re.match(NAME_PATTERN, name) and name not in taken):
        name = "broken_spec__" + re.sub(r"[^a-z0-9_]+", "_", path.stem.lower()).strip("_")
    warnings.warn(f"accelsync: broken spec, DAG {name} stands in for it: {error}", stacklevel=2)
    schedule = raw.get("schedule") if isinstance(raw.get("schedule"), str) else None
    doc = "\n".join([
        f"### Broken sync spec: `{path}`",
        "",
        "This DAG stands in for a spec that does not load. Fix the spec; the sync's DAG comes back "
        "at the next parse. Its task `spec_error` fails with:",
        "",
        "```",
        error,
        "```",
        "",
        f"Check it locally: `accelsync validate {path}`",
    ])
    for attempt in (schedule, None):
        try:
            with DAG(
                dag_id=name,
                dag_display_name=f"{name} (BROKEN SPEC)",
                description=f"BROKEN SPEC: {_first_line(error)}"[:1000],
                schedule=attempt,
                start_date=START_DATE,
                catchup=False,
                max_active_runs=1,
                tags=["accelsync", BROKEN_TAG],
                doc_md=doc,
                default_args={"owner": str(raw.get("owner") or "accelsync"), "retries": 0,
                              "on_failure_callback": alerts.task_failed},
                auto_register=False,
            ) as dag:
                SpecErrorOperator(task_id="spec_error", spec_path=str(path.absolute()), error=error,
                                  doc_md=f"```\n{error}\n```")
            return dag
        except Exception:
            if attempt is None:
                raise
    raise AssertionError("unreachable")


def _raw_fields(path: Path) -> dict[str, Any]:
    """Whatever top-level fields a broken spec still yields (name, schedule, owner), else {}."""
    import yaml

    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except Exception:
        return {}
    return data if isinstance(data, dict) else {}


SYNC_DOC = "Read the source and write the target where readers do not yet rely on it."


def sync_task(spec: Spec, spec_path: str) -> BaseOperator:
    """The DAG's `sync` task for this spec (call inside the DAG's context)."""
    from accelsync.engine.spark_settings import for_spec

    settings = for_spec(spec)
    if not settings.is_cluster:
        from accelsync.airflow.operators import SyncOperator

        return SyncOperator(task_id="sync", spec_path=spec_path, doc_md=SYNC_DOC)
    from accelsync.airflow.spark_operator import SparkSyncOperator  # the provider: only when needed

    return SparkSyncOperator(task_id="sync", spec_path=spec_path, spec_name=spec.name, settings=settings,
                             doc_md=SYNC_DOC + f" Submitted to the Spark cluster `{settings.master}`.")
