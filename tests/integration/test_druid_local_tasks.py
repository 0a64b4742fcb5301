"""Log files -> Druid on the local engine with two worker processes: each task stages its own
part file (they once shared `part-00000.json`, as the tasks have no Spark TaskContext, and the
second task's file replaced the first's: the gate's reconcile caught the missing half)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from accelsync import pipeline
from accelsync.connections import get_connection
from accelsync.runs import RunDir
from accelsync.targets.druid.client import DruidClient
from accelsync.spec import parse_spec

pytestmark = pytest.mark.integration


def test_two_local_tasks_stage_two_part_files_and_druid_gets_every_row(druid_server, tmp_path, run_id):
    folder = tmp_path / "logs"
    folder.mkdir()
    for part, cities in enumerate((["Paris", "Tokyo", "Lima"], ["Oslo", "Rome"])):
        lines = [json.dumps({"ts": f"2024-06-0{part + 1}T10:00:0{i}Z", "city": city, "n": i + 1})
                 for i, city in enumerate(cities)]
        (folder / f"part{part}.log").write_text("\n".join(lines) + "\n")
    datasource = f"local_tasks_{run_id.replace('-', '_')}"
    spec = parse_spec({
        "name": "test_druid_local_tasks", "engine": "local",
        "source": {"type": "logs", "path": str(folder), "format": "json",
                   "schema": {"ts": "timestamp", "city": "string", "n": "long"}},
        "target": {"type": "druid", "datasource": datasource, "timestamp": {"column": "ts"},
                   "dimensions": ["city"], "metrics": [{"type": "longSum", "name": "n", "field": "n"}]},
        "speed": {"channels": 2},
    })
    summary = pipeline.run(spec, run_id)

    assert summary["status"] == "published", summary["reason"]
    assert (summary["read"], summary["written"]) == (5, 5)
    staged = sorted(p.name for p in (Path(RunDir(spec.name, run_id).path) / "druid" / "data").glob("part-*.json"))
    assert len(staged) == 2, staged
    rows = DruidClient(get_connection("druid_default")).sql(
        f'SELECT city, SUM(n) AS n FROM "{datasource}" GROUP BY city ORDER BY city')
    assert rows == [{"city": "Lima", "n": 3}, {"city": "Oslo", "n": 1}, {"city": "Paris", "n": 1},
                    {"city": "Rome", "n": 2}, {"city": "Tokyo", "n": 2}]
