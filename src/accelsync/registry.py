"""The one map from a spec's `type:` to its source or sink class.

Connectors register themselves with a decorator; the engine asks the registry and never
branches on type names. Built-in connectors are imported lazily, on first lookup.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from accelsync.sinks.base import Sink
    from accelsync.sources.base import Source

_SOURCES: dict[str, type] = {}
_SINKS: dict[str, type] = {}
_BUILTIN_SOURCES = {"mysql": "accelsync.sources.mysql", "kafka": "accelsync.sources.kafka",
                    "logs": "accelsync.sources.logs"}
_BUILTIN_SINKS = {"redis": "accelsync.sinks.redis", "hbase": "accelsync.sinks.hbase",
                  "druid": "accelsync.sinks.druid"}


def register_source(cls):
    _SOURCES[cls.type] = cls
    return cls


def register_sink(cls):
    _SINKS[cls.type] = cls
    return cls


def source_class(type_name: str) -> "type[Source]":
    return _lookup(type_name, _SOURCES, _BUILTIN_SOURCES, "source")


def sink_class(type_name: str) -> "type[Sink]":
    return _lookup(type_name, _SINKS, _BUILTIN_SINKS, "target")


def _lookup(type_name: str, found: dict, builtin: dict, what: str):
    if type_name not in found and type_name in builtin:
        try:
            importlib.import_module(builtin[type_name])
        except ModuleNotFoundError as exc:
            if exc.name != builtin[type_name]:
                raise
    if type_name not in found:
        from accelsync.errors import TerminalError
        raise TerminalError(f"{what} type {type_name!r} has no connector in this version of accelsync")
    return found[type_name]
