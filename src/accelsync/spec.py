"""The sync spec: a typed model of one YAML file, loaded with errors that name file and field.

Every source and target `type:` of SPEC.md is declared here, so `accelsync validate` and
`accelsync schema` cover all of them even where the connector is not built yet.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, ClassVar, Iterator, Literal, Optional, Union
from urllib.parse import quote

import yaml
from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer,
                      ValidationError, WithJsonSchema, field_validator, model_validator)

from accelsync.errors import SpecError
from accelsync.templates import Template

NAME_PATTERN = r"^[a-z][a-z0-9_]*$"
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
QUALIFIED_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")
_DURATION = re.compile(r"^\s*(\d+)\s*(ms|[smhd])\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
# Columns every Kafka and logs record carries besides its parsed fields.
KAFKA_META_COLUMNS = ("_key", "_partition", "_offset", "_timestamp")
LOGS_META_COLUMNS = ("_file", "_line")


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


def _identifier(value: str, what: str = "identifier", qualified: bool = False) -> str:
    pattern = QUALIFIED_IDENTIFIER if qualified else IDENTIFIER
    if not pattern.match(value):
        raise ValueError(f"{value!r} is not a valid {what} (letters, digits, _ and $; no quotes or spaces)")
    return value


class Model(BaseModel):
    """Base of every spec model: unknown fields are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- sources

class Incremental(Model):
    """Rows whose `column` is at or above the saved watermark, minus `lookback`.

    The watermark's own value is read again (`>=`), because a row committed after the last run
    can carry the same value (a DATETIME has whole seconds); `lookback` widens the window for rows
    committed late with a smaller value (a long transaction): a duration for date and time
    columns (`5m`), a number for integer columns. Re-read rows are written again, which keyed
    targets (Redis, HBase) absorb."""

    column: str
    lookback: Optional[Union[int, Duration]] = Field(
        default=None, description="re-read this much below the watermark: 5m for a time column, 1000 for an integer")

    _check = field_validator("column")(lambda cls, v: _identifier(v, "column name"))

    @field_validator("lookback", mode="before")
    @classmethod
    def _lookback(cls, v):
        if v is None:
            return v
        if isinstance(v, bool):
            raise ValueError("lookback is a duration (5m) for a time column or a number for an integer column")
        if isinstance(v, int):
            if v < 0:
                raise ValueError("lookback must not be negative")
            return v
        return parse_duration(v)


class MysqlSource(Model):
    """MySQL / MariaDB table or query, split into ranges of an integer key (DataX splitPk)."""

    type: Literal["mysql"]
    connection: str = "mysql_default"
    table: Optional[str] = None
    query: Optional[str] = None
    columns: Optional[list[str]] = Field(default=None, min_length=1)
    where: Optional[str] = None
    split_pk: Optional[str] = None
    incremental: Optional[Incremental] = None
    fetch_size: int = Field(default=65536, ge=1, description="rows per Arrow batch read from the server")

    @field_validator("table")
    @classmethod
    def _table(cls, v):
        return None if v is None else _identifier(v, "table name", qualified=True)

    @field_validator("columns")
    @classmethod
    def _columns(cls, v):
        if v is not None:
            for column in v:
                _identifier(column, "column name")
            if len(set(v)) != len(v):
                raise ValueError("columns are listed more than once")
        return v

    @field_validator("split_pk")
    @classmethod
    def _split_pk(cls, v):
        return None if v is None else _identifier(v, "column name")

    @model_validator(mode="after")
    def _table_or_query(self):
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of `table` and `query`")
        if self.query is not None and (self.columns or self.where or self.split_pk or self.incremental):
            raise ValueError("`columns`, `where`, `split_pk` and `incremental` go with `table`, not `query`")
        return self

    def known_columns(self) -> Optional[list[str]]:
        return list(self.columns) if self.columns else None


