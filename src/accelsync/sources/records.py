"""One parser of text records into a spec's `schema`, shared by every source that reads text.

A Kafka message and a log line holding the same text give the same row, and the same reason
when they are dirty: both sources hand their records (one JSON object, one CSV record or, for
logs, one line to match with a regex) to `RecordParser`. Whole batches go through Arrow's
readers (`pyarrow.json`, `pyarrow.csv`, RE2 `extract_regex`); only a part of a batch that fails
is parsed again record by record, so each bad record gets its own reason.

Values, the same for every format; surrounding whitespace is ignored and an empty value is
NULL, except for string and binary fields, which are taken as they are:
- int, long: an optional minus sign and digits; float, double: decimal or exponent notation,
  nan and inf; decimal(p,s): at most s decimals; boolean: true/false/1/0 in any case;
  date: YYYY-MM-DD; binary: the UTF-8 bytes of the text.
- timestamp (microseconds, stored in UTC without a time zone): ISO-8601 `2024-01-02`,
  `2024-01-02T03:04:05[.ffffff]` (space for T allowed, digits past microseconds dropped), with
  `Z` or `+hh:mm`/`+hhmm` converted to UTC (without one, the value is taken as UTC); the common
  log format `10/Oct/2000:13:55:36 -0700`; a number is Unix epoch seconds (may have a fraction).
- JSON: one object per record; fields missing or null are NULL, other fields are ignored;
  values may be JSON numbers, booleans or strings for any type; an object or array is dirty.
- CSV: one record, fields in `schema` order (or named by a header line, for logs); quoted fields
  may hold the delimiter. Regex groups and fields not in `schema` are strings.

Dirty reasons: `bad JSON: ...`, `bad CSV: ...`, `no match: ...`, `cast failed: field 'x' (int): 'abc'`.
"""

from __future__ import annotations

import csv
import json
import re
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.json as pj

from accelsync.sources.fields import arrow_type

SLOW_LINES = 64  # a failing part of a batch is bisected down to this many records
# How pyarrow.json reads a field before it is converted (JSON-native types; the rest as text).
_JSON_READ_TYPES = {"string": pa.string(), "int": pa.int64(), "long": pa.int64(), "float": pa.float64(),
                    "double": pa.float64(), "boolean": pa.bool_()}


def _json_read_type(kind: str) -> pa.DataType:
    """How pyarrow.json reads a field: JSON-native types as such, decimals exactly, the rest as text."""
    if kind in _JSON_READ_TYPES:
        return _JSON_READ_TYPES[kind]
    return arrow_type(kind) if _kind(kind) == "decimal" else pa.string()


def _kind(kind: str) -> str:
    return "decimal" if kind.startswith("decimal") else kind


