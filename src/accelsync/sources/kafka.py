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
import operator
import re
import time
import uuid
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from accelsync.connections import Connection, get_connection
from accelsync.dirty import DirtyLog
from accelsync.errors import ConnectionConfigError, TerminalError, TransientError, is_availability_failure
from accelsync.plan import Plan
from accelsync.registry import register_source
from accelsync.sources.base import Source
from accelsync.sources.fields import arrow_type
from accelsync.sources.records import RecordParser
from accelsync.spec import KAFKA_META_COLUMNS, KafkaSource

log = logging.getLogger(__name__)

# A range is split only into pieces of at least this many messages (the last piece may be less).
MIN_RANGE_MESSAGES = 10_000
PIECES_PER_CHANNEL = 4  # offset ranges per channel: finer pieces balance uneven partitions
# Messages per consume() call, and so at most per Arrow batch.
BATCH_MESSAGES = 32_768
METADATA_TIMEOUT = 15.0  # seconds, for metadata, watermark and committed-offset requests
POLL_TIMEOUT = 0.5  # seconds one consume() call waits
STALL_TIMEOUT = 120.0  # seconds without any message before a read task gives up

# Reader defaults (any of them can be overridden in the connection's `extra`).
_READ_DEFAULTS = {
    "fetch.max.bytes": 64 * 1024 * 1024,
    "max.partition.fetch.bytes": 16 * 1024 * 1024,
    "receive.message.max.bytes": 128 * 1024 * 1024,
    "queued.max.messages.kbytes": 64 * 1024,
    "queued.min.messages": 200_000,
}
# Extra keys whose values are secrets: kept out of every message we raise or log.
_SECRET_KEY = re.compile(r"password|secret|jaas|token|credential|private", re.IGNORECASE)
# Errors that retrying cannot fix.
_TERMINAL_CODES = {
    KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION,
    KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED, KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError._AUTHENTICATION, KafkaError.INVALID_GROUP_ID, KafkaError._INVALID_ARG,
    KafkaError.TOPIC_EXCEPTION,
}
_SECOND = operator.itemgetter(1)
# _timestamp holds the message's millisecond timestamp as microseconds: Spark reads no other unit.
_META_TYPES = {"_key": pa.binary(), "_partition": pa.int32(), "_offset": pa.int64(),
               "_timestamp": pa.timestamp("us")}
META_SCHEMA = pa.schema([(name, _META_TYPES[name]) for name in KAFKA_META_COLUMNS])




def value_schema(options: KafkaSource) -> pa.Schema:
    """The columns parsed from message values, before the meta columns."""
    if options.format == "raw":
        return pa.schema([("value", pa.binary())])
    fields = []
    for name, kind in (options.schema_ or {}).items():
        if name in KAFKA_META_COLUMNS:
            raise TerminalError(f"source.schema: field {name!r} clashes with the meta column of that name")
        fields.append(pa.field(name, arrow_type(kind.replace(" ", ""))))
    return pa.schema(fields)


@register_source
class KafkaSourceReader(Source):
    type = "kafka"
    options: KafkaSource

    # ------------------------------------------------------------------ driver: plan

    def plan(self, channels: int) -> Plan:
        topic, group = self.options.topic, self.spec.kafka_group
        schema = pa.schema(list(value_schema(self.options)) + list(META_SCHEMA))
        client = _Client(get_connection(self.options.connection))
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
        client = _Client(get_connection(self.options.connection))
        consumer = client.consumer({
            "group.id": f"accelsync.reader.{uuid.uuid4().hex}",  # throwaway: tasks never commit
            "enable.auto.commit": False, "enable.auto.offset.store": False,
            "enable.partition.eof": True, "auto.offset.reset": "error",
        }, defaults=_READ_DEFAULTS)
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
        client = _Client(get_connection(self.options.connection))
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


# ---------------------------------------------------------------------- client

