"""Airflow connections in URI and JSON form, and no password in their text."""

from __future__ import annotations

import pytest

from accelsync.connections import parse_connection
from accelsync.errors import ConnectionConfigError


def test_uri_and_json_connections_keep_password_out_of_repr():
    conn = parse_connection("m", "mysql://app:p%40ss%2Fw@db.example:3307/shop?charset=utf8mb4")
    assert (conn.conn_type, conn.host, conn.port, conn.login, conn.password, conn.schema) == \
           ("mysql", "db.example", 3307, "app", "p@ss/w", "shop")
    assert conn.extra == {"charset": "utf8mb4"}
    assert "p@ss" not in repr(conn)
    assert conn.redact("denied for p@ss/w and p%40ss%2Fw") == "denied for *** and ***"
    kafka = parse_connection("k", '{"conn_type": "kafka", "extra": {"bootstrap.servers": "h:9092"}}')
    assert kafka.extra["bootstrap.servers"] == "h:9092"
    with pytest.raises(ConnectionConfigError, match="AIRFLOW_CONN_BAD is not valid JSON"):
        parse_connection("bad", "{nope")
