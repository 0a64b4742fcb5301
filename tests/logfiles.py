"""Writing log files for the tests: lines joined with newlines, plain or gzip."""

from __future__ import annotations

import gzip
from pathlib import Path


def write_lines(path: Path, lines: list, zipped: bool = False) -> Path:
    """Lines (str or bytes) joined with newlines, plain or gzip."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"".join((line if isinstance(line, bytes) else line.encode()) + b"\n" for line in lines)
    path.write_bytes(gzip.compress(data) if zipped else data)
    return path
