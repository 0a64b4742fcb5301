"""Only a service that could not be reached or dropped the connection is retried; everything
else, a bug included, fails at once with its message. errors.py holds the one list."""

from __future__ import annotations

import io
import socket
import urllib.error

import pytest

from accelsync.errors import (DataError, TerminalError, TransientError, classify,
                              is_availability_failure)


def _kafka(code_name: str, retriable: bool = False):
    from confluent_kafka import KafkaError, KafkaException
    return KafkaException(KafkaError(getattr(KafkaError, code_name), "broker says so", retriable=retriable))


def _http(status: int):
    return urllib.error.HTTPError("http://druid:8888/x", status, "status", {}, io.BytesIO(b""))


def _pymysql(kind: str, code: int, text: str):
    import pymysql
    return getattr(pymysql.err, kind)(code, text)


def _redis(kind: str):
    import redis
    return getattr(redis.exceptions, kind)("Error 111 connecting to 127.0.0.1:6379" if kind != "ResponseError"
                                           else "WRONGTYPE Operation against a key holding the wrong kind of value")


def _thrift():
    from thriftpy2.transport import TTransportException
    return TTransportException(message="Could not connect to ('127.0.0.1', 9090)")


RETRIED = [
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError(104, "Connection reset by peer"),
    BrokenPipeError(32, "Broken pipe"),
    socket.timeout("timed out"),
    socket.gaierror(-3, "Temporary failure in name resolution"),
    urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")),
    _redis("ConnectionError"), _redis("TimeoutError"),
    _pymysql("OperationalError", 2013, "Lost connection to MySQL server during query"),
    _pymysql("OperationalError", 2003, "Can't connect to MySQL server on '127.0.0.1'"),
    _pymysql("OperationalError", 1927, "Connection was killed"),
    _kafka("_TRANSPORT"), _kafka("_ALL_BROKERS_DOWN"), _kafka("COORDINATOR_NOT_AVAILABLE"),
    _kafka("REQUEST_TIMED_OUT"), _kafka("UNKNOWN", retriable=True),
    _thrift(),
    _http(503), _http(502), _http(504), _http(429),
    RuntimeError("ConnectorX: Lost connection to MySQL server during query"),
    RuntimeError("org.apache.spark.SparkException: Python worker exited unexpectedly (crashed)"),
    TransientError("Redis at 127.0.0.1:6379 is unavailable"),
]
FAILED_AT_ONCE = [
    ValueError("invalid literal for int() with base 10: 'x'"),  # a bug
    KeyError("prefix"),                                          # a bug
    AttributeError("'NoneType' object has no attribute 'decode'"),
    ZeroDivisionError("division by zero"),
    _redis("ResponseError"),
    _pymysql("OperationalError", 1045, "Access denied for user 'root'@'localhost'"),
    _pymysql("ProgrammingError", 1064, "You have an error in your SQL syntax"),
    _pymysql("OperationalError", 1054, "Unknown column 'x' in 'field list'"),
    _kafka("TOPIC_AUTHORIZATION_FAILED"), _kafka("INVALID_MSG"),
    _http(400), _http(404), _http(500),
    RuntimeError("ConnectorX: Cannot parse the value of column 7"),
    DataError("12 dirty records exceed error_limit"), TerminalError("transform: bad expression"),
]


@pytest.mark.parametrize("exc", RETRIED, ids=lambda e: f"{type(e).__name__}:{str(e)[:40]}")
def test_unavailable_services_are_retried(exc):
    assert is_availability_failure(exc)
    assert isinstance(classify(exc, "reading failed"), TransientError)


@pytest.mark.parametrize("exc", FAILED_AT_ONCE, ids=lambda e: f"{type(e).__name__}:{str(e)[:40]}")
def test_everything_else_fails_at_once_with_its_message(exc):
    assert not is_availability_failure(exc)
    error = classify(exc, f"reading failed: {exc}")
    assert isinstance(error, TerminalError) and str(error) == (str(exc) if isinstance(exc, TerminalError)
                                                               else f"reading failed: {exc}")


def test_a_partition_is_retried_only_for_availability_failures(tmp_path):
    from accelsync.engine.retry import retry_partition

    calls = []

    def bug():
        calls.append(1)
        raise KeyError("prefix")

    with pytest.raises(KeyError):
        retry_partition(bug, 0, str(tmp_path))
    assert len(calls) == 1  # no second attempt for a bug


def test_spark_task_failures_keep_the_python_error(monkeypatch):
    from accelsync.engine.spark import _task_error

    wrapped = ("An error occurred while calling o91.collect.\n: org.apache.spark.SparkException: Job aborted due "
               "to stage failure: Task 0 in stage 1.0 failed 1 times\n  File \"x.py\", line 3, in f\n"
               "ZeroDivisionError: division by zero\n\tat org.apache.spark.api.python")
    error = _task_error(RuntimeError(wrapped))
    assert isinstance(error, TerminalError) and str(error) == "Spark job failed: ZeroDivisionError: division by zero"
    crashed = _task_error(RuntimeError("Job aborted: Python worker exited unexpectedly (crashed)"))
    assert isinstance(crashed, TransientError)