class RecordParser:
    """Parses batches of text records of one format into typed columns of the declared fields."""

    def __init__(self, fmt: str, fields: dict[str, str], *, pattern: str | None = None, delimiter: str = ",",
                 positions: list[int] | None = None, null_value: str | None = None):
        self.format = fmt
        # CSV by position: field i is cell positions[i] of a record that has at least max + 1 cells
        self.positions = dict(zip(fields, positions)) if positions else None
        self.null_value = null_value
        self.fields = {name: kind.replace(" ", "") for name, kind in fields.items()}
        self.types = {name: arrow_type(kind) for name, kind in self.fields.items()}
        self.pattern = pattern
        self.delimiter = delimiter
        self.header: list[str] | None = None
        self.slow = False  # this stream's batches mostly fail the fast path: go record by record at once
        if fmt == "regex":
            self.re2 = _re2_compatible(pattern)
            self.compiled = re.compile(pattern)
        if fmt == "json":
            read_schema = pa.schema([(name, _json_read_type(kind)) for name, kind in self.fields.items()])
            self.json_options = pj.ParseOptions(explicit_schema=read_schema, unexpected_field_behavior="ignore")

    def new_stream(self, header: list[str] | None = None) -> None:
        """A new file (or partition) starts: forget how the last one went; CSV `header` names its columns."""
        self.slow = False
        self.header = header

    def parse(self, good: pa.Array, source: "ByteRanges | None" = None) -> tuple[list[pa.Array], dict[int, str]]:
        """Typed columns (in field order, NULL where a record failed) of the non-blank text
        records `good`, and {record index: reason} of the records that failed."""
        segments, failures = self._segments(good, source)
        columns, casts = [], {}
        for name, kind in self.fields.items():
            parts = []
            for start, _, raw in segments:
                values = raw[name]
                if self.null_value is not None and pa.types.is_string(values.type):
                    values = pc.if_else(pc.equal(values, self.null_value), _STRING_NULL, values)
                typed, bad = _convert(values, _kind(kind), self.types[name])
                parts.append(typed)
                for index in bad:
                    casts.setdefault(start + index, []).append(
                        f"field {name!r} ({kind}): {_show(raw[name][index].as_py())}")
            columns.append(parts[0] if len(parts) == 1 else pa.concat_arrays(parts))
        for index, reasons in casts.items():
            failures.setdefault(index, "cast failed: " + "; ".join(reasons))
        return columns, failures

    # Each format gives segments (start, stop, {field: raw column}) over the good lines, in
    # order, and failures {good line index: reason} for lines it could not parse at all.

    def _segments(self, good: pa.Array, source: "ByteRanges | None"):
        fmt = self.format
        if fmt == "regex":
            return self._regex(good)
        fast = self._json_fast if fmt == "json" else self._csv_fast
        slow = self._json_slow if fmt == "json" else self._csv_slow
        segments, failures = [], {}
        slow_lines = 0

        def attempt(start: int, stop: int) -> None:
            raw = None if self.slow else fast(good, start, stop, source)
            if raw is not None:
                segments.append((start, stop, raw))
            elif stop - start <= SLOW_LINES or self.slow:
                line_by_line(start, stop)
            else:
                middle = (start + stop) // 2
                attempt(start, middle)
                attempt(middle, stop)

        def line_by_line(start: int, stop: int) -> None:
            nonlocal slow_lines
            raw, bad = slow(good, start, stop)
            segments.append((start, stop, raw))
            failures.update(bad)
            slow_lines += stop - start

        # Only lines shaped like one object go to pyarrow.json: it takes `null` lines for rows of
        # NULLs, and crashes on a block that starts with one (Arrow 26).
        cursor = 0
        for start, stop in (_runs(~_json_objects(good)) if fmt == "json" else []):
            if cursor < start:
                attempt(cursor, start)
            line_by_line(start, stop)
            cursor = stop
        if cursor < len(good):
            attempt(cursor, len(good))
        if slow_lines * 2 > len(good):
            self.slow = True
        return segments, failures

    def _json_fast(self, good, start, stop, source) -> dict | None:
        data = source.bytes(start, stop) if source else _join(good, start, stop)
        try:
            table = pj.read_json(pa.BufferReader(data), parse_options=self.json_options,
                                 read_options=pj.ReadOptions(use_threads=False,
                                                             block_size=max(1 << 20, len(data) + 1)))
        except pa.ArrowException:
            return None
        if table.num_rows != stop - start:  # e.g. two objects on one line
            return None
        return {name: table.column(name).combine_chunks() for name in self.fields}

    def _json_slow(self, good, start, stop) -> tuple[dict, dict]:
        values = {name: [] for name in self.fields}
        failures = {}
        for offset, text in enumerate(good.slice(start, stop - start).to_pylist()):
            problem = None
            try:
                record = json.loads(text)
            except ValueError as exc:
                record, problem = None, f"bad JSON: {exc}"
            if problem is None and not isinstance(record, dict):
                problem = f"bad JSON: {_json_kind(record)} where an object was expected"
            for name in self.fields:
                value = record.get(name) if problem is None else None
                if isinstance(value, (dict, list)):
                    problem = problem or f"bad JSON: field {name!r} holds {_json_kind(value)}, not a value"
                    value = None
                elif isinstance(value, bool):
                    value = "true" if value else "false"
                elif isinstance(value, (int, float)):
                    value = json.dumps(value)
                values[name].append(value)
            if problem:
                failures[start + offset] = problem
        return {name: pa.array(column, pa.string()) for name, column in values.items()}, failures

    def _csv_names(self, width: int = 0) -> list[str]:
        """The names of a record's cells: the header's, the fields' in order, or (with positions)
        one per cell of a `width`-cell record, with each field's name at its position."""
        if self.positions is not None:
            names = [f"_cell{index}" for index in range(width)]
            for name, position in self.positions.items():
                if position < width:
                    names[position] = name
            return names
        return self.header if self.header is not None else list(self.fields)

    def _csv_fast(self, good, start, stop, source) -> dict | None:
        width = 0
        if self.positions is not None:  # the block's first record sets the width the rest must have
            try:
                width = len(next(csv.reader([good[start].as_py()], delimiter=self.delimiter, strict=True)))
            except csv.Error:
                return None
            if width <= max(self.positions.values()):
                return None
        names = self._csv_names(width)
        data = source.bytes(start, stop) if source else _join(good, start, stop)
        invalid = []

        def handler(row):
            invalid.append(row.number)
            return "skip"

        try:
            table = pcsv.read_csv(
                pa.BufferReader(data),
                read_options=pcsv.ReadOptions(column_names=names, use_threads=False,
                                              block_size=max(1 << 20, len(data) + 1)),
                parse_options=pcsv.ParseOptions(delimiter=self.delimiter, newlines_in_values=False,
                                                ignore_empty_lines=True, invalid_row_handler=handler),
                convert_options=pcsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                    include_columns=list(self.fields), strings_can_be_null=False,
                                                    quoted_strings_can_be_null=False))
        except pa.ArrowException:
            return None
        # Rows must map one to one onto lines; a quote running past its line breaks that.
        if invalid or table.num_rows != stop - start:
            return None
        return {name: table.column(name).combine_chunks() for name in self.fields}

    def _csv_slow(self, good, start, stop) -> tuple[dict, dict]:
        if self.positions is not None:
            positions = list(self.positions.values())
            least = max(positions) + 1
        else:
            names = self._csv_names()
            positions = [names.index(name) for name in self.fields]
        values = {name: [] for name in self.fields}
        failures = {}
        for offset, text in enumerate(good.slice(start, stop - start).to_pylist()):
            try:
                cells = next(csv.reader([text], delimiter=self.delimiter, strict=True))
                if self.positions is not None:
                    if len(cells) < least:
                        raise csv.Error(f"expected at least {least} columns, got {len(cells)}")
                elif len(cells) != len(names):
                    raise csv.Error(f"expected {len(names)} columns, got {len(cells)}")
            except csv.Error as exc:
                failures[start + offset] = f"bad CSV: {exc}"
                cells = None
            for name, position in zip(self.fields, positions):
                values[name].append(cells[position] if cells else None)
        return {name: pa.array(column, pa.string()) for name, column in values.items()}, failures

    def _regex(self, good) -> tuple[list, dict]:
        if self.re2:
            matched = pc.extract_regex(good, self.pattern)
            ok = matched.is_valid()
            raw = {name: matched.field(name) for name in self.fields}
            failures = {index: "no match: the line does not match the pattern"
                        for index in pc.indices_nonzero(pc.invert(ok)).to_pylist()}
            return [(0, len(good), raw)], failures
        values = {name: [] for name in self.fields}
        failures = {}
        for index, text in enumerate(good.to_pylist()):
            match = self.compiled.search(text)
            if match is None:
                failures[index] = "no match: the line does not match the pattern"
            for name in self.fields:
                values[name].append((match.group(name) or "") if match else None)
        return [(0, len(good), {name: pa.array(v, pa.string()) for name, v in values.items()})], failures


