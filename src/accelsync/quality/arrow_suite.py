"""A GX suite evaluated on the run's Arrow snapshot, without importing Great Expectations.

Importing GX costs 3-5 s per process and its pandas engine needs the whole snapshot as one
DataFrame; the gate only needs each expectation's verdict and counts. For the expectations below,
with the arguments listed, this module computes exactly what GX's pandas engine computes on the
frame the gate would hand it (decimals of up to 15 digits as float64, NaN counted as null,
unexpected values in row order, `mostly` as GX applies it) and returns results in GX's own result
format, so GX renders them into Data Docs later (quality/expectations.render_results). Anything
else (another expectation type or argument, a `$PARAMETER`, a column that is missing or of a type
GX would compare differently) returns None and the whole suite runs on GX: one suite, one engine.
tests/unit/quality/test_arrow_suite.py checks every case against GX itself.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import pyarrow as pa
import pyarrow.compute as pc

log = logging.getLogger(__name__)
# GX's SUMMARY result format as the gate asks for it (quality/expectations.RESULT_FORMAT).
PARTIAL_UNEXPECTED = 20
NO_EXCEPTION = {"raised_exception": False, "exception_message": None, "exception_traceback": None}
# Expectation keys carried into the result's configuration (what Data Docs shows beside it).
_CONFIG_KEYS = ("id", "meta", "notes", "description", "severity")
_EXPECTATION_KEYS = {"type", "kwargs", *_CONFIG_KEYS, "rendered_content"}
# Rows up to which uniqueness is checked in this process (it sorts a copy of the column).
UNIQUE_ROWS = 20_000_000
# Decimals GX's frame holds as float64 (quality/gate._pandas_frame); wider ones stay Decimal objects.
FLOAT_DECIMAL_DIGITS = 15


class Unsupported(Exception):
    """This suite (or this snapshot) needs GX itself."""


@dataclass
class Column:
    """One column as GX's pandas frame would hold it."""

    values: pa.ChunkedArray
    null: pa.ChunkedArray  # True where pandas' isnull() is (null, and NaN for floats)

    @property
    def type(self) -> pa.DataType:
        return self.values.type


class Table:
    """The snapshot's columns, read lazily (memory-mapped, zero-copy) as expectations ask for them;
    plus constant columns (the gate's own measurements) that exist in no file."""

    def __init__(self, files: list[str], schema: pa.Schema, constants: dict[str, float]):
        self.files, self.schema, self.constants = files, schema, constants
        self.rows = sum(_file_rows(path) for path in files)
        self.names = [*schema.names, *constants]
        self._columns: dict[str, Column] = {}

    def column(self, name: str) -> Column:
        if name not in self._columns:
            self._columns[name] = self._read(name)
        return self._columns[name]

    def _read(self, name: str) -> Column:
        if name in self.constants:
            return _constant(self.constants[name] + 0.0, self.rows)  # + 0.0: -0.0 as pandas sees it
        if name in self.schema.names:
            chunks = [chunk for path in self.files for chunk in _file_column(path, name)]
            values = pa.chunked_array(chunks, type=self.schema.field(name).type)
        else:
            raise Unsupported(f"column {name!r} is not in the snapshot")  # GX reports it
        if pa.types.is_decimal(values.type):
            if values.type.precision > FLOAT_DECIMAL_DIGITS:
                raise Unsupported(f"column {name!r} holds wide decimals")
            values = pc.cast(values, pa.float64())
        if pa.types.is_floating(values.type):
            values = pc.add(values, 0.0)  # -0.0 -> 0.0: pandas treats them as one value
        return Column(values, pc.is_null(values, nan_is_null=True))


def _constant(value: float, rows: int, chunk_rows: int = 65_536) -> Column:
    """A column of one value: every chunk is the same small array, so memory does not grow with rows."""
    block = pa.repeat(pa.scalar(value, pa.float64()), min(rows, chunk_rows))
    chunks = [block] * (rows // chunk_rows) + ([block.slice(0, rows % chunk_rows)] if rows % chunk_rows else [])
    values = pa.chunked_array(chunks, pa.float64())
    return Column(values, pc.is_null(values, nan_is_null=True))


def _file_rows(path: str) -> int:
    with pa.memory_map(path, "r") as source:
        reader = pa.ipc.open_file(source)
        return sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))


def _file_column(path: str, name: str) -> list[pa.Array]:
    source = pa.memory_map(path, "r")  # kept open by the arrays that point into it
    reader = pa.ipc.open_file(source)
    index = reader.schema.get_field_index(name)
    return [reader.get_batch(i).column(index) for i in range(reader.num_record_batches)]


