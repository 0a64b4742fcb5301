"""Kafka source: a topic read as a bounded batch, committed only at publish.

`plan` fixes one offset range per partition, from the group's committed offset (or `start` when
there is none) to the end of the log now; long ranges are split so about `speed.channels` tasks
share the work. Each task `assign()`s its range with a throwaway group id and never commits.
`publish` commits the group to exactly the planned ends, so a failed gate or a killed run
commits nothing and the next run reads the same messages again, and messages produced after
plan belong to the next run.

Messages are parsed a whole batch at a time by the `RecordParser` that log files use too
(`accelsync.sources.records`: Arrow's JSON and CSV readers, bisecting a batch that fails until
the bad messages are isolated), so the same text gives the same row and the same dirty reason
from either source. Each bad message becomes a dirty record with its topic, partition, offset
and reason.
"""

from __future__ import annotations

import logging
import math
import uuid
from typing import Iterator

import pyarrow as pa
from confluent_kafka import TopicPartition

from accelsync.connections import get_connection
from accelsync.engine.dirty import DirtyLog
from accelsync.engine.plan import Plan
from accelsync.errors import TerminalError
from accelsync.sources.base import Source
from accelsync.sources.fields import arrow_type
from accelsync.sources.kafka.client import KafkaClient, READ_DEFAULTS
from accelsync.sources.kafka.messages import META_SCHEMA, make_decoder, to_batch
from accelsync.sources.kafka.spec import KafkaSourceSpec


log = logging.getLogger(__name__)

# A range is split only into pieces of at least this many messages (the last piece may be less).
MIN_RANGE_MESSAGES = 10_000
PIECES_PER_CHANNEL = 4  # offset ranges per channel: finer pieces balance uneven partitions
# Messages per consume() call, and so at most per Arrow batch.

# Reader defaults (any of them can be overridden in the connection's `extra`).
# Extra keys whose values are secrets: kept out of every message we raise or log.
# Errors that retrying cannot fix.
# _timestamp holds the message's millisecond timestamp as microseconds: Spark reads no other unit.


def value_schema(options: KafkaSourceSpec) -> pa.Schema:
    """The columns parsed from message values, before the meta columns."""
    if options.format == "raw":
        return pa.schema([("value", pa.binary())])
    fields = []
    for name, kind in (options.schema_ or {}).items():
        if name in KafkaSourceSpec.META_COLUMNS:
            raise TerminalError(f"source.schema: field {name!r} clashes with the meta column of that name")
        fields.append(pa.field(name, arrow_type(kind.replace(" ", ""))))
    return pa.schema(fields)


