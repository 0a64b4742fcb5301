"""Kafka messages and log lines holding the same text give the same rows and the same dirty
records (the locations aside): both sources parse with one RecordParser.

The text goes into a real Kafka topic (confluent-kafka's producer) and into a log file; each
source plans and reads as in a run."""

from __future__ import annotations


import pyarrow as pa
import pytest

from accelsync.engine.dirty import DirtyLog
from accelsync.registry import source_class
from accelsync.spec import parse_spec
from test_kafka_source import produce, topic  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

SCHEMA = {"id": "long", "paid": "boolean", "amount": "decimal(10,2)", "at": "timestamp", "day": "date",
          "note": "string"}
JSON_LINES = [
    '{"id": 1, "paid": true, "amount": 12.5, "at": "2026-11-30T10:00:00Z", "day": "2026-11-30", "note": "a"}',
    '{"id": "2", "paid": "true", "amount": "7.25", "at": "30/Nov/2026:10:00:00 +0100", "note": ""}',
    '{"id": 3, "paid": "yes"}',                                   # a boolean that is not one
    '{"id": 4, "amount": "12.345"}',                              # more decimals than the scale
    '{"id": 5, "at": 1796032800.5, "day": "2026-02-30"}',         # no such day
    '{"id": 6, "note": "中文 ✓", "paid": 0}',
    '[6]',                                                        # not an object
    '{"id": 7, "note": {"nested": 1}}',                           # an object where a value goes
    '{"id": 8, "paid": false, "amount": -1, ',                    # cut short
]
CSV_LINES = ["1,true,12.5,2026-11-30T10:00:00Z,2026-11-30,a", '2,TRUE,7.25,,,"x, y"', "3,maybe,,,,",
             "4,0,12.345,,,", "5", "6,1,,1796032800,2026-12-01,中文"]


def read_all(spec) -> tuple[list[dict], list[str]]:
    """The parsed fields of every row, and the dirty reasons, in source order."""
    source = source_class(spec.source.type)(spec)
    plan = source.plan(1)
    rows, reasons = [], []
    for index, partition in enumerate(plan.partitions):
        dirty = DirtyLog(None, f"read-{index}")
        entries = []
        dirty.add = lambda location, reason, record=None, entries=entries: entries.append((location, reason))
        for batch in source.read(plan, partition, dirty):
            rows += pa.Table.from_batches([batch]).select(list(SCHEMA)).to_pylist()
        reasons += [reason for _, reason in sorted(entries, key=lambda e: e[0].get("offset", e[0].get("line")))]
    return rows, reasons


@pytest.mark.parametrize("fmt, lines", [("json", JSON_LINES), ("csv", CSV_LINES)])
def test_kafka_and_log_files_parse_the_same_text_the_same_way(services, topic, tmp_path, fmt, lines):
    produce(topic, [(0, None, line.encode()) for line in lines])
    (tmp_path / "app.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
    common = {"format": fmt, "schema": SCHEMA}
    target = {"type": "redis", "key": "k:{id}"}
    from_kafka = read_all(parse_spec({"name": "same_kafka", "target": target,
                                      "source": {"type": "kafka", "connection": "kafka_default", "topic": topic,
                                                 **common}}))
    from_logs = read_all(parse_spec({"name": "same_logs", "target": target,
                                     "source": {"type": "logs", "path": str(tmp_path / "app.log"), **common}}))

    assert from_kafka == from_logs
    rows, reasons = from_logs
    assert [row["id"] for row in rows] == ([1, 2, 6] if fmt == "json" else [1, 2, 6])
    assert rows[1]["paid"] is True  # "true" (JSON text) or TRUE (CSV) is a boolean in both
    if fmt == "json":
        assert reasons == ["cast failed: field 'paid' (boolean): 'yes'",
                           "cast failed: field 'amount' (decimal(10,2)): '12.345'",
                           "cast failed: field 'day' (date): '2026-02-30'",
                           "bad JSON: an array where an object was expected",
                           "bad JSON: field 'note' holds an object, not a value",
                           "bad JSON: Expecting property name enclosed in double quotes: line 1 column 40 (char 39)"]
    else:
        assert reasons == ["cast failed: field 'paid' (boolean): 'maybe'",
                           "cast failed: field 'amount' (decimal(10,2)): '12.345'",
                           "bad CSV: expected 6 columns, got 1"]