def load_raw_suite(path: str) -> dict:
    """The suite file as JSON (validate already checked it with GX)."""
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict) or not isinstance(data.get("expectations"), list):
        raise Unsupported("not a suite object")
    return data


def needs_gx(suite: dict) -> str | None:
    """Why GX must compute this suite, when that is known without the data (its types and
    arguments); None when the Arrow path may (the snapshot's column types decide the rest)."""
    if suite.get("suite_parameters"):
        return "it has suite_parameters"
    for index, item in enumerate(suite.get("expectations") or []):
        reason = _why_gx(item)
        if reason:
            return f"expectations[{index}] {reason}"
    return None


def _why_gx(item: Any) -> str | None:
    """Why GX must compute this expectation, from its type and arguments alone."""
    if not isinstance(item, dict) or set(item) - _EXPECTATION_KEYS or not isinstance(item.get("kwargs", {}), dict):
        return "is not an expectation object accelsync reads"
    kind, kwargs = item.get("type"), item.get("kwargs", {})
    handler = _HANDLERS.get(kind)
    if handler is None:
        return f"({kind}) is not one accelsync computes"
    unknown = sorted(set(kwargs) - handler[0])
    if unknown:
        return f"({kind}) has the argument {unknown[0]!r}"
    if any(_is_parameter(v) for v in kwargs.values()):
        return f"({kind}) has a $PARAMETER"
    return None


def evaluate(suite: dict, extra: list[dict], files: list[str], schema: pa.Schema,
             constants: dict[str, float]) -> dict | None:
    """The suite's validation result (GX's JSON shape, results in suite order), or None when
    GX must evaluate it."""
    try:
        if suite.get("suite_parameters"):
            raise Unsupported("suite parameters")
        table = Table(files, schema, constants)
        results = [_evaluate_one(item, table) for item in [*suite["expectations"], *extra]]
    except Unsupported:
        return None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as error:
        # A comparison Arrow has no kernel for: GX (pandas) compares its own way, or reports why not.
        log.info("the suite goes to Great Expectations: %s", error)
        return None
    passed = sum(1 for r in results if r["success"])
    return {"success": passed == len(results), "suite_name": suite.get("name"), "suite_meta": suite.get("meta"),
            "results": results,
            "statistics": {"evaluated_expectations": len(results), "successful_expectations": passed,
                           "unsuccessful_expectations": len(results) - passed,
                           "success_percent": passed / len(results) * 100 if results else None}}


def _evaluate_one(item: Any, table: Table) -> dict:
    reason = _why_gx(item)
    if reason:
        raise Unsupported(reason)
    kind, kwargs = item["type"], dict(item.get("kwargs", {}))
    success, result = _HANDLERS[kind][1](table, **kwargs)
    config = {"type": kind, "kwargs": kwargs, **{k: item[k] for k in _CONFIG_KEYS if k in item}}
    return {"success": bool(success), "expectation_config": config, "result": result,
            "exception_info": dict(NO_EXCEPTION), "meta": {}}


def _is_parameter(value: Any) -> bool:
    return isinstance(value, dict)  # {"$PARAMETER": ...} and anything else that is not a plain value


def _number(value: Any, optional: bool = True) -> bool:
    if value is None:
        return optional
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _mostly(mostly: Any) -> float:
    if not _number(mostly, optional=False) or not 0 <= mostly <= 1:
        raise Unsupported("mostly")  # GX reports the bad value
    return float(mostly)


# ---------------------------------------------------------------------------- table expectations

def _row_count_between(table: Table, min_value=None, max_value=None, strict_min=False, strict_max=False):
    if not (_number(min_value) and _number(max_value)) or (min_value is None and max_value is None) \
            or not isinstance(strict_min, bool) or not isinstance(strict_max, bool):
        raise Unsupported("bounds")
    rows = table.rows
    above = min_value is None or (rows > min_value if strict_min else rows >= min_value)
    below = max_value is None or (rows < max_value if strict_max else rows <= max_value)
    return above and below, {"observed_value": rows}


def _row_count_equal(table: Table, value=None):
    if not _number(value, optional=False):
        raise Unsupported("value")
    return table.rows == value, {"observed_value": table.rows}


def _column_exists(table: Table, column=None):
    if not isinstance(column, str):
        raise Unsupported("column")
    return column in table.names, {}