def _json_objects(good: pa.Array) -> np.ndarray:
    """True for each line that starts with `{` and ends with `}` (whitespace aside)."""
    shaped = pc.and_(pc.starts_with(good, "{"), pc.ends_with(good, "}"))
    if not pc.all(shaped).as_py():
        trimmed = pc.utf8_trim_whitespace(good)
        shaped = pc.and_(pc.starts_with(trimmed, "{"), pc.ends_with(trimmed, "}"))
    return shaped.to_numpy(zero_copy_only=False)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of True in `mask`."""
    edges = np.flatnonzero(np.diff(np.concatenate(([False], mask, [False])).astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _json_kind(value: Any) -> str:
    for kind, name in ((dict, "an object"), (list, "an array"), (str, "a string"), (bool, "a boolean"),
                       ((int, float), "a number")):
        if isinstance(value, kind):
            return name
    return "null"


class ByteRanges:
    """Ranges of records as bytes of one buffer that holds them each followed by a newline, so
    the fast paths hand Arrow's readers a slice instead of a copy. `rows` maps the parsed records
    to the buffer's records (skipped records in between must be empty, which both readers skip)."""

    def __init__(self, buffer: pa.Buffer, starts: np.ndarray, ends: np.ndarray, rows: np.ndarray):
        self.buffer, self.starts, self.ends, self.rows = buffer, starts, ends, rows

    @classmethod
    def of_lines(cls, block: bytes, lines: pa.Array, rows: np.ndarray) -> "ByteRanges":
        """The lines of `block` (split on newlines into `lines`), of which `rows` are parsed."""
        offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset:lines.offset + len(lines) + 1]
        return cls(pa.py_buffer(block), offsets[:-1].astype(np.int64) + np.arange(len(lines)),
                   offsets[1:].astype(np.int64) + np.arange(len(lines)) + 1, rows)

    def bytes(self, start: int, stop: int) -> pa.Buffer:
        first, last = int(self.starts[self.rows[start]]), int(self.ends[self.rows[stop - 1]])
        return self.buffer.slice(first, last - first)


