"""Reading spec files: YAML with duplicate keys refused, the suite file found and looked at, and
every problem named by file and field (`path: field: message`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Optional

import yaml
from pydantic import ValidationError

from accelsync import registry
from accelsync.errors import SpecError
from accelsync.spec.fields import FieldError
from accelsync.spec.model import Spec


def load_spec(path: str | Path) -> Spec:
    """Read and check one spec file; raise SpecError naming the file and each bad field."""
    path = str(path)
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise SpecError(path, [("", f"cannot read: {exc.strerror}")]) from None
    data = load_yaml(text, path)
    spec = parse_spec(data, path)
    return _resolve_suite(spec, Path(path))


def load_yaml(text: str, path: str) -> Any:
    """Parse YAML text, refusing a key given twice in one mapping (YAML would keep the last)."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        duplicates = list(_duplicate_keys(root, ""))
        if duplicates:
            raise SpecError(path, duplicates)
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise SpecError(path, [("", f"{where}not valid YAML: {getattr(exc, 'problem', exc)}")]) from None


def _duplicate_keys(node: Any, at: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key, value in node.value:
            name = str(key.value)
            field = f"{at}.{name}" if at else name
            if name in seen:
                yield field, (f"given twice (lines {seen[name]} and {key.start_mark.line + 1}); "
                              "YAML would silently keep the last")
            else:
                seen[name] = key.start_mark.line + 1
            yield from _duplicate_keys(value, field)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _duplicate_keys(item, f"{at}[{index}]")


def _resolve_suite(spec: Spec, spec_path: Path) -> Spec:
    """A relative `quality.suite` names a file under the project: the current folder or the
    nearest folder above the spec that holds it. Resolved once here, so every process (Airflow
    worker, Spark driver) finds the same file whatever its working directory. The file must be
    there and look like a GX suite (the expectations themselves are checked by `validate` and
    the gate, which load Great Expectations)."""
    suite = spec.quality.suite
    if not suite:
        return spec
    found = Path(suite) if Path(suite).is_absolute() else next(
        (folder / suite for folder in [Path.cwd(), *spec_path.absolute().parents] if (folder / suite).is_file()),
        None)
    if found is None or not found.is_file():
        where = "" if Path(suite).is_absolute() else " (looked in the current folder and every folder above the spec)"
        raise SpecError(str(spec_path), [("quality.suite", f"no suite file {suite}{where}")])
    problem = suite_shape_problem(found)
    if problem:
        raise SpecError(str(spec_path), [("quality.suite", f"{found}: {problem}")])
    quality = spec.quality.model_copy(update={"suite": str(found)})
    return spec.model_copy(update={"quality": quality})


def suite_shape_problem(path: Path) -> Optional[str]:
    """Why this file is not a Great Expectations 1.x suite, or None (a cheap check: no GX import)."""
    import json
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot read: {exc}"
    except ValueError as exc:
        return f"not JSON: {exc}"
    if not isinstance(data, dict) or not isinstance(data.get("expectations"), list):
        return "not a Great Expectations suite (a JSON object with `name` and a list of `expectations`)"
    for index, item in enumerate(data["expectations"]):
        if not isinstance(item, dict) or not isinstance(item.get("type") or item.get("expectation_type"), str):
            return f"expectations[{index}] is not an expectation (an object with `type` and `kwargs`)"
    return None


def parse_spec(data: Any, path: str = "<spec>") -> Spec:
    """Check an already-parsed spec mapping."""
    if not isinstance(data, dict):
        raise SpecError(path, [("", "a spec is a mapping of fields (name, source, target, ...)")])
    todo = [(part, data[part]["todo"]) for part in ("source", "target")
            if isinstance(data.get(part), dict) and "todo" in data[part]]
    if todo:  # a block left to fill in (accelsync import-datax writes one for a writer it cannot map)
        raise SpecError(path, [(part, f"to fill in: {text}") for part, text in todo])
    try:
        return Spec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(path, [_problem(error) for error in exc.errors()]) from None


def _problem(error: dict) -> tuple[str, str]:
    loc = [str(part) for part in error["loc"]]
    # Discriminated unions put the chosen tag in the location (source.mysql.table): drop it.
    for index, part in enumerate(loc):
        if index > 0 and loc[index - 1] in ("source", "target") and part in (*registry.SOURCES, *registry.TARGETS):
            del loc[index]
            break
    field = ".".join(loc)
    message = error["msg"].removeprefix("Value error, ")
    kind = error["type"]
    ctx = error.get("ctx") or {}
    original = ctx.get("error")
    if isinstance(original, FieldError):
        return original.field, str(original)
    if kind == "extra_forbidden":
        return field, "unknown field"
    if kind == "missing":
        return field, "required field is missing"
    if kind == "union_tag_invalid":
        return f"{field}.type", f"unknown type {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        return f"{field}.type", "required field is missing"
    if kind == "literal_error":
        return field, f"must be one of {ctx.get('expected')} (got {error.get('input')!r})"
    if kind == "string_pattern_mismatch" and loc and loc[-1] in ("name", "business_line"):
        return field, "must be lower-case letters, digits and _, starting with a letter"
    return field, message


def spec_files(paths: list[str]) -> list[Path]:
    """The spec files named by `paths`: files as given, folders searched for *.yaml / *.yml."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        else:
            found.append(path)
    return found


def json_schema() -> dict:
    """The JSON Schema of a spec file (what `accelsync schema` prints)."""
    schema = Spec.model_json_schema(by_alias=True)
    schema["title"] = "accelsync sync spec"
    return schema
