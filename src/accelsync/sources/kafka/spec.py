"""The `source:` options of a Kafka topic, and every check that needs no broker."""

from __future__ import annotations

from typing import ClassVar, Literal, Optional

from pydantic import ConfigDict, Field, field_validator, model_validator

from accelsync.spec.connector import SourceSpec
from accelsync.spec.fields import check_schema


class KafkaSourceSpec(SourceSpec):
    """A Kafka topic read as a bounded batch: end offsets fixed at plan time."""

    # The commented block `accelsync new` writes (str.format: {name}; braces doubled).
    STARTER: ClassVar[str] = """\
source:
  type: kafka
  connection: kafka_default         # {{"conn_type": "kafka", "extra": {{"bootstrap.servers": "host:9092"}}}}
  topic: {name}
  start: earliest                   # where a new consumer group starts; offsets are committed at publish
  format: json                      # json | csv | raw
  schema: {{id: long, name: string, city: string, amount: "decimal(10,2)", updated_at: timestamp}}
"""

    META_COLUMNS: ClassVar[tuple[str, ...]] = ("_key", "_partition", "_offset", "_timestamp")

    type: Literal["kafka"]
    connection: str = "kafka_default"
    topic: str = Field(min_length=1)
    group: Optional[str] = None
    start: Literal["earliest", "latest"] = "earliest"
    format: Literal["json", "csv", "raw"] = "json"
    schema_: Optional[dict[str, str]] = Field(default=None, alias="schema")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    _check_schema = field_validator("schema_")(lambda cls, v: check_schema(v))

    @model_validator(mode="after")
    def _schema_needed(self):
        if self.format != "raw" and not self.schema_:
            raise ValueError(f"format {self.format} needs a `schema` of field: type")
        return self

    def known_columns(self) -> Optional[list[str]]:
        fields = list(self.schema_ or {}) if self.format != "raw" else ["value"]
        return fields + list(self.META_COLUMNS)

    def new_only(self) -> Optional[str]:
        return "a kafka source reads only the messages since the last run"

    @classmethod
    def new_only_in(cls, data: dict) -> bool:
        return True

    def group_of(self, sync_name: str) -> str:
        """The consumer group whose committed offsets are this sync's position."""
        return self.group or f"accelsync.{sync_name}"