_FIELD_TYPES = re.compile(r"^(string|int|long|float|double|boolean|timestamp|date|binary|decimal\(\d+,\s*\d+\))$")
_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")
MAX_DECIMAL_PRECISION = 38  # Arrow's decimal128, Spark's DecimalType
# Columns a source adds to every record; a parsed field of the same name would be shadowed.
META_COLUMNS = KAFKA_META_COLUMNS + LOGS_META_COLUMNS


def _schema(v: Optional[dict[str, str]]) -> Optional[dict[str, str]]:
    if v is None:
        return v
    for name, kind in v.items():
        _identifier(name, "field name")
        _not_meta(name)
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


def _not_meta(name: str) -> None:
    if name in META_COLUMNS:
        raise ValueError(f"field {name!r} has the name of a column every record carries "
                         f"({', '.join(META_COLUMNS)}); rename it")


class KafkaSource(Model):
    """A Kafka topic read as a bounded batch: end offsets fixed at plan time."""

    type: Literal["kafka"]
    connection: str = "kafka_default"
    topic: str = Field(min_length=1)
    group: Optional[str] = None
    start: Literal["earliest", "latest"] = "earliest"
    format: Literal["json", "csv", "raw"] = "json"
    schema_: Optional[dict[str, str]] = Field(default=None, alias="schema")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    _check_schema = field_validator("schema_")(lambda cls, v: _schema(v))

    @model_validator(mode="after")
    def _schema_needed(self):
        if self.format != "raw" and not self.schema_:
            raise ValueError(f"format {self.format} needs a `schema` of field: type")
        return self

    def known_columns(self) -> Optional[list[str]]:
        fields = list(self.schema_ or {}) if self.format != "raw" else ["value"]
        return fields + list(KAFKA_META_COLUMNS)


class LogsSource(Model):
    """Log files (plain or gzip) matched by a glob or folder, parsed line by line."""

    type: Literal["logs"]
    path: str = Field(min_length=1)
    format: Literal["json", "regex", "csv"] = "json"
    pattern: Optional[str] = None
    schema_: Optional[dict[str, str]] = Field(default=None, alias="schema")
    header: bool = Field(default=False, description=(
        "csv only: the first line of each file names the fields (with `positions`: it is skipped)"))
    delimiter: str = Field(default=",", min_length=1, max_length=1, description="csv only")
    positions: Optional[list[Annotated[int, Field(ge=0)]]] = Field(default=None, min_length=1, description=(
        "csv only: the 0-based position in each line of each schema field, in schema order; a line may "
        "have more fields (default: the fields are the line's, in order)"))
    null_value: Optional[str] = Field(default=None, description=(
        "a field whose text is exactly this is NULL (for example \\N, DataX's nullFormat), whatever its type"))
    incremental: bool = False

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    _check_schema = field_validator("schema_")(lambda cls, v: _schema(v))

    @model_validator(mode="after")
    def _pattern(self):
        if self.format == "regex":
            if not self.pattern:
                raise ValueError("format regex needs a `pattern` with named groups")
            try:
                compiled = re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern does not compile: {exc}") from None
            if not compiled.groupindex:
                raise ValueError("pattern has no named groups (?P<name>...)")
            for group in compiled.groupindex:
                _not_meta(group)
            unknown = set(self.schema_ or {}) - set(compiled.groupindex)
            if unknown:
                raise ValueError(f"schema names fields the pattern does not capture: {sorted(unknown)}")
        elif self.pattern:
            raise ValueError("`pattern` goes with format regex")
        if self.format in ("json", "csv") and not self.schema_:
            raise ValueError(f"format {self.format} needs a `schema` of field: type")
        if self.positions is not None:
            if self.format != "csv":
                raise ValueError("`positions` goes with format csv")
            if len(self.positions) != len(self.schema_):
                raise ValueError(f"`positions` has {len(self.positions)} entries for {len(self.schema_)} schema "
                                 f"fields; give one position per field, in schema order")
            if len(set(self.positions)) != len(self.positions):
                raise ValueError("`positions` names a position twice")
        return self

    def known_columns(self) -> Optional[list[str]]:
        if self.format == "regex":
            fields = list(re.compile(self.pattern).groupindex)
        else:
            fields = list(self.schema_ or {})
        return fields + list(LOGS_META_COLUMNS)


