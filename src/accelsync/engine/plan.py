"""A plan: the run's fixed view of its source (DataX "split"), made once on the driver.

It holds the Arrow schema the source will yield, one JSON-able dict per Spark partition (pk
ranges, offset ranges, files), and the source position that `publish` advances to. Because it
is fixed at plan time, data that arrives during the run belongs to the next run.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa


@dataclass
class Plan:
    schema: pa.Schema
    partitions: list[dict[str, Any]]
    state: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    # An upper bound of the records the run will read, when the source knows one at plan time
    # (Kafka's offset ranges); lets a task stop as soon as the error limit's share is sure to be over.
    max_records: int | None = None

    def to_json(self) -> str:
        return json.dumps({
            "schema": base64.b64encode(self.schema.serialize().to_pybytes()).decode("ascii"),
            "partitions": self.partitions,
            "state": self.state,
            "description": self.description,
            "max_records": self.max_records,
        }, default=str)

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        data = json.loads(text)
        schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(data["schema"])))
        return cls(schema, data["partitions"], data.get("state", {}), data.get("description", ""),
                   data.get("max_records"))

    def summary(self) -> dict[str, Any]:
        return {"partitions": len(self.partitions), "columns": self.schema.names,
                "description": self.description, "state": self.state}
