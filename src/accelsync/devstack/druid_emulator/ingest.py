"""Runs one ingestion: read the input source, parse rows as Druid does, roll up, build segments.

Rows go through Druid's steps and counters: a row whose timestamp does not parse is
`unparseable` (skipped), a row outside `granularitySpec.intervals` is `thrownAway`, a row with a
value a typed dimension or a metric cannot convert is `processedWithError` (kept, that value
null); past `tuningConfig.maxParseExceptions` the task fails. Well-typed JSON lines take a fast
Arrow path; anything else is parsed line by line with the same results.
"""

from __future__ import annotations

import csv
import fnmatch
import gzip
import io
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from accelsync.devstack.druid_emulator.spec import Dimension, IngestionSpec, Metric
from accelsync.devstack.druid_emulator.timeutil import timestamp_parser

ARROW_TYPES = {"string": pa.string(), "long": pa.int64(), "float": pa.float64(), "double": pa.float64()}


class IngestionFailed(Exception):
    """The task fails with this errorMsg (Druid's text)."""


class Cancelled(Exception):
    """A shutdown request stopped the task."""


@dataclass
class RowStats:
    processed: int = 0
    processedBytes: int = 0
    processedWithError: int = 0
    thrownAway: int = 0
    unparseable: int = 0


@dataclass
class ParseErrors:
    """Druid's parse-exception bookkeeping: counts, saved reports, and the limit."""

    limit: int
    keep: int
    stats: RowStats
    saved: list[dict[str, Any]] = field(default_factory=list)

    def add(self, kind: str, details: list[str], raw: str) -> None:
        if kind == "unparseable":
            self.stats.unparseable += 1
        else:
            self.stats.processedWithError += 1
        if self.keep:
            self.saved.append({"timeOfExceptionMillis": int(time.time() * 1000), "input": raw[:1000],
                               "errorType": kind, "details": details})
            del self.saved[:-self.keep]
        if self.stats.unparseable + self.stats.processedWithError > self.limit:
            raise IngestionFailed(f"org.apache.druid.java.util.common.RE: Max parse exceptions[{self.limit}] "
                                  f"exceeded")


@dataclass
class Segments:
    """What the task publishes: the rows (with `__time` millis), column types, chunks, replaced intervals."""

    table: pa.Table
    column_types: dict[str, str]
    chunks: list[tuple[int, int, int]]
    replace: list[tuple[int, int]] | None


@dataclass
class _Block:
    """Rows of one input entity: columns (Arrow arrays or Python lists) and where they came from."""

    columns: dict[str, Any]
    rows: int
    path: str | None
    lines: list[int] | None = None

    def column(self, name: str) -> Any:
        return self.columns.get(name, [None] * self.rows)

    def event(self, index: int) -> str:
        pairs = []
        for name, values in self.columns.items():
            value = values[index].as_py() if isinstance(values, (pa.Array, pa.ChunkedArray)) else values[index]
            if value is not None:
                pairs.append(f"{name}={_java_text(value)}")
        return "{" + ", ".join(pairs) + "}"

    def where(self, index: int) -> str:
        line = self.lines[index] if self.lines else index + 1
        if self.path is None:
            return f" (Record: {index + 1})"
        return f" (Path: {Path(self.path).as_uri()}, Record: {index + 1}, Line: {line})"


def run(spec: IngestionSpec, stats: RowStats, errors: ParseErrors,
        cancelled: Callable[[], bool] = lambda: False) -> Segments:
    """Read, parse and roll up the whole input; raise IngestionFailed / Cancelled."""
    parts: list[pa.Table] = []
    types: dict[str, str] = {}
    for path, data in _entities(spec.input_source):
        if cancelled():
            raise Cancelled()
        stats.processedBytes += len(data)
        block = _read(spec, path, data, errors)
        table = _convert(spec, block, stats, errors, types)
        if table.num_rows:
            parts.append(table)
    table = _concat(parts, types, spec)
    table = _rollup(spec, table) if spec.rollup else table
    order = [("__time", "ascending", "at_start")] + [(n, "ascending", "at_start") for n in types]
    table = table.sort_by(order) if table.num_rows else table
    chunks = _chunks(spec, table)
    if spec.append:
        replace = None
    elif spec.intervals and spec.drop_existing:
        replace = list(spec.intervals)
    else:
        replace = [(start, end) for start, end, _ in chunks]
    column_types = dict(types)
    for metric in spec.metrics:
        column_types[metric.name] = metric.value_type
    return Segments(table, column_types, chunks, replace)


# -- input ---------------------------------------------------------------------------------------

