"""The HTTP side: one router-style port serving the Overlord, Coordinator and Broker paths used."""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import re
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from accelsync.devstack.druid_emulator import sql
from accelsync.devstack.druid_emulator.spec import SpecError
from accelsync.devstack.druid_emulator.store import Store
from accelsync.devstack.druid_emulator.tasks import Overlord
from accelsync.devstack.druid_emulator.timeutil import parse_interval

log = logging.getLogger("druid_emulator")
VERSION = "31.0.0-accelsync-emulator"


class Emulator:
    """The store and the overlord behind every request."""

    def __init__(self, data_dir: Path | None = None):
        self.store = Store(data_dir)
        self.overlord = Overlord(self.store)


class _Reply(Exception):
    def __init__(self, status: int, body: Any = None, content_type: str = "application/json"):
        self.status, self.body, self.content_type = status, body, content_type


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "Druid-emulator"
    emulator: Emulator

    # -- plumbing ----------------------------------------------------------------------------

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def log_message(self, fmt: str, *args) -> None:
        if "/status/health" not in self.path:
            log.info("%s %s", self.address_string(), fmt % args)

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        try:
            body = self._body()
            for pattern, verb, action in ROUTES:
                match = re.fullmatch(pattern, parts.path.rstrip("/") or "/")
                if match and verb == method:
                    args = [unquote(g) for g in match.groups()]
                    raise _Reply(*action(self.emulator, body, query, *args))
            raise _Reply(404, {"error": f"No resource for {method} {parts.path}"})
        except _Reply as reply:
            self._send(reply.status, reply.body, reply.content_type)
        except Exception as exc:  # keep serving; report like Druid's 500
            log.exception("request failed")
            self._send(500, {"error": "Internal Server Error", "errorMessage": f"{type(exc).__name__}: {exc}"})

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise _Reply(400, {"error": f"Unexpected character in JSON: {exc}"}) from None

    def _send(self, status: int, body: Any, content_type: str = "application/json") -> None:
        if status == 204 or body is None:
            payload = b""
        elif isinstance(body, (bytes, str)):
            payload = body.encode() if isinstance(body, str) else body
        else:
            payload = json.dumps(body, ensure_ascii=False, default=str).encode()
        self.send_response(status)
        if payload:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if payload:
            self.wfile.write(payload)


# -- routes ----------------------------------------------------------------------------------------

def health(emulator, body, query):
    return 200, True


def status(emulator, body, query):
    return 200, {"version": VERSION, "modules": [], "memory": {}}


def submit(emulator, body, query):
    try:
        return 200, {"task": emulator.overlord.submit(body)}
    except SpecError as exc:
        return 400, {"error": str(exc)}


def task_payload(emulator, body, query, task_id):
    task = emulator.overlord.get(task_id)
    if task is None:
        return 404, {"task": task_id, "payload": None}
    return 200, {"task": task_id, "payload": task.payload}


def task_status(emulator, body, query, task_id):
    task = emulator.overlord.get(task_id)
    if task is None:
        return 404, {"task": task_id, "status": None}
    return 200, {"task": task_id, "status": task.status()}


def task_reports(emulator, body, query, task_id):
    task = emulator.overlord.get(task_id)
    if task is None:
        return 404, {"error": "No task reports were found for this task. The task may not exist, or it may "
                              "not have begun running yet."}
    return 200, task.report()


def task_shutdown(emulator, body, query, task_id):
    emulator.overlord.shutdown(task_id)
    return 200, {"task": task_id}


def task_list(emulator, body, query, state=None):
    state = state or query.get("state")
    wanted = {"running": {"RUNNING"}, "pending": set(), "waiting": set(), "complete": {"SUCCESS", "FAILED"},
              None: {"RUNNING", "SUCCESS", "FAILED"}}.get(state)
    if wanted is None:
        return 400, {"error": f"Invalid state : {state}, valid values are: [pending, waiting, running, complete]"}
    tasks = [t.status() for t in emulator.overlord.all() if t.state in wanted and
             (not query.get("datasource") or t.spec.datasource == query["datasource"])]
    return 200, sorted(tasks, key=lambda s: s["createdTime"], reverse=True)


def datasources(emulator, body, query):
    names = emulator.store.datasources()
    if "simple" in query or "full" in query:
        return 200, [{"name": n, "properties": _properties(emulator, n)} for n in names]
    return 200, names


def datasource(emulator, body, query, name):
    if not emulator.store.exists(name):
        return 204, None
    return 200, _properties(emulator, name)


