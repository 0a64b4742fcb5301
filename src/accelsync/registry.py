"""The one table of connectors: every `type:` a spec may name, and the package that holds it.

A connector package holds `SPEC`, the model of its options (light: Airflow imports it when it
parses DAGs), and `IMPLEMENTATION`, "module:Class" of its Source or Target, imported on first
use. The spec's unions and type tags, the meta columns, and the modules Spark's Python daemon
preloads all come from here: adding a connector is one folder and one line below.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from accelsync.sources.base import Source
    from accelsync.targets.base import Target

SOURCES = {
    "mysql": "accelsync.sources.mysql",
    "kafka": "accelsync.sources.kafka",
    "logs": "accelsync.sources.logs",
}
TARGETS = {
    "redis": "accelsync.targets.redis",
    "hbase": "accelsync.targets.hbase",
    "druid": "accelsync.targets.druid",
}


def source_specs() -> list[type]:
    """The options model of every source type, in registry order."""
    return [_package(SOURCES, name).SPEC for name in SOURCES]


def target_specs() -> list[type]:
    return [_package(TARGETS, name).SPEC for name in TARGETS]


def spec_of(kind: str, type_name: str) -> type | None:
    """The options model of `kind` ("source" or "target") `type_name`, or None if unknown."""
    table = SOURCES if kind == "source" else TARGETS
    return _package(table, type_name).SPEC if type_name in table else None


def meta_columns() -> tuple[str, ...]:
    """Columns a source adds to every record; no parsed field may take their names."""
    return tuple(column for spec in source_specs() for column in spec.META_COLUMNS)


def source_class(type_name: str) -> "type[Source]":
    return _implementation(SOURCES, type_name, "source")


def target_class(type_name: str) -> "type[Target]":
    return _implementation(TARGETS, type_name, "target")


def implementation_modules() -> list[str]:
    """The modules of every connector's code (Spark's Python daemon imports them once)."""
    return [_package(table, name).IMPLEMENTATION.split(":")[0] for table in (SOURCES, TARGETS) for name in table]


def _package(table: dict[str, str], type_name: str):
    return importlib.import_module(table[type_name])


def _implementation(table: dict[str, str], type_name: str, what: str):
    if type_name not in table:
        from accelsync.errors import TerminalError
        raise TerminalError(f"{what} type {type_name!r} has no connector in this version of accelsync")
    module, _, name = _package(table, type_name).IMPLEMENTATION.partition(":")
    return getattr(importlib.import_module(module), name)
