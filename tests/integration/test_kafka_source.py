"""Kafka -> Redis on the real local broker (Apache Kafka, `devstack up kafka`) and Redis: a topic
read as a bounded batch.

Every test uses its own topic and consumer group. Messages are produced, and committed offsets
read back from the broker, with kafka-python: a client of its own, not the confluent-kafka
(librdkafka) that accelsync reads and commits with. So "nothing committed" and "committed to the
planned end" are checked where they matter, not in accelsync's own files.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import pytest

from accelsync import pipeline
from accelsync.engine.dirty import read_dirty
from accelsync.errors import GateFailed, TerminalError, TransientError
from accelsync.runs import RunDir
from accelsync.spec import parse_spec

pytestmark = pytest.mark.integration

SERVERS = "127.0.0.1:9092"
NOT_COMMITTED = None  # what kafka-python's committed() says for a partition without a commit
SCHEMA = {"order_id": "long", "user_id": "int", "amount": "decimal(10,2)", "status": "string",
          "paid": "boolean", "score": "double", "created": "timestamp", "day": "date"}
FIELDS = ["user_id", "amount", "status", "paid", "score", "created", "day", "_key", "_partition", "_offset",
          "_timestamp"]
STAMP_MS = 1_709_287_200_000  # 2024-03-01 10:00:00 UTC


@pytest.fixture()
def topic(kafka_server):
    """A fresh topic with 3 partitions; deleted afterwards."""
    from confluent_kafka.admin import AdminClient, NewTopic

    name = "accelsync_test_" + uuid.uuid4().hex[:10]
    admin = AdminClient({"bootstrap.servers": SERVERS})
    for future in admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)]).values():
        future.result(timeout=30)
    yield name
    for future in admin.delete_topics([name]).values():
        future.result(timeout=30)


def produce(topic: str, messages: list[tuple[int, bytes | None, bytes | None]]) -> list[int]:
    """Produce (partition, key, value) messages with kafka-python, batched the way real producers
    batch them; returns the offset the broker gave each message."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=SERVERS, linger_ms=20)
    try:
        return _sent(producer, topic, messages)
    finally:
        producer.close(timeout=30)


def _sent(producer, topic: str, messages: list[tuple[int, bytes | None, bytes | None]]) -> list[int]:
    futures = [producer.send(topic, key=key, value=value, partition=partition, timestamp_ms=STAMP_MS)
               for partition, key, value in messages]
    producer.flush(timeout=30)
    return [future.get(timeout=30).offset for future in futures]


def order(i: int) -> dict:
    """Order i as its producer writes it: some fields missing, JSON numbers and strings for decimals."""
    document = {"order_id": 1000 + i, "user_id": i % 7, "status": ["payé", "配送中", "new"][i % 3],
                "paid": i % 2 == 0, "score": i / 4, "created": f"2024-03-01T10:00:{i % 60:02d}",
                "day": f"2024-03-{1 + i % 28:02d}"}
    document["amount"] = f"{i}.{i % 100:02d}" if i % 2 else i + 0.5  # text or number, both exact
    if i % 5 == 4:
        del document["status"]  # absent -> NULL -> no field in the hash
    return document


def expected_hash(i: int, partition: int, offset: int) -> dict[bytes, bytes]:
    """What Redis holds for order i, written independently of the target's encoder."""
    document = order(i)
    amount = Decimal(str(document["amount"])).quantize(Decimal("0.01"))
    fields = {"user_id": str(i % 7), "amount": str(amount), "paid": "true" if i % 2 == 0 else "false",
              "score": repr(i / 4), "created": f"2024-03-01 10:00:{i % 60:02d}", "day": document["day"],
              "_key": f"key-{i}", "_partition": str(partition), "_offset": str(offset),
              "_timestamp": "2024-03-01 10:00:00"}
    if "status" in document:
        fields["status"] = document["status"]
    return {k.encode(): v.encode() for k, v in fields.items()}


