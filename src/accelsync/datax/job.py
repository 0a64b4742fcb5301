"""A DataX (or Addax) job file: read, checked, and converted into a sync spec in memory.

DataX's layout is `{"job": {"setting": {...}, "content": [{"reader": {...}, "writer": {...}}]}}`
with an optional top-level `core` (overrides of DataX's core.json). Each reader and writer module
fills a `Conversion` (`accelsync.datax.conversion`): the spec as a mapping, a comment wherever a choice was made, every option
that could not be carried over (with its JSON path), and the connections the job's inline
credentials describe. Nothing here touches a server.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

from accelsync.datax import readers, settings, writers
from accelsync.datax.conversion import Conversion, JobError


def load_job(path: str | Path) -> dict:
    """The job file's JSON, with clear errors for a file that is not a DataX job."""
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise JobError(path, [("", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise JobError(path, [("", "not a DataX job file: not UTF-8 text")]) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise JobError(path, [("", f"not a DataX job file: not valid JSON (line {exc.lineno}, column "
                                   f"{exc.colno}: {exc.msg})")]) from None
    if not isinstance(data, dict) or not isinstance(data.get("job"), dict):
        raise JobError(path, [("job", "not a DataX job file: the top level needs a `job` object "
                                      "with `content` and `setting`")])
    return data


def convert(data: dict, job_path: str, name: Optional[str] = None) -> Conversion:
    """Convert a parsed job into a Conversion (raises JobError for what cannot be converted)."""
    job = data["job"]
    content = job.get("content")
    if not isinstance(content, list) or not content:
        raise JobError(job_path, [("job.content", "needs one {reader, writer} entry")])
    if len(content) > 1:
        raise JobError(job_path, [("job.content", f"has {len(content)} entries; a sync spec is one reader and one "
                                                  f"writer: split the job into {len(content)} job files")])
    entry = content[0]
    if not isinstance(entry, dict):
        raise JobError(job_path, [("job.content[0]", "is not a {reader, writer} object")])
    conv = Conversion(job_path)
    conv.spec["name"] = name or spec_name(job_path)
    conv.spec["description"] = f"Converted from the DataX job {Path(job_path).name} by accelsync import-datax."
    problems: list[tuple[str, str]] = []
    reader = _plugin(entry, "reader", problems)
    writer = _plugin(entry, "writer", problems)
    if problems:
        raise JobError(job_path, problems)
    conv.reader, conv.writer = reader[0], writer[0]
    record = readers.convert(conv, reader[0], reader[1], "job.content[0].reader.parameter")
    writers.convert(conv, writer[0], writer[1], "job.content[0].writer.parameter", record)
    settings.convert(conv, job.get("setting"), data.get("core"))
    for key in sorted(set(entry) - {"reader", "writer"}):
        conv.skip(f"job.content[0].{key}", "not a reader or writer; not read")
    for key in sorted(set(job) - {"content", "setting"}):
        conv.skip(f"job.{key}", "not a DataX job option accelsync knows; not read")
    for key in sorted(set(data) - {"job", "core"}):
        conv.skip(key, "outside `job`; not read")
    return conv


def _plugin(entry: dict, role: str, problems: list) -> tuple[str, dict]:
    plugin = entry.get(role)
    where = f"job.content[0].{role}"
    if not isinstance(plugin, dict) or not isinstance(plugin.get("name"), str):
        problems.append((where, f"needs a {role} object with a `name` and a `parameter` object"))
        return "", {}
    parameter = plugin.get("parameter", {})
    if not isinstance(parameter, dict):
        problems.append((f"{where}.parameter", "is not an object"))
        return plugin["name"], {}
    return plugin["name"], parameter


def spec_name(job_path: str) -> str:
    """A spec name (lower-case letters, digits, _) from the job file's name."""
    stem = re.sub(r"[^a-z0-9]+", "_", Path(job_path).stem.lower()).strip("_")
    if not stem or not stem[0].isalpha():
        stem = f"datax_{stem}".rstrip("_")
    return stem
