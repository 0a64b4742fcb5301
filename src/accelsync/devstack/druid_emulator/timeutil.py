"""Time as Druid handles it: UTC millis, granularities, intervals, ISO text, timestampSpec formats."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import pyarrow as pa
import pyarrow.compute as pc

SECOND, MINUTE, HOUR, DAY, WEEK = 1000, 60_000, 3_600_000, 86_400_000, 604_800_000
# Druid's bounds of time (JodaUtils.MIN_INSTANT / MAX_INSTANT): the ETERNITY interval and the
# single bucket of the `all` granularity.
MIN_MILLIS, MAX_MILLIS = -4611686018427387904, 4611686018427387903
MIN_ISO, MAX_ISO = "-146136543-09-08T08:23:32.096Z", "146140482-04-24T15:36:27.903Z"

_NAMED = {
    "none": ("fixed", 1), "second": ("fixed", SECOND), "minute": ("fixed", MINUTE),
    "five_minute": ("fixed", 5 * MINUTE), "ten_minute": ("fixed", 10 * MINUTE),
    "fifteen_minute": ("fixed", 15 * MINUTE), "thirty_minute": ("fixed", 30 * MINUTE),
    "hour": ("fixed", HOUR), "six_hour": ("fixed", 6 * HOUR), "eight_hour": ("fixed", 8 * HOUR),
    "day": ("fixed", DAY), "week": ("week", 1), "month": ("month", 1), "quarter": ("month", 3),
    "year": ("month", 12), "all": ("all", 0),
}
_PERIOD = re.compile(r"^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


class Granularity:
    """A Druid granularity (name, {"type": "period", ...} or {"type": "duration", ...}), in UTC."""

    def __init__(self, spec: Any, what: str = "granularity"):
        self.spec = spec
        if isinstance(spec, str):
            key = spec.lower()
            if key not in _NAMED:
                raise ValueError(f"Unknown {what}[{spec}]; known: {', '.join(n.upper() for n in _NAMED)}")
            self.kind, self.size = _NAMED[key]
        elif isinstance(spec, dict) and spec.get("type") == "period":
            zone = spec.get("timeZone") or "UTC"
            if zone not in ("UTC", "Etc/UTC", "Z") or spec.get("origin"):
                raise ValueError("emulator: period granularities are supported in UTC without origin only")
            self.kind, self.size = _period(spec.get("period", ""))
        elif isinstance(spec, dict) and spec.get("type") == "duration":
            if spec.get("origin"):
                raise ValueError("emulator: duration granularities are supported without origin only")
            self.kind, self.size = "fixed", int(spec["duration"])
        elif isinstance(spec, dict) and str(spec.get("type", "")).lower() in _NAMED:
            self.kind, self.size = _NAMED[str(spec["type"]).lower()]
        else:
            raise ValueError(f"Cannot construct {what} from {spec!r}")

    @property
    def is_none(self) -> bool:
        return self.kind == "fixed" and self.size == 1

    def floor(self, millis: int) -> int:
        if self.kind == "fixed":
            return millis - millis % self.size
        if self.kind == "week":
            shift = 3 * DAY  # 1970-01-01 was a Thursday; Joda weeks start on Monday
            return (millis + shift) - (millis + shift) % (self.size * WEEK) - shift
        if self.kind == "month":
            moment = utc(millis)
            months = moment.year * 12 + moment.month - 1
            months -= (moment.month - 1) % self.size if self.size <= 12 else months % self.size
            return datetime_millis(datetime(months // 12, months % 12 + 1, 1, tzinfo=timezone.utc))
        return MIN_MILLIS

    def next(self, start: int) -> int:
        """The end of the bucket that starts at `start`."""
        if self.kind == "fixed":
            return start + self.size
        if self.kind == "week":
            return start + self.size * WEEK
        if self.kind == "month":
            moment = utc(start)
            months = moment.year * 12 + moment.month - 1 + self.size
            return datetime_millis(datetime(months // 12, months % 12 + 1, 1, tzinfo=timezone.utc))
        return MAX_MILLIS

    def floor_array(self, millis: pa.Array) -> pa.Array:
        """`floor` over an int64 array (vectorised for the fixed sizes)."""
        if self.is_none:
            return millis
        if self.kind == "fixed":
            return pc.subtract(millis, _mod(millis, self.size))
        if self.kind == "all":
            return pa.array([MIN_MILLIS] * len(millis), pa.int64())
        cache: dict[int, int] = {}
        out = []
        for value in millis.to_pylist():
            day = value - value % DAY
            if day not in cache:
                cache[day] = self.floor(day)
            out.append(cache[day])
        return pa.array(out, pa.int64())


def _mod(values: pa.Array, size: int) -> pa.Array:
    """Python's (floored) modulo for int64 arrays: Arrow has none."""
    quotient = pc.floor(pc.divide(pc.cast(values, pa.float64()), float(size)))
    remainder = pc.subtract(values, pc.multiply(pc.cast(quotient, pa.int64()), size))
    # float rounding can be off by one bucket for huge values: correct it
    remainder = pc.if_else(pc.less(remainder, 0), pc.add(remainder, size), remainder)
    return pc.if_else(pc.greater_equal(remainder, size), pc.subtract(remainder, size), remainder)


