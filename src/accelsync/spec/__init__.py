"""The sync spec: its model (`model`), the pieces every model uses (`fields`), what a connector's
options model says about itself (`connector`), and reading spec files (`load`).

The names below are loaded on first use (PEP 562): the connectors' own `spec.py` modules import
`fields` and `connector` while the model, which is built from the registry of connectors, is
still being defined.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "format_duration": "fields", "parse_duration": "fields", "NAME_PATTERN": "fields",
    "json_schema": "load", "load_spec": "load", "load_yaml": "load", "parse_spec": "load",
    "spec_files": "load", "suite_shape_problem": "load",
    "FAILED_UPSERT_NOTE": "model", "UPSERT_NOTE": "model", "ErrorLimit": "model", "SparkOptions": "model",
    "Spec": "model", "check_schedule": "model",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'accelsync.spec' has no attribute {name!r}")
    return getattr(importlib.import_module(f"accelsync.spec.{_EXPORTS[name]}"), name)