Source = Annotated[Union[MysqlSource, KafkaSource, LogsSource], Field(discriminator="type")]


# ---------------------------------------------------------------- transform

class Transform(Model):
    """Spark SQL applied between read and write."""

    select: Optional[list[str]] = Field(default=None, min_length=1)
    filter: Optional[str] = None

    def output_columns(self, columns: Optional[list[str]]) -> Optional[list[str]]:
        """Column names after `select`, when they can be told without Spark; else None."""
        if not self.select:
            return columns
        names = []
        for expr in self.select:
            match = re.search(r"\s+as\s+`?([A-Za-z_][A-Za-z0-9_]*)`?\s*$", expr, re.IGNORECASE)
            if match:
                names.append(match.group(1))
            elif IDENTIFIER.match(expr.strip()):
                names.append(expr.strip())
            else:
                return None
        return names


# ---------------------------------------------------------------- targets

class RedisValue(Model):
    type: Literal["hash", "string", "json"] = "hash"
    fields: Optional[list[str]] = Field(default=None, min_length=1)
    column: Optional[str] = None

    @model_validator(mode="after")
    def _shape(self):
        if self.type == "string":
            if self.column is None and (self.fields is None or len(self.fields) != 1):
                raise ValueError("a string value names one `column` (or `fields` with exactly one column)")
        elif self.column is not None:
            raise ValueError(f"`column` goes with type string; a {self.type} value takes `fields`")
        return self

    def value_columns(self) -> Optional[list[str]]:
        if self.column:
            return [self.column]
        return list(self.fields) if self.fields else None


class RedisTarget(Model):
    """Redis keys from a template, hash / string / json values, pipelined in large batches."""

    type: Literal["redis"]
    connection: str = "redis_default"
    key: Template
    value: RedisValue = RedisValue()
    ttl: Optional[Duration] = None
    compression: Literal["none", "zstd", "snappy", "gzip"] = "none"
    mode: Literal["upsert", "swap"] = "upsert"
    grace: Duration = Field(default=timedelta(minutes=5), description=(
        "swap: how long a superseded version stays readable after publish, for readers that read the "
        "pointer just before it moved"))
    batch_size: int = Field(default=8192, ge=1, description="rows per pipelined round trip")

    @model_validator(mode="after")
    def _compression(self):
        if self.compression != "none" and self.value.type == "hash":
            raise ValueError("compression applies to string and json values, not hash")
        return self

    keyed: ClassVar[bool] = True  # writing a key again replaces its value

    @property
    def visible_before_gate(self) -> bool:
        return self.mode == "upsert"

    def columns_used(self) -> dict[str, list[str]]:
        return {"key": self.key.columns, "value": self.value.value_columns() or []}

    def asset_uri(self) -> str:
        """The Airflow Asset of these keys: `redis://<connection id>/<key template>`."""
        return f"redis://{self.connection}/{quote(self.key.text, safe=':')}"


# HBase's own rules: a table name (after an optional namespace) and a family name are letters,
# digits, '_', '-' and '.', not starting with '.' (HBase answers "Internal error" otherwise).
_HBASE_TABLE = re.compile(r"^(?:[A-Za-z0-9_][A-Za-z0-9_.-]*:)?[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_FAMILY = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_.-]*$")


class Salt(Model):
    buckets: int = Field(ge=1, le=65536)


