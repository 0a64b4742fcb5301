"""The sync spec: one YAML file as a typed model.

`Spec` holds what every sync has (name, schedule, speed, error limit, quality, engine); its
`source:` and `target:` are the options models of the connectors the registry names, told
apart by `type:`. Checks that concern one connector live in its `spec.py`; the checks here are
the ones across sections, and they ask the connectors instead of naming them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from accelsync import registry
from accelsync.spec.fields import IDENTIFIER, NAME_PATTERN, Duration, FieldError, Model

Source = Annotated[Union[tuple(registry.source_specs())], Field(discriminator="type")]
Target = Annotated[Union[tuple(registry.target_specs())], Field(discriminator="type")]


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
    `accelsync.engine.spark_settings`) for this sync only; it applies when the sync starts its own Spark
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
    suite_engine: Literal["auto", "gx"] = Field(default="auto", description=(
        "auto: the gate computes the suite on the run's Arrow snapshot when every expectation is one it "
        "evaluates as GX does, else GX evaluates it; gx: GX always evaluates it"))
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

    @model_validator(mode="before")
    @classmethod
    def _target_defaults(cls, data: Any) -> Any:
        """Target options whose default depends on the source (e.g. Druid's `mode`)."""
        if isinstance(data, dict) and isinstance(data.get("target"), dict) and isinstance(data.get("source"), dict):
            source = registry.spec_of("source", data["source"].get("type"))
            target = registry.spec_of("target", data["target"].get("type"))
            if source is not None and target is not None:
                data = {**data, "target": target.complete(data["target"], source.new_only_in(data["source"]))}
        return data

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
                    raise FieldError(f"target.{field}", _not_a_column(column, field, columns))
        if self.quality.freshness and self.quality.freshness.column not in columns:
            raise FieldError("quality.freshness.column",
                             _not_a_column(self.quality.freshness.column, "column", columns))
        return self

    @model_validator(mode="after")
    def _target_fits_source(self):
        """A target mode that cannot keep its promise with this source (e.g. swap over a delta)."""
        self.target.check_source(self.source)
        return self

    @model_validator(mode="after")
    def _rereads_need_keys(self):
        """A source that reads rows again needs a target where a rewrite replaces the row."""
        rereads = self.source.rereads()
        if rereads and not self.target.keyed:
            field, why = rereads
            raise FieldError(field, f"{why}; a {self.target.type} target keeps every row it is given, so those "
                                    f"rows would count twice. Read the source in full or sync into a keyed "
                                    f"target (redis, hbase)")
        return self

    @property
    def is_delta(self) -> bool:
        """True when a run reads only what is new since the last run (Kafka, incremental sources)."""
        return self.source.new_only() is not None

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
