"""The two error families of accelsync.

Terminal errors mean the spec or the data is wrong: retrying cannot help, so they fail at once
with a clear message. Transient errors mean a service was unavailable: they are retried with
backoff and then fail with the cause.
"""

from __future__ import annotations


class AccelsyncError(Exception):
    """Base of every error accelsync raises on purpose."""

    retryable = False


class TerminalError(AccelsyncError):
    """The spec or the data is wrong; do not retry."""


class TransientError(AccelsyncError):
    """A service was unavailable; retry with backoff."""

    retryable = True


class SpecError(TerminalError):
    """One or more problems in a spec file, each naming the file and the field."""

    def __init__(self, path: str, problems: list[tuple[str, str]]):
        self.path = path
        self.problems = problems
        super().__init__("\n".join(self.lines()))

    def lines(self) -> list[str]:
        return [f"{self.path}: {field}: {message}" if field else f"{self.path}: {message}"
                for field, message in self.problems]


class ConnectionConfigError(TerminalError):
    """A connection id does not resolve, or resolves to something unusable."""


class DataError(TerminalError):
    """The data cannot be synced as the spec says (too many dirty records, bad types)."""


class GateFailed(TerminalError):
    """A quality gate check failed; nothing is published."""

    def __init__(self, checks: list[dict]):
        self.checks = checks
        failed = [c for c in checks if not c["passed"]]
        super().__init__("gate failed: " + "; ".join(f"{c['name']}: {c['detail']}" for c in failed))


class SyncTimeout(TerminalError):
    """The run went over the spec's timeout."""


# ---------------------------------------------------------------- which failures are retried
#
# The one list of what accelsync treats as a service being unavailable, and so retries (a plan
# partition inside the sync, the Airflow task after it). Anything not listed here — a bad spec,
# bad data, a server refusing a request, a bug in accelsync — fails at once with its message:
# retrying cannot help, and hiding a bug behind retries only delays the alert.

# Python's socket failures: connection refused, reset, aborted, broken pipe, timeouts.
_AVAILABILITY_TYPES = (ConnectionError, TimeoutError)
# Client libraries' own types for a connection that could not be made or was lost.
_AVAILABILITY_TYPE_NAMES = {
    "redis.exceptions.ConnectionError", "redis.exceptions.TimeoutError", "redis.exceptions.BusyLoadingError",
    "thriftpy2.transport.base.TTransportException", "thriftpy2.transport.TTransportException",
    "urllib.error.URLError", "socket.gaierror",
}
# MySQL client and server error codes of an unavailable server: can't connect (2002, 2003), gone
# away (2006), lost connection (2013, 2055), server shutdown (1053), connection killed (1927),
# query interrupted by KILL (1317), too many connections (1040), lock wait / deadlock (1205, 1213).
MYSQL_AVAILABILITY_CODES = {2002, 2003, 2006, 2013, 2055, 1053, 1927, 1317, 1040, 1205, 1213}
# Kafka error names (librdkafka's and the protocol's) of a broker or coordinator not reachable now.
KAFKA_AVAILABILITY_CODES = {
    "_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT", "_MSG_TIMED_OUT", "_RESOLVE", "_WAIT_COORD",
    "_NO_OFFSET", "REQUEST_TIMED_OUT", "NETWORK_EXCEPTION", "LEADER_NOT_AVAILABLE",
    "NOT_LEADER_FOR_PARTITION", "NOT_LEADER_OR_FOLLOWER", "COORDINATOR_NOT_AVAILABLE", "NOT_COORDINATOR",
    "COORDINATOR_LOAD_IN_PROGRESS", "REBALANCE_IN_PROGRESS", "BROKER_NOT_AVAILABLE",
    "REPLICA_NOT_AVAILABLE", "UNKNOWN_TOPIC_OR_PART_RETRIABLE", "KAFKA_STORAGE_ERROR",
}
# HTTP statuses of a server that is up but cannot serve now (Druid's router, broker, overlord).
HTTP_AVAILABILITY_STATUSES = {429, 502, 503, 504}
# Texts of the same failures where a library (ConnectorX, Spark, happybase) only gives a message.
_AVAILABILITY_TEXTS = (
    "connection refused", "connection reset", "broken pipe", "timed out", "lost connection",
    "server has gone away", "unexpected eof", "server shutdown in progress", "connection was killed",
    "query execution was interrupted", "server disconnected", "no route to host", "connection aborted",
    "temporary failure in name resolution", "python worker exited unexpectedly", "executorlostfailure",
)


def is_availability_failure(exc: BaseException) -> bool:
    """True when `exc` says a service could not be reached or dropped the connection (retry);
    False for everything else (fail at once). TransientError and TerminalError say it themselves."""
    if isinstance(exc, AccelsyncError):
        return exc.retryable
    status = getattr(exc, "code", None)
    if type(exc).__name__ == "HTTPError" and isinstance(status, int):  # before URLError, its base
        return status in HTTP_AVAILABILITY_STATUSES
    if isinstance(exc, _AVAILABILITY_TYPES):
        return True
    for kind in type(exc).__mro__:
        if f"{kind.__module__}.{kind.__qualname__}" in _AVAILABILITY_TYPE_NAMES:
            return True
    kafka = _kafka_error(exc)
    if kafka is not None:
        return kafka.name() in KAFKA_AVAILABILITY_CODES or bool(kafka.retriable())
    if type(exc).__module__.startswith("pymysql"):
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        return code in MYSQL_AVAILABILITY_CODES
    text = str(exc).lower()
    return any(part in text for part in _AVAILABILITY_TEXTS)


def classify(exc: BaseException, message: str) -> AccelsyncError:
    """The accelsync error for a failure `exc`, described by `message` (already redacted)."""
    if isinstance(exc, AccelsyncError):
        return exc
    return (TransientError if is_availability_failure(exc) else TerminalError)(message)


def _kafka_error(exc: BaseException):
    """The KafkaError inside a confluent-kafka failure, if it is one."""
    if type(exc).__name__ == "KafkaError" and hasattr(exc, "retriable"):
        return exc
    args = getattr(exc, "args", ())
    if args and type(args[0]).__name__ == "KafkaError" and hasattr(args[0], "retriable"):
        return args[0]
    return None
