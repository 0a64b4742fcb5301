"""The Druid HTTP API calls the target makes (overlord tasks, coordinator datasources, SQL), with
the error families mapped and repeatable reads repeated after a router 502."""

from __future__ import annotations

import base64
import json
import logging
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from accelsync.connections import Connection
from accelsync.errors import TerminalError, TransientError
from accelsync.targets.druid.timeutil import ALL_INTERVAL, interval_millis


log = logging.getLogger(__name__)
RETRIES = 3  # repeats of a repeatable Druid request after a transient failure
SERVED_GRACE = 120.0  # seconds for the broker to serve what the coordinator reports loaded


class DruidClient:
    """The few Overlord, Coordinator and SQL calls the target makes, with the error families mapped:
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
        """One request; a request that changes nothing when repeated (a read, a query, marking a
        datasource unused) is sent again up to RETRIES times after a 502/503/504 or a refused
        connection: Druid's router answers 502 when the broker closed the pooled connection it
        picked, and a process may be restarting."""
        repeatable = method in ("GET", "DELETE") or path == self.sql_path
        for attempt in range(RETRIES + 1 if repeatable else 1):
            try:
                return self._call_once(method, path, body, timeout)
            except TransientError:
                if attempt == RETRIES or not repeatable:
                    raise
                time.sleep(0.2 * 2 ** attempt)
        raise AssertionError("unreachable")

    def _call_once(self, method: str, path: str, body: Any, timeout: float) -> tuple[int, Any]:
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

    def submit(self, task: dict[str, Any], exists_ok: bool = False) -> str:
        status, body = self.call("POST", self.task_path, task)
        if exists_ok and status == 400 and "already exists" in _message(body):
            return task["id"]
        if status != 200 or not isinstance(body, dict) or "task" not in body:
            raise TerminalError(f"Druid refused the ingestion task for {task['spec']['dataSchema']['dataSource']} "
                                f"(HTTP {status}): {_message(body)}")
        return body["task"]

    def status(self, task_id: str) -> dict[str, Any]:
        status, body = self.call("GET", f"/druid/indexer/v1/task/{_quote(task_id)}/status")
        if status != 200 or not isinstance(body, dict) or not body.get("status"):
            raise TransientError(f"Druid does not know task {task_id} (HTTP {status})")
        return body["status"]

    def find(self, task_id: str) -> dict[str, Any] | None:
        """The task's status, or None when Druid has no such task."""
        status, body = self.call("GET", f"/druid/indexer/v1/task/{_quote(task_id)}/status")
        if status == 404:
            return None
        if status != 200 or not isinstance(body, dict) or not body.get("status"):
            raise TransientError(f"Druid did not report task {task_id} (HTTP {status}): {_message(body)}")
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

    def remove(self, datasource: str) -> None:
        """Drop a datasource and free its deep storage: mark every segment unused, then submit a
        `kill` task, which deletes unused segments from deep storage and the metadata store (not
        waited for: a kill that does not run is retried by the next run's cleanup)."""
        self.drop(datasource)
        self.call("POST", self.task_path, {"type": "kill", "dataSource": datasource, "interval": ALL_INTERVAL})

    def datasources(self) -> list[str]:
        """Every datasource the metadata store knows, with used or only unused segments."""
        status, body = self.call("GET", "/druid/coordinator/v1/metadata/datasources?includeUnused")
        if status != 200 or not isinstance(body, list):
            raise TransientError(f"Druid did not list its datasources (HTTP {status}): {_message(body)}")
        return [str(name) for name in body]

    def used_interval(self, datasource: str) -> tuple[int, int] | None:
        """(start, end) millis spanning every used segment of the datasource (tombstones included),
        read from the metadata store; None when it has none."""
        status, body = self.call("POST", f"/druid/coordinator/v1/metadata/datasources/{_quote(datasource)}"
                                         "/segments?full", [ALL_INTERVAL])
        if status in (204, 404) or (status == 200 and not body):
            return None
        if status != 200 or not isinstance(body, list):
            raise TransientError(f"Druid did not list the segments of {datasource} (HTTP {status}): "
                                 f"{_message(body)}")
        bounds = [interval_millis(segment["interval"]) for segment in body]
        return min(b[0] for b in bounds), max(b[1] for b in bounds)

    def loaded(self, datasource: str, interval: str) -> bool:
        """Every used segment of the datasource in `interval` is served by a historical."""
        status, body = self.call("GET", f"/druid/coordinator/v1/datasources/{_quote(datasource)}/loadstatus"
                                        f"?forceMetadataRefresh=true&interval={_quote(interval)}")
        if status == 204:
            return True  # no used segments: nothing to load
        return status == 200 and isinstance(body, dict) and float(body.get(datasource, 0)) >= 100.0

    def sql(self, query: str) -> list[dict[str, Any]]:
        status, body = self.call("POST", self.sql_path, {"query": query, "resultFormat": "object",
                                                         "context": {"sqlTimeZone": "Etc/UTC"}})
        if status != 200:
            raise TerminalError(f"Druid SQL failed (HTTP {status}): {_message(body)}")
        return body

    def sql_if_known(self, query: str) -> list[dict[str, Any]] | None:
        """Like `sql`, but None while the broker does not know a table of the query yet (a new
        datasource reaches SQL's schema a moment after its first segment is served)."""
        status, body = self.call("POST", self.sql_path, {"query": query, "resultFormat": "object",
                                                         "context": {"sqlTimeZone": "Etc/UTC"}})
        if status == 200:
            return body
        if status in (400, 404) and "not found" in _message(body):
            return None
        raise TerminalError(f"Druid SQL failed (HTTP {status}): {_message(body)}")


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