class HbaseTarget(Model):
    """HBase through its Thrift server (happybase): row key template, columns or one family."""

    type: Literal["hbase"]
    connection: str = "hbase_default"
    table: str = Field(min_length=1)
    row_key: Template
    salt: Optional[Salt] = None
    columns: Optional[dict[str, str]] = None
    family: Optional[str] = None
    version_column: Optional[str] = None
    version: Optional[int] = Field(default=None, ge=0, le=2**63 - 2, description=(
        "one cell timestamp (ms since 1970) for every cell this sync writes (DataX versionColumn index -1)"))
    create_table: bool = False
    batch_size: int = Field(default=1000, ge=1)

    @field_validator("columns")
    @classmethod
    def _cells(cls, v):
        if v is not None:
            if not v:
                raise ValueError("name at least one family:qualifier")
            for cell in v:
                if not re.match(r"^[A-Za-z0-9_.-]+:[^:]+$", cell):
                    raise ValueError(f"{cell!r} is not family:qualifier")
                if not _FAMILY.match(cell.split(":", 1)[0]):
                    raise ValueError(f"{cell!r}: the family may not start with '.'")
        return v

    @field_validator("family")
    @classmethod
    def _family(cls, v):
        if v is not None and not _FAMILY.match(v):
            raise ValueError(f"{v!r} is not a column family name (letters, digits, '_', '-', '.'; "
                             f"not starting with '.')")
        return v

    @field_validator("table")
    @classmethod
    def _table(cls, v):
        if not _HBASE_TABLE.match(v):
            raise ValueError(f"{v!r} is not an HBase table name (letters, digits, '_', '-', '.', optionally "
                             f"after 'namespace:')")
        return v

    @model_validator(mode="after")
    def _columns_or_family(self):
        if (self.columns is None) == (self.family is None):
            raise ValueError("give exactly one of `columns` (family:qualifier -> column) and `family`")
        return self

    @model_validator(mode="after")
    def _one_version(self):
        if self.version is not None and self.version_column is not None:
            raise ValueError("give at most one of `version_column` and `version`")
        return self

    keyed: ClassVar[bool] = True  # writing a cell again replaces it (or adds a version of it)
    visible_before_gate: ClassVar[bool] = True  # HBase has no staging: cells are live once written

    def columns_used(self) -> dict[str, list[str]]:
        used = {"row_key": self.row_key.columns, "columns": list((self.columns or {}).values())}
        if self.version_column:
            used["version_column"] = [self.version_column]
        return used

    def asset_uri(self) -> str:
        """The Airflow Asset of this table: `hbase://<connection id>/<table>`."""
        return f"hbase://{self.connection}/{quote(self.table, safe=':')}"


class DruidTimestamp(Model):
    column: str
    format: str = "auto"


class DruidMetric(Model):
    type: Literal["count", "longSum", "doubleSum", "longMin", "longMax", "doubleMin", "doubleMax"]
    name: str
    field: Optional[str] = None

    @model_validator(mode="after")
    def _field(self):
        if self.type != "count" and not self.field:
            raise ValueError(f"metric {self.name!r} of type {self.type} needs a `field`")
        return self


class DruidGranularity(Model):
    segment: Literal["minute", "hour", "day", "week", "month", "year", "all"] = "day"
    query: Literal["none", "minute", "hour", "day", "week", "month", "year", "all"] = "none"
    rollup: bool = False


class DruidTarget(Model):
    """An Apache Druid datasource loaded by native batch ingestion."""

    type: Literal["druid"]
    connection: str = "druid_default"
    datasource: str = Field(min_length=1)
    timestamp: DruidTimestamp
    dimensions: list[str] = Field(default_factory=list)
    metrics: list[DruidMetric] = Field(default_factory=list)
    granularity: DruidGranularity = DruidGranularity()
    mode: Literal["replace", "append"] = Field(
        "replace", description="default: append for a delta source (kafka, or incremental mysql / logs), "
                               "else replace")

    keyed: ClassVar[bool] = False  # Druid keeps every row it ingests
    visible_before_gate: ClassVar[bool] = False  # staged in a datasource no reader uses until publish

    def columns_used(self) -> dict[str, list[str]]:
        return {"timestamp": [self.timestamp.column], "dimensions": list(self.dimensions),
                "metrics": [m.field for m in self.metrics if m.field]}

    def asset_uri(self) -> str:
        """The Airflow Asset of this datasource: `druid://<connection id>/<datasource>`."""
        return f"druid://{self.connection}/{quote(self.datasource)}"


