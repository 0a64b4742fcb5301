"""The text of values every target writes (README, \"text of a value\"), column-wise."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pyarrow as pa

from accelsync.targets import value_text
from accelsync.templates import Template


def test_values_as_redis_text():
    assert value_text.as_text(pa.array([1, None, -5])).to_pylist() == [b"1", None, b"-5"]
    assert value_text.as_text(pa.array([Decimal("12.50"), Decimal("-0.05")], pa.decimal128(6, 2))).to_pylist() == \
           [b"12.50", b"-0.05"]
    assert value_text.as_text(pa.array([datetime(2024, 1, 2, 3, 4, 5), datetime(2024, 1, 2, 3, 4, 5, 120)],
                                 pa.timestamp("us"))).to_pylist() == \
           [b"2024-01-02 03:04:05", b"2024-01-02 03:04:05.000120"]
    assert value_text.as_text(pa.array([date(2024, 1, 2)])).to_pylist() == [b"2024-01-02"]
    assert value_text.as_text(pa.array(["é😀"])).to_pylist() == ["é😀".encode()]
    assert value_text.as_text(pa.array([b"\x00\xff"])).to_pylist() == [b"\x00\xff"]


def test_template_rendered_per_row_with_nulls():
    batch = pa.RecordBatch.from_pydict({"id": [1, None, 3], "city": ["a", "b", None]})
    assert value_text.render(Template("u:{id}-{city}"), batch).to_pylist() == [b"u:1-a", None, None]


def test_concat_is_the_rows_joined():
    rows = pa.array([b"ab", None, b"", b"cde"])
    assert value_text.concat(rows) == b"abcde"
    assert value_text.concat(rows.slice(3)) == b"cde"
