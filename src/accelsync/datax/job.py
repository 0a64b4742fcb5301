"""A DataX (or Addax) job file: read, checked, and converted into a sync spec in memory.

DataX's layout is `{"job": {"setting": {...}, "content": [{"reader": {...}, "writer": {...}}]}}`
with an optional top-level `core` (overrides of DataX's core.json). Each reader and writer module
fills a `Conversion`: the spec as a mapping, a comment wherever a choice was made, every option
that could not be carried over (with its JSON path), and the connections the job's inline
credentials describe. Nothing here touches a server.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from accelsync.connections import Connection
from accelsync.errors import SpecError


class JobError(SpecError):
    """A job file that cannot be converted; each problem names its JSON path."""


@dataclass
class Unmapped:
    """An option of the job that the spec does not carry over."""

    path: str        # JSON path in the job file, e.g. job.content[0].writer.parameter.walFlag
    why: str
    # True when leaving it out changes which rows or values reach the target: `run JOB.json`
    # refuses such a job (convert it and edit the spec instead).
    changes_data: bool = False

    def line(self) -> str:
        return f"{self.path}: {self.why}" + (" [changes what is written]" if self.changes_data else "")


@dataclass
class JobConnection:
    """A connection the job describes inline. `shown` is its AIRFLOW_CONN value with the
    password replaced by a placeholder; `connection` (with the password) lives only in memory."""

    conn_id: str
    shown: str
    connection: Connection
    where: str  # the JSON path it came from

    def export_line(self) -> str:
        from accelsync.connections import env_name
        return f"export {env_name(self.conn_id)}='{self.shown}'"


@dataclass
class Conversion:
    """A job converted: `spec` is what the YAML spec holds; `comments` maps dotted spec paths
    (`source.split_pk`, `target` ...) to the note written above that line."""

    job_path: str
    spec: dict[str, Any] = field(default_factory=dict)
    comments: dict[str, list[str]] = field(default_factory=dict)
    unmapped: list[Unmapped] = field(default_factory=list)
    connections: list[JobConnection] = field(default_factory=list)
    reader: str = ""
    writer: str = ""

    def comment(self, spec_path: str, text: str) -> None:
        self.comments.setdefault(spec_path, []).append(text)

    def skip(self, path: str, why: str, changes_data: bool = False) -> None:
        self.unmapped.append(Unmapped(path, why, changes_data))

    def blocking(self) -> list[Unmapped]:
        return [item for item in self.unmapped if item.changes_data]


@dataclass
class Record:
    """The columns of the reader's records, in record order (what a writer's `index` counts).

    `names[i]` is the spec column of record position i; `constants[i]` is set when the reader
    makes that position a constant (txtfilereader `value`); `types` are the source types when
    the reader declares them (txtfilereader, kafkareader), so a writer may adjust them."""

    names: Optional[list[str]]           # None: not known without the database (column ["*"])
    constants: dict[int, str] = field(default_factory=dict)
    why_unknown: str = ""
    set_type: Any = None                 # callable(name, type, why) when types can be changed


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
    from accelsync.datax import readers, settings, writers

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


def problem(conv: Conversion, path: str, message: str) -> JobError:
    return JobError(conv.job_path, [(path, message)])
