"""Druid sink: stage the run as JSON lines, ingest it into a staging datasource, gate it there,
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

import base64
import json
import math
import os
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.compute as pc

from accelsync.connections import Connection, get_connection
from accelsync.errors import SyncTimeout, TerminalError, TransientError
from accelsync.registry import register_sink
from accelsync.runs import RunDir, safe_run_id, write_json_atomic
from accelsync.sinks import resp
from accelsync.sinks.base import BatchWriter, Sink
from accelsync.spec import KAFKA_META_COLUMNS, LOGS_META_COLUMNS, DruidTarget, Spec, format_duration

ROWS_METRIC = "__accelsync_rows"
HISTOGRAM_LIMIT = 200_000  # distinct Druid times the gate fetches at once instead of asking per batch
MINUTE, HOUR, DAY, WEEK = 60_000, 3_600_000, 86_400_000, 604_800_000
_FIXED = {"none": 1, "minute": MINUTE, "hour": HOUR, "day": DAY}
ALL_TIME = "-146136543-09-08T08:23:32.096Z"  # Druid's bucket of the `all` granularity
_DOUBLE_METRICS = ("doubleSum", "doubleMin", "doubleMax")
_KEYWORD_FORMATS = ("auto", "iso", "millis", "posix", "micro", "nano", "ruby")


# ---------------------------------------------------------------- the Druid HTTP API

class DruidClient:
    """The few Overlord, Coordinator and SQL calls the sink makes, with the error families mapped:
    connection failures and 5xx are transient, a 4xx is the spec's or the data's fault."""

    def __init__(self, conn: Connection):
        self.conn = conn
        scheme = (conn.schema or "").lower()
        if scheme not in ("http", "https"):
            scheme = conn.conn_type if conn.conn_type in ("http", "https") else "http"
        self.base = f"{scheme}://{conn.host or '127.0.0.1'}:{conn.port or 8888}"
        self.headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if conn.login:
            token = base64.b64encode(f"{conn.login}:{conn.password or ''}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self.ssl = None
        if scheme == "https" and str(conn.extra.get("verify_ssl", "true")).lower() in ("0", "false", "no"):
            self.ssl = ssl._create_unverified_context()
        endpoint = str(conn.extra.get("endpoint") or "")
        self.task_path = "/" + endpoint.strip("/") if "indexer" in endpoint else "/druid/indexer/v1/task"
        self.sql_path = "/" + str(conn.extra.get("sql_endpoint") or "druid/v2/sql").strip("/")

    def call(self, method: str, path: str, body: Any = None, timeout: float = 120) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=self.headers)
        try:
            with urllib.request.urlopen(request, timeout=timeout, context=self.ssl) as reply:
                return reply.status, _json(reply.read())
        except urllib.error.HTTPError as exc:
            payload = _json(exc.read())
            if exc.code >= 500:
                raise TransientError(f"Druid at {self.conn.safe_address()} answered {exc.code} to {method} "
                                     f"{path}: {_message(payload) or exc.reason}") from None
            return exc.code, payload
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise TransientError(f"Druid at {self.conn.safe_address()} is unavailable: "
                                 f"{self.conn.redact(str(reason))}") from None

    def health(self) -> None:
        status, body = self.call("GET", "/status/health", timeout=10)
        if status != 200 or body is not True:
            raise TransientError(f"Druid at {self.conn.safe_address()} is not healthy (/status/health: "
                                 f"{status} {body!r})")

    def submit(self, task: dict[str, Any]) -> str:
        status, body = self.call("POST", self.task_path, task)
        if status != 200 or not isinstance(body, dict) or "task" not in body:
            raise TerminalError(f"Druid refused the ingestion task for {task['spec']['dataSchema']['dataSource']} "
                                f"(HTTP {status}): {_message(body)}")
        return body["task"]

    def status(self, task_id: str) -> dict[str, Any]:
        status, body = self.call("GET", f"/druid/indexer/v1/task/{_quote(task_id)}/status")
        if status != 200 or not isinstance(body, dict) or not body.get("status"):
            raise TransientError(f"Druid does not know task {task_id} (HTTP {status})")
        return body["status"]

    def report(self, task_id: str) -> dict[str, Any]:
        try:
            status, body = self.call("GET", f"/druid/indexer/v1/task/{_quote(task_id)}/reports")
        except TransientError:
            return {}
        if status != 200 or not isinstance(body, dict):
            return {}
        return (body.get("ingestionStatsAndErrors") or {}).get("payload") or {}

    def shutdown(self, task_id: str) -> None:
        self.call("POST", f"/druid/indexer/v1/task/{_quote(task_id)}/shutdown")

    def drop(self, datasource: str) -> None:
        """Mark every segment of a datasource unused (Druid then unloads it)."""
        self.call("DELETE", f"/druid/coordinator/v1/datasources/{_quote(datasource)}")

    def loaded(self, datasource: str) -> bool:
        status, body = self.call("GET", f"/druid/coordinator/v1/datasources/{_quote(datasource)}/loadstatus"
                                        "?forceMetadataRefresh=true")
        if status == 204:
            return True  # no used segments: nothing to load
        return status == 200 and isinstance(body, dict) and float(body.get(datasource, 0)) >= 100.0

    def sql(self, query: str) -> list[dict[str, Any]]:
        status, body = self.call("POST", self.sql_path, {"query": query, "resultFormat": "object",
                                                         "context": {"sqlTimeZone": "Etc/UTC"}})
        if status != 200:
            raise TerminalError(f"Druid SQL failed (HTTP {status}): {_message(body)}")
        return body


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", "replace")[:500]


def _message(body: Any) -> str:
    if isinstance(body, dict):
        return str(body.get("errorMessage") or body.get("error") or body)
    return str(body)


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


# ---------------------------------------------------------------- the sink

@register_sink
class DruidSink(Sink):
    type = "druid"
    options: DruidTarget

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
        self._client().health()
        folder = RunDir(self.spec.name, run_id).path / "druid"
        for sub in ("data", "meta"):
            for stale in (folder / sub).glob("*"):
                stale.unlink()
        staging = f"{self.options.datasource}__accelsync_{safe_run_id(run_id)}"
        return {"datasource": self.options.datasource, "staging_datasource": staging}

    def open_writer(self, context: dict[str, Any]) -> BatchWriter:
        return _DruidWriter(self, context)

    def layout(self, schema: pa.Schema) -> list[tuple[str, str]]:
        """The dimensions as (name, Druid type): the spec's, else every column but the timestamp,
        the metric inputs and source metadata columns."""
        missing = [c for c in [self.ts] + list(self.options.dimensions) + self.fields if c not in schema.names]
        if missing:
            raise TerminalError(f"target: columns {missing} are not in the synced data "
                                f"(columns: {', '.join(schema.names)})")
        names = list(self.options.dimensions) or [
            n for n in schema.names
            if n != self.ts and n not in self.fields and n not in KAFKA_META_COLUMNS + LOGS_META_COLUMNS]
        return [(n, _dimension_type(schema.field(n).type)) for n in names]

    # -- driver: after every write task --------------------------------------------------------

    def finish(self, context: dict[str, Any], deadline: float | None) -> dict[str, Any]:
        folder = Path(context["run_dir"]) / "druid"
        parts = [json.loads(p.read_text()) for p in sorted((folder / "meta").glob("part-*.json"))]
        chunks = sorted({c for part in parts for c in part["chunks"]})
        context = dict(context, staged_dir=str(folder / "data"), staged_rows=sum(p["rows"] for p in parts),
                       dimensions=parts[0]["dimensions"] if parts else [],
                       intervals=_intervals(chunks, self.options.granularity.segment))
        client = self._client()
        client.drop(context["staging_datasource"])  # a rerun of this run id starts from nothing
        if not context["staged_rows"]:
            return context
        task = self.task(context, context["staging_datasource"], staging=True)
        task_id = client.submit(task)
        context["staging_task"] = task_id
        self._wait(client, task_id, deadline, "staging")
        rows = client.sql(f"SELECT SUM({_ident(ROWS_METRIC)}) AS n FROM {_ident(context['staging_datasource'])}")
        context["ingested_rows"] = int(rows[0]["n"] or 0) if rows else 0
        if context["ingested_rows"] != context["staged_rows"]:
            raise TerminalError(f"Druid staging task {task_id} ingested {context['ingested_rows']} of the "
                                f"{context['staged_rows']} staged rows into {context['staging_datasource']}")
        return context

    def task(self, context: dict[str, Any], datasource: str, staging: bool) -> dict[str, Any]:
        """The native batch task over the staged files, into the staging or the real datasource."""
        metrics = [{"type": m.type, "name": m.name, **({"fieldName": m.field} if m.field else {})}
                   for m in self.options.metrics]
        if staging:
            metrics.append({"type": "count", "name": ROWS_METRIC})
        granularity = self.options.granularity
        granularity_spec = {"type": "uniform", "segmentGranularity": granularity.segment.upper(),
                            "queryGranularity": granularity.query.upper(), "rollup": granularity.rollup}
        append = not staging and self.options.mode == "append"
        if not staging and not append:
            granularity_spec["intervals"] = context["intervals"]
        extra = self._conn().extra
        if str(extra.get("input_source", "local")) == "inline":
            data = "".join(p.read_text(encoding="utf-8") for p in sorted(Path(context["staged_dir"]).glob("part-*.json")))
            source = {"type": "inline", "data": data}
        else:
            source = {"type": "local", "baseDir": context["staged_dir"], "filter": "part-*.json"}
        task_context = dict(extra.get("task_context") or {})
        if isinstance(extra.get("task_context"), str):
            task_context = json.loads(extra["task_context"])
        return {
            "type": "index_parallel",
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
                             "appendToExisting": append, "dropExisting": False},
                "tuningConfig": {"type": "index_parallel", "maxParseExceptions": 0,
                                 "maxSavedParseExceptions": 10, "maxNumConcurrentSubTasks": 1},
            },
            "context": task_context,
        }

    def _wait(self, client: DruidClient, task_id: str, deadline: float | None, what: str) -> None:
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
        while datasource and not client.loaded(datasource):
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
            rows = self._client().sql(f"SELECT SUM({_ident(ROWS_METRIC)}) AS n FROM "
                                      f"{_ident(context['staging_datasource'])}")
            return min(wanted[ALL_TIME], int(rows[0]["n"] or 0))
        histogram = self._time_histogram(context)
        if histogram is not None:
            return sum(min(count, histogram.get(moment, 0)) for moment, count in wanted.items())
        present = 0
        times = sorted(wanted)
        for start in range(0, len(times), 5000):
            chunk = times[start:start + 5000]
            rows = self._client().sql(
                f"SELECT __time, SUM({_ident(ROWS_METRIC)}) AS n FROM {_ident(context['staging_datasource'])} "
                f"WHERE __time IN ({', '.join(_timestamp_literal(t) for t in chunk)}) GROUP BY __time")
            present += sum(min(wanted.get(row["__time"], 0), int(row["n"])) for row in rows)
        return present

    def _time_histogram(self, context: dict[str, Any]) -> dict[str, int] | None:
        """Rows per Druid time in the staging datasource, fetched once per gate task when there are
        at most HISTOGRAM_LIMIT distinct times (else None: batches ask for their own times)."""
        if self._histogram is None:
            table = _ident(context["staging_datasource"])
            client = self._client()
            rows = client.sql(f"SELECT COUNT(*) AS n FROM (SELECT __time FROM {table} GROUP BY __time)")
            self._histogram = False
            if rows and int(rows[0]["n"]) <= HISTOGRAM_LIMIT:
                self._histogram = {row["__time"]: int(row["n"]) for row in client.sql(
                    f"SELECT __time, SUM({_ident(ROWS_METRIC)}) AS n FROM {table} GROUP BY __time")}
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
                if not _same(wanted_value, actual, approximate):
                    mismatches.append({"key": key, "field": "rows" if name == ROWS_METRIC else name,
                                       "expected": wanted_value, "actual": actual})
        return mismatches

    def _group_keys(self, batch: pa.RecordBatch, context: dict[str, Any]) -> list[pa.Array]:
        """Per row: the Druid `__time` (ISO, truncated to the query granularity) and each dimension
        as Druid stores it."""
        millis, _ = event_millis(batch.column(self.ts), self.ts_format, self.ts)
        query = self.options.granularity.query
        times = pa.array([ALL_TIME] * batch.num_rows) if query == "all" else \
            _iso(floor_millis(millis, query))
        return [times] + [_dimension_values(batch.column(name), kind) for name, kind in context["dimensions"]]

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
        by_time = self.options.granularity.query != "all"
        terms = []
        for group in groups:
            tests = [f"__time = {_timestamp_literal(group[0])}"] if by_time else []
            tests += [f"{_ident(d)} IS NULL" if v is None else f"{_ident(d)} = {_literal(v)}"
                      for d, v in zip(dims, group[1:])]
            terms.append("(" + " AND ".join(tests or ["TRUE"]) + ")")
        aggregates = [f'SUM({_ident(ROWS_METRIC)}) AS {_ident(ROWS_METRIC)}']
        for metric in metrics:
            kind = "MIN" if metric.type.endswith("Min") else "MAX" if metric.type.endswith("Max") else "SUM"
            aggregates.append(f"{kind}({_ident(metric.name)}) AS {_ident(metric.name)}")
        columns = ", ".join(["__time"] + [_ident(d) for d in dims])
        query = (f"SELECT {columns}, {', '.join(aggregates)} FROM {_ident(context['staging_datasource'])} "
                 f"WHERE {' OR '.join(terms)} GROUP BY {columns}")
        found = {}
        for row in self._client().sql(query):
            time_key = ALL_TIME if self.options.granularity.query == "all" else row["__time"]
            found[(time_key, *[row[d] for d in dims])] = row
        return found

    def _snapshot_files(self, context: dict[str, Any]) -> list[str]:
        stats = Path(context["run_dir"]) / "write_stats.json"
        writes = json.loads(stats.read_text()) if stats.exists() else []
        return sorted(w["snapshot"] for w in writes if w.get("snapshot"))

    def _snapshot_schema(self, context: dict[str, Any]) -> pa.Schema | None:
        files = self._snapshot_files(context)
        return _snapshot_reader(files[0])[0] if files else None

    def _expected(self, wanted: set[tuple], context: dict[str, Any]) -> dict[tuple, dict[str, Any]]:
        """Row count and metric aggregates of the wanted groups over the whole run snapshot."""
        columns = list(dict.fromkeys([self.ts] + [n for n, _ in context["dimensions"]] + self.fields))
        totals: dict[tuple, dict[str, Any]] = {}
        wanted_text = pa.array([_key_text(g) for g in wanted], pa.string())
        for path in self._snapshot_files(context):
            for batch in _snapshot_reader(path, columns)[1]:
                keys = self._group_keys(batch, context)
                texts = pa.array([_key_text(k) for k in zip(*[c.to_pylist() for c in keys])], pa.string())
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
                        value = 1 if metric.type == "count" else _metric_input(values[metric.field][index], metric.type)
                        entry[metric.name] = _combine(entry[metric.name], value, metric.type)
        return totals

    # -- publish -------------------------------------------------------------------------------

    def publish(self, context: dict[str, Any]) -> dict[str, Any]:
        client = self._client()
        datasource = self.options.datasource
        result = {"datasource": datasource, "mode": self.options.mode, "rows": context.get("staged_rows", 0)}
        if context.get("staged_rows"):
            record = Path(context["run_dir"]) / "druid" / "publish.json"
            task_id = json.loads(record.read_text())["task"] if record.exists() else None
            if task_id is not None:
                state = client.status(task_id).get("statusCode")
                task_id = None if state == "FAILED" else task_id
            if task_id is None:
                task_id = client.submit(self.task(context, datasource, staging=False))
                write_json_atomic(record, {"task": task_id})
            deadline = time.monotonic() + self.spec.timeout.total_seconds()
            self._wait(client, task_id, deadline, "publish")
            result.update(task=task_id, intervals=context["intervals"] if self.options.mode == "replace" else None)
        client.drop(context["staging_datasource"])
        return result

    def discard(self, context: dict[str, Any]) -> None:
        if context.get("staging_datasource"):
            self._client().drop(context["staging_datasource"])

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


# ---------------------------------------------------------------- the write task

class _DruidWriter(BatchWriter):
    """Appends this Spark task's rows as JSON lines to its part file; renames it into place at flush."""

    def __init__(self, sink: DruidSink, context: dict[str, Any]):
        from pyspark import TaskContext

        self.sink = sink
        owner = context.get("writer")  # set by accelsync.tasks; one name per task on either engine
        if owner is None:
            task = TaskContext.get()
            owner = f"{task.partitionId() if task else 0:05d}"
        part = f"part-{owner}"
        folder = Path(context["run_dir"]) / "druid"
        self.path = folder / "data" / f"{part}.json"
        self.meta = folder / "meta" / f"{part}.json"
        self.tmp = self.path.with_name(f".{part}.{uuid.uuid4().hex[:8]}.tmp")
        self.handle = None
        self.rows = 0
        self.dimensions: list[tuple[str, str]] | None = None
        self.chunks: set[int] = set()

    def write(self, batch: pa.RecordBatch) -> list[tuple[int, str]]:
        sink = self.sink
        if self.dimensions is None:
            self.dimensions = sink.layout(batch.schema)
        millis, rejected = event_millis(batch.column(sink.ts), sink.ts_format, sink.ts)
        if rejected:
            good = pc.is_valid(millis)
            batch, millis = batch.filter(good), millis.filter(good)
        if batch.num_rows == 0:
            return rejected
        parts: list = [b"{" + json.dumps(sink.ts).encode() + b":", resp.as_text(millis)]
        for name, kind in self.dimensions:
            parts += [b"," + json.dumps(name).encode() + b":", _json_dimension(batch.column(name), kind)]
        for name in sink.fields:
            if name not in {n for n, _ in self.dimensions}:
                parts += [b"," + json.dumps(name).encode() + b":", _json_metric_input(batch.column(name))]
        parts.append(b"}\n")
        lines = pc.binary_join_element_wise(*[p if isinstance(p, bytes) else pc.fill_null(p, b"null")
                                              for p in parts], b"")
        if self.handle is None:
            self.tmp.parent.mkdir(parents=True, exist_ok=True)
            self.handle = open(self.tmp, "wb")
        self.handle.write(resp.concat(lines))
        self.rows += batch.num_rows
        self.chunks.update(chunk_starts(millis, sink.options.granularity.segment))
        return rejected

    def flush(self) -> None:
        if self.handle is None:
            return
        self.handle.close()
        self.handle = None
        os.replace(self.tmp, self.path)
        write_json_atomic(self.meta, {"rows": self.rows, "dimensions": self.dimensions,
                                      "chunks": sorted(self.chunks), "file": self.path.name})

    def close(self) -> None:
        if self.handle is not None:  # the task failed before flush: leave nothing behind
            self.handle.close()
            self.handle = None
            self.tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------- values as Druid sees them