class _Client:
    """confluent-kafka calls with accelsync's errors (terminal / transient) and no secrets in them."""

    def __init__(self, conn: Connection):
        self.conn = conn
        extra = dict(conn.extra or {})
        if "bootstrap.servers" not in extra and conn.host:
            extra["bootstrap.servers"] = f"{conn.host}:{conn.port or 9092}"
        if "bootstrap.servers" not in extra:
            raise ConnectionConfigError(f"connection {conn.conn_id!r}: no `bootstrap.servers` in its extra "
                                        f"(e.g. {{\"extra\": {{\"bootstrap.servers\": \"host:9092\"}}}})")
        self.extra = extra
        self.servers = str(extra["bootstrap.servers"])
        self._secrets = [str(v) for k, v in extra.items() if _SECRET_KEY.search(k) and v]
        if conn.password:
            self._secrets.append(conn.password)

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return self.conn.redact(text)

    def consumer(self, settings: dict[str, Any], defaults: dict[str, Any] | None = None) -> Consumer:
        """A Consumer with every `extra` key: over `defaults`, under `settings`."""
        config = {"socket.connection.setup.timeout.ms": 10_000, **(defaults or {}), **self.extra,
                  **settings, "logger": log}
        try:
            return Consumer(config)
        except (KafkaException, ValueError, TypeError) as exc:
            raise ConnectionConfigError(f"connection {self.conn.conn_id!r}: Kafka client configuration "
                                        f"rejected: {self.redact(_text(exc))}") from None

    def error(self, err: KafkaError | KafkaException | Exception, doing: str) -> Exception:
        if isinstance(err, KafkaException) and err.args and isinstance(err.args[0], KafkaError):
            err = err.args[0]
        text = self.redact(_text(err))
        if isinstance(err, KafkaError) and err.code() in _TERMINAL_CODES:
            return TerminalError(f"Kafka {doing}: {text}")
        if is_availability_failure(err):
            return TransientError(f"Kafka at {self.servers} {doing} failed: {text}")
        return TerminalError(f"Kafka {doing} failed: {text}")

    def partitions(self, consumer: Consumer, topic: str) -> list[int]:
        try:
            metadata = consumer.list_topics(topic, timeout=METADATA_TIMEOUT)
        except KafkaException as exc:
            raise self.error(exc, f"metadata for topic {topic!r}") from None
        found = metadata.topics.get(topic)
        if found is None or (found.error is not None and found.error.code() in (
                KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC)):
            raise TerminalError(f"source.topic: topic {topic!r} does not exist on {self.servers}")
        if found.error is not None:
            raise self.error(found.error, f"metadata for topic {topic!r}")
        if not found.partitions:
            raise TransientError(f"Kafka topic {topic!r} has no partitions yet")
        return sorted(found.partitions)

    def committed(self, consumer: Consumer, topic: str, partitions: list[int]) -> dict[int, int]:
        """The group's committed offsets; partitions without one are left out."""
        try:
            offsets = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=METADATA_TIMEOUT)
        except KafkaException as exc:
            raise self.error(exc, "fetching committed offsets") from None
        found = {}
        for tp in offsets:
            if tp.error is not None:
                raise self.error(tp.error, f"fetching the committed offset of partition {tp.partition}")
            if tp.offset >= 0:
                found[tp.partition] = tp.offset
        return found

    def watermarks(self, consumer: Consumer, topic: str, partitions: list[int]) -> dict[int, tuple[int, int]]:
        """(first kept offset, end of the readable log) of each partition, asked of the broker now.

        The end is the high watermark, or under `isolation.level=read_committed` (librdkafka's
        default) the last stable offset: messages of a transaction still open at plan time belong
        to a later run, and the range may end on a transaction marker (see `consume_range`).
        """
        marks = {}
        for p in partitions:
            try:
                marks[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=METADATA_TIMEOUT,
                                                          cached=False)
            except KafkaException as exc:
                raise self.error(exc, f"listing offsets of partition {p}") from None
            if marks[p] is None:
                raise TransientError(f"Kafka at {self.servers} did not answer for the offsets of "
                                     f"{topic} partition {p}")
        return marks

    def consume_range(self, consumer: Consumer, topic: str, partition: int, start: int,
                      end: int) -> Iterator[list[Message]]:
        """Lists of messages with start <= offset < end, in offset order, until the range is read."""
        position = start  # the next offset wanted
        idle_since = time.monotonic()
        while position < end:
            messages = consumer.consume(min(BATCH_MESSAGES, end - position), timeout=POLL_TIMEOUT)
            if not messages:
                if time.monotonic() - idle_since > STALL_TIMEOUT:
                    raise TransientError(f"Kafka topic {topic} partition {partition}: no message for "
                                         f"{STALL_TIMEOUT:.0f}s at offset {position} (range ends at {end})")
                continue
            idle_since = time.monotonic()
            at_end = False  # the log ends at or past `end`: offsets left are gaps
            if any(map(Message.error, messages)):  # (KafkaError == None raises: test truth, not equality)
                for message in messages:
                    err = message.error()
                    if err is None:
                        continue
                    if err.code() == KafkaError._PARTITION_EOF:
                        # Gaps (compaction, transaction markers) may end the range: no message at end - 1.
                        at_end = at_end or message.offset() >= end
                    elif err.code() == KafkaError._AUTO_OFFSET_RESET:
                        raise TransientError(f"Kafka topic {topic} partition {partition}: offset {position} "
                                             f"is no longer on the broker (deleted by retention after "
                                             f"planning); a rerun plans again from what is left")
                    else:
                        raise self.error(err, f"reading partition {partition}")
                messages = [m for m in messages if m.error() is None]
            if messages and messages[-1].offset() >= end:
                messages = [m for m in messages if m.offset() < end]
                at_end = True
            if messages:
                position = messages[-1].offset() + 1
            if at_end:
                position = end
            if messages:
                yield messages

    def commit(self, consumer: Consumer, topic: str, offsets: dict[int, int]) -> None:
        try:
            result = consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in sorted(offsets.items())],
                                     asynchronous=False)
        except KafkaException as exc:
            raise self.error(exc, "committing offsets") from None
        for tp in result or []:
            if tp.error is not None:
                raise self.error(tp.error, f"committing the offset of partition {tp.partition}")