def _entities(source: dict[str, Any]) -> Iterator[tuple[str | None, bytes]]:
    if source["type"] == "inline":
        yield None, source["data"].encode("utf-8")
        return
    files: list[str] = []
    base = source.get("baseDir")
    if base:
        if not os.path.isdir(base):
            raise IngestionFailed(f"java.lang.IllegalArgumentException: Parameter 'directory' is not a "
                                  f"directory: {base}")
        pattern = source.get("filter") or "*"
        for root, _dirs, names in os.walk(base):
            files.extend(os.path.join(root, n) for n in names if fnmatch.fnmatchcase(n, pattern))
    files = sorted(files) + [str(f) for f in source.get("files") or []]
    for path in files:
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            raise IngestionFailed(f"java.io.FileNotFoundException: {path} (No such file or directory)") from None
        except OSError as exc:
            raise IngestionFailed(f"java.io.IOException: {path}: {exc.strerror}") from None
        if path.endswith(".gz"):
            data = gzip.decompress(data)
        yield path, data


def _read(spec: IngestionSpec, path: str | None, data: bytes, errors: ParseErrors) -> _Block:
    kind = spec.input_format["type"]
    if kind == "json":
        fast = _read_json_arrow(spec, path, data)
        return fast if fast is not None else _read_json_lines(path, data, errors)
    return _read_delimited(spec.input_format, path, data, errors)


def _arrow_schema(spec: IngestionSpec) -> pa.Schema | None:
    """The explicit schema of the fast JSON path, when every needed column has one type."""
    if spec.dimensions is None:
        return None
    wanted: dict[str, pa.DataType] = {}

    def need(name: str, kind: pa.DataType) -> bool:
        if wanted.setdefault(name, kind) != kind:
            return False
        return True

    fmt = spec.timestamp_format.lower()
    ts_type = pa.int64() if fmt in ("millis", "micro", "nano") else pa.float64() if fmt in ("posix", "ruby") \
        else pa.string()
    ok = need(spec.timestamp_column, ts_type)
    for dimension in spec.dimensions:
        if dimension.type not in ARROW_TYPES:
            return None
        ok = ok and need(dimension.name, ARROW_TYPES[dimension.type])
    for metric in spec.metrics:
        if metric.field:
            ok = ok and need(metric.field, pa.int64() if metric.value_type == "long" else pa.float64())
    return pa.schema(list(wanted.items())) if ok else None


