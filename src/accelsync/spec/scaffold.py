"""`accelsync new NAME --source S --target T`: a commented starter spec and GX suite.

Each connector's options model carries its commented block (`STARTER`); every source block yields
the same columns (id, name, city, amount, updated_at), so every source/target pair validates as
written, and the user then points it at real data.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from accelsync import registry

HEAD = """\
# {name}: {source} -> {target}. A starter written by `accelsync new`; every field is explained
# in the README (Spec reference). Check it with: accelsync validate {spec_path}
name: {name}
description: "{source} -> {target}: say what the data is and who reads it"
owner: data-team                    # the Airflow owner
business_line: default              # one Airflow pool (and queue) per business line
priority: medium                    # high | medium | low
schedule: "@hourly"                 # cron, an Airflow preset, or null (manual)
timeout: 30m                        # the whole run's budget
retries: 2                          # retried only when a service was unavailable

"""

TAIL = """
speed:
  channels: 2                       # parallel read/write tasks (DataX channel)
  records_per_second: 0             # 0: unlimited
error_limit:
  records: 0                        # fail on more dirty records than this (DataX errorLimit.record)
  # percentage: 0.01                # or on a dirty share above 1%
quality:
  suite: {suite_path}
  reconcile: {{tolerance: 0}}         # rows in the target must match rows read - dirty - filtered
  readback: {{sample: 200}}           # rows read back from the target and compared field by field
"""


def suite(name: str) -> dict:
    return {"name": name, "meta": {"notes": f"Starter suite of {name}, written by `accelsync new`."},
            "expectations": [
                {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1},
                 "meta": {"why": "an empty run usually means the source read failed"}},
                {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
                {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"},
                 "meta": {"why": "the key: duplicates would overwrite each other"}},
                {"type": "expect_column_values_to_be_between",
                 "kwargs": {"column": "amount", "min_value": 0, "mostly": 0.99}},
            ]}


def starter(name: str, source: str, target: str, spec_path: str, suite_path: str) -> str:
    """The spec text of one source/target pair."""
    source_block = registry.spec_of("source", source).STARTER.format(name=name)
    # a target mode whose default depends on the source (Druid: append for a delta source)
    new_only = registry.spec_of("source", source).new_only_in(yaml.safe_load(source_block)["source"])
    mode = "append" if new_only else "replace"
    return (HEAD.format(name=name, source=source, target=target, spec_path=spec_path)
            + source_block + "\n"
            + registry.spec_of("target", target).STARTER.format(name=name, druid_mode=mode)
            + TAIL.format(suite_path=suite_path))


def write_starter(name: str, source: str, target: str, folder: str = ".") -> list[Path]:
    """Write dags/syncs/NAME.yaml and expectations/NAME.json under `folder`; never overwrite."""
    if not re.match(r"^[a-z][a-z0-9_]*$", name):
        raise ValueError(f"{name!r} is not a sync name: lower-case letters, digits and _, starting with a letter")
    if source not in registry.SOURCES or target not in registry.TARGETS:
        raise ValueError(f"choose --source from {sorted(registry.SOURCES)} and --target from {sorted(registry.TARGETS)}")
    root = Path(folder)
    spec_path = root / "dags" / "syncs" / f"{name}.yaml"
    suite_path = root / "expectations" / f"{name}.json"
    for path in (spec_path, suite_path):
        if path.exists():
            raise FileExistsError(f"{path} exists; choose another name or remove it")
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    suite_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(starter(name, source, target, str(spec_path), f"expectations/{name}.json"),
                         encoding="utf-8")
    suite_path.write_text(json.dumps(suite(name), indent=2) + "\n", encoding="utf-8")
    return [spec_path, suite_path]
