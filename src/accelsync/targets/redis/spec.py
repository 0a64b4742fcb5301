"""The `target:` options of Redis, and every check that needs no server."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar, Literal, Optional
from urllib.parse import quote

from pydantic import Field, model_validator

from accelsync.spec.connector import SourceSpec, TargetSpec
from accelsync.spec.fields import Duration, FieldError, Model
from accelsync.templates import Template


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


class RedisTargetSpec(TargetSpec):
    """Redis keys from a template, hash / string / json values, pipelined in large batches."""

    # The commented block `accelsync new` writes (str.format: {name}; braces doubled).
    STARTER: ClassVar[str] = """\
target:
  type: redis
  connection: redis_default
  key: "{name}:{{id}}"                # a template over columns
  value: {{type: hash, fields: [name, city, amount, updated_at]}}   # hash | string (column) | json (fields)
  mode: upsert                      # upsert: in place; swap: a new version made live at publish (full reads only)
  # ttl: 7d
"""

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

    @property
    def visible_before_gate(self) -> bool:
        return self.mode == "upsert"

    def columns_used(self) -> dict[str, list[str]]:
        return {"key": self.key.columns, "value": self.value.value_columns() or []}

    def asset_uri(self) -> str:
        """The Airflow Asset of these keys: `redis://<connection id>/<key template>`."""
        return f"redis://{self.connection}/{quote(self.key.text, safe=':')}"

    def check_source(self, source: SourceSpec) -> None:
        """A swapped version holds exactly one run's rows, so every run must read the whole source."""
        reads = source.new_only()
        if self.mode == "swap" and reads:
            raise FieldError("target.mode", f"swap serves each run's rows as the whole new version, and {reads}; "
                                            "use mode: upsert")
