"""What converting a DataX job produces, shared by the reader, writer and setting modules: the
`Conversion` (the spec as a mapping, its comments, what was not carried over, the job's inline
connections), the reader's `Record`, and the error that names a JSON path."""

from __future__ import annotations

from dataclasses import dataclass, field
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


def problem(conv: Conversion, path: str, message: str) -> JobError:
    return JobError(conv.job_path, [(path, message)])
