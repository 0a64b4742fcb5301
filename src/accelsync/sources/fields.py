"""The field types of a `schema:` in a spec (kafka, logs) and their Arrow types."""

from __future__ import annotations

import re

import pyarrow as pa

from accelsync.errors import TerminalError

DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")
SIMPLE_TYPES = {
    "string": pa.string(), "int": pa.int32(), "long": pa.int64(), "float": pa.float32(),
    "double": pa.float64(), "boolean": pa.bool_(), "timestamp": pa.timestamp("us"),
    "date": pa.date32(), "binary": pa.binary(),
}


def arrow_type(kind: str) -> pa.DataType:
    """The Arrow type of a spec field type (string, long, decimal(10,2), ...)."""
    kind = kind.replace(" ", "")
    if kind in SIMPLE_TYPES:
        return SIMPLE_TYPES[kind]
    match = DECIMAL.match(kind)
    if match:
        precision, scale = int(match.group(1)), int(match.group(2))
        if not 1 <= precision <= 38 or scale > precision:
            raise TerminalError(f"source.schema: {kind} is out of range; use decimal(p,s) with "
                                "1 <= p <= 38 and s <= p")
        return pa.decimal128(precision, scale)
    raise TerminalError(f"source.schema: {kind!r} is not a type")