# --------------------------------------------------------------------------- column expectations

def _map_result(table: Table, column: Column, unexpected: pa.ChunkedArray, mostly: float,
                count_nulls: bool) -> tuple[bool, dict]:
    """GX's ColumnMapExpectation result (SUMMARY) from the mask of unexpected rows (no nulls in it).

    `count_nulls`: the expectation is about nulls themselves (not_be_null / be_null): every row is
    considered and there is no missing count; otherwise nulls are left out first."""
    rows = table.rows
    unexpected_count = pc.sum(unexpected).as_py() or 0
    considered = rows if count_nulls else rows - (pc.sum(column.null).as_py() or 0)
    success = True if rows == 0 or considered == 0 else (considered - unexpected_count) / considered >= mostly
    positions = pc.indices_nonzero(unexpected.combine_chunks())[:PARTIAL_UNEXPECTED]
    values = pc.take(column.values, positions).to_pylist()
    if count_nulls and pa.types.is_floating(column.type):
        values = [None if isinstance(v, float) and math.isnan(v) else v for v in values]
    result: dict[str, Any] = {"element_count": rows, "unexpected_count": unexpected_count,
                              "unexpected_percent": None, "partial_unexpected_list": values}
    if rows:
        total = unexpected_count / rows * 100
        if count_nulls:
            result["unexpected_percent"] = total
        else:
            missing = rows - considered
            nonmissing = unexpected_count / considered * 100 if considered else None
            result.update(unexpected_percent=nonmissing, missing_count=missing, missing_percent=missing / rows * 100,
                          unexpected_percent_total=total, unexpected_percent_nonmissing=nonmissing)
    elif not count_nulls:
        result.update(missing_count=0, missing_percent=None, unexpected_percent_total=None,
                      unexpected_percent_nonmissing=None)
    # pandas holds nulls of a float column (and of an integer one with nulls) as NaN, and GX counts
    # each NaN apart (NaN != NaN): one entry per null there, one entry for all of them elsewhere.
    nan_nulls = pa.types.is_floating(column.type) or (pa.types.is_integer(column.type) and column.values.null_count)
    result["partial_unexpected_counts"] = (
        [{"value": None, "count": 1} for value in values if value is None] + _counts([v for v in values if v is not None])
        if nan_nulls and None in values else _counts(values))
    result["partial_unexpected_index_list"] = positions.to_pylist()
    return success, result


def _counts(values: list) -> list[dict]:
    """GX's partial_unexpected_counts: most common first, ties by value."""
    try:
        common = Counter(values).most_common(PARTIAL_UNEXPECTED)
        return [{"value": value, "count": count} for value, count in sorted(common, key=lambda x: (-x[1], x[0]))]
    except TypeError:  # e.g. None beside a number: GX says the same
        return [{"error": "partial_exception_counts requires a hashable type"}]


def _considered(column: Column, mask: pa.ChunkedArray) -> pa.ChunkedArray:
    """Unexpected among non-null rows only (GX filters nulls before a column map metric)."""
    return pc.and_(pc.invert(column.null), pc.fill_null(mask, False))


def _column_map(check: Callable[[Column, dict], pa.ChunkedArray], count_nulls: bool = False,
                allowed: Iterable[str] = ()) -> tuple[set[str], Callable]:
    def evaluate(table: Table, column=None, mostly=1, **kwargs):
        if not isinstance(column, str):
            raise Unsupported("column")
        data = table.column(column)
        unexpected = check(data, kwargs)
        if not count_nulls:
            unexpected = _considered(data, unexpected)
        return _map_result(table, data, unexpected, _mostly(mostly), count_nulls)
    return {"column", "mostly", *allowed}, evaluate


def _not_null(column: Column, _: dict) -> pa.ChunkedArray:
    return column.null


def _null(column: Column, _: dict) -> pa.ChunkedArray:
    return pc.invert(column.null)


def _unique(column: Column, _: dict) -> pa.ChunkedArray:
    """pandas' duplicated(keep=False): every row whose value occurs more than once. Found by
    sorting the non-null values and comparing neighbours (at 10M rows 5x faster than a hash of
    every value, in a third of the memory); beyond UNIQUE_ROWS, GX on Spark, which spills."""
    if len(column.values) > UNIQUE_ROWS:
        raise Unsupported("too many rows to sort in this process")
    present = pc.filter(column.values, pc.invert(column.null))
    ordered = pc.take(present, pc.sort_indices(present))
    if isinstance(ordered, pa.ChunkedArray):
        ordered = ordered.combine_chunks()
    following = ordered.slice(1)
    repeated = pc.unique(pc.filter(following, pc.equal(following, ordered.slice(0, len(following)))))
    return pc.is_in(column.values, value_set=repeated)


