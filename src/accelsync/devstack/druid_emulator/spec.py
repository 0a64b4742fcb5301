"""A native batch task as Druid reads it: deserialisation checks (HTTP 400 at submit, with
Jackson's kind of message) and the ingestion spec the task then runs."""

from __future__ import annotations

import os
import random
import string
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from accelsync.devstack.druid_emulator.timeutil import Granularity, parse_interval

TASK_TYPES = ("index_parallel", "index")
KNOWN_TASK_TYPES = ["archive", "compact", "index", "index_hadoop", "index_kafka", "index_parallel",
                    "kill", "move", "noop", "query_controller", "restore"]
METRIC_TYPES = {"count": "long", "longSum": "long", "longMin": "long", "longMax": "long",
                "doubleSum": "double", "doubleMin": "double", "doubleMax": "double",
                "floatSum": "float", "floatMin": "float", "floatMax": "float"}
KNOWN_METRIC_TYPES = sorted(set(METRIC_TYPES) | {"cardinality", "filtered", "hyperUnique", "javascript",
                                                 "longFirst", "longLast", "stringFirst", "stringLast",
                                                 "thetaSketch", "HLLSketchBuild", "quantilesDoublesSketch"})
INPUT_SOURCES = ("inline", "local")
KNOWN_INPUT_SOURCES = ["azure", "combining", "druid", "google", "hdfs", "http", "inline", "local", "s3", "sql"]
INPUT_FORMATS = ("json", "csv", "tsv")
KNOWN_INPUT_FORMATS = ["avro_ocf", "avro_stream", "csv", "delta", "iceberg", "json", "kafka", "orc", "parquet",
                       "protobuf", "regex", "tsv"]
DIMENSION_TYPES = ("string", "long", "float", "double", "json")
NO_LIMIT = 2**31 - 1


class SpecError(Exception):
    """The task JSON cannot be deserialised: Druid answers HTTP 400 {"error": message}."""


@dataclass
class Dimension:
    name: str
    type: str = "string"


@dataclass
class Metric:
    type: str
    name: str
    field: str | None

    @property
    def value_type(self) -> str:
        return METRIC_TYPES[self.type]

    @property
    def combine(self) -> str:
        """How rollup combines two values of this metric."""
        if self.type == "count":
            return "sum"
        return self.type[len(self.value_type):].lower()


@dataclass
class IngestionSpec:
    datasource: str
    timestamp_column: str
    timestamp_format: str
    missing_value: Any
    dimensions: list[Dimension] | None          # None: schemaless discovery
    exclusions: set[str]
    metrics: list[Metric]
    segment: Granularity
    query: Granularity
    rollup: bool
    intervals: list[tuple[int, int]] | None
    input_source: dict[str, Any]
    input_format: dict[str, Any]
    append: bool
    drop_existing: bool
    max_parse_exceptions: int
    max_saved_parse_exceptions: int
    context: dict[str, Any] = field(default_factory=dict)


def _construct(cls: str, problem: str) -> SpecError:
    return SpecError(f"Cannot construct instance of `{cls}`, problem: {problem}")


def _subtype(value: Any, base: str, prop: str) -> str:
    if not isinstance(value, dict) or "type" not in value:
        raise SpecError(f"Missing type id when trying to resolve subtype of [simple type, class {base}]: "
                        f"missing type id property 'type' (for POJO property '{prop}')")
    return value["type"]


def _unknown(type_id: Any, base: str, known: list[str], prop: str) -> SpecError:
    return SpecError(f"Could not resolve type id '{type_id}' as a subtype of `{base}`: known type ids = "
                     f"[{', '.join(known)}] (for POJO property '{prop}')")


def task_id(task_type: str, datasource: str) -> str:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    suffix = "".join(random.choice(string.ascii_lowercase) for _ in range(8))
    return f"{task_type}_{datasource}_{suffix}_{now}"


def parse_task(payload: Any) -> tuple[str, str, IngestionSpec]:
    """(task id, task type, spec) of a submitted task; SpecError for what Druid refuses at submit."""
    if not isinstance(payload, dict):
        raise SpecError("Cannot deserialize value of type `org.apache.druid.indexing.common.task.Task` "
                        "from non-object JSON")
    task_type = _subtype(payload, "org.apache.druid.indexing.common.task.Task", "task")
    if task_type not in KNOWN_TASK_TYPES:
        raise _unknown(task_type, "org.apache.druid.indexing.common.task.Task", KNOWN_TASK_TYPES, "task")
    if task_type not in TASK_TYPES:
        raise SpecError(f"emulator: task type [{task_type}] is not served; use index_parallel")
    body = payload.get("spec")
    if not isinstance(body, dict):
        raise _construct("org.apache.druid.indexing.common.task.batch.parallel.ParallelIndexSupervisorTask",
                         "spec (ingestionSchema) must be specified")
    schema = body.get("dataSchema")
    if not isinstance(schema, dict):
        raise _construct("org.apache.druid.indexing.common.task.batch.parallel.ParallelIndexIngestionSpec",
                         "dataSchema must be specified")
    spec = _ingestion_spec(schema, body.get("ioConfig"), body.get("tuningConfig") or {},
                           payload.get("context") or {})
    return payload.get("id") or task_id(task_type, spec.datasource), task_type, spec


