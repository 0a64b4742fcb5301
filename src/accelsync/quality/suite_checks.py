"""Readable gate checks from expectation results: a name from the expectation's type and columns,
a detail that says why it failed (unexpected counts and values, or the observed aggregate)."""

from __future__ import annotations

import json
from typing import Any

SHOWN_UNEXPECTED = 5
# kwargs that say nothing about what is checked; left out of check names and details.
_DOMAIN_KWARGS = ("column", "column_A", "column_B", "column_list")
_QUIET_KWARGS = {"batch_id", "result_format", "catch_exceptions", "include_config",
                 "meta", "notes", "description", "rendered_content", "severity"}


def suite_check(kind: str, kwargs: dict, success: bool, result: dict, exception_info: Any) -> dict[str, Any]:
    """One readable check from one expectation's result (GX's, or the Arrow path's in GX's shape)."""
    kwargs = {k: v for k, v in kwargs.items() if k not in _QUIET_KWARGS}
    # Column expectations are named by their columns; table ones by their arguments.
    domain = () if kind.startswith("expect_table_") else _DOMAIN_KWARGS
    name = f"{kind}({_subject(kwargs, domain)})"
    error = _exception_message(exception_info)
    if error:
        return {"name": name, "passed": False, "detail": f"could not be evaluated: {error}"}
    passed = bool(success)
    return {"name": name, "passed": passed, "detail": _detail(result, kwargs, domain, passed)}


def _subject(kwargs: dict, domain: tuple[str, ...]) -> str:
    columns = []
    for key in domain:
        value = kwargs.get(key)
        if isinstance(value, list):
            columns += [str(v) for v in value]
        elif value:
            columns.append(str(value))
    return ", ".join(columns) if columns else _arguments(kwargs)


def _arguments(kwargs: dict, skip: tuple[str, ...] = ()) -> str:
    shown = []
    for key, value in kwargs.items():
        if key in skip or value is None:
            continue
        if isinstance(value, float) and value.is_integer():
            value = int(value)  # GX turns bounds into floats; show them as written
        text = json.dumps(value, ensure_ascii=False, default=str)
        shown.append(f"{key}={text if len(text) <= 60 else text[:57] + '...'}")
    return ", ".join(shown)


def _detail(result: dict, kwargs: dict, domain: tuple[str, ...], passed: bool) -> str:
    """Why a check failed: unexpected counts and values, or the observed aggregate."""
    examples = _distinct(result.get("partial_unexpected_list") or [])[:SHOWN_UNEXPECTED]
    shown = ", ".join(_show(v) for v in examples)
    if "element_count" in result and "unexpected_count" in result:  # column map expectations
        unexpected = int(result.get("unexpected_count") or 0)
        total = int(result.get("element_count") or 0)
        if passed and not unexpected:
            return f"all {total} values as expected"
        missing = int(result.get("missing_count") or 0)
        text = (f"{unexpected} unexpected of {total - missing} non-null values" if missing
                else f"{unexpected} unexpected of {total} values")
        if result.get("unexpected_percent") is not None:
            text += f" ({result['unexpected_percent']:.4g}%)"
        if shown:
            text += f"; e.g. {shown}"
        if passed:
            text += f" (within mostly={kwargs.get('mostly')})"
        return text
    parts = []
    if result.get("observed_value") is not None or ("observed_value" in result and not shown):
        parts.append(f"observed {_show(result.get('observed_value'))}")
    if passed:
        return parts[0] if parts else "passed"
    if shown:
        parts.append(f"unexpected {shown}")
    expected = _arguments(kwargs, skip=domain)
    if expected:
        parts.append(f"expected {expected}")
    if not parts and result.get("details"):
        parts.append(_show(result["details"]))
    return "; ".join(parts) or "failed"


def _distinct(values: list) -> list:
    seen, out = set(), []
    for value in values:
        key = repr(value)
        if key not in seen:
            seen.add(key)
            out.append(value)
    return out


def _show(value: Any) -> str:
    # pandas holds a missing float as NaN and a missing timestamp as NaT: both are SQL's null.
    if value is None or (isinstance(value, float) and value != value) or type(value).__name__ == "NaTType":
        return "null"
    if isinstance(value, str):
        return repr(value if len(value) <= 80 else value[:77] + "...")
    if isinstance(value, tuple):  # column pair and multicolumn expectations
        return "(" + ", ".join(_show(v) for v in value) + ")"
    text = str(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _exception_message(info: Any) -> str | None:
    """The first raised exception's message; GX nests it per metric in some results."""
    if not isinstance(info, dict):
        return None
    if "raised_exception" in info:
        return (info.get("exception_message") or "error") if info.get("raised_exception") else None
    for nested in info.values():
        message = _exception_message(nested)
        if message:
            return message
    return None