def _properties(emulator, name):
    summary = emulator.store.summary(name) or {}
    return {"tiers": {"_default_tier": {"size": summary.get("size", 0), "segmentCount": summary.get("count", 0),
                                        "replicatedSize": summary.get("size", 0)}},
            "segments": {"maxTime": summary.get("maxTime"), "minTime": summary.get("minTime"),
                         "size": summary.get("size", 0), "count": summary.get("count", 0)}}


def load_status(emulator, body, query, name):
    if not emulator.store.exists(name):
        return 204, None
    return 200, {name: 100.0}  # segments are queryable as soon as a task publishes them


def all_load_status(emulator, body, query):
    return 200, {name: 100.0 for name in emulator.store.datasources()}


def mark_all_unused(emulator, body, query, name):
    return 200, {"numChangedSegments": emulator.store.mark_unused(name)}


def mark_unused(emulator, body, query, name):
    if not isinstance(body, dict) or not body.get("interval"):
        return 400, {"error": "Invalid request payload. Specify either 'interval' or 'segmentIds', but not both."}
    try:
        interval = parse_interval(body["interval"])
    except ValueError as exc:
        return 400, {"error": str(exc)}
    return 200, {"numChangedSegments": emulator.store.mark_unused(name, interval)}


def run_sql(emulator, body, query):
    if not isinstance(body, dict):
        return 400, sql.DruidSqlError("Missing required field [query]").body
    try:
        names, rows = sql.execute(emulator.store, body.get("query"), body.get("parameters"))
    except sql.DruidSqlError as exc:
        return exc.status, exc.body
    return _sql_result(names, rows, body.get("resultFormat") or "object", bool(body.get("header")))


def _sql_result(names: list[str], rows: list[tuple], fmt: str, header: bool):
    if fmt == "object":
        return 200, [dict(zip(names, row)) for row in rows]
    if fmt == "array":
        return 200, ([names] if header else []) + [list(row) for row in rows]
    if fmt == "objectLines":
        text = "".join(json.dumps(dict(zip(names, row)), ensure_ascii=False) + "\n" for row in rows) + "\n"
        return 200, text, "text/plain"
    if fmt == "arrayLines":
        lines = ([names] if header else []) + [list(row) for row in rows]
        return 200, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines) + "\n", "text/plain"
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if header:
            writer.writerow(names)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
        return 200, out.getvalue() + "\n", "text/csv"
    return 400, sql.DruidSqlError(f"Unsupported resultFormat [{fmt}]").body


ROUTES = [
    (r"/status/health", "GET", health),
    (r"/status", "GET", status),
    (r"/druid/indexer/v1/task", "POST", submit),
    (r"/druid/indexer/v1/task/([^/]+)", "GET", task_payload),
    (r"/druid/indexer/v1/task/([^/]+)/status", "GET", task_status),
    (r"/druid/indexer/v1/task/([^/]+)/reports", "GET", task_reports),
    (r"/druid/indexer/v1/task/([^/]+)/shutdown", "POST", task_shutdown),
    (r"/druid/indexer/v1/tasks", "GET", task_list),
    (r"/druid/indexer/v1/(running|complete|pending|waiting)Tasks", "GET", task_list),
    (r"/druid/coordinator/v1/datasources", "GET", datasources),
    (r"/druid/v2/datasources", "GET", datasources),
    (r"/druid/coordinator/v1/loadstatus", "GET", all_load_status),
    (r"/druid/coordinator/v1/datasources/([^/]+)", "GET", datasource),
    (r"/druid/coordinator/v1/datasources/([^/]+)", "DELETE", mark_all_unused),
    (r"/druid/coordinator/v1/datasources/([^/]+)/loadstatus", "GET", load_status),
    (r"/druid/coordinator/v1/datasources/([^/]+)/markUnused", "POST", mark_unused),
    (r"/druid/v2/sql", "POST", run_sql),
]


# -- process -------------------------------------------------------------------------------------

def serve(host: str, port: int, data_dir: Path | None) -> ThreadingHTTPServer:
    """A started server (in a background thread); `shutdown()` it to stop."""
    emulator = Emulator(data_dir)
    handler = type("BoundHandler", (Handler,), {"emulator": emulator})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    server.emulator = emulator
    threading.Thread(target=server.serve_forever, name="http", daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m accelsync.devstack.druid_emulator",
                                     description="An Apache Druid HTTP API emulator (tests and demo only).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8888)
    parser.add_argument("--data-dir", type=Path, default=None, help="keep datasources here (default: memory)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    server = serve(args.host, args.port, args.data_dir)
    log.info("Druid emulator %s listening on http://%s:%s (data: %s)", VERSION, args.host, args.port,
             args.data_dir or "memory")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass
    server.shutdown()
    server.emulator.store.close()
    log.info("stopped")
    return 0
