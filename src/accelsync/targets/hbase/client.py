"""Connections to HBase's Thrift (1) server through happybase, and its failures as accelsync's errors:
terminal when retrying cannot help (no such table or family, a refused name), else transient."""

from __future__ import annotations

import functools
import re
import sys

from accelsync.connections import Connection
from accelsync.errors import (AccelsyncError, ConnectionConfigError, TerminalError, TransientError,
                              is_availability_failure)


_JAVA_PACKAGE = re.compile(r"\b(?:[a-z][a-z0-9_]*\.)+(?=[A-Z]\w*(?:Exception|Error)\b)")
_DESCRIPTOR = re.compile(r",? \{(?:TABLE_ATTRIBUTES|NAME) =>.*$")
_TERMINAL_HBASE = ("TableNotFoundException", "NoSuchColumnFamilyException", "TableNotEnabledException",
                   "DoNotRetryIOException", "IllegalArgumentException", "NamespaceNotFoundException")


def hbase_connection(conn: Connection):
    """A happybase connection for an Airflow-style HBase connection (opened)."""
    import happybase

    extra = conn.extra
    try:
        return happybase.Connection(
            host=conn.host or "127.0.0.1", port=int(conn.port or 9090),
            timeout=int(extra.get("timeout", 60_000)) or None,
            table_prefix=extra.get("table_prefix") or None,
            table_prefix_separator=extra.get("table_prefix_separator", "_"),
            compat=str(extra.get("compat", "0.98")), transport=extra.get("transport", "buffered"),
            protocol=extra.get("protocol", "binary"))
    except (ValueError, TypeError) as exc:
        raise ConnectionConfigError(f"connection {conn.conn_id!r}: {exc}") from None
    except Exception as exc:
        raise hbase_error(exc, conn) from None


def hbase_error(exc: Exception, conn: Connection, doing: str = "") -> AccelsyncError:
    """The accelsync error for a happybase / Thrift failure: terminal when retrying cannot help."""
    from thriftpy2.thrift import TApplicationException

    idl = sys.modules.get("Hbase_thrift")
    prefix = f"{doing}: " if doing else ""
    if idl is not None and isinstance(exc, idl.IOError):
        message = _message(exc)
        kind = TerminalError if any(name in message for name in _TERMINAL_HBASE) else TransientError
        return kind(f"{prefix}HBase failed: {conn.redact(message)}")
    if idl is not None and isinstance(exc, (idl.IllegalArgument, idl.AlreadyExists)):
        return TerminalError(f"{prefix}HBase refused: {conn.redact(_message(exc))}")
    if isinstance(exc, TApplicationException):
        # e.g. "Internal error processing mutateRows": the Java exception is in the server's log only
        return TerminalError(f"{prefix}HBase Thrift server error: {conn.redact(_message(exc))} "
                             f"(the cause is in the HBase Thrift server's log)")
    if is_availability_failure(exc):
        return TransientError(f"{prefix}HBase Thrift server at {conn.safe_address()} is unavailable: "
                              f"{conn.redact(str(exc) or type(exc).__name__)}")
    return TerminalError(f"{prefix}HBase write failed: {type(exc).__name__}: {conn.redact(str(exc))}")


@functools.lru_cache(maxsize=8)
def salt_prefixes(buckets: int) -> tuple[bytes, ...]:
    """The prefix of each bucket: `f"{bucket:0{len(str(buckets - 1))}d}_"` (module docstring)."""
    width = len(str(buckets - 1))
    return tuple(f"{bucket:0{width}d}_".encode() for bucket in range(buckets))


def _message(exc: Exception) -> str:
    """The first line of a Thrift error, readable: HBase sends the whole Java stack trace, with
    package-qualified class names, the exception's name twice and sometimes the table's descriptor."""
    message = getattr(exc, "message", None)
    if message is None:
        try:
            message = str(exc)
        except TypeError:  # thriftpy2's __str__ of an exception whose message is bytes
            message = ""
    if isinstance(message, bytes):
        message = message.decode("utf-8", "replace")
    if not message.strip():
        return type(exc).__name__
    line = _JAVA_PACKAGE.sub("", message.strip().splitlines()[0])
    name, _, rest = line.partition(": ")
    if rest.startswith(name + ": "):  # "TableNotFoundException: TableNotFoundException: t"
        line = rest
    line = _DESCRIPTOR.sub("", line)
    return line if len(line) <= 500 else line[:500] + "..."
