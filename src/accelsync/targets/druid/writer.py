"""The write task: each task's rows as newline JSON in its own part file, the values encoded as
Druid reads them (dimensions by type, metric inputs, the timestamp in epoch millis)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from accelsync.runs import write_json_atomic
from accelsync.targets import value_text
from accelsync.targets.base import BatchWriter
from accelsync.targets.druid.timeutil import column_text, chunk_starts, event_millis

if TYPE_CHECKING:
    from accelsync.targets.druid.target import DruidTarget


class DruidWriter(BatchWriter):
    """Appends this task's rows as JSON lines to its part file; renames it into place at flush."""

    def __init__(self, target: DruidTarget, context: dict[str, Any]):
        self.target = target
        # `writer` (set by accelsync.engine.tasks) names the task on either engine, the same for a retry
        part = f"part-{context['writer']}"
        folder = Path(context["run_dir"]) / "druid"
        self.path = folder / "data" / f"{part}.json"
        self.meta = folder / "meta" / f"{part}.json"
        self.tmp = self.path.with_name(f".{part}.{uuid.uuid4().hex[:8]}.tmp")
        self.handle = None
        self.rows = 0
        self.dimensions: list[tuple[str, str]] | None = None
        self.chunks: set[int] = set()

    def write(self, batch: pa.RecordBatch) -> list[tuple[int, str]]:
        target = self.target
        if self.dimensions is None:
            self.dimensions = target.layout(batch.schema)
        millis, rejected = event_millis(batch.column(target.ts), target.ts_format, target.ts)
        if rejected:
            good = pc.is_valid(millis)
            batch, millis = batch.filter(good), millis.filter(good)
        if batch.num_rows == 0:
            return rejected
        parts: list = [b"{" + json.dumps(target.ts).encode() + b":", value_text.as_text(millis)]
        for name, kind in self.dimensions:
            parts += [b"," + json.dumps(name).encode() + b":", _json_dimension(batch.column(name), kind)]
        for name in target.fields:
            if name not in {n for n, _ in self.dimensions}:
                parts += [b"," + json.dumps(name).encode() + b":", _json_metric_input(batch.column(name))]
        parts.append(b"}\n")
        lines = pc.binary_join_element_wise(*[p if isinstance(p, bytes) else pc.fill_null(p, b"null")
                                              for p in parts], b"")
        if self.handle is None:
            self.tmp.parent.mkdir(parents=True, exist_ok=True)
            self.handle = open(self.tmp, "wb")
        self.handle.write(value_text.concat(lines))
        self.rows += batch.num_rows
        self.chunks.update(chunk_starts(millis, target.options.granularity.segment))
        return rejected

    def flush(self) -> None:
        if self.handle is None:
            return
        self.handle.close()
        self.handle = None
        os.replace(self.tmp, self.path)
        write_json_atomic(self.meta, {"rows": self.rows, "dimensions": self.dimensions,
                                      "chunks": sorted(self.chunks), "file": self.path.name})

    def close(self) -> None:
        if self.handle is not None:  # the task failed before flush: leave nothing behind
            self.handle.close()
            self.handle = None
            self.tmp.unlink(missing_ok=True)


def dimension_type(kind: pa.DataType) -> str:
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_integer(kind):
        return "long"
    if pa.types.is_floating(kind):
        return "double"
    return "string"


def dimension_values(column: pa.Array, kind: str) -> pa.Array:
    """The values Druid stores for a dimension of this type (what SQL returns)."""
    if kind == "long":
        return pc.cast(column, pa.int64())
    if kind == "double":
        values = pc.cast(column, pa.float64())
        return pc.if_else(pc.is_finite(values), values, pa.scalar(None, pa.float64()))
    return column_text(column)


def _json_dimension(column: pa.Array, kind: str) -> pa.Array:
    values = dimension_values(column, kind)
    if kind == "string":
        return _json_string(values)
    return value_text.as_text(values)


def _json_metric_input(column: pa.Array) -> pa.Array:
    kind = column.type
    if pa.types.is_boolean(kind):
        return value_text.as_text(pc.cast(column, pa.int8()))
    if pa.types.is_integer(kind) or pa.types.is_decimal(kind):
        return value_text.as_text(column)
    if pa.types.is_floating(kind):
        return pc.if_else(pc.is_finite(column), value_text.as_text(column), pa.scalar(None, pa.binary()))
    return _json_string(column_text(column))


def _json_string(text: pa.Array) -> pa.Array:
    """JSON string literals: quote and backslash escaped in bulk, control characters row by row."""
    escaped = pc.replace_substring(pc.replace_substring(text, "\\", "\\\\"), '"', '\\"')
    control = pc.fill_null(pc.match_substring_regex(text, r"[\x00-\x1f\x{2028}\x{2029}]"), False)
    if pc.any(control).as_py():
        rows = pc.indices_nonzero(control)
        fixed = [json.dumps(v)[1:-1] for v in pc.take(text, rows).to_pylist()]
        escaped = pc.replace_with_mask(escaped, control, pa.array(fixed, pa.string()))
    return pc.binary_join_element_wise(b'"', escaped.cast(pa.binary()), b'"', b"")


