"""The building blocks of every spec model: the strict base model, durations, identifiers and the
field types of a `schema:`, each with the error text a user sees."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Optional

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, WithJsonSchema

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
QUALIFIED_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
_DURATION = re.compile(r"^\s*(\d+)\s*(ms|[smhd])\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_FIELD_TYPES = re.compile(r"^(string|int|long|float|double|boolean|timestamp|date|binary|decimal\(\d+,\s*\d+\))$")
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")
MAX_DECIMAL_PRECISION = 38  # Arrow's decimal128, Spark's DecimalType


class Model(BaseModel):
    """Base of every spec model: unknown fields are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldError(ValueError):
    """A model-level check that knows which field it is about."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


def parse_duration(value: Any) -> timedelta:
    """Turn `30s`, `20m`, `2h`, `7d` or a number of seconds into a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("a duration is a number with a unit: 30s, 20m, 2h, 7d")
    if isinstance(value, (int, float)):
        seconds = value
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration; use a number with a unit: 30s, 20m, 2h, 7d")
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    milliseconds = round(value.total_seconds() * 1000)
    if milliseconds % 1000:
        return f"{milliseconds}ms"
    seconds = milliseconds // 1000
    for unit in ("d", "h", "m"):
        if seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\d+[smhd]$", "examples": ["30s", "20m", "2h", "7d"]}),
]


def identifier(value: str, what: str = "identifier", qualified: bool = False) -> str:
    pattern = QUALIFIED_IDENTIFIER if qualified else IDENTIFIER
    if not pattern.match(value):
        raise ValueError(f"{value!r} is not a valid {what} (letters, digits, _ and $; no quotes or spaces)")
    return value


def check_schema(v: Optional[dict[str, str]]) -> Optional[dict[str, str]]:
    """A `schema:` of field: type, with names no meta column of any source takes."""
    if v is None:
        return v
    for name, kind in v.items():
        identifier(name, "field name")
        not_meta(name)
        if not _FIELD_TYPES.match(str(kind)):
            raise ValueError(f"field {name!r}: {kind!r} is not a type; use string, int, long, float, "
                             "double, boolean, timestamp, date, binary or decimal(p,s)")
        decimal = _DECIMAL.match(str(kind))
        if decimal:
            precision, scale = int(decimal.group(1)), int(decimal.group(2))
            if not 1 <= precision <= MAX_DECIMAL_PRECISION:
                raise ValueError(f"field {name!r}: {kind} has precision {precision}; decimal precision is "
                                 f"1 to {MAX_DECIMAL_PRECISION}")
            if scale > precision:
                raise ValueError(f"field {name!r}: {kind} has a scale above its precision")
    return v


def not_meta(name: str) -> None:
    """Refuse a parsed field named like a column a source adds to every record (it would be shadowed)."""
    from accelsync.registry import meta_columns  # at validation time: the registry imports the connectors

    columns = meta_columns()
    if name in columns:
        raise ValueError(f"field {name!r} has the name of a column every record carries "
                         f"({', '.join(columns)}); rename it")