def _dimension_type(kind: pa.DataType) -> str:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_integer(kind):
        return "long"
    if pa.types.is_floating(kind):
        return "double"
    return "string"


def _text(column: pa.Array) -> pa.Array:
    """Text of any column as a string array (binary as base64, which Druid cannot hold raw)."""
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        return pa.array([None if v is None else base64.b64encode(v).decode() for v in column.to_pylist()],
                        pa.string())
    return resp.as_text(column).cast(pa.string())


def _dimension_values(column: pa.Array, kind: str) -> pa.Array:
    """The values Druid stores for a dimension of this type (what SQL returns)."""
    if kind == "long":
        return pc.cast(column, pa.int64())
    if kind == "double":
        values = pc.cast(column, pa.float64())
        return pc.if_else(pc.is_finite(values), values, pa.scalar(None, pa.float64()))
    return _text(column)


def _json_dimension(column: pa.Array, kind: str) -> pa.Array:
    values = _dimension_values(column, kind)
    if kind == "string":
        return _json_string(values)
    return resp.as_text(values)


def _json_metric_input(column: pa.Array) -> pa.Array:
    kind = column.type
    if pa.types.is_boolean(kind):
        return resp.as_text(pc.cast(column, pa.int8()))
    if pa.types.is_integer(kind) or pa.types.is_decimal(kind):
        return resp.as_text(column)
    if pa.types.is_floating(kind):
        return pc.if_else(pc.is_finite(column), resp.as_text(column), pa.scalar(None, pa.binary()))
    return _json_string(_text(column))


