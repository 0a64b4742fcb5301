"""Dirty records: records that were read but cannot be written, kept with where and why."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any


class DirtyLog:
    """Appends dirty records as JSON lines to one file per task; counts them."""

    def __init__(self, folder: str | Path | None, task: str, keep_records: bool = True):
        self.count = 0
        self.reasons: dict[str, int] = {}
        self.path: Path | None = None
        self._handle = None
        self._keep = keep_records
        if folder is not None:
            self.path = Path(folder) / f"{task}-{uuid.uuid4().hex[:8]}.jsonl"

    def add(self, location: dict[str, Any], reason: str, record: Any = None) -> None:
        self.count += 1
        self.reasons[reason.split(":")[0]] = self.reasons.get(reason.split(":")[0], 0) + 1
        if self.path is None:
            return
        if self._handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "a", encoding="utf-8")
        entry = {"location": location, "reason": reason}
        if self._keep and record is not None:
            entry["record"] = record
        self._handle.write(json.dumps(entry, default=_printable, ensure_ascii=False) + "\n")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _printable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", errors="backslashreplace")
    return str(value)


def read_dirty(folder: str | Path, limit: int | None = None) -> list[dict]:
    """The dirty records of a run, for summaries and tests."""
    entries: list[dict] = []
    for path in sorted(Path(folder).glob("*.jsonl")):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                entries.append(json.loads(line))
                if limit is not None and len(entries) >= limit:
                    return entries
    return entries
