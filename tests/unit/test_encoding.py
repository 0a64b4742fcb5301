"""Pure logic: templates, connections, and the column-wise Redis protocol encoder."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from accelsync.connections import parse_connection
from accelsync.errors import ConnectionConfigError
from accelsync.targets import values
from accelsync.targets.redis import resp
from accelsync.templates import Template


def test_template_parts_and_errors():
    template = Template("user:{id}:{ city }")
    assert template.columns == ["id", "city"] and template.literals == ["user:", ":", ""]
    assert template.render({"id": 7, "city": "Paris"}) == "user:7:Paris"
    for bad, message in [("user:{id", "unmatched"), ("static", "uses no column"), ("{a b}", "not a column")]:
        with pytest.raises(ValueError, match=message):
            Template(bad)


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


def test_values_as_redis_text():
    assert values.as_text(pa.array([1, None, -5])).to_pylist() == [b"1", None, b"-5"]
    assert values.as_text(pa.array([Decimal("12.50"), Decimal("-0.05")], pa.decimal128(6, 2))).to_pylist() == \
           [b"12.50", b"-0.05"]
    assert values.as_text(pa.array([datetime(2024, 1, 2, 3, 4, 5), datetime(2024, 1, 2, 3, 4, 5, 120)],
                                 pa.timestamp("us"))).to_pylist() == \
           [b"2024-01-02 03:04:05", b"2024-01-02 03:04:05.000120"]
    assert values.as_text(pa.array([date(2024, 1, 2)])).to_pylist() == [b"2024-01-02"]
    assert values.as_text(pa.array(["é😀"])).to_pylist() == ["é😀".encode()]
    assert values.as_text(pa.array([b"\x00\xff"])).to_pylist() == [b"\x00\xff"]


def test_bulk_strings_count_bytes_not_characters():
    assert resp.bulk(pa.array(["é".encode(), b""])).to_pylist() == [b"$2\r\n\xc3\xa9\r\n", b"$0\r\n\r\n"]
    assert resp.command("HSET", "k", "f", "v") == b"*4\r\n$4\r\nHSET\r\n$1\r\nk\r\n$1\r\nf\r\n$1\r\nv\r\n"


def test_template_rendered_per_row_with_nulls():
    batch = pa.RecordBatch.from_pydict({"id": [1, None, 3], "city": ["a", "b", None]})
    assert values.render(Template("u:{id}-{city}"), batch).to_pylist() == [b"u:1-a", None, None]


def test_concat_is_the_rows_joined():
    rows = pa.array([b"ab", None, b"", b"cde"])
    assert values.concat(rows) == b"abcde"
    assert values.concat(rows.slice(3)) == b"cde"
