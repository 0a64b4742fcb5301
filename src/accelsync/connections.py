"""Connection ids resolved the Airflow way, without leaking credentials.

A spec names a connection id. Outside Airflow it comes from `AIRFLOW_CONN_<ID>` (URI or JSON,
as Airflow accepts them); inside an Airflow task it comes from Airflow's connection machinery
(which reads the same variables first, then the secrets backends and the metadata database).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from accelsync.errors import ConnectionConfigError


@dataclass(frozen=True)
class Connection:
    """The parts of an Airflow connection a connector needs. `password` never shows in repr."""

    conn_id: str
    conn_type: str = ""
    host: str | None = None
    port: int | None = None
    login: str | None = None
    password: str | None = field(default=None, repr=False)
    schema: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def redact(self, text: str) -> str:
        """Remove this connection's password (also percent-encoded) from a message."""
        if self.password:
            from urllib.parse import quote
            for secret in {self.password, quote(self.password, safe=""), quote(self.password)}:
                text = text.replace(secret, "***")
        return text

    def safe_address(self) -> str:
        return f"{self.conn_type}://{self.host or ''}{':' + str(self.port) if self.port else ''}"


# Connections the driver resolved and shipped to this Spark worker (see `for_spec`/`install`).
_SHIPPED: dict[str, Connection] = {}


def env_name(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


def get_connection(conn_id: str) -> Connection:
    """Resolve a connection id: as shipped by the driver, `AIRFLOW_CONN_<ID>`, then Airflow."""
    if conn_id in _SHIPPED:
        return _SHIPPED[conn_id]
    raw = os.environ.get(env_name(conn_id))
    if raw is not None:
        return parse_connection(conn_id, raw)
    airflow_conn = _from_airflow(conn_id)
    if airflow_conn is not None:
        return airflow_conn
    raise ConnectionConfigError(
        f"connection {conn_id!r} is not defined: set {env_name(conn_id)} (a URI or JSON, as Airflow "
        f"accepts) or add it as an Airflow connection; `accelsync devstack env` prints the local ones")


def parse_connection(conn_id: str, raw: str) -> Connection:
    """Parse Airflow's URI or JSON connection form."""
    raw = raw.strip()
    if raw.startswith("{"):
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConnectionConfigError(f"{env_name(conn_id)} is not valid JSON: {exc.msg}") from None
        extra = data.get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra) if extra else {}
        port = data.get("port")
        return Connection(conn_id, data.get("conn_type", ""), data.get("host"),
                          int(port) if port else None, data.get("login"), data.get("password"),
                          data.get("schema"), extra)
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise ConnectionConfigError(f"{env_name(conn_id)} is not a valid connection URI") from None
    if not parts.scheme:
        raise ConnectionConfigError(f"{env_name(conn_id)} is not a valid connection URI (no scheme)")
    extra: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "__extra__":
            extra.update(json.loads(value))
        else:
            extra[key] = value
    schema = unquote(parts.path[1:]) if parts.path.startswith("/") else unquote(parts.path)
    return Connection(conn_id, parts.scheme.replace("-", "_"), unquote(parts.hostname or "") or None,
                      port, unquote(parts.username) if parts.username else None,
                      unquote(parts.password) if parts.password else None, schema or None, extra)


def _from_airflow(conn_id: str) -> Connection | None:
    """Look the id up through Airflow, when running inside an Airflow task."""
    try:
        from airflow.sdk import BaseHook
    except Exception:  # Airflow not installed or not importable here
        return None
    try:
        conn = BaseHook.get_connection(conn_id)
    except Exception:
        return None
    extra = conn.extra_dejson if hasattr(conn, "extra_dejson") else {}
    return Connection(conn_id, conn.conn_type or "", conn.host, conn.port, conn.login,
                      conn.password, conn.schema, extra or {})


def for_spec(spec) -> str:
    """The spec's connections, resolved here on the driver, as JSON for Spark tasks.

    Spark workers cannot reach Airflow's connections (no task context), and on a cluster they do
    not share the driver's environment, so the driver resolves every connection and ships it in
    a data source option whose name Spark redacts from plans and logs (it contains "secret").
    """
    ids = {part.connection for part in (spec.source, spec.target) if getattr(part, "connection", None)}
    return json.dumps({conn_id: asdict(get_connection(conn_id)) for conn_id in sorted(ids)})


def provide(connection: Connection) -> None:
    """Make a connection resolvable in this process (and the workers it forks) without writing it
    anywhere: a DataX job's inline credentials, used for that run only (`accelsync run JOB.json`)."""
    _SHIPPED[connection.conn_id] = connection


def install(shipped: str | None) -> None:
    """On a Spark worker: make the driver's resolved connections the ones `get_connection` sees."""
    if shipped:
        for conn_id, fields in json.loads(shipped).items():
            _SHIPPED[conn_id] = Connection(**fields)
