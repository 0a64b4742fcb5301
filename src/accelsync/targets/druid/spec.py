"""The `target:` options of Apache Druid, and every check that needs no server."""

from __future__ import annotations

from typing import ClassVar, Literal, Optional
from urllib.parse import quote

from pydantic import Field, model_validator

from accelsync.spec.connector import SourceSpec, TargetSpec
from accelsync.spec.fields import FieldError, Model


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


class DruidTargetSpec(TargetSpec):
    """An Apache Druid datasource loaded by native batch ingestion."""

    # The commented block `accelsync new` writes (str.format: {name}; braces doubled).
    STARTER: ClassVar[str] = """\
target:
  type: druid
  connection: druid_default         # the router: http://host:8888
  datasource: {name}
  timestamp: {{column: updated_at, format: auto}}
  dimensions: [name, city]
  metrics: [{{type: count, name: rows}}, {{type: doubleSum, name: amount, field: amount}}]
  granularity: {{segment: day, query: none, rollup: false}}
  mode: {druid_mode:<28}# append: each run adds its rows | replace: the time chunks a run covers
"""

    keyed: ClassVar[bool] = False  # Druid keeps every row it ingests

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

    def columns_used(self) -> dict[str, list[str]]:
        return {"timestamp": [self.timestamp.column], "dimensions": list(self.dimensions),
                "metrics": [m.field for m in self.metrics if m.field]}

    def asset_uri(self) -> str:
        """The Airflow Asset of this datasource: `druid://<connection id>/<datasource>`."""
        return f"druid://{self.connection}/{quote(self.datasource)}"

    @classmethod
    def complete(cls, target: dict, new_only: bool) -> dict:
        """`mode` defaults to append when the source reads only what is new, else to replace."""
        if "mode" not in target:
            target = {**target, "mode": "append" if new_only else "replace"}
        return target

    def check_source(self, source: SourceSpec) -> None:
        """Replace makes the datasource hold exactly one run's rows: with a source that reads only
        what is new, each run would remove the rows earlier runs published."""
        reads = source.new_only()
        if self.mode == "replace" and reads:
            raise FieldError("target.mode", f"replace makes the datasource hold exactly each run's rows, and {reads}, "
                                            "so a run would remove the rows earlier runs published; use mode: append "
                                            "(the default for this source)")
