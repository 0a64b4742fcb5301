"""The one parser of text records (accelsync.sources.records): the values rules every text
source shares, and Kafka's message framing around it (a message is one record)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pyarrow as pa
import pytest

from accelsync.sources.kafka.messages import make_decoder
from accelsync.sources.records import RecordParser
from accelsync.spec import parse_spec


def kafka_decoder(kind: str, schema: dict | None):
    source = {"type": "kafka", "topic": "t", "format": kind, **({"schema": schema} if schema else {})}
    spec = parse_spec({"name": "decode", "source": source, "target": {"type": "redis", "key": "k:{_offset}"}})
    return make_decoder(spec.source, None)


@pytest.mark.parametrize("kind, schema, values, rows, reasons", [
    ("csv", {"id": "long", "amount": "decimal(10,2)", "name": "string"},
     [b"1,12.5,caf\xc3\xa9\n", b"2,abc,x", b"3,1.00", b'4,2.00,"two\nlines"', b"5,,", b"", b"\xff,1,x", None],
     [[1, 4, 5], [Decimal("12.50"), Decimal("2.00"), None], ["café", "two\nlines", ""]],
     {1: "cast failed: field 'amount' (decimal(10,2)): 'abc'", 2: "bad CSV: expected 3 columns, got 2",
      5: "empty message", 6: "bad encoding: not valid UTF-8 (invalid start byte at byte 0)",
      7: "message has no value (a tombstone)"}),
    ("json", {"id": "long", "at": "timestamp", "ok": "boolean"},
     [b'{\n  "id": 1,\n  "ok": true\n}', b"   ", b'{"id": 2} {"id": 3}', b'{"id": 4, "at": "yesterday"}',
      b'{"id": 5, "at": "2024-01-02T03:04:05.5", "ok": "yes"}', b'{"id": 6, "at": "2024-01-02 03:04:05"}',
      b'{"id": "7", "ok": "true"}', b"[1]", b'{"id": 8, "x": '],
     [[1, 6, 7], [None, datetime(2024, 1, 2, 3, 4, 5), None], [True, None, True]],
     {1: "empty message", 2: "bad JSON: Extra data: line 1 column 11 (char 10)",
      3: "cast failed: field 'at' (timestamp): 'yesterday'", 4: "cast failed: field 'ok' (boolean): 'yes'",
      7: "bad JSON: an array where an object was expected",
      8: "bad JSON: Expecting value: line 1 column 16 (char 15)"}),
    ("raw", None, [b"\x00\xff", None, b""], [[b"\x00\xff", None, b""]], {}),
])
def test_kafka_messages_parse_in_whole_batches_and_bad_ones_say_why(kind, schema, values, rows, reasons):
    columns, bad = kafka_decoder(kind, schema).decode(values)
    assert [c.to_pylist() for c in columns] == rows
    assert bad == reasons


@pytest.mark.parametrize("fmt, records", [
    ("json", ['{"id": 1, "ok": "true", "n": "2.5"}', '{"id": "2", "ok": 1, "n": 3}', '{"id": 3, "ok": "no"}',
              '{"id": 4, "ok": false, "n": "1e400"}', '{"id": [5]}']),
    ("csv", ["1,true,2.5", "2,1,3", "3,no,", "4,FALSE,1e400", "5"]),
])
def test_one_value_rule_for_every_format(fmt, records):
    parser = RecordParser(fmt, {"id": "long", "ok": "boolean", "n": "double"})
    columns, failures = parser.parse(pa.array(records, pa.string()))
    good = [i for i in range(len(records)) if i not in failures]
    assert [[c[i].as_py() for c in columns] for i in good] == [[1, True, 2.5], [2, True, 3.0], [4, False, float("inf")]]
    assert failures[2] == "cast failed: field 'ok' (boolean): 'no'"
    assert failures[4].startswith("bad JSON: field 'id' holds an array" if fmt == "json" else "bad CSV: expected 3")


def test_a_batch_with_many_bad_records_isolates_each_one():
    records = [f'{{"id": {i}}}' if i % 7 else f'{{"id": {i},' for i in range(1, 1001)]
    columns, failures = RecordParser("json", {"id": "long"}).parse(pa.array(records, pa.string()))
    assert sorted(failures) == [i - 1 for i in range(1, 1001) if i % 7 == 0]
    assert [v for i, v in enumerate(columns[0].to_pylist()) if i not in failures] == [
        i for i in range(1, 1001) if i % 7]


def test_csv_fields_by_position_take_wider_records_and_null_text():
    """DataX txtfilereader's column index: field i is cell positions[i]; a record may have more
    cells; one with too few is dirty; `null_value` text is NULL whatever the type."""
    parser = RecordParser("csv", {"id": "long", "name": "string", "n": "double"}, delimiter="|",
                          positions=[2, 0, 3], null_value="\\N")
    uniform = ["a|x|1|2.5|extra", "\\N|y|2|\\N|more", '"q|uoted"|z|3|0.5|']
    columns, failures = parser.parse(pa.array(uniform, pa.string()))
    assert failures == {}
    assert [c.to_pylist() for c in columns] == [[1, 2, 3], ["a", None, "q|uoted"], [2.5, None, 0.5]]

    mixed = ["a|x|1|2.5", "short|2", "b|y|3|1.5|wide|wider", "c|z|4"]
    columns, failures = parser.parse(pa.array(mixed, pa.string()))
    assert failures == {1: "bad CSV: expected at least 4 columns, got 2",
                        3: "bad CSV: expected at least 4 columns, got 3"}
    assert columns[0].to_pylist() == [1, None, 3, None]
    assert columns[1].to_pylist() == ["a", None, "b", None]


def test_positions_go_with_csv_one_per_field():
    base = {"name": "t", "target": {"type": "redis", "key": "k:{id}"}}
    with pytest.raises(Exception) as error:
        parse_spec({**base, "source": {"type": "logs", "path": "/x", "format": "csv", "schema": {"id": "long"},
                                       "positions": [0, 1]}})
    assert "`positions` has 2 entries for 1 schema fields" in str(error.value)
    with pytest.raises(Exception) as error:
        parse_spec({**base, "source": {"type": "logs", "path": "/x", "format": "json", "schema": {"id": "long"},
                                       "positions": [0]}})
    assert "`positions` goes with format csv" in str(error.value)