def _json_string(text: pa.Array) -> pa.Array:
    """JSON string literals: quote and backslash escaped in bulk, control characters row by row."""
    escaped = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
    control = pc.fill_null(pc.match_substring_regex(text, r"[\x00-\x1f\x{2028}\x{2029}]"), False)
    if pc.any(control).as_py():
        rows = pc.indices_nonzero(control)
        fixed = [json.dumps(v)[1:-1] for v in pc.take(text, rows).to_pylist()]
        escaped = pc.replace_with_mask(escaped, control, pa.array(fixed, pa.string()))
    return pc.binary_join_element_wise(b'"', escaped.cast(pa.binary()), b'"', b"")


def _iso(millis: pa.Array) -> pa.Array:
    return pc.strftime(pc.cast(millis, pa.timestamp("ms", tz="UTC")), format="%Y-%m-%dT%H:%M:%SZ")


def _timestamp_literal(iso_text: str) -> str:
    return "TIMESTAMP '" + iso_text.replace("T", " ").rstrip("Z") + "'"


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _key_text(key: Iterable[Any]) -> str:
    return "\x1f".join("\x00" if v is None else repr(v) for v in key)


def _metric_input(value: Any, kind: str) -> Any:
    """A metric input as Druid reads it: longs truncate, text parses, NULL and NaN stay NULL."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if kind.startswith("long"):
            try:
                return int(text)
            except ValueError:
                pass
        value = float(text)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return int(value) if kind.startswith("long") else float(value)


def _combine(current: Any, value: Any, kind: str) -> Any:
    if value is None:
        return current
    if current is None:
        return value
    if kind.endswith("Min"):
        return min(current, value)
    if kind.endswith("Max"):
        return max(current, value)
    return current + value


def _same(expected: Any, actual: Any, approximate: bool) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    if approximate:
        return math.isclose(float(expected), float(actual), rel_tol=1e-9, abs_tol=1e-9)
    return expected == actual


# ---------------------------------------------------------------- time

def event_millis(column: pa.Array, fmt: str, name: str) -> tuple[pa.Array, list[tuple[int, str]]]:
    """Epoch millis of the event time column (UTC when it has no zone), and (row, reason) for the
    rows that have none: NULL, or a value that does not parse under `format`."""
    kind, fmt = column.type, fmt or "auto"
    if fmt.lower() in _KEYWORD_FORMATS:
        fmt = fmt.lower()
    if pa.types.is_dictionary(kind):
        column, kind = column.dictionary_decode(), column.type.value_type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        if pa.types.is_date(kind):
            column = pc.cast(column, pa.timestamp("ms"))
        ticks = pc.cast(column, pa.int64())
        per_ms = {"s": 0.001, "ms": 1, "us": 1000, "ns": 1_000_000}[column.type.unit]
        millis = pc.multiply(ticks, 1000) if per_ms == 0.001 else _floor_div(ticks, int(per_ms))
    elif (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)) and \
            fmt in ("auto", "millis", "posix", "micro", "nano", "ruby"):
        numbers = pc.cast(column, pa.float64())
        scale = {"auto": 1, "millis": 1, "posix": 1000, "ruby": 1000, "micro": 0.001, "nano": 0.000001}[fmt]
        millis = pc.cast(pc.floor(pc.multiply(numbers, scale)), pa.int64(), safe=False) \
            if not (pa.types.is_integer(kind) and scale == 1) else pc.cast(column, pa.int64())
    else:
        millis = _parse_text(_text(column) if not pa.types.is_string(kind) else column, fmt)
    rejected = []
    if millis.null_count:
        raw = column.to_pylist()
        for index in pc.indices_nonzero(pc.is_null(millis)).to_pylist():
            value = raw[index]
            reason = f"timestamp column {name!r} is NULL" if value is None else \
                f"timestamp does not parse: {_show(value)!r} (timestamp.format {fmt})"
            rejected.append((index, reason))
    return millis, rejected


def _floor_div(values: pa.Array, size: int) -> pa.Array:
    """Integer division rounding down (Arrow's truncates toward zero)."""
    quotient = pc.divide(values, size)
    return pc.if_else(pc.greater(pc.multiply(quotient, size), values), pc.subtract(quotient, 1), quotient)


def _parse_text(text: pa.Array, fmt: str) -> pa.Array:
    if fmt in ("auto", "iso"):
        for target in (pa.timestamp("ms", tz="UTC"), pa.timestamp("ms")):
            try:
                return pc.cast(pc.cast(text, target), pa.int64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
    parse = _text_parser(fmt)
    out = []
    for value in text.to_pylist():
        try:
            out.append(None if value is None else parse(value.strip()))
        except (ValueError, OverflowError):
            out.append(None)
    return pa.array(out, pa.int64())


def _text_parser(fmt: str):
    numeric = {"millis": 1, "posix": 1000, "ruby": 1000, "micro": 0.001, "nano": 0.000001}
    if fmt in numeric:
        return lambda v: math.floor(float(v) * numeric[fmt])

    def iso(value: str) -> int:
        if fmt == "auto" and re.fullmatch(r"-?\d+", value):
            return int(value)
        moment = datetime.fromisoformat(value.replace("z", "Z"))
        return _utc_millis(moment)
    if fmt in ("auto", "iso"):
        return iso
    pattern = _strptime_pattern(fmt)
    return lambda v: _utc_millis(datetime.strptime(v, pattern))


def _utc_millis(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


_JODA = [("yyyy", "%Y"), ("yy", "%y"), ("MMMM", "%B"), ("MMM", "%b"), ("MM", "%m"), ("dd", "%d"),
         ("HH", "%H"), ("hh", "%I"), ("mm", "%M"), ("ss", "%S"), ("SSS", "%f"), ("EEE", "%a"), ("a", "%p"),
         ("ZZ", "%z"), ("Z", "%z")]


def _strptime_pattern(joda: str) -> str:
    """A Joda pattern (Druid's timestampSpec.format) as a strptime one, for the common letters."""
    out, index = [], 0
    while index < len(joda):
        if joda[index] == "'":
            end = joda.index("'", index + 1)
            out.append(joda[index + 1:end] or "'")
            index = end + 1
            continue
        for letters, directive in _JODA:
            if joda.startswith(letters, index):
                out.append(directive)
                index += len(letters)
                break
        else:
            out.append(joda[index].replace("%", "%%"))
            index += 1
    return "".join(out)


def _show(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, (datetime, date, Decimal, timedelta)):
        return str(value)
    return value


def floor_millis(millis: pa.Array, granularity: str) -> pa.Array:
    """Millis truncated to a Druid granularity (UTC; weeks start on Monday)."""
    if granularity in _FIXED:
        size = _FIXED[granularity]
        return millis if size == 1 else pc.multiply(_floor_div(millis, size), size)
    days = pc.multiply(_floor_div(millis, DAY), DAY)
    unique = pc.unique(days)
    floors = pa.array([None if d is None else _floor_one(d, granularity) for d in unique.to_pylist()], pa.int64())
    return pc.take(floors, pc.index_in(days, value_set=unique))


def _floor_one(millis: int, granularity: str) -> int:
    if granularity in _FIXED:
        return millis - millis % _FIXED[granularity]
    if granularity == "week":
        return (millis + 3 * DAY) - (millis + 3 * DAY) % WEEK - 3 * DAY
    if granularity == "all":
        return -4611686018427387904
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=millis)
    start = moment.replace(month=1 if granularity == "year" else moment.month, day=1, hour=0, minute=0,
                           second=0, microsecond=0)
    return _utc_millis(start)


def _next_one(start: int, granularity: str) -> int:
    if granularity in _FIXED:
        return start + _FIXED[granularity]
    if granularity == "week":
        return start + WEEK
    if granularity == "all":
        return 4611686018427387903
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=start)
    months = moment.year * 12 + moment.month - 1 + (12 if granularity == "year" else 1)
    return _utc_millis(datetime(months // 12, months % 12 + 1, 1, tzinfo=timezone.utc))


def chunk_starts(millis: pa.Array, granularity: str) -> set[int]:
    """The segment-granularity chunks (their start millis) these event times fall in."""
    return set(pc.unique(floor_millis(millis, granularity)).to_pylist())


def _intervals(starts: list[int], granularity: str) -> list[str]:
    """Chunks merged into as few ISO intervals as possible (Druid's granularitySpec.intervals)."""
    if granularity == "all" and starts:
        return ["-146136543-09-08T08:23:32.096Z/146140482-04-24T15:36:27.903Z"]
    merged: list[list[int]] = []
    for start in starts:
        end = _next_one(start, granularity)
        if merged and merged[-1][1] == start:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return [f"{_iso_one(s)}/{_iso_one(e)}" for s, e in merged]


def _iso_one(millis: int) -> str:
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=millis)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"
