"""Benchmark: Kafka -> Redis (hash), accelsync beside the script a user would otherwise write.

    .venv/bin/python bench/kafka_to_redis.py --rows 1000000

Produces `rows` JSON orders (order_id, user_id, amount, status) to a fresh topic on the local
broker (`accelsync devstack up`), then reads the whole topic into Redis db 3 (flushed before each
run) three times, in one process, one after the other: with a hand-written confluent-kafka
consumer loop + json.loads + redis-py pipeline, then with accelsync twice (first run, then warm;
a new consumer group each run). Prints rows/s of each and the ratios; the gate is
timed apart. The topic is deleted and db 3 flushed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid


import redis
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from harness import print_result, redis_check, time_stages

SERVERS = "127.0.0.1:9092"
REDIS_DB = 3  # the MySQL bench uses db 1, the logs bench db 2
STATUSES = (b"new", b"paid", b"shipped", b"cancelled", b"refunded")


def produce(topic: str, rows: int, partitions: int) -> float:
    """`rows` orders spread over the partitions, keyed by order id; returns seconds taken."""
    admin = AdminClient({"bootstrap.servers": SERVERS})
    for future in admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).values():
        future.result(timeout=30)
    producer = Producer({"bootstrap.servers": SERVERS, "linger.ms": 50, "batch.num.messages": 10_000,
                         "batch.size": 1_000_000, "queue.buffering.max.messages": 1_000_000,
                         "queue.buffering.max.kbytes": 1_048_576, "acks": 1})
    started = time.perf_counter()
    for i in range(rows):
        value = b'{"order_id": %d, "user_id": %d, "amount": %d.%02d, "status": "%s"}' % (
            i, i % 50_000, i % 1000, i % 100, STATUSES[i % 5])
        while True:
            try:
                producer.produce(topic, key=b"%d" % i, value=value, partition=i % partitions)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(120) == 0
    return time.perf_counter() - started


def hand_written(topic: str, rows: int, partitions: int) -> float:
    """What a user writes without accelsync: a consumer loop, json.loads and a redis-py pipeline."""
    target = redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB)
    target.flushdb()
    started = time.perf_counter()
    consumer = Consumer({"bootstrap.servers": SERVERS, "group.id": f"bench.hand.{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    # assign(), as accelsync's read tasks do: a group join (subscribe) would add a rebalance.
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    pipe = target.pipeline(transaction=False)
    done = pending = 0
    while done < rows:
        for message in consumer.consume(10_000, timeout=1.0):
            if message.error():
                continue
            order = json.loads(message.value())
            pipe.hset(f"order:{order['order_id']}", mapping={
                "user_id": order["user_id"], "amount": str(order["amount"]), "status": order["status"]})
            done += 1
            pending += 1
        if pending >= 10_000:
            pipe.execute()
            pending = 0
    pipe.execute()
    consumer.close()
    seconds = time.perf_counter() - started
    assert target.dbsize() == rows, target.dbsize()
    return seconds


def with_accelsync(topic: str, rows: int, channels: int) -> tuple[float, dict]:
    from accelsync.spec import parse_spec

    os.environ["AIRFLOW_CONN_BENCH_KAFKA"] = json.dumps({"conn_type": "kafka",
                                                        "extra": {"bootstrap.servers": SERVERS}})
    os.environ["AIRFLOW_CONN_BENCH_KAFKA_REDIS"] = f"redis://127.0.0.1:6379/{REDIS_DB}"
    spec = parse_spec({
        "name": "bench_kafka_to_redis",
        "source": {"type": "kafka", "connection": "bench_kafka", "topic": topic,
                   "group": f"bench.accelsync.{uuid.uuid4().hex}", "format": "json",
                   "schema": {"order_id": "long", "user_id": "long", "amount": "decimal(10,2)",
                              "status": "string"}},
        "target": {"type": "redis", "connection": "bench_kafka_redis", "key": "order:{order_id}",
                   "value": {"type": "hash", "fields": ["user_id", "amount", "status"]}},
        "speed": {"channels": channels},
        "quality": {"readback": {"sample": 1000}},
    })
    return time_stages(spec, redis_check(REDIS_DB, rows))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--channels", type=int, default=2)
    args = parser.parse_args()
    topic = f"bench_orders_{uuid.uuid4().hex[:8]}"
    produce_seconds = produce(topic, args.rows, args.partitions)
    try:
        with tempfile.TemporaryDirectory() as home:
            os.environ.setdefault("ACCELSYNC_HOME", home)
            hand = hand_written(topic, args.rows, args.partitions)
            ours, gate = with_accelsync(topic, args.rows, args.channels)
            # Once more, warm: a long-lived worker (Airflow, the CLI daemon) pays start-up once.
            ours_warm, _ = with_accelsync(topic, args.rows, args.channels)
    finally:
        redis.Redis(host="127.0.0.1", port=6379, db=REDIS_DB).flushdb()
        admin = AdminClient({"bootstrap.servers": SERVERS})
        for future in admin.delete_topics([topic]).values():  # the broker keeps topics over restarts
            future.result(timeout=30)
    print_result(args.rows, args.channels, hand, ours, ours_warm, gate, "confluent-kafka + json + redis-py",
                 produce_s=round(produce_seconds, 2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
