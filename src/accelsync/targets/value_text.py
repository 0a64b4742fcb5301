"""Values as the text every target writes, the rules the README gives ("text of a value").

Column-wise (`as_text`, `render`): a whole Arrow column at a time, in C++, for the writers.
Row by row (`text`, `same`, `show`): the same rules for one value, computed independently, for
the gate's read-back to compare the target with.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from accelsync.templates import Template


def as_text(column: pa.Array) -> pa.Array:
    """The column as Redis text (binary), the way users read values back.

    Integers and decimals as digits (decimals keep their scale: 12.50), floats in shortest
    round-trip form, dates as YYYY-MM-DD, datetimes as YYYY-MM-DD HH:MM:SS[.ffffff], booleans as
    true/false, strings as UTF-8, binary unchanged. Nulls stay null.
    """
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.dictionary_decode()
        kind = column.type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return column.cast(pa.binary())
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return column.cast(pa.string()).cast(pa.binary())
    if pa.types.is_timestamp(kind):
        return _timestamp_text(column)
    return pc.cast(column, pa.string()).cast(pa.binary())


def _timestamp_text(column: pa.Array) -> pa.Array:
    """YYYY-MM-DD HH:MM:SS, with .ffffff only where the value has a fraction of a second."""
    plain = column.cast(pa.timestamp(column.type.unit, tz=None)) if column.type.tz else column
    if column.type.unit == "s":
        return pc.cast(plain, pa.string()).cast(pa.binary())
    ticks = {"ms": 1000, "us": 1_000_000, "ns": 1_000_000_000}[column.type.unit]
    raw = plain.cast(pa.int64())
    whole = pc.equal(pc.subtract(raw, pc.multiply(pc.divide(raw, ticks), ticks)), 0)
    seconds = pc.cast(plain.cast(pa.timestamp("s"), safe=False), pa.string())
    if pc.all(pc.fill_null(whole, True)).as_py():
        return seconds.cast(pa.binary())
    fraction = pc.cast(plain.cast(pa.timestamp("us"), safe=False), pa.string())
    return pc.if_else(whole, seconds, fraction).cast(pa.binary())


def render(template: Template, batch: pa.RecordBatch) -> pa.Array:
    """The template rendered for every row (binary); null where a referenced column is null."""
    parts: list = []
    for literal, column in zip(template.literals, template.columns):
        if literal:
            parts.append(literal.encode())
        parts.append(as_text(batch.column(column)))
    if template.literals[-1]:
        parts.append(template.literals[-1].encode())
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, b"")


def concat(values: pa.Array) -> bytes:
    """All rows of a binary array as one buffer (nulls skipped)."""
    values = values.drop_null() if values.null_count else values
    if len(values) == 0:
        return b""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    # The data buffer of a null-free binary array already is the concatenation: slice it.
    offsets = values.buffers()[1]
    first, last = np.frombuffer(offsets, dtype=np.int32)[[values.offset, values.offset + len(values)]]
    return values.buffers()[2][int(first):int(last)].to_pybytes()


# ---- row by row, for the read-back


def text(value: Any) -> Any:
    """A source value as the text the target writes (for read-back: computed row by row here,
    independently of the column-wise encoder)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ").encode()
    if isinstance(value, (date, Decimal, int)):
        return str(value).encode()
    return str(value).encode()


def same(expected: Any, actual: bytes) -> bool:
    if isinstance(expected, float):
        try:
            got = float(actual)
        except ValueError:
            return False
        # A FLOAT (float32) column is written as its shortest float32 text ("1.1"), which reads
        # back as a double that differs from the float32 value widened to a double.
        return got == expected or float(np.float32(got)) == expected or (math.isnan(expected) and math.isnan(got))
    return text(expected) == actual


def show(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", errors="backslashreplace")
    return value if value is None or isinstance(value, (int, float, str)) else str(value)