def _ingestion_spec(schema: dict, io: Any, tuning: dict, context: dict) -> IngestionSpec:
    data_schema = "org.apache.druid.segment.indexing.DataSchema"
    datasource = schema.get("dataSource")
    if not datasource:
        raise _construct(data_schema, "Invalid value for field [dataSource]: must not be null")
    if not isinstance(datasource, str) or "/" in datasource or datasource.startswith(".") or \
            any(c.isspace() and c != " " for c in datasource):
        raise _construct(data_schema, f"Invalid value for field [dataSource]: Value [{datasource}] cannot "
                                      "contain '/', start with '.' or contain whitespace other than space")
    if schema.get("parser"):
        raise SpecError("emulator: dataSchema.parser (the legacy parseSpec) is not served; use inputFormat")
    timestamp = schema.get("timestampSpec")
    if not isinstance(timestamp, dict):
        raise _construct(data_schema, "timestampSpec must be specified")
    dims_spec = schema.get("dimensionsSpec") or {}
    dimensions = _dimensions(dims_spec.get("dimensions") or [])
    metrics = _metrics(schema.get("metricsSpec") or [])
    seen: dict[str, list[str]] = {}
    for name in [d.name for d in dimensions or []]:
        seen.setdefault(name, []).append("dimensions list")
    for metric in metrics:
        seen.setdefault(metric.name, []).append("metricsSpec list")
    repeated = {n: where for n, where in seen.items() if len(where) > 1}
    if repeated:
        name, where = next(iter(repeated.items()))
        raise _construct(data_schema, f"Cannot specify a column more than once: [{name}] seen in "
                                      f"{', '.join(sorted(set(where)))} ({len(where)} occurrences)")
    if "__time" in seen:
        raise _construct(data_schema, "Dimensions and metrics cannot be named [__time]")
    granularity = schema.get("granularitySpec") or {}
    try:
        segment = Granularity(granularity.get("segmentGranularity", "DAY"), "segmentGranularity")
        query = Granularity(granularity.get("queryGranularity", "NONE"), "queryGranularity")
        intervals = [parse_interval(i) for i in granularity.get("intervals") or []] or None
    except (ValueError, KeyError) as exc:
        raise _construct("org.apache.druid.segment.indexing.granularity.UniformGranularitySpec", str(exc)) from None
    if intervals:  # bucketed by segment granularity, as Druid does
        intervals = [(segment.floor(start), end if segment.floor(end) == end else segment.next(segment.floor(end)))
                     for start, end in intervals]
    if not isinstance(io, dict):
        raise _construct("org.apache.druid.indexing.common.task.batch.parallel.ParallelIndexIngestionSpec",
                         "ioConfig must be specified")
    source = io.get("inputSource")
    if source is None:
        raise _construct("org.apache.druid.indexing.common.task.batch.parallel.ParallelIndexIOConfig",
                         "inputSource must be specified")
    source_type = _subtype(source, "org.apache.druid.data.input.InputSource", "inputSource")
    if source_type not in KNOWN_INPUT_SOURCES:
        raise _unknown(source_type, "org.apache.druid.data.input.InputSource", KNOWN_INPUT_SOURCES, "inputSource")
    if source_type not in INPUT_SOURCES:
        raise SpecError(f"emulator: inputSource type [{source_type}] is not served; use inline or local")
    _check_source(source)
    fmt = io.get("inputFormat")
    if fmt is None:
        raise SpecError("Cannot construct instance of `org.apache.druid.indexing.common.task.batch.parallel."
                        "ParallelIndexIngestionSpec`, problem: inputFormat must be specified")
    format_type = _subtype(fmt, "org.apache.druid.data.input.InputFormat", "inputFormat")
    if format_type not in KNOWN_INPUT_FORMATS:
        raise _unknown(format_type, "org.apache.druid.data.input.InputFormat", KNOWN_INPUT_FORMATS, "inputFormat")
    if format_type not in INPUT_FORMATS:
        raise SpecError(f"emulator: inputFormat type [{format_type}] is not served; use json, csv or tsv")
    _check_format(fmt)
    append, drop = bool(io.get("appendToExisting", False)), bool(io.get("dropExisting", False))
    if append and drop:
        raise _construct("org.apache.druid.indexing.common.task.batch.parallel.ParallelIndexIOConfig",
                         "Cannot both drop existing segments and append to existing segments. Either "
                         "dropExisting or appendToExisting should be set to false")
    transform = schema.get("transformSpec") or {}
    if transform.get("filter") or transform.get("transforms"):
        raise SpecError("emulator: transformSpec (filter, transforms) is not served")
    report = bool(tuning.get("reportParseExceptions", False))
    max_parse = 0 if report else tuning.get("maxParseExceptions", NO_LIMIT)
    if max_parse is None or int(max_parse) < 0:
        max_parse = NO_LIMIT
    return IngestionSpec(
        datasource=datasource, timestamp_column=timestamp.get("column") or "timestamp",
        timestamp_format=timestamp.get("format") or "auto", missing_value=timestamp.get("missingValue"),
        dimensions=dimensions, exclusions=set(dims_spec.get("dimensionExclusions") or []),
        metrics=metrics, segment=segment, query=query, rollup=bool(granularity.get("rollup", True)),
        intervals=intervals, input_source=source, input_format=fmt, append=append, drop_existing=drop,
        max_parse_exceptions=int(max_parse),
        max_saved_parse_exceptions=int(tuning.get("maxSavedParseExceptions") or (1 if report else 0)),
        context=context)