def _join(good: pa.Array, start: int, stop: int) -> pa.Buffer:
    """Records start..stop as one buffer, each followed by a newline (joined in C++, no copy out)."""
    part = pa.concat_arrays([good.slice(start, stop - start), pa.array([""], good.type)])
    lists = pa.ListArray.from_arrays(pa.array([0, len(part)], pa.int32()), part)
    return pc.binary_join(lists, "\n")[0].as_buffer()


def _re2_compatible(pattern: str) -> bool:
    try:
        pc.extract_regex(pa.array([""], pa.string()), pattern)
        return True
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return False


# ---------------------------------------------------------------- values

_INTEGER = r"^-?\d+$"
_EPOCH = r"^-?\d+(?:\.\d+)?$"
_CLF = r"^\d{1,2}/[A-Za-z]{3}/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}$"
_ZONED = r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})$"
_STRING_NULL = pa.nulls(1, pa.string())[0]  # pa.scalar(None) would import pandas


def _convert(raw: pa.Array, kind: str, target: pa.DataType) -> tuple[pa.Array, list[int]]:
    """Cast a raw column into its schema type; return it (NULL where it failed) and the failures."""
    if raw.type == target:
        return raw, []
    if not pa.types.is_string(raw.type):  # a JSON-native column: int64, float64, bool
        return _checked(lambda part: pc.cast(part, target), raw, target)
    if kind in ("string", "binary"):
        return raw.cast(target), []
    text = pc.utf8_trim_whitespace(raw)
    text = pc.if_else(pc.equal(text, ""), _STRING_NULL, text)
    if kind == "timestamp":
        return _timestamps(text)
    bad: list[int] = []
    if kind in ("int", "long"):
        wrong = pc.and_(pc.is_valid(text), pc.invert(pc.fill_null(pc.match_substring_regex(text, _INTEGER), True)))
        if pc.any(wrong).as_py():
            bad = pc.indices_nonzero(wrong).to_pylist()
            text = pc.if_else(wrong, _STRING_NULL, text)
    typed, more = _checked(lambda part: pc.cast(part, target), text, target)
    return typed, sorted(bad + more)


def _checked(cast: Callable[[pa.Array], pa.Array], values: pa.Array, target: pa.DataType
             ) -> tuple[pa.Array, list[int]]:
    """`cast` applied to the whole array, or, when a value fails, bisected down to the failures."""
    try:
        return cast(values), []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OverflowError):
        if len(values) == 1:
            return pa.nulls(1, target), [0]
    middle = len(values) // 2
    left, left_bad = _checked(cast, values.slice(0, middle), target)
    right, right_bad = _checked(cast, values.slice(middle), target)
    return pa.concat_arrays([left, right]), left_bad + [middle + index for index in right_bad]


def _timestamps(text: pa.Array) -> tuple[pa.Array, list[int]]:
    """ISO-8601 (zoned ones to UTC), common log format, or epoch seconds -> timestamp[us] UTC."""
    target = pa.timestamp("us")
    result = pa.nulls(len(text), target)
    if text.null_count == len(text):
        return result, []
    if pc.any(pc.match_substring_regex(text, r"\.\d{7}")).as_py():
        text = pc.replace_substring_regex(text, r"(\.\d{6})\d+", r"\1")
    clf = pc.fill_null(pc.match_substring_regex(text, _CLF), False)
    zoned = pc.and_(pc.fill_null(pc.match_substring_regex(text, _ZONED), False), pc.invert(clf))
    epoch = pc.fill_null(pc.match_substring_regex(text, _EPOCH), False)
    plain = pc.and_(pc.is_valid(text), pc.invert(pc.or_(pc.or_(clf, zoned), epoch)))
    parsers = [
        (clf, lambda part: pc.strptime(part, format="%d/%b/%Y:%H:%M:%S %z", unit="us").cast(target)),
        (zoned, lambda part: pc.cast(part, pa.timestamp("us", "UTC")).cast(target)),
        (epoch, lambda part: pc.round(pc.multiply(pc.cast(part, pa.float64()), 1e6)).cast(pa.int64()).cast(target)),
        (plain, lambda part: pc.cast(part, target)),
    ]
    bad: list[int] = []
    for mask, parse in parsers:
        if not pc.any(mask).as_py():
            continue
        where = pc.indices_nonzero(mask)
        typed, failed = _checked(parse, text.filter(mask), target)
        result = pc.replace_with_mask(result, mask, typed)
        bad += where.take(pa.array(failed, pa.int64())).to_pylist() if failed else []
    return result, sorted(bad)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
