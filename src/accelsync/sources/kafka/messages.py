"""Kafka messages into Arrow batches: the value parsed by the shared RecordParser (or kept raw),
the meta columns beside it, a dirty record per message that does not parse."""

from __future__ import annotations

import operator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from confluent_kafka import Message

from accelsync.engine.dirty import DirtyLog
from accelsync.sources.kafka.spec import KafkaSourceSpec
from accelsync.sources.records import RecordParser


_SECOND = operator.itemgetter(1)
_META_TYPES = {"_key": pa.binary(), "_partition": pa.int32(), "_offset": pa.int64(),
               "_timestamp": pa.timestamp("us")}
META_SCHEMA = pa.schema([(name, _META_TYPES[name]) for name in KafkaSourceSpec.META_COLUMNS])


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


def make_decoder(options: KafkaSourceSpec, schema: pa.Schema) -> Decoder:
    if options.format == "raw":
        return RawDecoder()
    return TextDecoder(options.format, dict(options.schema_ or {}))
