"""Druid SQL functions over the store's ISO `__time` text, registered on the SQLite connection."""

from __future__ import annotations

import calendar
import sqlite3
from datetime import datetime, timezone
from typing import Any

from accelsync.devstack.druid_emulator.timeutil import (WEEK, Granularity, datetime_millis, iso, joda_to_strptime,
                                                        parse_interval, parse_iso, timestamp_parser, utc)

UNITS = {"SECOND": "PT1S", "MINUTE": "PT1M", "HOUR": "PT1H", "DAY": "P1D", "WEEK": "P1W",
         "MONTH": "P1M", "QUARTER": "P3M", "YEAR": "P1Y"}


def millis(value: Any) -> int | None:
    """A timestamp value (ISO text as stored, or a number of millis) as millis."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)
    text = str(value)
    if len(text) == 24 and text[10] == "T" and text[-1] == "Z":  # the stored form, fast
        moment = datetime(int(text[0:4]), int(text[5:7]), int(text[8:10]), int(text[11:13]),
                          int(text[14:16]), int(text[17:19]), tzinfo=timezone.utc)
        return datetime_millis(moment) + int(text[20:23])
    return parse_iso(text)


def _granularity(period: str) -> Granularity:
    return Granularity({"type": "period", "period": period})


def time_floor(value, period, *_ignored):
    ms = millis(value)
    return None if ms is None else iso(_granularity(period).floor(ms))


def time_ceil(value, period, *_ignored):
    ms = millis(value)
    if ms is None:
        return None
    granularity = _granularity(period)
    start = granularity.floor(ms)
    return iso(start if start == ms else granularity.next(start))


def time_shift(value, period, step, *_ignored):
    ms = millis(value)
    if ms is None or step is None:
        return None
    granularity, step = _granularity(period), int(step)
    if granularity.kind == "fixed":
        return iso(ms + step * granularity.size)
    if granularity.kind == "week":
        return iso(ms + step * granularity.size * WEEK)
    moment = utc(ms)
    year, month = divmod(moment.year * 12 + moment.month - 1 + step * granularity.size, 12)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return iso(datetime_millis(moment.replace(year=year, month=month + 1, day=day)))


def time_extract(value, unit="MILLISECOND", *_ignored):
    ms = millis(value)
    if ms is None:
        return None
    moment = utc(ms)
    unit = str(unit).upper()
    return {"EPOCH": ms // 1000, "MILLISECOND": ms % 1000, "SECOND": moment.second, "MINUTE": moment.minute,
            "HOUR": moment.hour, "DAY": moment.day, "DOW": moment.isoweekday(), "DOY": moment.timetuple().tm_yday,
            "WEEK": moment.isocalendar()[1], "MONTH": moment.month, "QUARTER": (moment.month - 1) // 3 + 1,
            "YEAR": moment.year}.get(unit)


def time_format(value, pattern=None, *_ignored):
    ms = millis(value)
    if ms is None:
        return None
    if not pattern:
        return iso(ms)
    return utc(ms).strftime(joda_to_strptime(pattern).replace("%f", f"{ms % 1000:03d}"))


def time_parse(text, pattern=None, *_ignored):
    if text is None:
        return None
    try:
        return iso(timestamp_parser(pattern or "auto")(text))
    except (ValueError, TypeError):
        return None


def time_in_interval(value, interval):
    ms = millis(value)
    if ms is None:
        return None
    start, end = parse_interval(interval)
    return int(start <= ms < end)


def date_trunc(unit, value):
    return time_floor(value, UNITS[str(unit).upper()])


def concat(*values):
    if any(v is None for v in values):
        return None
    return "".join(_text(v) for v in values)


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value)


def register(db: sqlite3.Connection) -> None:
    functions = {
        "TIME_FLOOR": (time_floor, -1), "TIME_CEIL": (time_ceil, -1), "TIME_SHIFT": (time_shift, -1),
        "TIME_EXTRACT": (time_extract, -1), "TIME_FORMAT": (time_format, -1), "TIME_PARSE": (time_parse, -1),
        "TIME_IN_INTERVAL": (time_in_interval, 2), "DATE_TRUNC": (date_trunc, 2),
        "MILLIS_TO_TIMESTAMP": (lambda v: None if v is None else iso(int(v)), 1),
        "TIMESTAMP_TO_MILLIS": (millis, 1),
        "NVL": (lambda a, b: b if a is None else a, 2),
        "CONCAT": (concat, -1), "TEXTCAT": (concat, 2),
        "STRLEN": (lambda v: None if v is None else len(str(v)), 1),
        "CHAR_LENGTH": (lambda v: None if v is None else len(str(v)), 1),
        "LOWER": (lambda v: None if v is None else str(v).lower(), 1),
        "UPPER": (lambda v: None if v is None else str(v).upper(), 1),
    }
    for name, (function, arity) in functions.items():
        db.create_function(name, arity, function, deterministic=True)
