"""Druid target: stage the run as JSON lines, ingest it into a staging datasource, gate it there,
and publish by ingesting the same files into the real datasource.

Staging, step by step:
- **write** (tasks of either engine): each task writes its rows to `<run dir>/druid/data/part-<task>.json`
  (newline JSON: the timestamp as epoch millis, the dimensions, the metric inputs), renamed into
  place only when the task succeeds, so a retried task replaces its own file. Rows whose
  timestamp is NULL or does not parse under `timestamp.format` are dirty records. Nothing reaches
  Druid yet.
- **finish** (driver, after every write task): one native batch `index_parallel` task with a
  `local` input source over those files loads `<datasource>__accelsync_<run id>`, a staging
  datasource no reader uses, with the spec's dimensions, metrics and granularity plus a hidden
  count metric `__accelsync_rows` (rows ingested per Druid row). `maxParseExceptions` is 0, so a
  value Druid cannot parse fails the task with Druid's message. The task is polled until the
  spec's timeout; past it, it is shut down and the run fails with `timeout: ...`.
- **gate**: `count_present` and `read_back` query the staging datasource with Druid SQL.
  Rows are compared per group (time bucket of `granularity.query`, dimension values), which is
  what Druid keeps, with or without rollup: a group is present with as many rows as its
  `__accelsync_rows`, and `read_back` compares, for each sampled row's group, the row count and
  every metric (sum of sums, min of mins, max of maxes; doubles to 1e-9 relative) with the same
  aggregates computed from the run snapshot.
- **publish** (after the gate passed): the same files are ingested into the real datasource:
  `mode: replace` with `appendToExisting: false` and `intervals` set to the segment-granularity
  chunks the run's data covers (Druid swaps those chunks atomically; rerunning converges to the
  same state), `mode: append` with `appendToExisting: true` (the task id is recorded first, so a
  retried publish never appends twice). Then the staging datasource is marked unused.

Connections follow Airflow's Druid provider: host, port (the router, 8888), `schema` http or
https, login/password for basic auth; extras `verify_ssl`, `task_context` (merged into every
task's context), `input_source` (`local`, the default, when Druid can read the run folder at the
same path; `inline` to send the rows in the task for a remote Druid) and `poll_seconds`.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.compute as pc

from accelsync.connections import Connection, get_connection
from accelsync.errors import SyncTimeout, TerminalError, TransientError
from accelsync.registry import meta_columns
from accelsync.runs import RunDir, WRITE_STATS_FILE, home, safe_run_id, write_json_atomic
from accelsync.spec import Spec, format_duration
from accelsync.targets.base import BatchWriter, Target
from accelsync.targets.druid.client import DruidClient, SERVED_GRACE
from accelsync.targets.druid.spec import DruidTargetSpec
from accelsync.targets.druid.sql import (combine_metric, sql_ident, iso_column, group_key_text, sql_literal,
                                         metric_input,  same_metric, timestamp_literal, where_intervals)
from accelsync.targets.druid.timeutil import (ALL_INTERVAL, ALL_TIME, floor_one, instant_millis, interval_millis,
                                              intervals_of,  iso_millis, next_chunk, span_of, event_millis,
                                              floor_millis,  staging_name)
from accelsync.targets.druid.writer import DruidWriter, dimension_type, dimension_values


log = logging.getLogger(__name__)
ROWS_METRIC = "__accelsync_rows"
HISTOGRAM_LIMIT = 200_000  # distinct Druid times the gate fetches at once instead of asking per batch
_DOUBLE_METRICS = ("doubleSum", "doubleMin", "doubleMax")


class DruidTarget(Target):
    type = "druid"
    options: DruidTargetSpec

    def __init__(self, spec: Spec):
        super().__init__(spec)
        self.ts = self.options.timestamp.column
        self.ts_format = self.options.timestamp.format
        self.fields = list(dict.fromkeys(m.field for m in self.options.metrics if m.field))
        self._histogram: dict[str, int] | bool | None = None

    # -- driver: before writing ----------------------------------------------------------------

    def prepare(self, run_id: str) -> dict[str, Any]:
        names = list(self.options.dimensions) + [m.name for m in self.options.metrics]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise TerminalError(f"target: {repeated} named both as dimension and metric (or twice); Druid "
                                f"needs one column per name")
        if ROWS_METRIC in names or self.ts in self.options.dimensions:
            raise TerminalError(f"target.dimensions: {ROWS_METRIC!r} is reserved and the timestamp column "
                                f"cannot be a dimension")
        client = self._client()
        client.health()
        folder = RunDir(self.spec.name, run_id).path / "druid"
        for sub in ("data", "meta"):
            for stale in (folder / sub).glob("*"):
                stale.unlink()
        staging = staging_name(self.options.datasource, run_id)
        self._remove_dead_staging(client, staging)
        return {"datasource": self.options.datasource, "staging_datasource": staging}

    def _remove_dead_staging(self, client: DruidClient, current: str) -> None:
        """Remove the staging datasources that runs of this sync left behind: a run drops its own on
        every way it ends, so one still there belongs to a run that was killed. A staging datasource
        of another sync's run (one datasource fed by two syncs) is left to that sync."""
        prefix = staging_name(self.options.datasource, "")
        for name in client.datasources():
            if not name.startswith(prefix) or name == current:
                continue
            run_id = name[len(prefix):]
            runs = list((home() / "runs").glob(f"*/{run_id}"))
            if runs and not any(r.parent.name == self.spec.name for r in runs):
                continue
            log.warning("%s: removing %s, the staging datasource of run %s, which did not finish",
                        self.spec.name, name, run_id)
            client.remove(name)

    def open_writer(self, context: dict[str, Any]) -> BatchWriter:
        return DruidWriter(self, context)

    def layout(self, schema: pa.Schema) -> list[tuple[str, str]]:
        """The dimensions as (name, Druid type): the spec's, else every column but the timestamp,
        the metric inputs and source metadata columns."""
        missing = [c for c in [self.ts] + list(self.options.dimensions) + self.fields if c not in schema.names]
        if missing:
            raise TerminalError(f"target: columns {missing} are not in the synced data "
                                f"(columns: {', '.join(schema.names)})")
        names = list(self.options.dimensions) or [
            n for n in schema.names
            if n != self.ts and n not in self.fields and n not in meta_columns()]
        return [(n, dimension_type(schema.field(n).type)) for n in names]

    # -- driver: after every write task --------------------------------------------------------

    def finish(self, context: dict[str, Any], deadline: float | None) -> dict[str, Any]:
        folder = Path(context["run_dir"]) / "druid"
        parts = [json.loads(p.read_text()) for p in sorted((folder / "meta").glob("part-*.json"))]
        chunks = sorted({c for part in parts for c in part["chunks"]})
        context = dict(context, staged_dir=str(folder / "data"), staged_rows=sum(p["rows"] for p in parts),
                       dimensions=parts[0]["dimensions"] if parts else [],
                       intervals=intervals_of(chunks, self.options.granularity.segment))
        client = self._client()
        staging = context["staging_datasource"]
        client.drop(staging)  # a rerun of this run id starts from nothing
        context["druid_rows"] = 0
        if not context["staged_rows"]:
            return context
        try:
            task_id = client.submit(self.task(context, staging, staging=True))
            context["staging_task"] = task_id
            self._wait(client, task_id, deadline, "staging", span_of(context["intervals"]))
            context.update(self._served_staging(client, context, task_id, deadline))
        except BaseException:
            # Nothing staged outlives a failed run: FAILED, timed out, or anything else.
            self._remove_quietly(client, staging)
            raise
        return context

    def _served_staging(self, client: DruidClient, context: dict[str, Any], task_id: str,
                        deadline: float | None) -> dict[str, int]:
        """Wait until the broker serves every staged row; the rows ingested and Druid's row count
        (after rollup). The coordinator reports segments loaded a moment before the broker routes
        queries to them, and a new datasource reaches SQL's schema a moment later still."""
        staging = sql_ident(context["staging_datasource"])
        query = f"SELECT SUM({sql_ident(ROWS_METRIC)}) AS n, COUNT(*) AS druid_rows FROM {staging}"
        limit = time.monotonic() + SERVED_GRACE
        while True:
            rows = client.sql_if_known(query)
            ingested = int(rows[0]["n"] or 0) if rows else 0
            if ingested == context["staged_rows"]:
                return {"ingested_rows": ingested, "druid_rows": int(rows[0]["druid_rows"])}
            if deadline is not None and time.monotonic() > deadline:
                raise SyncTimeout(f"timeout: Druid served {ingested} of the {context['staged_rows']} rows of "
                                  f"staging task {task_id} at the spec's timeout "
                                  f"({format_duration(self.spec.timeout)})")
            if time.monotonic() > limit:
                raise TerminalError(f"Druid staging task {task_id} ingested {ingested} of the "
                                    f"{context['staged_rows']} staged rows into {context['staging_datasource']}")
            time.sleep(0.5)

    def task(self, context: dict[str, Any], datasource: str, staging: bool,
             intervals: list[str] | None = None, task_id: str | None = None) -> dict[str, Any]:
        """The native batch task over the staged files, into the staging or the real datasource.
        With `intervals` (replace), every time chunk of those intervals is replaced: chunks without
        a staged row are emptied (`dropExisting`: Druid writes tombstones over them)."""
        metrics = [{"type": m.type, "name": m.name, **({"fieldName": m.field} if m.field else {})}
                   for m in self.options.metrics]
        if staging:
            metrics.append({"type": "count", "name": ROWS_METRIC})
        granularity = self.options.granularity
        granularity_spec = {"type": "uniform", "segmentGranularity": granularity.segment.upper(),
                            "queryGranularity": granularity.query.upper(), "rollup": granularity.rollup}
        append = not staging and self.options.mode == "append"
        if intervals:
            granularity_spec["intervals"] = intervals
        extra = self._conn().extra
        staged = Path(context["staged_dir"])
        if not any(staged.glob("part-*.json")):  # an empty full read: replace with no rows at all
            staged.mkdir(parents=True, exist_ok=True)
            (staged / "part-empty.json").touch()
        if str(extra.get("input_source", "local")) == "inline":
            data = "".join(p.read_text(encoding="utf-8") for p in sorted(staged.glob("part-*.json")))
            if not data and intervals:
                # Druid refuses an empty inline input: one row just before the replaced span,
                # which Druid throws away (outside `intervals`), stands for "no rows".
                before = interval_millis(intervals[0])[0] - 1
                data = json.dumps({self.ts: before}) + "\n"
            source = {"type": "inline", "data": data}
        else:
            source = {"type": "local", "baseDir": str(staged), "filter": "part-*.json"}
        task_context = dict(extra.get("task_context") or {})
        if isinstance(extra.get("task_context"), str):
            task_context = json.loads(extra["task_context"])
        return {
            "type": "index_parallel",
            **({"id": task_id} if task_id else {}),
            "spec": {
                "dataSchema": {
                    "dataSource": datasource,
                    "timestampSpec": {"column": self.ts, "format": "millis"},
                    "dimensionsSpec": {"dimensions": [{"type": kind, "name": name}
                                                      for name, kind in context["dimensions"]]},
                    "metricsSpec": metrics,
                    "granularitySpec": granularity_spec,
                },
                "ioConfig": {"type": "index_parallel", "inputSource": source, "inputFormat": {"type": "json"},
                             "appendToExisting": append, "dropExisting": bool(intervals)},
                "tuningConfig": {"type": "index_parallel", "maxParseExceptions": 0,
                                 "maxSavedParseExceptions": 10, "maxNumConcurrentSubTasks": 1},
            },
            "context": task_context,
        }

    def _wait(self, client: DruidClient, task_id: str, deadline: float | None, what: str, interval: str) -> None:
        """Poll the task (and then segment loading) until done; shut it down past the deadline."""
        pause = 0.05
        limit = float(self._conn().extra.get("poll_seconds", 0.5))
        while True:
            status = client.status(task_id)
            state = status.get("statusCode") or status.get("status")
            if state == "SUCCESS":
                break
            if state == "FAILED":
                report = client.report(task_id)
                message = report.get("errorMsg") or status.get("errorMsg") or "no errorMsg"
                message = message.strip().splitlines()[0]  # Druid appends the Java stack trace
                saved = (report.get("unparseableEvents") or {}).get("buildSegments") or []
                details = "; ".join(d for event in saved[-3:] for d in event.get("details") or [])
                raise TerminalError(f"Druid {what} task {task_id} FAILED: {message}" +
                                    (f"; parse errors: {details}" if details else ""))
            if deadline is not None and time.monotonic() > deadline:
                client.shutdown(task_id)
                raise SyncTimeout(f"timeout: Druid {what} task {task_id} was still {state} at the spec's "
                                  f"timeout ({format_duration(self.spec.timeout)}); it was shut down")
            time.sleep(pause)
            pause = min(pause * 2, limit)
        datasource = status.get("dataSource")
        while datasource and not client.loaded(datasource, interval):
            if deadline is not None and time.monotonic() > deadline:
                raise SyncTimeout(f"timeout: the segments of Druid task {task_id} were not loaded by the "
                                  f"spec's timeout ({format_duration(self.spec.timeout)})")
            time.sleep(limit)

    # -- gate ----------------------------------------------------------------------------------

    def gate_columns(self) -> list[str] | None:
        if not self.options.dimensions:
            return None  # every column but the metric inputs is a dimension
        return list(dict.fromkeys([self.ts, *self.options.dimensions, *self.fields]))

    def count_present(self, batch: pa.RecordBatch, context: dict[str, Any]) -> int:
        """Rows of this batch present in the staging datasource, counted per Druid time bucket:
        the bucket's rows here, up to the rows Druid ingested into that bucket."""
        if not context.get("staged_rows") or batch.num_rows == 0:
            return 0
        counts = pc.value_counts(self._group_keys(batch, context)[0]).to_pylist()
        wanted = {c["values"]: c["counts"] for c in counts}
        if self.options.granularity.query == "all":
            rows = self._client().sql(f"SELECT SUM({sql_ident(ROWS_METRIC)}) AS n FROM "
                                      f"{sql_ident(context['staging_datasource'])}")
            return min(wanted[ALL_TIME], int(rows[0]["n"] or 0))
        histogram = self._time_histogram(context)
        if histogram is not None:
            return sum(min(count, histogram.get(moment, 0)) for moment, count in wanted.items())
        present = 0
        times = sorted(wanted)
        for start in range(0, len(times), 5000):
            chunk = times[start:start + 5000]
            rows = self._client().sql(
                f"SELECT __time, SUM({sql_ident(ROWS_METRIC)}) AS n FROM {sql_ident(context['staging_datasource'])} "
                f"WHERE __time IN ({', '.join(timestamp_literal(t) for t in chunk)}) GROUP BY __time")
            present += sum(min(wanted.get(row["__time"], 0), int(row["n"])) for row in rows)
        return present

    def _time_histogram(self, context: dict[str, Any]) -> dict[str, int] | None:
        """Rows per Druid time in the staging datasource, fetched once per gate task when there are
        at most HISTOGRAM_LIMIT distinct times (else None: batches ask for their own times)."""
        if self._histogram is None:
            table = sql_ident(context["staging_datasource"])
            client = self._client()
            rows = client.sql(f"SELECT COUNT(*) AS n FROM (SELECT __time FROM {table} GROUP BY __time)")
            self._histogram = False
            if rows and int(rows[0]["n"]) <= HISTOGRAM_LIMIT:
                self._histogram = {row["__time"]: int(row["n"]) for row in client.sql(
                    f"SELECT __time, SUM({sql_ident(ROWS_METRIC)}) AS n FROM {table} GROUP BY __time")}
        return self._histogram or None

    def read_back(self, rows: list[dict[str, Any]], context: dict[str, Any]) -> list[dict[str, Any]]:
        if not rows:
            return []
        if not context.get("staged_rows"):
            return [{"key": "staging", "field": None, "expected": f"{len(rows)} rows", "actual": "no rows staged"}]
        sample = pa.RecordBatch.from_pylist(rows, schema=self._snapshot_schema(context))
        wanted = set(zip(*[k.to_pylist() for k in self._group_keys(sample, context)]))
        expected = self._expected(wanted, context)
        metrics = [m for m in self.options.metrics]
        found = self._query_groups(list(wanted), context, metrics)
        mismatches: list[dict[str, Any]] = []
        dims = [name for name, _ in context["dimensions"]]
        for group in sorted(wanted, key=repr):
            key = f"{group[0]} " + json.dumps(dict(zip(dims, group[1:])), ensure_ascii=False, default=str)
            got = found.get(group)
            want = expected.get(group)
            if got is None:
                mismatches.append({"key": key, "field": None, "expected": "present", "actual": "missing"})
                continue
            checks = [(ROWS_METRIC, want[ROWS_METRIC], got[ROWS_METRIC], False)]
            checks += [(m.name, want[m.name], got[m.name], m.type in _DOUBLE_METRICS) for m in metrics]
            for name, wanted_value, actual, approximate in checks:
                if not same_metric(wanted_value, actual, approximate):
                    mismatches.append({"key": key, "field": "rows" if name == ROWS_METRIC else name,
                                       "expected": wanted_value, "actual": actual})
        return mismatches

    def _group_keys(self, batch: pa.RecordBatch, context: dict[str, Any]) -> list[pa.Array]:
        """Per row: the Druid `__time` (ISO, truncated to the query granularity) and each dimension
        as Druid stores it."""
        millis, _ = event_millis(batch.column(self.ts), self.ts_format, self.ts)
        query = self.options.granularity.query
        times = pa.array([ALL_TIME] * batch.num_rows) if query == "all" else \
            iso_column(floor_millis(millis, query))
        return [times] + [dimension_values(batch.column(name), kind) for name, kind in context["dimensions"]]

    def _query_groups(self, groups: list[tuple], context: dict[str, Any], metrics: list) -> dict[tuple, dict]:
        """SUM(__accelsync_rows) and the metrics' aggregates of these groups in the staging datasource."""
        if not groups:
            return {}
        dims = [name for name, _ in context["dimensions"]]
        found = {}
        for start in range(0, len(groups), 400):
            found.update(self._query_some_groups(groups[start:start + 400], dims, context, metrics))
        return found

    def _query_some_groups(self, groups: list[tuple], dims: list[str], context: dict[str, Any],
                           metrics: list) -> dict[tuple, dict]:
        """One query for these groups: filtered by IN lists of their times and of each dimension's
        values (a superset, narrowed here), not by an OR of one AND per group, which Druid's SQL
        planner (Calcite) takes a long time and hundreds of MB to simplify."""
        tests = []
        if self.options.granularity.query != "all":
            # As millis: Druid turns a long IN list into SCALAR_IN_ARRAY, which takes no timestamps.
            times = sorted({instant_millis(g[0]) for g in groups})
            tests.append(f"TIMESTAMP_TO_MILLIS(__time) IN ({', '.join(str(t) for t in times)})")
        for index, dim in enumerate(dims, start=1):
            values = {g[index] for g in groups}
            known = sorted((v for v in values if v is not None), key=repr)
            terms = [f"{sql_ident(dim)} IN ({', '.join(sql_literal(v) for v in known)})"] if known else []
            if None in values:
                terms.append(f"{sql_ident(dim)} IS NULL")
            tests.append("(" + " OR ".join(terms) + ")")
        aggregates = [f'SUM({sql_ident(ROWS_METRIC)}) AS {sql_ident(ROWS_METRIC)}']
        for metric in metrics:
            kind = "MIN" if metric.type.endswith("Min") else "MAX" if metric.type.endswith("Max") else "SUM"
            aggregates.append(f"{kind}({sql_ident(metric.name)}) AS {sql_ident(metric.name)}")
        columns = ", ".join(["__time"] + [sql_ident(d) for d in dims])
        where = f" WHERE {' AND '.join(tests)}" if tests else ""
        query = (f"SELECT {columns}, {', '.join(aggregates)} FROM {sql_ident(context['staging_datasource'])}"
                 f"{where} GROUP BY {columns}")
        wanted = set(groups)
        found = {}
        for row in self._client().sql(query):
            time_key = ALL_TIME if self.options.granularity.query == "all" else row["__time"]
            key = (time_key, *[row[d] for d in dims])
            if key in wanted:
                found[key] = row
        return found

    def _snapshot_files(self, context: dict[str, Any]) -> list[str]:
        stats = Path(context["run_dir"]) / WRITE_STATS_FILE
        writes = json.loads(stats.read_text()) if stats.exists() else []
        return sorted(w["snapshot"] for w in writes if w.get("snapshot"))

    def _snapshot_schema(self, context: dict[str, Any]) -> pa.Schema | None:
        files = self._snapshot_files(context)
        return _snapshot_reader(files[0])[0] if files else None

    def _expected(self, wanted: set[tuple], context: dict[str, Any]) -> dict[tuple, dict[str, Any]]:
        """Row count and metric aggregates of the wanted groups over the whole run snapshot."""
        columns = list(dict.fromkeys([self.ts] + [n for n, _ in context["dimensions"]] + self.fields))
        totals: dict[tuple, dict[str, Any]] = {}
        wanted_text = pa.array([group_key_text(g) for g in wanted], pa.string())
        for path in self._snapshot_files(context):
            for batch in _snapshot_reader(path, columns)[1]:
                keys = self._group_keys(batch, context)
                texts = pa.array([group_key_text(k) for k in zip(*[c.to_pylist() for c in keys])], pa.string())
                hit = pc.is_in(texts, value_set=wanted_text)
                if not pc.any(hit).as_py():
                    continue
                chosen = batch.filter(hit)
                chosen_keys = [k.filter(hit).to_pylist() for k in keys]
                values = {f: chosen.column(f).to_pylist() for f in self.fields}
                for index, key in enumerate(zip(*chosen_keys)):
                    entry = totals.setdefault(key, {ROWS_METRIC: 0, **{m.name: None for m in self.options.metrics}})
                    entry[ROWS_METRIC] += 1
                    for metric in self.options.metrics:
                        value = 1 if metric.type == "count" else metric_input(values[metric.field][index], metric.type)
                        entry[metric.name] = combine_metric(entry[metric.name], value, metric.type)
        return totals

    # -- publish -------------------------------------------------------------------------------

    def publish(self, context: dict[str, Any]) -> dict[str, Any]:
        """Ingest the staged files into the datasource, wait until the broker serves them, then
        remove the staging datasource. Safe to call again for the same run (a retried or
        rolled-forward publish): the task is named after the run and recorded before it is
        submitted, so an append is submitted at most once per run, and a replace converges."""
        client = self._client()
        datasource = self.options.datasource
        deadline = time.monotonic() + self.spec.timeout.total_seconds()
        record_file = Path(context["run_dir"]) / "druid" / "publish.json"
        record = json.loads(record_file.read_text()) if record_file.exists() else {}
        result = {"datasource": datasource, "mode": self.options.mode, "rows": context.get("staged_rows", 0)}
        submit = False
        if record.get("task"):
            status = client.find(record["task"])
            if status is None:
                submit = True  # recorded, then killed before Druid had it
            elif (status.get("statusCode") or status.get("status")) == "FAILED":
                record = {"attempt": record.get("attempt", 1) + 1}  # a FAILED task changed nothing
        if not record.get("task"):
            record = self._plan_publish(client, context, record)
            submit = bool(record.get("task"))
            if submit:
                write_json_atomic(record_file, record)  # before submitting: a retry finds this task
        if submit:
            client.submit(self.task(context, datasource, staging=False, intervals=record.get("intervals"),
                                    task_id=record["task"]), exists_ok=True)
        if record.get("task"):
            served = span_of(record.get("intervals") or context["intervals"])
            self._wait(client, record["task"], deadline, "publish", served)
            self._wait_published(client, context, record, deadline)
            result.update(task=record["task"], intervals=record.get("intervals"))
        self._remove_quietly(client, context["staging_datasource"])
        return result

    def _plan_publish(self, client: DruidClient, context: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
        """The publish task's id and what it covers, or no task when there is nothing to change.

        replace: every time chunk from the first to the last of (the datasource's used segments,
        this run's rows), so the datasource holds exactly the run's rows afterwards; append: this
        run's rows, and the rows already there (the broker must then serve that many more)."""
        attempt = record.get("attempt", 1)
        name = f"accelsync_{self.options.mode}_{self.options.datasource}_{safe_run_id(Path(context['run_dir']).name)}"
        task_id = name if attempt == 1 else f"{name}_{attempt}"
        if self.options.mode == "append":
            if not context.get("staged_rows"):
                return {}
            return {"task": task_id, "attempt": attempt,
                    "before": self._count(client, self.options.datasource, context["intervals"])}
        intervals = self._replace_intervals(client, context)
        if intervals == [ALL_INTERVAL] and not context.get("staged_rows") and \
                str(self._conn().extra.get("input_source", "local")) == "inline":
            client.drop(self.options.datasource)  # see task(): no inline input can be empty here
            return {}
        return {"task": task_id, "attempt": attempt, "intervals": intervals} if intervals else {}

    def _replace_intervals(self, client: DruidClient, context: dict[str, Any]) -> list[str] | None:
        segment = self.options.granularity.segment
        bounds = [interval_millis(i) for i in context["intervals"]]
        existing = client.used_interval(self.options.datasource)
        if existing:
            bounds.append(existing)
        if not bounds:
            return None  # no row now, none before: nothing to replace
        if segment == "all":
            return [ALL_INTERVAL]
        start = floor_one(min(b[0] for b in bounds), segment)
        end = next_chunk(floor_one(max(b[1] for b in bounds) - 1, segment), segment)
        return [f"{iso_millis(start)}/{iso_millis(end)}"]

    def _count(self, client: DruidClient, datasource: str, intervals: list[str]) -> int:
        """Druid rows (after rollup) the broker serves in these intervals (0 for an unknown table)."""
        where = where_intervals(intervals)
        rows = client.sql_if_known(f"SELECT COUNT(*) AS n FROM {sql_ident(datasource)}{where}")
        return int(rows[0]["n"]) if rows else 0

    def _wait_published(self, client: DruidClient, context: dict[str, Any], record: dict[str, Any],
                        deadline: float) -> None:
        """Return once the broker serves the published rows, so a reader right after publish (a
        downstream DAG) sees them: replace, exactly the staged Druid rows over the replaced
        intervals; append, the rows that were there plus the staged ones."""
        datasource = self.options.datasource
        wanted = context.get("druid_rows", 0)
        limit = min(deadline, time.monotonic() + SERVED_GRACE)
        while True:
            if self.options.mode == "replace":
                count = self._count(client, datasource, record["intervals"])
                if count == wanted:
                    return
            else:
                count = self._count(client, datasource, context["intervals"])
                if count >= record["before"] + wanted:
                    return
            if time.monotonic() > limit:
                raise TransientError(f"Druid publish task {record['task']} succeeded, but the broker serves "
                                     f"{count} rows of {datasource} where {wanted} were published")
            time.sleep(0.5)

    def discard(self, context: dict[str, Any]) -> None:
        """Remove this run's staging datasource (its segments marked unused, then killed); a Druid
        that does not answer now leaves it to the next run, without hiding the run's own failure."""
        if context.get("staging_datasource"):
            self._remove_quietly(self._client(), context["staging_datasource"])

    def _remove_quietly(self, client: DruidClient, datasource: str) -> None:
        """Remove a staging datasource without hiding the error at hand: if Druid does not answer,
        the next run of the sync removes it."""
        try:
            client.remove(datasource)
        except Exception as exc:  # noqa: BLE001 - a cleanup never replaces the run's own outcome
            log.warning("could not remove the staging datasource %s (%s); the next run removes it",
                        datasource, exc)

    def _conn(self) -> Connection:
        return get_connection(self.options.connection)

    def _client(self) -> DruidClient:
        return DruidClient(self._conn())


def _snapshot_reader(path: str, columns: list[str] | None = None) -> tuple[pa.Schema, Iterable[pa.RecordBatch]]:
    """The schema and batches of a run snapshot file (Arrow IPC, or Parquet by its name)."""
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq
        handle = pq.ParquetFile(path)
        return handle.schema_arrow, handle.iter_batches(batch_size=65536, columns=columns)
    reader = pa.ipc.open_file(path)
    batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
    return reader.schema, (b.select(columns) if columns else b for b in batches)
