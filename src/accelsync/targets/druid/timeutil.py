"""Event times as Druid reads them: a column's epoch milliseconds under `timestamp.format` (ISO,
epoch units, Joda patterns), and the time chunks and intervals of Druid's granularities."""

from __future__ import annotations

import base64
import math
import re
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from accelsync.runs import safe_run_id
from accelsync.targets import value_text


MINUTE, HOUR, DAY, WEEK = 60_000, 3_600_000, 86_400_000, 604_800_000
_FIXED = {"none": 1, "minute": MINUTE, "hour": HOUR, "day": DAY}
ALL_TIME = "-146136543-09-08T08:23:32.096Z"  # Druid's bucket of the `all` granularity
ALL_INTERVAL = ALL_TIME + "/146140482-04-24T15:36:27.903Z"  # Druid's ETERNITY
MIN_MILLIS, MAX_MILLIS = -4611686018427387904, 4611686018427387903
_KEYWORD_FORMATS = ("auto", "iso", "millis", "posix", "micro", "nano", "ruby")


def column_text(column: pa.Array) -> pa.Array:
    """Text of any column as a string array (binary as base64, which Druid cannot hold raw)."""
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        return pa.array([None if v is None else base64.b64encode(v).decode() for v in column.to_pylist()],
                        pa.string())
    return value_text.as_text(column).cast(pa.string())


def event_millis(column: pa.Array, fmt: str, name: str) -> tuple[pa.Array, list[tuple[int, str]]]:
    """Epoch millis of the event time column (UTC when it has no zone), and (row, reason) for the
    rows that have none: NULL, or a value that does not parse under `format`."""
    kind, fmt = column.type, fmt or "auto"
    if fmt.lower() in _KEYWORD_FORMATS:
        fmt = fmt.lower()
    if pa.types.is_dictionary(kind):
        column, kind = column.dictionary_decode(), column.type.value_type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        if pa.types.is_date(kind):
            column = pc.cast(column, pa.timestamp("ms"))
        ticks = pc.cast(column, pa.int64())
        per_ms = {"s": 0.001, "ms": 1, "us": 1000, "ns": 1_000_000}[column.type.unit]
        millis = pc.multiply(ticks, 1000) if per_ms == 0.001 else _floor_div(ticks, int(per_ms))
    elif (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind)) and \
            fmt in ("auto", "millis", "posix", "micro", "nano", "ruby"):
        numbers = pc.cast(column, pa.float64())
        scale = {"auto": 1, "millis": 1, "posix": 1000, "ruby": 1000, "micro": 0.001, "nano": 0.000001}[fmt]
        millis = pc.cast(pc.floor(pc.multiply(numbers, scale)), pa.int64(), safe=False) \
            if not (pa.types.is_integer(kind) and scale == 1) else pc.cast(column, pa.int64())
    else:
        millis = _parse_text(column_text(column) if not pa.types.is_string(kind) else column, fmt)
    rejected = []
    if millis.null_count:
        raw = column.to_pylist()
        for index in pc.indices_nonzero(pc.is_null(millis)).to_pylist():
            value = raw[index]
            reason = f"timestamp column {name!r} is NULL" if value is None else \
                f"timestamp does not parse: {_show(value)!r} (timestamp.format {fmt})"
            rejected.append((index, reason))
    return millis, rejected


def _floor_div(values: pa.Array, size: int) -> pa.Array:
    """Integer division rounding down (Arrow's truncates toward zero)."""
    quotient = pc.divide(values, size)
    return pc.if_else(pc.greater(pc.multiply(quotient, size), values), pc.subtract(quotient, 1), quotient)


def _parse_text(text: pa.Array, fmt: str) -> pa.Array:
    if fmt in ("auto", "iso"):
        for target in (pa.timestamp("ms", tz="UTC"), pa.timestamp("ms")):
            try:
                return pc.cast(pc.cast(text, target), pa.int64())
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
    parse = _text_parser(fmt)
    out = []
    for value in text.to_pylist():
        try:
            out.append(None if value is None else parse(value.strip()))
        except (ValueError, OverflowError):
            out.append(None)
    return pa.array(out, pa.int64())


def _text_parser(fmt: str):
    numeric = {"millis": 1, "posix": 1000, "ruby": 1000, "micro": 0.001, "nano": 0.000001}
    if fmt in numeric:
        return lambda v: math.floor(float(v) * numeric[fmt])

    def iso(value: str) -> int:
        if fmt == "auto" and re.fullmatch(r"-?\d+", value):
            return int(value)
        moment = datetime.fromisoformat(value.replace("z", "Z"))
        return _utc_millis(moment)
    if fmt in ("auto", "iso"):
        return iso
    pattern = _strptime_pattern(fmt)
    return lambda v: _utc_millis(datetime.strptime(v, pattern))