def key_prefix(topic: str) -> str:
    """Keys of one test's topic only: other test sessions may share the Redis database."""
    return "order_" + topic.rsplit("_", 1)[-1]


def make_spec(topic: str, **overrides):
    spec = {
        "name": "test_kafka_" + topic.rsplit("_", 1)[-1],
        "source": {"type": "kafka", "connection": "kafka_default", "topic": topic, "schema": SCHEMA},
        "target": {"type": "redis", "connection": "test_redis", "key": key_prefix(topic) + ":{order_id}",
                   "value": {"type": "hash", "fields": FIELDS}},
        "speed": {"channels": 2},
    }
    spec.update(overrides)
    return parse_spec(spec)


def committed(spec, topic: str) -> dict[int, int | None]:
    """The group's committed offsets, read back from the broker by kafka-python."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=SERVERS, group_id=spec.source.group_of(spec.name), enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in range(3)}
    finally:
        consumer.close()


def planned_ends(spec, run_id: str) -> dict[int, int]:
    state = RunDir(spec.name, run_id).read_json("plan.json")["summary"]["state"]
    return {int(p): o for p, o in state["end_offsets"].items()}


def assert_stored(redis_client, topic: str, placed: dict[int, tuple[int, int]]) -> None:
    """Redis holds exactly these orders: {i: (partition, offset)}."""
    prefix = key_prefix(topic)
    assert sorted(redis_client.keys(prefix + ":*")) == sorted(f"{prefix}:{1000 + i}".encode() for i in placed)
    for i, (partition, offset) in placed.items():
        stored = redis_client.hgetall(f"{prefix}:{1000 + i}")
        expected = expected_hash(i, partition, offset)
        assert float(stored.pop(b"score")) == float(expected.pop(b"score")), i
        assert stored == expected, i


def test_bounded_batch_commits_planned_ends_and_later_messages_wait(spark, topic, redis_client, run_id):
    # Partitions 0 and 1 get orders, partition 2 stays empty.
    first = {i: (i % 2, i // 2) for i in range(40)}
    offsets = produce(topic, [(p, f"key-{i}".encode(), json.dumps(order(i)).encode()) for i, (p, _) in first.items()])
    assert offsets == [o for p, o in first.values()]
    spec = make_spec(topic)

    pipeline.stage_sync(spec, run_id)
    # Produced after plan: not part of this run, whatever the run reads later.
    later = {40: (2, 0), 41: (2, 1), 42: (0, 20)}
    produce(topic, [(p, f"key-{i}".encode(), json.dumps(order(i)).encode()) for i, (p, _) in later.items()])
    assert committed(spec, topic) == {0: NOT_COMMITTED, 1: NOT_COMMITTED, 2: NOT_COMMITTED}
    pipeline.stage_gate(spec, run_id)
    published = pipeline.stage_publish(spec, run_id)

    ends = planned_ends(spec, run_id)
    assert ends == {0: 20, 1: 20, 2: 0}
    assert committed(spec, topic) == ends
    assert published["source"] == {"committed": {"0": 20, "1": 20, "2": 0}}
    stats = json.loads(RunDir(spec.name, run_id).file("sync.json").read_text())
    assert (stats["read"], stats["written"], stats["dirty"]) == (40, 40, 0)
    assert_stored(redis_client, topic, first)

    summary = pipeline.run(spec, run_id + "b")
    assert summary["status"] == "published", summary["reason"]
    assert (summary["read"], summary["written"]) == (3, 3)
    assert committed(spec, topic) == {0: 21, 1: 20, 2: 2}
    assert_stored(redis_client, topic, {**first, **later})

    summary = pipeline.run(spec, run_id + "c")
    assert summary["status"] == "published", summary["reason"]
    assert (summary["read"], summary["written"], summary["dirty"]) == (0, 0, 0)
    assert committed(spec, topic) == {0: 21, 1: 20, 2: 2}


def test_failed_gate_commits_nothing_and_rerun_reads_the_same_messages(spark, topic, redis_client, run_id):
    placed = {i: (i % 3, i // 3) for i in range(30)}
    produce(topic, [(p, f"key-{i}".encode(), json.dumps(order(i)).encode()) for i, (p, _) in placed.items()])
    spec = make_spec(topic)
    pipeline.stage_sync(spec, run_id)
    redis_client.delete(key_prefix(topic) + ":1004")

    with pytest.raises(GateFailed, match="reconcile: target has 29 of 30 expected rows"):
        pipeline.stage_gate(spec, run_id)
    with pytest.raises(TerminalError, match="no passing gate"):
        pipeline.stage_publish(spec, run_id)
    assert committed(spec, topic) == {0: NOT_COMMITTED, 1: NOT_COMMITTED, 2: NOT_COMMITTED}

    summary = pipeline.run(spec, run_id + "b")
    assert summary["status"] == "published", summary["reason"]
    assert (summary["read"], summary["written"]) == (30, 30)
    assert committed(spec, topic) == planned_ends(spec, run_id + "b") == {0: 10, 1: 10, 2: 10}
    assert_stored(redis_client, topic, placed)


def test_malformed_messages_are_dirty_with_their_offsets(spark, topic, redis_client, run_id):
    bad = {  # offset in partition 1 -> (value, reason)
        3: (b'{"order_id": 1003, "amount": ', "bad JSON: Expecting value: line 1 column 30 (char 29)"),
        5: (json.dumps({"order_id": 1005, "amount": "abc"}).encode(),
            "cast failed: field 'amount' (decimal(10,2)): 'abc'"),
        6: (json.dumps({"order_id": "x1006"}).encode(), "cast failed: field 'order_id' (long): 'x1006'"),
        8: (json.dumps({"order_id": 1008, "day": "2024-02-30"}).encode(),
            "cast failed: field 'day' (date): '2024-02-30'"),
        9: (None, "message has no value (a tombstone)"),
        10: (b"[1008]", "bad JSON: an array where an object was expected"),
    }
    values = [bad[o][0] if o in bad else json.dumps(order(o)).encode() for o in range(14)]
    produce(topic, [(1, f"key-{o}".encode(), value) for o, value in enumerate(values)])

    # Over the error limit: the run fails, nothing is published and no offset moves.
    strict = make_spec(topic)
    summary = pipeline.run(strict, run_id)
    assert summary["status"] == "failed"
    # no dirty record allowed: the reading task stopped at once, its 6 dirty records made that certain
    assert "error_limit (no dirty record allowed): one task alone found 6 while reading" in summary["reason"]
    assert not RunDir(strict.name, run_id).exists("published.json")
    assert committed(strict, topic) == {0: NOT_COMMITTED, 1: NOT_COMMITTED, 2: NOT_COMMITTED}
    assert redis_client.keys(key_prefix(topic) + ":*") == []  # the task stopped before writing its batch

    # Within the limit: the same messages are read again, the good ones land, the bad are dirty.
    lenient = make_spec(topic, error_limit={"records": 6})
    summary = pipeline.run(lenient, run_id + "b")
    assert summary["status"] == "published", summary["reason"]
    assert (summary["read"], summary["written"], summary["dirty"]) == (14, 8, 6)
    assert summary["read"] == summary["written"] + summary["dirty"]
    assert_stored(redis_client, topic, {o: (1, o) for o in range(14) if o not in bad})
    entries = read_dirty(RunDir(lenient.name, run_id + "b").path / "dirty")
    found = {e["location"]["offset"]: e for e in entries}
    assert sorted(found) == sorted(bad)
    for offset, (value, reason) in bad.items():
        entry = found[offset]
        assert entry["location"] == {"topic": topic, "partition": 1, "offset": offset}
        assert entry["reason"] == reason
        assert entry["record"]["key"] == f"key-{offset}"
        assert entry["record"]["value"] == (value.decode() if value is not None else None)
    assert committed(lenient, topic) == {0: 0, 1: 14, 2: 0}


def transaction(topic: str, orders: list[int], partition: int = 0):
    """A kafka-python transactional producer with `orders` sent to `partition` in a transaction
    left open; returns the producer (to commit or abort) and the offsets of the messages."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=SERVERS, transactional_id=f"{topic}.{orders[0]}")
    producer.init_transactions()
    producer.begin_transaction()
    offsets = _sent(producer, topic, [(partition, f"key-{i}".encode(), json.dumps(order(i)).encode())
                                      for i in orders])
    return producer, offsets