Target = Annotated[Union[RedisTarget, HbaseTarget, DruidTarget], Field(discriminator="type")]


# ---------------------------------------------------------------- run-time settings and quality

class Speed(Model):
    channels: int = Field(default=1, ge=1, le=1024)
    records_per_second: int = Field(default=0, ge=0, description="0 = unlimited")


class ErrorLimit(Model):
    """DataX's errorLimit. The run fails when its dirty records exceed `records` (when set) or
    when their share of the records read exceeds `percentage` (when set, a fraction: 0.01 is
    1%). With neither set, no dirty record is allowed."""

    records: Optional[int] = Field(default=None, ge=0)
    percentage: Optional[float] = Field(default=None, ge=0.0, le=1.0)

    @property
    def record_limit(self) -> Optional[int]:
        """The dirty-record count the run may not exceed (None: no such limit)."""
        if self.records is None and self.percentage is None:
            return 0
        return self.records

    def exceeded(self, dirty: int, read: int) -> bool:
        """True when `dirty` of `read` records break the limit."""
        over_records = self.record_limit is not None and dirty > self.record_limit
        over_share = self.percentage is not None and read > 0 and dirty / read > self.percentage
        return over_records or over_share

    def task_cap(self, max_records: Optional[int]) -> Optional[int]:
        """Dirty records one task may find before the run is sure to fail, so the task stops early.

        A task's own count is a lower bound of the run's, so over `records` the run fails; over
        `percentage` of `max_records` (when the plan knows an upper bound of what the run reads,
        e.g. Kafka offset ranges) the run's share is over `percentage` too."""
        caps = []
        if self.record_limit is not None:
            caps.append(self.record_limit)
        if self.percentage is not None and max_records is not None:
            caps.append(int(self.percentage * max_records))
        return min(caps) if caps else None

    def describe(self) -> str:
        if self.records is None and self.percentage is None:
            return "no dirty record allowed"
        parts = []
        if self.records is not None:
            parts.append(f"records: {self.records}")
        if self.percentage is not None:
            parts.append(f"percentage: {self.percentage:g}")
        return ", ".join(parts)


class Reconcile(Model):
    tolerance: int = Field(default=0, ge=0)


class Readback(Model):
    sample: int = Field(default=1000, ge=0)


class Freshness(Model):
    column: str
    max_lag: Duration


class SparkOptions(Model):
    """Where and how big the sync's Spark application runs; every field optional.

    In a spec, the `spark:` section overrides the deployment's settings (see
    `accelsync.spark_settings`) for this sync only; it applies when the sync starts its own Spark
    application (`accelsync run`, spark-submit from Airflow), not to a session already running.
    """

    master: Optional[str] = Field(default=None, min_length=1,
                                  description="local[*], spark://host:7077, yarn, k8s://https://host:443")
    executors: Optional[int] = Field(default=None, ge=1, le=100_000)
    executor_cores: Optional[int] = Field(default=None, ge=1, le=1024)
    executor_memory: Optional[str] = Field(default=None, pattern=r"^\d+[kmgt]?$", examples=["4g"])
    driver_memory: Optional[str] = Field(default=None, pattern=r"^\d+[kmgt]?$", examples=["2g"])
    conf: dict[str, str] = Field(default_factory=dict, description="extra Spark properties")

    @field_validator("conf", mode="before")
    @classmethod
    def _conf_text(cls, v):
        """YAML gives numbers and booleans; Spark properties are text."""
        if isinstance(v, dict):
            return {str(k): (str(x).lower() if isinstance(x, bool) else str(x)) for k, x in v.items()}
        return v


class Quality(Model):
    suite: Optional[str] = None
    reconcile: Reconcile = Reconcile()
    readback: Readback = Readback()
    freshness: Optional[Freshness] = None