def _in_set(column: Column, kwargs: dict) -> pa.ChunkedArray:
    return pc.invert(pc.is_in(column.values, value_set=_value_set(column, kwargs.get("value_set"))))


def _not_in_set(column: Column, kwargs: dict) -> pa.ChunkedArray:
    return pc.is_in(column.values, value_set=_value_set(column, kwargs.get("value_set")))


def _value_set(column: Column, values: Any) -> pa.Array:
    """The value set in the column's type, when pandas' isin would compare the same way."""
    if not isinstance(values, list):
        raise Unsupported("value_set")
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        if all(isinstance(v, str) for v in values):
            return pa.array(values, kind)
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
        if all(_number(v, optional=False) for v in values):
            whole = all(float(v).is_integer() for v in values)
            if pa.types.is_integer(kind) and whole:
                return pa.array([int(v) for v in values], kind)
            if pa.types.is_floating(kind):
                return pa.array([float(v) for v in values], kind)
    raise Unsupported("value_set of another type than the column")


def _between(column: Column, kwargs: dict) -> pa.ChunkedArray:
    low, high = kwargs.get("min_value"), kwargs.get("max_value")
    strict_min, strict_max = kwargs.get("strict_min", False), kwargs.get("strict_max", False)
    numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
    if not numeric or not (_number(low) and _number(high)) or (low is None and high is None) \
            or (low is not None and high is not None and low > high) \
            or not isinstance(strict_min, bool) or not isinstance(strict_max, bool):
        raise Unsupported("between")
    values = column.values
    if pa.types.is_integer(values.type) and any(isinstance(b, float) for b in (low, high)):
        values = pc.cast(values, pa.float64())
    inside = None
    if low is not None:
        inside = (pc.greater if strict_min else pc.greater_equal)(values, low)
    if high is not None:
        below = (pc.less if strict_max else pc.less_equal)(values, high)
        inside = below if inside is None else pc.and_(inside, below)
    return pc.invert(inside)


def _regex(match_is_expected: bool) -> Callable[[Column, dict], pa.ChunkedArray]:
    """pandas' str.contains(regex): Python's re.search, run once per distinct value."""
    def check(column: Column, kwargs: dict) -> pa.ChunkedArray:
        regex = kwargs.get("regex")
        if not isinstance(regex, str) or not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
            raise Unsupported("regex")
        try:
            search = re.compile(regex).search
        except re.error:
            raise Unsupported("regex that Python cannot compile") from None  # GX reports it
        def unexpected(chunk: pa.Array) -> pa.Array:
            # Batch by batch, so memory stays one batch of text however many rows the run has.
            distinct = pc.unique(pc.drop_null(chunk))
            found = pa.array([search(text) is not None for text in distinct.to_pylist()], pa.bool_())
            wrong = pc.filter(distinct, pc.invert(found) if match_is_expected else found)
            return pc.is_in(chunk, value_set=wrong)
        return pa.chunked_array([unexpected(chunk) for chunk in column.values.chunks], pa.bool_())
    return check


_HANDLERS: dict[str, tuple[set[str], Callable]] = {
    "expect_table_row_count_to_be_between": ({"min_value", "max_value", "strict_min", "strict_max"}, _row_count_between),
    "expect_table_row_count_to_equal": ({"value"}, _row_count_equal),
    "expect_column_to_exist": ({"column"}, _column_exists),
    "expect_column_values_to_not_be_null": _column_map(_not_null, count_nulls=True),
    "expect_column_values_to_be_null": _column_map(_null, count_nulls=True),
    "expect_column_values_to_be_unique": _column_map(_unique),
    "expect_column_values_to_be_in_set": _column_map(_in_set, allowed={"value_set"}),
    "expect_column_values_to_not_be_in_set": _column_map(_not_in_set, allowed={"value_set"}),
    "expect_column_values_to_be_between": _column_map(_between, allowed={"min_value", "max_value", "strict_min",
                                                                          "strict_max"}),
    "expect_column_values_to_match_regex": _column_map(_regex(True), allowed={"regex"}),
    "expect_column_values_to_not_match_regex": _column_map(_regex(False), allowed={"regex"}),
}
# What the README lists as evaluated without GX.
SUPPORTED = tuple(_HANDLERS)