def test_open_transactions_wait_for_the_next_run_and_aborted_ones_are_never_read(spark, topic, redis_client,
                                                                                 run_id):
    # Partition 0: orders 0-4, an aborted transaction (5-7, then its marker), an open one (8, 9).
    assert produce(topic, [(0, f"key-{i}".encode(), json.dumps(order(i)).encode()) for i in range(5)]) == \
        [0, 1, 2, 3, 4]
    aborted, offsets = transaction(topic, [5, 6, 7])
    assert offsets == [5, 6, 7]
    aborted.abort_transaction()  # its marker is offset 8
    aborted.close()
    pending, offsets = transaction(topic, [8, 9])
    assert offsets == [9, 10]
    spec = make_spec(topic)
    try:
        # The plan ends at the last stable offset (9, where the open transaction starts): the
        # range ends on the abort marker, which the reader never sees as a message.
        summary = pipeline.run(spec, run_id)
        assert summary["status"] == "published", summary["reason"]
        assert (summary["read"], summary["written"], summary["dirty"]) == (5, 5, 0)
        assert planned_ends(spec, run_id) == {0: 9, 1: 0, 2: 0}
        assert committed(spec, topic) == {0: 9, 1: 0, 2: 0}
        assert_stored(redis_client, topic, {i: (0, i) for i in range(5)})
        pending.commit_transaction()  # its marker is offset 11
    finally:
        pending.close()

    summary = pipeline.run(spec, run_id + "b")
    assert summary["status"] == "published", summary["reason"]
    assert (summary["read"], summary["written"], summary["dirty"]) == (2, 2, 0)
    assert planned_ends(spec, run_id + "b") == {0: 12, 1: 0, 2: 0}
    assert committed(spec, topic) == {0: 12, 1: 0, 2: 0}
    assert_stored(redis_client, topic, {**{i: (0, i) for i in range(5)}, 8: (0, 9), 9: (0, 10)})


def test_unknown_topic_is_terminal_and_names_it(kafka_server):
    from accelsync.sources.kafka.source import KafkaSource

    spec = make_spec("accelsync_missing_" + uuid.uuid4().hex[:8])
    with pytest.raises(TerminalError, match=f"topic '{spec.source.topic}' does not exist"):
        KafkaSource(spec).plan(2)


def test_broker_down_is_transient_and_hides_the_password(services, monkeypatch):
    from accelsync.sources.kafka import client
    from accelsync.sources.kafka.source import KafkaSource

    secret = "Kafka-S3cret-pw"
    monkeypatch.setenv("AIRFLOW_CONN_DOWN_KAFKA", json.dumps({"conn_type": "kafka", "extra": {
        "bootstrap.servers": "127.0.0.1:1", "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
        "sasl.username": "svc", "sasl.password": secret}}))
    monkeypatch.setattr(client, "METADATA_TIMEOUT", 2.0)
    spec = make_spec("orders", source={"type": "kafka", "connection": "down_kafka", "topic": "orders",
                                       "schema": SCHEMA})
    with pytest.raises(TransientError, match="Kafka at 127.0.0.1:1") as failure:
        KafkaSource(spec).plan(2)
    assert secret not in str(failure.value)


