"""A converted job as spec YAML, with the conversion's comments above the lines they explain."""

from __future__ import annotations

import json
import re
import textwrap
from typing import Any

import yaml

from accelsync.datax.conversion import Conversion

_ORDER = ["name", "description", "source", "target", "speed", "error_limit"]
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLAIN_TEXT = re.compile(r"^[A-Za-z_/.][A-Za-z0-9_./*-]*$")


def render(conv: Conversion) -> str:
    """The spec YAML: a header naming the job, the connections to define and every option not
    carried over; then the spec, each choice commented where it was made."""
    lines = [f"# Converted from the DataX job {conv.job_path} ({conv.reader} -> {conv.writer}) by accelsync "
             f"import-datax.", "# Review the comments, then: accelsync validate <this file>"]
    if conv.connections:
        lines.append("# Connections (the job's passwords are not copied: put yours in place of PASSWORD):")
        lines += [f"#   {item.export_line()}" for item in conv.connections]
    if conv.unmapped:
        lines.append("# Not carried over from the job (JSON path: why):")
        for item in conv.unmapped:
            lines += _comment(item.line(), "#   ", "#     ")
    lines.append("")
    spec = {key: conv.spec[key] for key in _ORDER if key in conv.spec}
    spec.update({key: value for key, value in conv.spec.items() if key not in spec})
    _emit(spec, "", "", conv.comments, lines)
    return "\n".join(lines) + "\n"


def _emit(mapping: dict, path: str, indent: str, comments: dict, lines: list[str]) -> None:
    for key, value in mapping.items():
        here = f"{path}.{key}" if path else key
        if isinstance(value, dict) and path == "" and lines and lines[-1] != "":
            lines.append("")
        for text in comments.get(here, []):
            lines += _comment(text, f"{indent}# ", f"{indent}#   ")
        shown = _key(key)
        if isinstance(value, dict) and value:
            lines.append(f"{indent}{shown}:")
            _emit(value, here, indent + "  ", comments, lines)
        else:
            lines.append(f"{indent}{shown}: {_scalar(value)}")


def _scalar(value: Any) -> str:
    """One value on one line: plain where YAML reads it back as the same string, else JSON
    (which is YAML: double-quoted strings with escapes such as \\t, flow lists and maps)."""
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_key(k)}: {_scalar(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str) and _PLAIN_TEXT.match(value) and yaml.safe_load(value) == value:
        return value
    return json.dumps(value, ensure_ascii=False)


def _key(key: str) -> str:
    return key if _PLAIN_KEY.match(key) else json.dumps(key, ensure_ascii=False)


def _comment(text: str, first: str, rest: str) -> list[str]:
    wrapped = textwrap.wrap(text, width=110 - len(first), break_long_words=False, break_on_hyphens=False)
    return [(first if index == 0 else rest) + line for index, line in enumerate(wrapped or [""])]
