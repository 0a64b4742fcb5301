"""Druid SQL text and values as the gate compares them (literals, identifiers, metric inputs and
their aggregates)."""

from __future__ import annotations

import math
from typing import Any, Iterable

import pyarrow as pa
import pyarrow.compute as pc

from accelsync.targets.druid.timeutil import MAX_MILLIS, MIN_MILLIS, interval_millis, iso_millis


def iso_column(millis: pa.Array) -> pa.Array:
    return pc.strftime(pc.cast(millis, pa.timestamp("ms", tz="UTC")), format="%Y-%m-%dT%H:%M:%SZ")


def timestamp_literal(iso_text: str) -> str:
    return "TIMESTAMP '" + iso_text.replace("T", " ").rstrip("Z") + "'"


def sql_literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def sql_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def group_key_text(key: Iterable[Any]) -> str:
    return "\x1f".join("\x00" if v is None else repr(v) for v in key)


def metric_input(value: Any, kind: str) -> Any:
    """A metric input as Druid reads it: longs truncate, text parses, NULL and NaN stay NULL."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", "replace")
    if isinstance(value, bool):
        value = int(value)
    if isinstance(value, str):
        text = value.strip()
        if kind.startswith("long"):
            try:
                return int(text)
            except ValueError:
                pass
        value = float(text)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return int(value) if kind.startswith("long") else float(value)


def combine_metric(current: Any, value: Any, kind: str) -> Any:
    if value is None:
        return current
    if current is None:
        return value
    if kind.endswith("Min"):
        return min(current, value)
    if kind.endswith("Max"):
        return max(current, value)
    return current + value


def same_metric(expected: Any, actual: Any, approximate: bool) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    if approximate:
        return math.isclose(float(expected), float(actual), rel_tol=1e-9, abs_tol=1e-9)
    return expected == actual


def where_intervals(intervals: list[str]) -> str:
    """A SQL WHERE clause on __time for these intervals ("" for all of time)."""
    terms = []
    for interval in intervals:
        start, end = interval_millis(interval)
        if start <= MIN_MILLIS and end >= MAX_MILLIS:
            return ""
        tests = ([f"__time >= {timestamp_literal(iso_millis(start))}"] if start > MIN_MILLIS else []) + \
                ([f"__time < {timestamp_literal(iso_millis(end))}"] if end < MAX_MILLIS else [])
        terms.append("(" + " AND ".join(tests) + ")")
    return " WHERE " + " OR ".join(terms) if terms else ""
