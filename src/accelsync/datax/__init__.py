"""Coming from DataX: convert DataX (and Addax) job files into sync specs, or run them as they are.

    convert_file(path) -> Conversion    the spec as a mapping, comments, what was not carried over
    render(conversion) -> str           the spec YAML with its comments (`accelsync import-datax`)
    load_spec_from_job(path) -> Spec    a job file as a checked Spec, its inline connections made
                                        available to this process only (`accelsync run JOB.json`)

Modules: `job` (the file and its layout), `conversion` (what a conversion produces), `readers` (mysqlreader, txtfilereader,
kafkareader), `writers` (hbase11xwriter; a fill-in target for the others), `settings` (speed,
errorLimit), `render` (YAML with comments).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from accelsync.datax.conversion import Conversion, JobError, Unmapped
from accelsync.datax.job import convert, load_job
from accelsync.datax.render import render

__all__ = ["Conversion", "JobError", "Unmapped", "convert_file", "is_job_file", "load_spec_from_job", "render"]


def is_job_file(path: str | Path) -> bool:
    """A `.json` file is read as a DataX job (specs are YAML)."""
    return str(path).lower().endswith(".json")


def convert_file(path: str | Path, name: Optional[str] = None) -> Conversion:
    return convert(load_job(path), str(path), name)


def load_spec_from_job(path: str | Path, name: Optional[str] = None):
    """The job as a Spec, ready to run unchanged. Its inline credentials become in-memory
    connections of this process (and of the worker processes it forks); they are never written
    anywhere. A job with options whose absence would change what is written is refused."""
    from accelsync.connections import provide
    from accelsync.spec import parse_spec

    conversion = convert_file(path, name)
    blocking = conversion.blocking()
    if blocking:
        raise JobError(str(path), [(item.path, item.why) for item in blocking] + [
            ("", "this job cannot run unchanged; convert it (accelsync import-datax) and edit the spec")])
    spec = parse_spec(conversion.spec, str(path))
    for item in conversion.connections:
        provide(item.connection)
    return spec
