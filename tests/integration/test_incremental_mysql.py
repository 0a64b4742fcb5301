"""An incremental MySQL sync loses no row to an equal watermark value or to a late commit.

The promise: every row whose column is at or above the saved watermark (minus `lookback`) when a
run plans is read by that run; the watermark's own value is read again, so a row committed after
a run with the same DATETIME second is not lost; keyed targets absorb the rows read again.
Redis contents are read with redis-py, not through accelsync."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest

from accelsync import pipeline
from accelsync.spec import parse_spec
from accelsync.state import load_state

START = datetime(2026, 11, 30, 10, 0, 0)


def make_spec(lookback=None, column: str = "updated_at"):
    incremental = {"column": column, **({"lookback": lookback} if lookback is not None else {})}
    return parse_spec({
        "name": "inc_" + uuid.uuid4().hex[:8],
        "source": {"type": "mysql", "connection": "test_mysql", "table": "events", "incremental": incremental},
        "target": {"type": "redis", "connection": "test_redis", "key": "ev:{id}",
                   "value": {"type": "hash", "fields": ["city", "version"]}},
        "speed": {"channels": 2},
    })


@pytest.fixture()
def events(mysql):
    cursor = mysql.cursor()
    cursor.execute("CREATE TABLE events (id INT PRIMARY KEY, city VARCHAR(20), version INT, updated_at DATETIME)")
    # 1,000 rows, ten per second of DATETIME: many rows share each second, as in a busy table
    cursor.executemany("INSERT INTO events VALUES (%s, %s, %s, %s)",
                       [(i, "A", i, START + timedelta(seconds=i // 10)) for i in range(1000)])
    return cursor


def test_a_row_committed_later_in_the_watermarks_second_is_not_lost(spark, events, redis_client):
    spec = make_spec()
    first = pipeline.run(spec)
    assert first["status"] == "published" and first["written"] == 1000
    watermark = load_state(spec.name)["watermark"]
    assert watermark == "2026-11-30 10:01:39"

    # committed after the run, in the same second as the saved watermark
    events.execute("INSERT INTO events VALUES (1000, 'B', 1000, %s)", (watermark,))
    second = pipeline.run(spec)

    assert second["status"] == "published", second["reason"]
    assert redis_client.hgetall("ev:1000") == {b"city": b"B", b"version": b"1000"}
    assert len(redis_client.keys("ev:*")) == 1001
    # read again: the ten rows of the watermark's second and the new one; Redis holds each once
    assert second["read"] == 11 and second["written"] == 11


def test_lookback_catches_a_late_commit_below_the_watermark(spark, events, redis_client):
    spec = make_spec(lookback="1m")
    assert pipeline.run(spec)["status"] == "published"
    # a long transaction commits a row stamped 30 s before the newest row already synced
    late = START + timedelta(seconds=99 - 30)
    events.execute("INSERT INTO events VALUES (2000, 'late', 2000, %s)", (late,))

    summary = pipeline.run(spec)

    assert summary["status"] == "published", summary["reason"]
    assert redis_client.hget("ev:2000", "city") == b"late"
    # the window re-read [watermark - 1m, watermark]: 61 seconds of 10 rows, plus the late one
    assert summary["read"] == 611 and len(redis_client.keys("ev:*")) == 1001


def test_without_lookback_a_late_commit_below_the_watermark_is_outside_the_promise(spark, events, redis_client):
    spec = make_spec()
    assert pipeline.run(spec)["status"] == "published"
    events.execute("INSERT INTO events VALUES (2000, 'late', 2000, %s)", (START + timedelta(seconds=5),))
    assert pipeline.run(spec)["status"] == "published"
    assert redis_client.exists("ev:2000") == 0  # what `lookback` is for (README: MySQL incremental)


def test_an_integer_column_takes_a_number_as_lookback(spark, events, redis_client):
    spec = make_spec(lookback=100, column="version")
    assert pipeline.run(spec)["written"] == 1000
    assert load_state(spec.name)["watermark"] == "999"
    events.execute("INSERT INTO events VALUES (3000, 'late', 950, %s)", (START,))
    summary = pipeline.run(spec)
    assert summary["read"] == 101 + 1  # versions 899..999 again, and the late 950
    assert redis_client.hget("ev:3000", "city") == b"late"


def test_a_lookback_of_the_wrong_kind_fails_with_the_field(spark, events):
    spec = make_spec(lookback="5m", column="version")
    assert pipeline.run(spec)["status"] == "published"  # the first run has no watermark to move
    summary = pipeline.run(spec)
    assert summary["status"] == "failed"
    assert summary["reason"] == ("source.incremental.lookback: 5m is a duration, but 'version' is not a date or "
                                 "time column; give a number")
