"""How a Kafka source splits the work into offset ranges, and where a range ends whatever the log
holds at its end (pure logic: a scripted consumer, no broker)."""

from __future__ import annotations

import pytest

SERVERS = "127.0.0.1:9092"  # never contacted: the consumer is scripted
STAMP_MS = 1_709_287_200_000


def test_ranges_share_the_work_between_channels():
    from accelsync.sources.kafka.source import MIN_RANGE_MESSAGES, split_ranges

    ranges = split_ranges({0: (0, 60_000), 1: (5, 5), 2: (100, 40_100)}, channels=4)
    assert [(r["partition"], r["start"], r["end"]) for r in ranges] == [
        (0, start, start + 10_000) for start in range(0, 60_000, 10_000)] + [
        (2, start, start + 10_000) for start in range(100, 40_100, 10_000)]
    # three equal partitions over two channels: pieces a quarter of a channel's share, so
    # channels taking the next piece as they finish end within one piece of each other
    ranges = split_ranges({p: (0, 333_334) for p in range(3)}, channels=2)
    assert all(r["end"] - r["start"] <= 125_001 for r in ranges) and len(ranges) == 9
    loads = [0, 0]
    for piece in ranges:
        loads[loads.index(min(loads))] += piece["end"] - piece["start"]
    assert max(loads) - min(loads) <= 125_001
    small = split_ranges({0: (0, 15_000)}, channels=8)
    assert [(r["start"], r["end"]) for r in small] == [(0, MIN_RANGE_MESSAGES), (MIN_RANGE_MESSAGES, 15_000)]
    assert split_ranges({0: (7, 7)}, channels=2) == []


@pytest.mark.parametrize("script, offsets", [
    # messages past the planned end (produced after plan) are left for the next run
    ([[5, 6], [7, 8, 9]], [[5, 6], [7]]),
    # a gap at the end (compaction, a transaction marker at 7): the EOF event ends the range
    ([[5, 6, "eof 8"]], [[5, 6]]),
    ([[5], [6], [], ["eof 8"]], [[5], [6]]),
    # an EOF before the end is only a pause: more messages follow
    ([[5, "eof 6"], [], [6, 7]], [[5], [6, 7]]),
])
def test_range_ends_at_the_planned_offset_whatever_the_log_does(script, offsets):
    from confluent_kafka import KafkaError, Message

    from accelsync.connections import Connection
    from accelsync.sources.kafka.client import KafkaClient

    def message(item):
        if isinstance(item, str):
            return Message(topic="t", partition=0, offset=int(item.split()[1]),
                           error=KafkaError(KafkaError._PARTITION_EOF))
        return Message(topic="t", partition=0, offset=item, value=b"{}", timestamp=(1, STAMP_MS))

    class ScriptedConsumer:
        def __init__(self):
            self.replies = [[message(item) for item in reply] for reply in script]

        def consume(self, num_messages, timeout):
            assert self.replies, "the range loop asked for more after its end"
            return self.replies.pop(0)

    client = KafkaClient(Connection("k", "kafka", extra={"bootstrap.servers": SERVERS}))
    got = client.consume_range(ScriptedConsumer(), "t", 0, start=5, end=8)
    assert [[m.offset() for m in chunk] for chunk in got] == offsets
