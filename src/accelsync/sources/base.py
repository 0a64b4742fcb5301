"""What a source is: it plans partitions on the driver and reads each one as Arrow batches."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Iterator

import pyarrow as pa

from accelsync.engine.dirty import DirtyLog
from accelsync.engine.plan import Plan
from accelsync.spec import Spec


class Source(ABC):
    """A source reader (DataX reader plugin).

    `plan` runs once on the driver and fixes what this run reads. `read` runs in a Spark task,
    once per partition, and yields Arrow record batches matching `plan.schema`; records it
    cannot parse go to `dirty` with their location. `publish` advances the source position
    (offsets, watermark, file ledger) after the gate passed; by default there is none.
    """

    type: ClassVar[str]

    def __init__(self, spec: Spec):
        self.spec = spec
        self.options = spec.source

    @abstractmethod
    def plan(self, channels: int) -> Plan:
        ...

    @abstractmethod
    def read(self, plan: Plan, partition: dict, dirty: DirtyLog) -> Iterator[pa.RecordBatch]:
        ...

    def publish(self, plan: Plan) -> dict:
        """Advance the source position to what `plan` read; return what was advanced."""
        return {}