class Spec(Model):
    """One sync: where from, how transformed, where to, how fast, and how checked."""

    name: str = Field(pattern=NAME_PATTERN, max_length=200)
    description: Optional[str] = None
    owner: str = "accelsync"
    business_line: str = Field(default="default", pattern=NAME_PATTERN)
    priority: Literal["high", "medium", "low"] = "medium"
    schedule: Optional[str] = None
    timeout: Duration = timedelta(hours=1)
    retries: int = Field(default=0, ge=0, le=20)
    source: Source
    transform: Optional[Transform] = None
    target: Target
    speed: Speed = Speed()
    error_limit: ErrorLimit = ErrorLimit()
    quality: Quality = Quality()
    engine: Literal["auto", "local", "spark"] = Field(default="auto", description=(
        "local: worker processes on this machine, no JVM; spark: Spark tasks; auto: Spark for a transform, "
        "a cluster or a `spark:` section, else local"))
    spark: Optional[SparkOptions] = None

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v):
        return None if v is None else check_schedule(v)

    @model_validator(mode="after")
    def _columns_exist(self):
        """Template and value columns must exist when the source columns can be told statically."""
        columns = self.source.known_columns()
        if self.transform:
            columns = self.transform.output_columns(columns)
        if columns is None:
            return self
        for field, used in self.target.columns_used().items():
            for column in used:
                if column not in columns:
                    raise _FieldError(f"target.{field}", _not_a_column(column, field, columns))
        if self.quality.freshness and self.quality.freshness.column not in columns:
            raise _FieldError("quality.freshness.column",
                              _not_a_column(self.quality.freshness.column, "column", columns))
        return self

    @model_validator(mode="after")
    def _swap_reads_everything(self):
        """A swapped version holds exactly one run's rows, so every run must read the whole source."""
        if getattr(self.target, "mode", None) != "swap":
            return self
        if isinstance(self.source, KafkaSource):
            reads = "a kafka source reads only the messages since the last run"
        elif getattr(self.source, "incremental", None):
            reads = "`source.incremental` reads only what is new since the last run"
        else:
            return self
        raise _FieldError("target.mode", f"swap serves each run's rows as the whole new version, and {reads}; "
                                         "use mode: upsert")

    @model_validator(mode="after")
    def _rereads_need_keys(self):
        """MySQL incremental re-reads rows; only a target where a rewrite replaces the row absorbs that."""
        if isinstance(self.source, MysqlSource) and self.source.incremental and not self.target.keyed:
            raise _FieldError(
                "source.incremental",
                f"an incremental MySQL source reads the rows at its watermark (and within `lookback`) again, "
                f"so that no row committed late is lost; a {self.target.type} target keeps every row it is "
                f"given, so those rows would count twice. Read the table in full (no `incremental`) or "
                f"sync into a keyed target (redis, hbase)")
        return self

    @property
    def is_delta(self) -> bool:
        """True when a run reads only what is new since the last run (Kafka, incremental sources)."""
        return isinstance(self.source, KafkaSource) or bool(getattr(self.source, "incremental", None))

    @property
    def visible_before_gate(self) -> bool:
        """True when the target shows written rows to readers before the gate has passed."""
        return self.target.visible_before_gate

    def notes(self) -> list[tuple[str, str]]:
        """What a user should know about this spec that is not an error: (field, note)."""
        notes = []
        if self.visible_before_gate:
            field = "target.mode" if hasattr(self.target, "mode") else "target.type"
            notes.append((field, UPSERT_NOTE))
        return notes

    @model_validator(mode="before")
    @classmethod
    def _druid_mode_default(cls, data: Any) -> Any:
        """A Druid target's `mode` defaults to append when the source reads only what is new."""
        if isinstance(data, dict) and isinstance(data.get("target"), dict) and isinstance(data.get("source"), dict):
            target, source = data["target"], data["source"]
            if target.get("type") == "druid" and "mode" not in target:
                delta = source.get("type") == "kafka" or bool(source.get("incremental"))
                data = {**data, "target": {**target, "mode": "append" if delta else "replace"}}
        return data

    @model_validator(mode="after")
    def _druid_replace_reads_everything(self):
        """Replace makes the datasource hold exactly one run's rows: with a delta source, each run
        would remove the rows earlier runs published."""
        if not isinstance(self.target, DruidTarget) or self.target.mode != "replace":
            return self
        if isinstance(self.source, KafkaSource):
            reads = "a kafka source reads only the messages since the last run"
        elif getattr(self.source, "incremental", None):
            reads = "`source.incremental` reads only what is new since the last run"
        else:
            return self
        raise _FieldError("target.mode", f"replace makes the datasource hold exactly each run's rows, and {reads}, "
                                         "so a run would remove the rows earlier runs published; use mode: append "
                                         "(the default for this source)")

    @property
    def kafka_group(self) -> Optional[str]:
        if isinstance(self.source, KafkaSource):
            return self.source.group or f"accelsync.{self.name}"
        return None