def _period(text: str) -> tuple[str, int]:
    match = _PERIOD.match(text or "")
    if not match or not any(match.groups()):
        raise ValueError(f"Invalid format: \"{text}\" is not an ISO-8601 period")
    years, months, weeks, days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    if years or months:
        if weeks or days or hours or minutes or seconds:
            raise ValueError(f"emulator: mixed period {text} is not supported")
        return "month", years * 12 + months
    if weeks and not (days or hours or minutes or seconds):
        return "week", weeks
    return "fixed", (((weeks * 7 + days) * 24 + hours) * 60 + minutes) * MINUTE + seconds * SECOND


def utc(millis: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=millis)


def datetime_millis(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def iso(millis: int) -> str:
    """Druid's ISO text of an instant: 2024-01-01T00:00:00.000Z."""
    if millis <= MIN_MILLIS:
        return MIN_ISO
    if millis >= MAX_MILLIS:
        return MAX_ISO
    moment = utc(millis)
    return (f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}T{moment.hour:02d}:{moment.minute:02d}:"
            f"{moment.second:02d}.{millis % 1000:03d}Z")


def iso_array(millis: pa.Array) -> pa.Array:
    """`iso` over an int64 array (vectorised)."""
    if len(millis) == 0:
        return pa.array([], pa.string())
    low, high = pc.min_max(millis).values()
    if low.as_py() is not None and (low.as_py() < -62135596800000 or high.as_py() > 253402300799999):
        return pa.array([None if v is None else iso(v) for v in millis.to_pylist()], pa.string())
    stamps = pc.cast(millis, pa.timestamp("ms", tz="UTC"))
    return pc.strftime(stamps, format="%Y-%m-%dT%H:%M:%SZ")  # %S carries .fff for millis


_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2})(?::?(\d{2}))?(?::?(\d{2}))?(?:[.,](\d+))?)?"
                  r"\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$")


def parse_iso(text: str) -> int:
    """An ISO 8601 instant (T or space, optional fraction and zone; UTC when absent) as millis."""
    match = _ISO.match(text.strip())
    if not match:
        raise ValueError(f"Invalid format: \"{text}\"")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    moment = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
                      tzinfo=timezone.utc)
    millis = datetime_millis(moment) + int((fraction or "0")[:3].ljust(3, "0"))
    if zone and zone not in ("Z", "z"):
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        millis -= sign * (int(digits[:2]) * 60 + int(digits[2:4] or 0)) * 60_000
    return millis


def parse_interval(text: str) -> tuple[int, int]:
    """`start/end` (ISO instants) or `start/period` as millis."""
    if "/" not in str(text):
        raise ValueError(f"Invalid interval [{text}]")
    start_text, end_text = str(text).split("/", 1)
    start = parse_iso(start_text)
    if end_text.startswith("P"):
        granularity = Granularity({"type": "period", "period": end_text})
        end = start
        end = granularity.next(end) if granularity.kind != "fixed" else start + granularity.size
    else:
        end = parse_iso(end_text)
    if end < start:
        raise ValueError(f"The end instant must be greater than or equal to the start [{text}]")
    return start, end


def interval_text(start: int, end: int) -> str:
    return f"{iso(start)}/{iso(end)}"


_JODA = [("yyyy", "%Y"), ("YYYY", "%Y"), ("yy", "%y"), ("MMMM", "%B"), ("MMM", "%b"), ("MM", "%m"),
         ("dd", "%d"), ("HH", "%H"), ("hh", "%I"), ("mm", "%M"), ("ss", "%S"), ("SSS", "%f"),
         ("EEEE", "%A"), ("EEE", "%a"), ("a", "%p"), ("ZZ", "%z"), ("Z", "%z")]


def joda_to_strptime(pattern: str) -> str:
    out, index = [], 0
    while index < len(pattern):
        if pattern[index] == "'":
            end = pattern.index("'", index + 1)
            out.append(pattern[index + 1:end] or "'")
            index = end + 1
            continue
        for joda, python in _JODA:
            if pattern.startswith(joda, index):
                out.append(python)
                index += len(joda)
                break
        else:
            out.append(pattern[index].replace("%", "%%"))
            index += 1
    return "".join(out)


def timestamp_parser(fmt: str) -> Callable[[Any], int]:
    """A function turning one raw timestamp value into millis per timestampSpec.format; raises
    ValueError when the value does not parse (Druid's `Timestamp[x] is unparseable!`)."""
    fmt = fmt or "auto"
    lowered = fmt.lower()

    def number(value: Any) -> float:
        if isinstance(value, bool):
            raise ValueError("boolean")
        if isinstance(value, (int, float)):
            return value
        return float(str(value).strip())

    if lowered == "millis":
        return lambda v: int(number(v))
    if lowered == "posix":
        return lambda v: int(number(v) * 1000)
    if lowered == "ruby":
        return lambda v: int(number(v) * 1000)
    if lowered == "micro":
        return lambda v: int(number(v) // 1000)
    if lowered == "nano":
        return lambda v: int(number(v) // 1_000_000)
    if lowered in ("auto", "iso"):
        def auto(value: Any) -> int:
            if isinstance(value, bool):
                raise ValueError("boolean")
            if isinstance(value, (int, float)):
                if lowered == "iso":
                    raise ValueError("a number is not an ISO timestamp")
                return int(value)
            text = str(value).strip()
            if lowered == "auto" and re.fullmatch(r"-?\d+", text):
                return int(text)
            return parse_iso(text)
        return auto
    pattern = joda_to_strptime(fmt)

    def joda(value: Any) -> int:
        moment = datetime.strptime(str(value).strip(), pattern)
        return datetime_millis(moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc))
    return joda