class KafkaSource(Source):
    type = "kafka"
    options: KafkaSourceSpec

    # ------------------------------------------------------------------ driver: plan

    def plan(self, channels: int) -> Plan:
        topic, group = self.options.topic, self.options.group_of(self.spec.name)
        schema = pa.schema(list(value_schema(self.options)) + list(META_SCHEMA))
        client = KafkaClient(get_connection(self.options.connection))
        consumer = client.consumer({"group.id": group, "enable.auto.commit": False})
        try:
            partitions = client.partitions(consumer, topic)
            committed = client.committed(consumer, topic, partitions)
            watermarks = client.watermarks(consumer, topic, partitions)
        finally:
            consumer.close()
        ends = {p: high for p, (low, high) in watermarks.items()}
        starts, notes = {}, []
        for p in partitions:
            starts[p], note = self._start(p, committed.get(p), watermarks[p][0], ends[p])
            if note:
                notes.append(note)
                log.warning("kafka topic %s, group %s: %s", topic, group, note)
        ranges = split_ranges({p: (starts[p], ends[p]) for p in partitions}, channels)
        total = sum(r["end"] - r["start"] for r in ranges)
        state = {"topic": topic, "group": group,
                 "start_offsets": {str(p): starts[p] for p in partitions},
                 "end_offsets": {str(p): ends[p] for p in partitions},  # _start keeps starts <= ends
                 "messages": total}
        if notes:
            state["notes"] = notes
        busy = len({r["partition"] for r in ranges})
        how = (f"{len(ranges)} offset ranges over {busy} of {len(partitions)} partitions of {topic}, "
               f"{total} messages" if ranges else f"nothing new in {topic} for group {group}")
        return Plan(schema, ranges, state, how, max_records=total)

    def _start(self, partition: int, committed: int | None, low: int, end: int) -> tuple[int, str | None]:
        """Where this run starts reading a partition, and a note when that is not where the
        group left off (Kafka's auto.offset.reset, made visible in the plan)."""
        reset = low if self.options.start == "earliest" else end
        if committed is None:
            return reset, None
        if committed < low:
            return low, (f"partition {partition}: offsets {committed}..{low - 1} were deleted by "
                         f"retention before they were read")
        if committed > end:
            return reset, (f"partition {partition}: committed offset {committed} is past the end of the "
                           f"log ({end}): the topic was recreated or truncated; starting from "
                           f"{self.options.start}")
        return committed, None

    # ------------------------------------------------------------------ executor: read

    def read(self, plan: Plan, partition: dict, dirty: DirtyLog) -> Iterator[pa.RecordBatch]:
        topic = plan.state["topic"]
        number, start, end = int(partition["partition"]), int(partition["start"]), int(partition["end"])
        decoder = make_decoder(self.options, plan.schema)
        client = KafkaClient(get_connection(self.options.connection))
        consumer = client.consumer({
            "group.id": f"accelsync.reader.{uuid.uuid4().hex}",  # throwaway: tasks never commit
            "enable.auto.commit": False, "enable.auto.offset.store": False,
            "enable.partition.eof": True, "auto.offset.reset": "error",
        }, defaults=READ_DEFAULTS)
        try:
            consumer.assign([TopicPartition(topic, number, start)])
            for messages in client.consume_range(consumer, topic, number, start, end):
                batch = to_batch(messages, number, decoder, plan.schema, topic, dirty)
                if batch.num_rows:
                    yield batch
        finally:
            consumer.close()

    # ------------------------------------------------------------------ driver: publish

    def publish(self, plan: Plan) -> dict:
        """Commit the group to the planned end offsets (never moving one backwards)."""
        ends = {int(p): int(o) for p, o in plan.state.get("end_offsets", {}).items()}
        if not ends:
            return {"committed": {}}
        topic, group = plan.state["topic"], plan.state["group"]
        client = KafkaClient(get_connection(self.options.connection))
        consumer = client.consumer({"group.id": group, "enable.auto.commit": False})
        try:
            current = client.committed(consumer, topic, sorted(ends))
            # Another run published further since this plan: keep its position.
            target = {p: max(end, current.get(p, end)) for p, end in ends.items()}
            client.commit(consumer, topic, target)
        finally:
            consumer.close()
        return {"committed": {str(p): o for p, o in sorted(target.items())}}


def split_ranges(bounds: dict[int, tuple[int, int]], channels: int) -> list[dict[str, int]]:
    """Offset ranges of about total/(channels x PIECES_PER_CHANNEL) messages (never below
    MIN_RANGE_MESSAGES, except the last piece of a partition), in partition order; empty
    partitions give none. Pieces smaller than a channel's share let the channels, taking the
    next piece as they finish one, end together even when partitions differ in size."""
    total = sum(max(0, end - start) for start, end in bounds.values())
    if total == 0:
        return []
    size = max(MIN_RANGE_MESSAGES, math.ceil(total / (max(1, channels) * PIECES_PER_CHANNEL)))
    ranges = []
    for p in sorted(bounds):
        start, end = bounds[p]
        for low in range(start, end, size):
            ranges.append({"partition": p, "start": low, "end": min(low + size, end)})
    return ranges