def _dimensions(raw: list) -> list[Dimension] | None:
    if not raw:
        return None
    dimensions = []
    for entry in raw:
        if isinstance(entry, str):
            dimensions.append(Dimension(entry))
            continue
        if not isinstance(entry, dict) or not entry.get("name"):
            raise _construct("org.apache.druid.data.input.impl.DimensionSchema", "Dimension name cannot be null")
        kind = entry.get("type", "string")
        if kind not in DIMENSION_TYPES:
            raise _unknown(kind, "org.apache.druid.data.input.impl.DimensionSchema", list(DIMENSION_TYPES) +
                           ["spatial", "auto"], "dimensions")
        dimensions.append(Dimension(entry["name"], kind))
    return dimensions


def _metrics(raw: list) -> list[Metric]:
    base = "org.apache.druid.query.aggregation.AggregatorFactory"
    metrics = []
    for entry in raw:
        kind = _subtype(entry, base, "metricsSpec")
        if kind not in KNOWN_METRIC_TYPES:
            raise _unknown(kind, base, KNOWN_METRIC_TYPES, "metricsSpec")
        if kind not in METRIC_TYPES:
            raise SpecError(f"emulator: aggregator type [{kind}] is not served")
        cls = f"org.apache.druid.query.aggregation.{kind[0].upper()}{kind[1:]}AggregatorFactory"
        if not entry.get("name"):
            raise _construct(cls, "Must have a valid, non-null aggregator name")
        if kind != "count" and not entry.get("fieldName"):
            if entry.get("expression"):
                raise SpecError("emulator: aggregator expressions are not served; use fieldName")
            raise _construct(cls, "Must have a valid, non-null fieldName or expression")
        metrics.append(Metric(kind, entry["name"], entry.get("fieldName")))
    return metrics


def _check_source(source: dict) -> None:
    if source["type"] == "inline":
        if not isinstance(source.get("data"), str):
            raise _construct("org.apache.druid.data.input.impl.InlineInputSource",
                             "data must be a non-null string")
        return
    cls = "org.apache.druid.data.input.impl.LocalInputSource"
    if not source.get("baseDir") and not source.get("files"):
        raise _construct(cls, "At least one of baseDir or files should be specified")
    if source.get("baseDir") and not source.get("filter"):
        raise _construct(cls, "filter is required when baseDir is specified")
    for path in [source.get("baseDir")] + list(source.get("files") or []):
        if path and not os.path.isabs(str(path)):
            raise _construct(cls, f"Path [{path}] must be absolute")


def _check_format(fmt: dict) -> None:
    if fmt["type"] == "json":
        flatten = fmt.get("flattenSpec") or {}
        if flatten.get("fields"):
            raise SpecError("emulator: json flattenSpec fields are not served")
        return
    cls = f"org.apache.druid.data.input.impl.{'CsvInputFormat' if fmt['type'] == 'csv' else 'DelimitedInputFormat'}"
    if not fmt.get("columns") and not fmt.get("findColumnsFromHeader"):
        raise _construct(cls, "If columns field is not set, the first row of your data must have your header "
                              "and findColumnsFromHeader must be set to true.")