def _text(err: Any) -> str:
    if isinstance(err, KafkaError):
        return err.str()
    return str(err)


# ---------------------------------------------------------------------- messages -> Arrow

def to_batch(messages: list[Message], partition: int, decoder: "Decoder", schema: pa.Schema, topic: str,
             dirty: DirtyLog) -> pa.RecordBatch:
    """One Arrow batch of parsed values plus meta columns; unparseable messages go to `dirty`."""
    # map() over the C methods: the per-message Python cost is what bounds a Kafka read.
    n = len(messages)
    values = list(map(Message.value, messages))
    keys = list(map(Message.key, messages))
    first, last = messages[0].offset(), messages[-1].offset()
    if last - first == n - 1:  # offsets only grow, so no gap: no need to ask each message
        offsets = np.arange(first, last + 1, dtype=np.int64)
    else:
        offsets = np.fromiter(map(Message.offset, messages), dtype=np.int64, count=n)
    stamps = np.fromiter(map(_SECOND, map(Message.timestamp, messages)), dtype=np.int64, count=n)
    columns, bad = decoder.decode(values)
    meta = [binary_array(keys), pa.array(np.full(n, partition, dtype=np.int32)), pa.array(offsets),
            pa.array(stamps * 1000, pa.timestamp("us"), mask=stamps < 0)]
    if bad:
        for index in sorted(bad):
            dirty.add({"topic": topic, "partition": partition, "offset": int(offsets[index])}, bad[index],
                      {"key": keys[index], "value": values[index]})
        keep = np.ones(n, dtype=bool)
        keep[list(bad)] = False
        mask = pa.array(keep)
        meta = [column.filter(mask) for column in meta]
    return pa.RecordBatch.from_arrays(columns + meta, schema=schema)