UPSERT_NOTE = ("rows are written where readers see them before the gate runs; if the gate fails, rows written in "
               "upsert mode stay live and the source position is not advanced, so the next run writes them again")
# What the summary of such a run says when it failed after writing.
FAILED_UPSERT_NOTE = "rows written in upsert mode stay live; the source position was not advanced"

# Airflow's schedule presets (airflow.sdk's CRON_PRESETS plus @once and @continuous).
SCHEDULE_PRESETS = ("@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")


def check_schedule(text: str) -> str:
    """A cron expression (5 or 6 fields, as Airflow's croniter reads it) or an Airflow preset."""
    text = text.strip()
    if text.startswith("@"):
        if text not in SCHEDULE_PRESETS:
            raise ValueError(f"{text!r} is not an Airflow preset; use one of {', '.join(SCHEDULE_PRESETS)} "
                             "or a cron expression")
        return text
    from croniter import croniter
    try:
        croniter(text)
    except Exception as exc:  # croniter's CroniterBadCronError and friends, or a ValueError
        raise ValueError(f"{text!r} is not a cron expression: {exc}") from None
    return text


def _not_a_column(column: str, field: str, columns: list[str]) -> str:
    what = "template uses" if field in ("key", "row_key") else "names"
    return f"{what} {column!r}, which is not a source column (columns: {', '.join(columns)})"


class _FieldError(ValueError):
    """A model-level check that knows which field it is about."""

    def __init__(self, field: str, message: str):
        self.field = field
        super().__init__(message)


# ---------------------------------------------------------------- loading

def load_spec(path: str | Path) -> Spec:
    """Read and check one spec file; raise SpecError naming the file and each bad field."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise SpecError(path, [("", f"cannot read: {exc.strerror}")]) from None
    data = load_yaml(text, path)
    spec = parse_spec(data, path)
    return _resolve_suite(spec, Path(path))


def load_yaml(text: str, path: str) -> Any:
    """Parse YAML text, refusing a key given twice in one mapping (YAML would keep the last)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        duplicates = list(_duplicate_keys(root, ""))
        if duplicates:
            raise SpecError(path, duplicates)
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SpecError(path, [("", f"{where}not valid YAML: {getattr(exc, 'problem', exc)}")]) from None


def _duplicate_keys(node: Any, at: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            field = f"{at}.{name}" if at else name
            if name in seen:
                yield field, (f"given twice (lines {seen[name]} and {key.start_mark.line + 1}); "
                              "YAML would silently keep the last")
            else:
                seen[name] = key.start_mark.line + 1
            yield from _duplicate_keys(value, field)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, f"{at}[{index}]")


