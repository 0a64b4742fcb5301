"""Values as the text a sink writes, computed row by row, independently of the column-wise
encoder in `resp`: the gate's read-back compares the target with this."""

from __future__ import annotations

import math
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import numpy as np


def text(value: Any) -> Any:
    """A source value as the text the sink writes (for read-back: computed row by row here,
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
