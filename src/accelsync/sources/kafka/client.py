"""The broker calls a Kafka source makes (metadata, watermarks, committed offsets, reading a range,
committing), with accelsync's error families and no secret in any message."""

from __future__ import annotations

import logging
import re
import time
from typing import Any, Iterator

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from accelsync.connections import Connection
from accelsync.errors import ConnectionConfigError, TerminalError, TransientError, is_availability_failure


log = logging.getLogger(__name__)
BATCH_MESSAGES = 32_768
METADATA_TIMEOUT = 15.0  # seconds, for metadata, watermark and committed-offset requests
POLL_TIMEOUT = 0.5  # seconds one consume() call waits
STALL_TIMEOUT = 120.0  # seconds without any message before a read task gives up
READ_DEFAULTS = {
    "fetch.max.bytes": 64 * 1024 * 1024,
    "max.partition.fetch.bytes": 16 * 1024 * 1024,
    "receive.message.max.bytes": 128 * 1024 * 1024,
    "queued.max.messages.kbytes": 64 * 1024,
    "queued.min.messages": 200_000,
}
_SECRET_KEY = re.compile(r"password|secret|jaas|token|credential|private", re.IGNORECASE)
_TERMINAL_CODES = {
    KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC, KafkaError._UNKNOWN_PARTITION,
    KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED, KafkaError.SASL_AUTHENTICATION_FAILED,
    KafkaError._AUTHENTICATION, KafkaError.INVALID_GROUP_ID, KafkaError._INVALID_ARG,
    KafkaError.TOPIC_EXCEPTION,
}
# A group's coordinator moves or is still loading right after a broker starts (its first
# FindCoordinator creates __consumer_offsets) or fails over: Kafka's clients retry these until
# their timeout, and so do we rather than fail the run.
_COORDINATOR_CODES = {
    KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
}


class KafkaClient:
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
        wanted = [TopicPartition(topic, p) for p in partitions]
        offsets = self._with_coordinator(lambda: consumer.committed(wanted, timeout=METADATA_TIMEOUT),
                                         "fetching committed offsets")
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
        wanted = [TopicPartition(topic, p, o) for p, o in sorted(offsets.items())]
        result = self._with_coordinator(lambda: consumer.commit(offsets=wanted, asynchronous=False),
                                        "committing offsets")
        for tp in result or []:
            if tp.error is not None:
                raise self.error(tp.error, f"committing the offset of partition {tp.partition}")

    def _with_coordinator(self, call: Any, doing: str) -> Any:
        """`call()`, again while the group coordinator is moving or loading, up to METADATA_TIMEOUT."""
        deadline = time.monotonic() + METADATA_TIMEOUT
        pause = 0.1
        while True:
            try:
                result = call()
                # The error may also come per partition, in the returned list.
                moving = [tp.error for tp in result or [] if tp.error is not None
                          and tp.error.code() in _COORDINATOR_CODES]
                if not moving:
                    return result
                err = moving[0]
            except KafkaException as exc:
                err = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
                if err is None or err.code() not in _COORDINATOR_CODES:
                    raise self.error(exc, doing) from None
            if time.monotonic() + pause > deadline:
                raise self.error(err, doing)
            log.info("Kafka %s: %s; asking again in %.1f s", doing, err.str(), pause)
            time.sleep(pause)
            pause = min(pause * 2, 2.0)


def _text(err: Any) -> str:
    if isinstance(err, KafkaError):
        return err.str()
    return str(err)