def binary_array(values: list[bytes | None]) -> pa.Array:
    """A binary array from Python bytes, built from one joined buffer (no per-item Arrow calls)."""
    n = len(values)
    nulls = values.count(None)
    if nulls == n:
        return pa.nulls(n, pa.binary())
    validity = None
    if nulls:
        validity = pa.array(np.fromiter((v is not None for v in values), dtype=bool, count=n)).buffers()[1]
        values = [b"" if v is None else v for v in values]
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=n)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    kind, width = (pa.binary(), np.int32) if offsets[-1] < 2 ** 31 else (pa.large_binary(), np.int64)
    array = pa.Array.from_buffers(kind, n, [validity, pa.py_buffer(offsets.astype(width)),
                                            pa.py_buffer(b"".join(values))], null_count=nulls)
    return array if kind == pa.binary() else array.cast(pa.binary())


class Decoder:
    """Turns a list of message values into columns of the value schema.

    `decode` returns the columns of the good messages (in order) and {index: reason} of the bad.
    """

    def decode(self, values: list[bytes | None]) -> tuple[list[pa.Array], dict[int, str]]:
        raise NotImplementedError


class TextDecoder(Decoder):
    """JSON or CSV message values, parsed by the `RecordParser` every text source shares (a log
    line with the same text gives the same row). A message is one record: a tombstone, an empty
    or blank message, or one that is not UTF-8 is dirty."""

    def __init__(self, fmt: str, fields: dict[str, str]):
        self.format = fmt
        self.parser = RecordParser(fmt, fields)

    def decode(self, values: list[bytes | None]) -> tuple[list[pa.Array], dict[int, str]]:
        raw = binary_array(values)
        bad: dict[int, str] = {}
        try:
            text = raw.cast(pa.string())
        except pa.ArrowInvalid:
            text = self._utf8_or_dirty(raw, bad)
        data = raw.buffers()[2]
        breaks = data is not None and _has_line_break(data)
        if self.format == "csv":
            if breaks:  # producers often end a CSV record with a line break
                text = pc.utf8_rtrim(text, "\r\n")
        elif breaks:
            text = pc.replace_substring_regex(text, "[\r\n]", " ")  # pretty JSON: line breaks are spaces
        usable = pc.fill_null(pc.invert(pc.or_(pc.equal(pc.binary_length(text), 0), pc.utf8_is_space(text))), False)
        if not pc.all(usable).as_py():
            for index in pc.indices_nonzero(pc.invert(usable)).to_pylist():
                bad.setdefault(index, "message has no value (a tombstone)" if values[index] is None
                               else "empty message")
        keep = np.ones(len(values), dtype=bool)
        keep[list(bad)] = False
        index = np.flatnonzero(keep)
        columns, failures = self.parser.parse(text.filter(pa.array(keep)) if bad else text)
        for position, reason in failures.items():
            bad[int(index[position])] = reason
        if failures:
            ok = np.ones(len(index), dtype=bool)
            ok[list(failures)] = False
            mask = pa.array(ok)
            columns = [column.filter(mask) for column in columns]
        return columns, bad

    @staticmethod
    def _utf8_or_dirty(raw: pa.Array, bad: dict[int, str]) -> pa.Array:
        valid = []
        for position, value in enumerate(raw.to_pylist()):
            try:
                value is None or value.decode("utf-8")
                valid.append(True)
            except UnicodeDecodeError as exc:
                valid.append(False)
                bad[position] = f"bad encoding: not valid UTF-8 ({exc.reason} at byte {exc.start})"
        return pc.if_else(pa.array(valid), raw, pa.scalar(b"", pa.binary())).cast(pa.string())


class RawDecoder(Decoder):
    """The value's bytes unchanged, in one binary column `value`; a tombstone is NULL."""

    def decode(self, values: list[bytes | None]) -> tuple[list[pa.Array], dict[int, str]]:
        return [binary_array(values)], {}


def _has_line_break(data: pa.Buffer) -> bool:
    """Whether any message holds a line break (memchr over the values' joined bytes)."""
    joined = data.to_pybytes()
    return b"\n" in joined or b"\r" in joined


def make_decoder(options: KafkaSource, schema: pa.Schema) -> Decoder:
    if options.format == "raw":
        return RawDecoder()
    return TextDecoder(options.format, dict(options.schema_ or {}))
