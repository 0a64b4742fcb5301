"""error_limit on real data: the run fails past either limit that is set, and a task stops as
soon as its own dirty records make that certain (here, a Kafka topic: the plan knows at most how
many records the run reads)."""

from __future__ import annotations

import json
import uuid

import pytest

from accelsync import pipeline
from accelsync.spec import parse_spec
from test_kafka_source import committed, produce, topic, NOT_COMMITTED  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration


def spec_for(topic: str, **limit):
    return parse_spec({
        "name": "limit_" + uuid.uuid4().hex[:6],
        "source": {"type": "kafka", "connection": "kafka_default", "topic": topic,
                   "schema": {"id": "long", "v": "string"}},
        "target": {"type": "redis", "connection": "test_redis", "key": "lim:{id}"},
        "error_limit": limit,
    })


@pytest.fixture()
def mixed(topic):
    """1,000 messages on one partition, every third one not JSON (333 dirty)."""
    produce(topic, [(0, None, b"not json" if i % 3 == 0 and i else json.dumps({"id": i, "v": f"v{i}"}).encode())
                    for i in range(1000)])
    return topic


def test_percentage_alone_fails_the_run_once_the_share_is_over(spark, mixed, redis_client):
    strict = spec_for(mixed, percentage=0.2)
    over = pipeline.run(strict)  # 33.3% dirty
    assert over["status"] == "failed"
    # stopped by the task itself: 333 dirty of at most 1,000 read is over 20% whatever comes next
    assert "one task alone found 333 while reading" in over["reason"]
    assert "error_limit (percentage: 0.2)" in over["reason"]
    assert committed(strict, mixed)[0] == NOT_COMMITTED  # nothing published, no offset moved

    within = pipeline.run(spec_for(mixed, percentage=0.34))
    assert within["status"] == "published", within["reason"]
    assert (within["read"], within["written"], within["dirty"]) == (1000, 667, 333)


def test_records_and_percentage_each_fail_the_run_when_set(spark, mixed, redis_client):
    assert "records: 300" in pipeline.run(spec_for(mixed, records=300, percentage=0.5))["reason"]
    assert "percentage: 0.3" in pipeline.run(spec_for(mixed, records=5000, percentage=0.3))["reason"]
    assert pipeline.run(spec_for(mixed, records=333, percentage=0.34))["status"] == "published"