def _resolve_suite(spec: Spec, spec_path: Path) -> Spec:
    """A relative `quality.suite` names a file under the project: the current folder or the
    nearest folder above the spec that holds it. Resolved once here, so every process (Airflow
    worker, Spark driver) finds the same file whatever its working directory. The file must be
    there and look like a GX suite (the expectations themselves are checked by `validate` and
    the gate, which load Great Expectations)."""
    suite = spec.quality.suite
    if not suite:
        return spec
    found = Path(suite) if Path(suite).is_absolute() else next(
        (folder / suite for folder in [Path.cwd(), *spec_path.absolute().parents] if (folder / suite).is_file()),
        None)
    if found is None or not found.is_file():
        where = "" if Path(suite).is_absolute() else " (looked in the current folder and every folder above the spec)"
        raise SpecError(str(spec_path), [("quality.suite", f"no suite file {suite}{where}")])
    problem = suite_shape_problem(found)
    if problem:
        raise SpecError(str(spec_path), [("quality.suite", f"{found}: {problem}")])
    quality = spec.quality.model_copy(update={"suite": str(found)})
    return spec.model_copy(update={"quality": quality})


def suite_shape_problem(path: Path) -> Optional[str]:
    """Why this file is not a Great Expectations 1.x suite, or None (a cheap check: no GX import)."""
    import json
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot read: {exc}"
    except ValueError as exc:
        return f"not JSON: {exc}"
    if not isinstance(data, dict) or not isinstance(data.get("expectations"), list):
        return "not a Great Expectations suite (a JSON object with `name` and a list of `expectations`)"
    for index, item in enumerate(data["expectations"]):
        if not isinstance(item, dict) or not isinstance(item.get("type") or item.get("expectation_type"), str):
            return f"expectations[{index}] is not an expectation (an object with `type` and `kwargs`)"
    return None


def parse_spec(data: Any, path: str = "<spec>") -> Spec:
    """Check an already-parsed spec mapping."""
    if not isinstance(data, dict):
        raise SpecError(path, [("", "a spec is a mapping of fields (name, source, target, ...)")])
    todo = [(part, data[part]["todo"]) for part in ("source", "target")
            if isinstance(data.get(part), dict) and "todo" in data[part]]
    if todo:  # a block left to fill in (accelsync import-datax writes one for a writer it cannot map)
        raise SpecError(path, [(part, f"to fill in: {text}") for part, text in todo])
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(path, [_problem(error) for error in exc.errors()]) from None


def _problem(error: dict) -> tuple[str, str]:
    loc = [str(part) for part in error["loc"]]
    # Discriminated unions put the chosen tag in the location (source.mysql.table): drop it.
    for index, part in enumerate(loc):
        if index > 0 and loc[index - 1] in ("source", "target") and part in _TAGS:
            del loc[index]
            break
    field = ".".join(loc)
    message = error["msg"].removeprefix("Value error, ")
    kind = error["type"]
    ctx = error.get("ctx") or {}
    original = ctx.get("error")
    if isinstance(original, _FieldError):
        return original.field, str(original)
    if kind == "extra_forbidden":
        return field, "unknown field"
    if kind == "missing":
        return field, "required field is missing"
    if kind == "union_tag_invalid":
        return f"{field}.type", f"unknown type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return f"{field}.type", "required field is missing"
    if kind == "literal_error":
        return field, f"must be one of {ctx.get('expected')} (got {error.get('input')!r})"
    if kind == "string_pattern_mismatch" and loc and loc[-1] in ("name", "business_line"):
        return field, "must be lower-case letters, digits and _, starting with a letter"
    return field, message


_TAGS = {"mysql", "kafka", "logs", "redis", "hbase", "druid"}


def spec_files(paths: list[str]) -> list[Path]:
    """The spec files named by `paths`: files as given, folders searched for *.yaml / *.yml."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        else:
            found.append(path)
    return found


def json_schema() -> dict:
    """The JSON Schema of a spec file (what `accelsync schema` prints)."""
    schema = Spec.model_json_schema(by_alias=True)
    schema["title"] = "accelsync sync spec"
    return schema