def _read_json_arrow(spec: IngestionSpec, path: str | None, data: bytes) -> _Block | None:
    schema = _arrow_schema(spec)
    if schema is None:
        return None
    try:
        table = pajson.read_json(io.BytesIO(data), read_options=pajson.ReadOptions(block_size=16 << 20),
                                 parse_options=pajson.ParseOptions(explicit_schema=schema,
                                                                   unexpected_field_behavior="ignore"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if b"\n\n" in data or data.startswith(b"\n"):
        return None  # blank lines: line numbers would be off; take the exact path
    columns = {name: table.column(name).combine_chunks() for name in table.column_names}
    return _Block(columns, table.num_rows, path)


def _read_json_lines(path: str | None, data: bytes, errors: ParseErrors) -> _Block:
    rows: list[dict[str, Any]] = []
    lines: list[int] = []
    for number, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            text = line.decode("utf-8", "replace")
            where = f" (Path: {Path(path).as_uri()}, Record: {len(rows) + 1}, Line: {number})" if path else ""
            errors.add("unparseable", [f"Unable to parse row [{text}]{where}"], text)
            continue
        rows.append(value)
        lines.append(number)
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    columns = {name: [row.get(name) for row in rows] for name in names}
    return _Block(columns, len(rows), path, lines)


def _read_delimited(fmt: dict[str, Any], path: str | None, data: bytes, errors: ParseErrors) -> _Block:
    delimiter = "," if fmt["type"] == "csv" else fmt.get("delimiter") or "\t"
    text = data.decode("utf-8", "replace")
    reader = csv.reader(io.StringIO(text), delimiter=delimiter)
    records = list(reader)
    skip = int(fmt.get("skipHeaderRows") or 0)
    records, first_line = records[skip:], skip + 1
    names = list(fmt.get("columns") or [])
    if fmt.get("findColumnsFromHeader") and records:
        header, records, first_line = records[0], records[1:], first_line + 1
        names = names or header
    columns: dict[str, list[Any]] = {name: [] for name in names}
    lines = []
    for offset, record in enumerate(records):
        if not record:
            continue
        for position, name in enumerate(names):
            value = record[position] if position < len(record) else None
            columns[name].append(value if value != "" else None)
        lines.append(first_line + offset)
    return _Block(columns, len(lines), path, lines)


# -- conversion ----------------------------------------------------------------------------------

def _convert(spec: IngestionSpec, block: _Block, stats: RowStats, errors: ParseErrors,
             types: dict[str, str]) -> pa.Table:
    """The block as typed Arrow columns: `__time` millis, dimensions, metric inputs; bad rows out."""
    millis, bad = _timestamps(spec, block.column(spec.timestamp_column))
    for index in bad:
        raw = _value(block.column(spec.timestamp_column), index)
        event = block.event(index)
        errors.add("unparseable", [f"Timestamp[{_java_text(raw)}] is unparseable! Event: {event}"
                                   f"{block.where(index)}"], event)
    keep = pc.is_valid(millis)
    if spec.intervals:
        inside = None
        for start, end in spec.intervals:
            test = pc.and_(pc.greater_equal(millis, start), pc.less(millis, end))
            inside = test if inside is None else pc.or_(inside, test)
        outside = pc.and_(keep, pc.invert(inside))
        stats.thrownAway += pc.sum(pc.cast(outside, pa.int64())).as_py() or 0
        keep = pc.and_(keep, inside)
    columns: dict[str, pa.Array] = {"__time": millis}
    errored: dict[int, list[str]] = {}
    for dimension in _dimensions(spec, block):
        types.setdefault(dimension.name, dimension.type)
        values, failures = _typed(block.column(dimension.name), dimension.type)
        for index, raw in failures:
            errored.setdefault(index, []).append(f"could not convert value [{_java_text(raw)}] to "
                                                 f"{dimension.type}")
        columns[dimension.name] = values
    for metric in spec.metrics:
        if metric.field is None:
            continue
        kind = "long" if metric.value_type == "long" else "double"
        values, failures = _typed(block.column(metric.field), kind)
        for index, raw in failures:
            errored.setdefault(index, []).append(f"Unable to parse value[{_java_text(raw)}] for "
                                                 f"field[{metric.field}]")
        columns["\0" + metric.field + "\0" + kind] = values
    kept = keep.to_pylist() if errored else None
    for index in sorted(errored):
        if kept[index]:
            errors.add("processedWithError", errored[index], block.event(index))
    table = pa.table(columns).filter(keep)
    stats.processed += table.num_rows - sum(1 for i in errored if kept[i]) if errored else table.num_rows
    return table


def _dimensions(spec: IngestionSpec, block: _Block) -> list[Dimension]:
    if spec.dimensions is not None:
        return spec.dimensions
    excluded = set(spec.exclusions) | {spec.timestamp_column} | {m.name for m in spec.metrics} | \
        {m.field for m in spec.metrics if m.field}
    return [Dimension(name) for name in block.columns if name not in excluded]


def _value(values: Any, index: int) -> Any:
    return values[index].as_py() if isinstance(values, pa.Array) else values[index]


def _timestamps(spec: IngestionSpec, raw: Any) -> tuple[pa.Array, list[int]]:
    """Millis per row (null where unparseable) and the unparseable row indexes."""
    fmt = spec.timestamp_format.lower()
    if isinstance(raw, pa.Array):
        fast = _timestamps_arrow(raw, fmt)
        if fast is not None and not fast.null_count:
            return fast, []
        raw = raw.to_pylist()
    parse = timestamp_parser(spec.timestamp_format)
    out, bad = [], []
    for index, value in enumerate(raw):
        if value is None and spec.missing_value is not None:
            value = spec.missing_value
        try:
            if value is None:
                raise ValueError("null")
            out.append(parse(value))
        except (ValueError, TypeError, OverflowError):
            out.append(None)
            bad.append(index)
    return pa.array(out, pa.int64()), bad


def _timestamps_arrow(raw: pa.Array, fmt: str) -> pa.Array | None:
    try:
        if pa.types.is_integer(raw.type) or pa.types.is_floating(raw.type):
            scale = {"auto": 1, "millis": 1, "posix": 1000, "ruby": 1000, "micro": 0.001, "nano": 0.000001}.get(fmt)
            if scale is None:
                return None
            if scale == 1 and pa.types.is_integer(raw.type):
                return raw.cast(pa.int64())
            return pc.cast(pc.floor(pc.multiply(raw.cast(pa.float64()), scale)), pa.int64())
        if pa.types.is_string(raw.type) and fmt in ("auto", "iso"):
            try:
                stamps = pc.cast(raw, pa.timestamp("ms", tz="UTC"))
            except pa.ArrowInvalid:
                stamps = pc.cast(raw, pa.timestamp("ms"))
            return stamps.cast(pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return None


def _typed(raw: Any, kind: str) -> tuple[pa.Array, list[tuple[int, Any]]]:
    """Values converted to a dimension / metric type as Druid converts them, and the failures."""
    target = ARROW_TYPES.get(kind)
    if isinstance(raw, pa.Array):
        if target is not None and raw.type == target:
            return raw, []
        if pa.types.is_null(raw.type):
            return pa.nulls(len(raw), target or pa.string()), []
        if kind == "string" and pa.types.is_integer(raw.type):
            return pc.cast(raw, pa.string()), []
        if kind in ("double", "float") and (pa.types.is_integer(raw.type) or pa.types.is_floating(raw.type)):
            return pc.cast(raw, pa.float64()), []
        raw = raw.to_pylist()
    convert = {"string": _to_string, "json": _to_json, "long": _to_long}.get(kind, _to_double)
    out, failures = [], []
    for index, value in enumerate(raw):
        try:
            out.append(convert(value))
        except (ValueError, TypeError, OverflowError):
            out.append(None)
            failures.append((index, value))
    return pa.array(out, target or pa.string()), failures


def _to_string(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _java_double(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def _to_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _to_long(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("not finite")
        return int(value)
    text = str(value).strip()
    if text == "":
        return None
    try:
        return int(text)
    except ValueError:
        number = float(text)
        if not math.isfinite(number):
            raise
        return int(number)


def _to_double(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("boolean")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    return None if text == "" else float(text)


def _java_double(value: float) -> str:
    """Java's Double.toString, which Druid uses to turn a JSON double into a string dimension."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0 or 1e-3 <= abs(value) < 1e7:
        text = repr(value)
        return text if "." in text or "e" in text else text + ".0"
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    shown = "".join(map(str, digits)).rstrip("0") or "0"
    power = len(digits) + exponent - 1
    return f"{'-' if sign else ''}{shown[0]}.{shown[1:] or '0'}E{power}"


def _java_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _java_double(value)
    return str(value)


# -- rollup and segments -------------------------------------------------------------------------

def _concat(parts: list[pa.Table], types: dict[str, str], spec: IngestionSpec) -> pa.Table:
    """One table of `__time` (truncated to queryGranularity), dimensions and metric values."""
    names = ["__time"] + list(types)
    if not parts:
        table = pa.table({n: pa.array([], pa.int64() if n == "__time" else ARROW_TYPES.get(types[n], pa.string()))
                          for n in names})
    else:
        aligned = []
        for part in parts:
            columns = {}
            for name in part.column_names:
                columns[name] = part.column(name)
            for name in names:
                if name not in columns:
                    columns[name] = pa.nulls(part.num_rows, ARROW_TYPES.get(types[name], pa.string()))
            aligned.append(pa.table(columns))
        table = pa.concat_tables(aligned, promote_options="permissive")
    time_column = spec.query.floor_array(table.column("__time").combine_chunks()) if table.num_rows else \
        table.column("__time")
    out = {"__time": time_column}
    for name in types:
        out[name] = table.column(name)
    for metric in spec.metrics:
        out[metric.name] = _metric_values(metric, table)
    return pa.table(out)


def _metric_values(metric: Metric, table: pa.Table) -> pa.ChunkedArray | pa.Array:
    if metric.type == "count":
        return pa.repeat(pa.scalar(1, pa.int64()), table.num_rows)
    kind = "long" if metric.value_type == "long" else "double"
    key = "\0" + metric.field + "\0" + kind
    if key not in table.column_names:
        return pa.nulls(table.num_rows, pa.int64() if kind == "long" else pa.float64())
    return table.column(key)


def _rollup(spec: IngestionSpec, table: pa.Table) -> pa.Table:
    keys = [n for n in table.column_names if n not in {m.name for m in spec.metrics}]
    if not spec.metrics:
        grouped = table.group_by(keys).aggregate([])
        return grouped.select(keys)
    grouped = table.group_by(keys, use_threads=False).aggregate([(m.name, m.combine) for m in spec.metrics])
    renamed = {f"{m.name}_{m.combine}": m.name for m in spec.metrics}
    return grouped.rename_columns([renamed.get(n, n) for n in grouped.column_names]).select(
        keys + [m.name for m in spec.metrics])


def _chunks(spec: IngestionSpec, table: pa.Table) -> list[tuple[int, int, int]]:
    if not table.num_rows:
        return []
    starts = spec.segment.floor_array(table.column("__time").combine_chunks())
    counts = pc.value_counts(starts).to_pylist()
    return sorted((c["values"], spec.segment.next(c["values"]), c["counts"]) for c in counts)


def stats_dict(stats: RowStats) -> dict[str, int]:
    return asdict(stats)