def _utc_millis(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


_JODA = [("yyyy", "%Y"), ("yy", "%y"), ("MMMM", "%B"), ("MMM", "%b"), ("MM", "%m"), ("dd", "%d"),
         ("HH", "%H"), ("hh", "%I"), ("mm", "%M"), ("ss", "%S"), ("SSS", "%f"), ("EEE", "%a"), ("a", "%p"),
         ("ZZ", "%z"), ("Z", "%z")]


def _strptime_pattern(joda: str) -> str:
    """A Joda pattern (Druid's timestampSpec.format) as a strptime one, for the common letters."""
    out, index = [], 0
    while index < len(joda):
        if joda[index] == "'":
            end = joda.index("'", index + 1)
            out.append(joda[index + 1:end] or "'")
            index = end + 1
            continue
        for letters, directive in _JODA:
            if joda.startswith(letters, index):
                out.append(directive)
                index += len(letters)
                break
        else:
            out.append(joda[index].replace("%", "%%"))
            index += 1
    return "".join(out)


def _show(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, (datetime, date, Decimal, timedelta)):
        return str(value)
    return value


def floor_millis(millis: pa.Array, granularity: str) -> pa.Array:
    """Millis truncated to a Druid granularity (UTC; weeks start on Monday)."""
    if granularity in _FIXED:
        size = _FIXED[granularity]
        return millis if size == 1 else pc.multiply(_floor_div(millis, size), size)
    days = pc.multiply(_floor_div(millis, DAY), DAY)
    unique = pc.unique(days)
    floors = pa.array([None if d is None else floor_one(d, granularity) for d in unique.to_pylist()], pa.int64())
    return pc.take(floors, pc.index_in(days, value_set=unique))


def floor_one(millis: int, granularity: str) -> int:
    if granularity in _FIXED:
        return millis - millis % _FIXED[granularity]
    if granularity == "week":
        return (millis + 3 * DAY) - (millis + 3 * DAY) % WEEK - 3 * DAY
    if granularity == "all":
        return -4611686018427387904
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=millis)
    start = moment.replace(month=1 if granularity == "year" else moment.month, day=1, hour=0, minute=0,
                           second=0, microsecond=0)
    return _utc_millis(start)


def next_chunk(start: int, granularity: str) -> int:
    if granularity in _FIXED:
        return start + _FIXED[granularity]
    if granularity == "week":
        return start + WEEK
    if granularity == "all":
        return 4611686018427387903
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=start)
    months = moment.year * 12 + moment.month - 1 + (12 if granularity == "year" else 1)
    return _utc_millis(datetime(months // 12, months % 12 + 1, 1, tzinfo=timezone.utc))


def chunk_starts(millis: pa.Array, granularity: str) -> set[int]:
    """The segment-granularity chunks (their start millis) these event times fall in."""
    return set(pc.unique(floor_millis(millis, granularity)).to_pylist())


def intervals_of(starts: list[int], granularity: str) -> list[str]:
    """Chunks merged into as few ISO intervals as possible (Druid's granularitySpec.intervals)."""
    if granularity == "all" and starts:
        return [ALL_INTERVAL]
    merged: list[list[int]] = []
    for start in starts:
        end = next_chunk(start, granularity)
        if merged and merged[-1][1] == start:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return [f"{iso_millis(s)}/{iso_millis(e)}" for s, e in merged]


def staging_name(datasource: str, run_id: str) -> str:
    """The staging datasource of a run: `<datasource>__accelsync_<run id>`."""
    return f"{datasource}__accelsync_{safe_run_id(run_id)}"


def interval_millis(interval: str) -> tuple[int, int]:
    """(start, end) millis of an ISO interval as Druid writes it; Druid's ETERNITY bounds too."""
    return tuple(instant_millis(part) for part in interval.split("/"))  # type: ignore[return-value]


def instant_millis(text: str) -> int:
    if text == ALL_INTERVAL.split("/")[0]:
        return MIN_MILLIS
    if text == ALL_INTERVAL.split("/")[1]:
        return MAX_MILLIS
    return _utc_millis(datetime.fromisoformat(text.replace("Z", "+00:00")))


def span_of(intervals: list[str]) -> str:
    """One interval from the first start to the last end (the coordinator's load status takes one)."""
    if not intervals:
        return ALL_INTERVAL
    bounds = [interval_millis(i) for i in intervals]
    start, end = min(b[0] for b in bounds), max(b[1] for b in bounds)
    if start <= MIN_MILLIS or end >= MAX_MILLIS:
        return ALL_INTERVAL
    return f"{iso_millis(start)}/{iso_millis(end)}"


def iso_millis(millis: int) -> str:
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=millis)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis % 1000:03d}Z"
