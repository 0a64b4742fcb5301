"""Source positions kept between runs (MySQL watermark, file ledger); advanced only at publish.

Kafka keeps its own position: the consumer group's committed offsets in Kafka itself.
"""

from __future__ import annotations

import json
from typing import Any

from accelsync.runs import home, write_json_atomic


def _path(sync_name: str):
    return home() / "state" / f"{sync_name}.json"


def load_state(sync_name: str) -> dict[str, Any]:
    path = _path(sync_name)
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def save_state(sync_name: str, updates: dict[str, Any]) -> None:
    """Set these keys; a value of None removes its key."""
    state = load_state(sync_name)
    state.update(updates)
    write_json_atomic(_path(sync_name), {key: value for key, value in state.items() if value is not None})
