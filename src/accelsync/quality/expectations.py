"""Great Expectations suites: load a suite file, validate a Spark DataFrame, build Data Docs.

GX 1.x Core is called directly (fluent API, file data context). One context rooted at
`docs_root` serves every run, so the quality owner browses all runs in one Data Docs site.
Metrics are computed by GX's Spark execution engine; nothing is collected here except the few
unexpected values GX returns in its SUMMARY results.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator
from urllib.parse import unquote, urlparse

from accelsync.errors import SpecError
from accelsync.quality.suite_checks import suite_check

if TYPE_CHECKING:
    import great_expectations as gx

# GX logs at INFO/WARNING from deep inside (store backends, renderers, suite parsing); under
# Airflow's INFO task logging that buries our own lines. Its real failures reach us as results.
logging.getLogger("great_expectations").setLevel(logging.ERROR)
# Its renderers log a traceback at ERROR for results they cannot draw (e.g. an expectation on a
# missing column); the run's own result already says what went wrong.
logging.getLogger("great_expectations.render").setLevel(logging.CRITICAL)

DATASOURCE = "accelsync"
PANDAS_DATASOURCE = "accelsync_pandas"
BATCH_DEFINITION = "whole_dataframe"
# Where Data Docs says a validation evaluated on the run's Arrow snapshot came from.
ARROW_BATCH = "accelsync_arrow"
# GX returns the first N unexpected rows; ask for more than we show so duplicates of one bad
# value do not hide a second one.
PARTIAL_UNEXPECTED = 20
# Runs listed on the Data Docs index page (older run pages stay on disk, linked from runs).
INDEX_RESULTS = 500
RESULT_FORMAT = {"result_format": "SUMMARY", "partial_unexpected_count": PARTIAL_UNEXPECTED}

_SUITE_KEYS = {"name", "id", "expectations", "suite_parameters", "meta", "notes"}
_EXPECTATION_KEYS = {"type", "kwargs", "meta", "id", "notes", "description", "severity",
                     "rendered_content"}
# One validation at a time per process: GX keeps a process-wide "current" context, and its
# file stores are not written atomically. Across processes, a lock file under docs_root.
_PROCESS_LOCK = threading.Lock()


@dataclass
class SuiteResult:
    """The outcome of one suite validation: one check per expectation, and its Data Docs page."""

    success: bool
    checks: list[dict]
    data_docs: str | None
    statistics: dict
    # GX's own JSON of each expectation's result, in the suite's order.
    results: list[dict]


def load_suite(path: str) -> "gx.ExpectationSuite":
    """Read a GX 1.x suite JSON file; every problem is reported as a SpecError naming the field."""
    import great_expectations as gx

    try:
        with open(path, encoding="utf-8") as handle:
            raw = handle.read()
    except OSError as error:
        message = f"cannot read suite file: {error.strerror or error}"
        raise SpecError(path, [("", message)]) from None
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as error:
        raise SpecError(path, [("", f"invalid JSON at line {error.lineno} column {error.colno}:"
                                    f" {error.msg}")]) from None
    if not isinstance(data, dict):
        raise SpecError(path, [("", "a suite must be a JSON object with 'name' and"
                                    " 'expectations'")])

    problems: list[tuple[str, str]] = []
    problems += [(key, "unknown field (a GX 1.x suite has: " + ", ".join(sorted(_SUITE_KEYS)) + ")")
                 for key in data if key not in _SUITE_KEYS]
    name = data.get("name")
    if not isinstance(name, str) or not name.strip():
        problems.append(("name", "required: the suite name, a non-empty string"))
    elif "/" in name or "\\" in name:
        problems.append(("name", "must not contain '/' or '\\' (GX uses it as a file name)"))
    items = data.get("expectations")
    expectations = []
    if not isinstance(items, list):
        problems.append(("expectations", "required: a list of expectation objects"))
    else:
        expectations, found = _parse_expectations(items, "expectations")
        problems += found
    for key in ("meta", "suite_parameters"):
        if key in data and not isinstance(data[key], dict):
            problems.append((key, "must be an object"))
    if problems:
        raise SpecError(path, problems)
    return gx.ExpectationSuite(name=name, expectations=expectations,
                               suite_parameters=data.get("suite_parameters"), meta=data.get("meta"),
                               notes=data.get("notes"))


def _parse_expectations(items: list, field: str) -> tuple[list, list[tuple[str, str]]]:
    """Turn expectation dicts into GX Expectation objects, collecting every problem.

    GX's own ExpectationSuite drops an invalid expectation with a log line, so each one is
    built here first and its errors are reported by index.
    """
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration
    from great_expectations.expectations.registry import (
        list_registered_expectation_implementations,
    )

    expectations, problems = [], []
    for index, item in enumerate(items):
        at = f"{field}[{index}]"
        if not isinstance(item, dict):
            problems.append((at, "must be an object with 'type' and 'kwargs'"))
            continue
        if "expectation_type" in item and "type" not in item:
            problems.append((f"{at}.expectation_type", "GX 1.x names this field 'type'"))
            continue
        problems += [(f"{at}.{key}", "unknown field (an expectation has: "
                      + ", ".join(sorted(_EXPECTATION_KEYS)) + ")")
                     for key in item if key not in _EXPECTATION_KEYS]
        kind, kwargs, meta = item.get("type"), item.get("kwargs", {}), item.get("meta")
        if not isinstance(kind, str) or not kind:
            problems.append((f"{at}.type", "required: an expectation type such as "
                                           "'expect_column_values_to_not_be_null'"))
            continue
        if not isinstance(kwargs, dict):
            problems.append((f"{at}.kwargs", "must be an object"))
            continue
        if meta is not None and not isinstance(meta, dict):
            problems.append((f"{at}.meta", "must be an object"))
            continue
        options = {key: item[key] for key in ("id", "notes", "description") if key in item}
        try:
            expectations.append(ExpectationConfiguration(type=kind, kwargs=kwargs, meta=meta,
                                                         **options).to_domain_obj())
        except ExpectationNotFoundError:
            known = list_registered_expectation_implementations()
            close = difflib.get_close_matches(kind, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append((f"{at}.type", f"unknown expectation type {kind!r}{hint}"))
        except Exception as error:  # noqa: BLE001 - pydantic and GX config errors alike
            problems += _kwargs_problems(error, f"{at}.kwargs")
    return expectations, problems


def _kwargs_problems(error: Exception, field: str) -> list[tuple[str, str]]:
    """One problem per offending kwarg, from a pydantic (v1, as GX uses) validation error."""
    errors = getattr(error, "errors", None)
    if not callable(errors):
        return [(field, str(error) or type(error).__name__)]
    by_field: dict[str, list[str]] = {}
    for item in errors():
        location = ".".join(str(part) for part in item.get("loc", ()) if part != "__root__")
        message = item.get("msg", "invalid")
        if message == "extra fields not permitted":
            message = "unknown argument for this expectation type"
        messages = by_field.setdefault(f"{field}.{location}" if location else field, [])
        if message not in messages:
            messages.append(message)
    return [(where, " or ".join(messages)) for where, messages in by_field.items()]


def _suite_with(suite_path: str, extra_expectations: list[dict] | None) -> "gx.ExpectationSuite":
    """The suite file's expectations, then the extra ones (the gate's own checks)."""
    suite = load_suite(suite_path)
    if extra_expectations:
        extra, problems = _parse_expectations(list(extra_expectations), "extra_expectations")
        if problems:
            raise SpecError(suite_path, problems)
        suite.expectations.extend(extra)
    return suite


def validate_dataframe(df, suite_path: str, *, run_name: str, docs_root: str,
                       extra_expectations: list[dict] | None = None) -> SuiteResult:
    """Validate a pandas or Spark DataFrame against a suite file (plus extra expectation dicts)
    and add the run to the Data Docs site of the file context at `docs_root`."""
    suite = _suite_with(suite_path, extra_expectations)
    os.makedirs(docs_root, exist_ok=True)
    with _exclusive(docs_root):
        context = _context(docs_root)
        checkpoint = _checkpoint(context, suite, spark=not _is_pandas(df))
        result = _run(checkpoint, df, run_name)
    ((key, validation),) = result.run_results.items()
    # GX groups results by metric domain; report them in the suite's order.
    expectations = checkpoint.validation_definitions[0].suite.expectations
    order = {expectation.id: index for index, expectation in enumerate(expectations)}
    results = sorted(validation.results,
                     key=lambda r: order.get(r.expectation_config.id, len(order)))
    return SuiteResult(success=bool(validation.success),
                       checks=[_check(r) for r in results],
                       data_docs=_docs_page(context, key),
                       statistics=_statistics(validation.statistics),
                       results=[r.to_json_dict() for r in results])


def render_results(raw: dict, *, run_name: str, docs_root: str) -> str | None:
    """Add a validation computed without GX (quality/arrow_suite: results in GX's JSON shape,
    each with the expectation it evaluated) to the Data Docs site at `docs_root`, as the
    checkpoint would have; return its page. The suite drawn is the one evaluated, even if its
    file changed since."""
    import great_expectations as gx
    from great_expectations.core import ExpectationSuiteValidationResult, ExpectationValidationResult
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier, ValidationResultIdentifier)

    expectations, problems = _parse_expectations([r["expectation_config"] for r in raw["results"]], "results")
    if problems:
        raise ValueError("; ".join(f"{field}: {message}" for field, message in problems))
    suite = gx.ExpectationSuite(name=raw["suite_name"], expectations=expectations, meta=raw.get("suite_meta"))
    os.makedirs(docs_root, exist_ok=True)
    with _exclusive(docs_root):
        context = _context(docs_root)
        suite = context.suites.add_or_update(suite)
        results = [ExpectationValidationResult(success=item["success"], expectation_config=expectation.configuration,
                                               result=item["result"], exception_info=item["exception_info"], meta={})
                   for expectation, item in zip(suite.expectations, raw["results"])]
        run_id = RunIdentifier(run_name=_safe_run_name(run_name), run_time=raw.get("run_time"))
        batch = f"{ARROW_BATCH}-{suite.name}"
        meta = {"great_expectations_version": gx.__version__, "run_id": run_id, "validation_time": run_id.run_time,
                "batch_spec": {"batch_data": "Arrow snapshot of the run"}, "batch_parameters": None,
                "active_batch_definition": {"datasource_name": ARROW_BATCH, "data_connector_name": "accelsync",
                                            "data_asset_name": suite.name, "batch_identifiers": {}},
                "evaluated_by": "accelsync (Arrow)"}
        validation = ExpectationSuiteValidationResult(success=raw["success"], results=results, suite_name=suite.name,
                                                      statistics=raw["statistics"], meta=meta)
        suite_key = ExpectationSuiteIdentifier(name=suite.name)
        key = ValidationResultIdentifier(expectation_suite_identifier=suite_key, run_id=run_id, batch_identifier=batch)
        context.validation_results_store.set(key, validation)
        context.build_data_docs(resource_identifiers=[key, suite_key])
        return _docs_page(context, key)


@contextmanager
def _exclusive(docs_root: str) -> Iterator[None]:
    import fcntl

    with _PROCESS_LOCK, open(os.path.join(docs_root, ".accelsync-gx.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _context(docs_root: str):
    """The file context at docs_root, created on first use; progress bars off."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig
    from great_expectations.execution_engine import pandas_execution_engine

    # GX hashes every cell of a pandas batch as a "fingerprint" batch marker (over a second for
    # a million rows); a run is identified by its run id, so skip it.
    pandas_execution_engine.HASH_THRESHOLD = 0

    context = gx.get_context(mode="file", project_root_dir=docs_root)
    # Set in memory on this context object, which the validator and site builder read.
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    # The index page re-reads every stored result on each build; cap it to the newest runs.
    # (variables hand out copies: modify, then set back.)
    sites = context.variables.data_docs_sites or {}
    for site in sites.values():
        index = site.setdefault("site_index_builder", {"class_name": "DefaultSiteIndexBuilder"})
        index.setdefault("validation_results_limit", INDEX_RESULTS)
    context.variables.data_docs_sites = sites
    return context


def _is_pandas(df) -> bool:
    return type(df).__module__.startswith("pandas")


def _checkpoint(context, suite, spark: bool):
    """Get or create the data source, asset, batch definition, validation definition and
    checkpoint for this suite; the suite itself is always rewritten from the file. Runs
    validated on pandas and on Spark have a data source each (and a validation definition and
    checkpoint each, the pandas ones named `<suite>.pandas`)."""
    import great_expectations as gx

    name = DATASOURCE if spark else PANDAS_DATASOURCE
    try:
        source = context.data_sources.get(name)
    except KeyError:
        # persist: GX caches the batch while it computes its metrics; we unpersist after.
        source = (context.data_sources.add_spark(name=name, persist=True) if spark
                  else context.data_sources.add_pandas(name=name))
    try:
        asset = source.get_asset(suite.name)
    except LookupError:
        asset = source.add_dataframe_asset(name=suite.name)
    try:
        batch = asset.get_batch_definition(BATCH_DEFINITION)
    except KeyError:
        batch = asset.add_batch_definition_whole_dataframe(BATCH_DEFINITION)

    suite = context.suites.add_or_update(suite)
    own = suite.name if spark else f"{suite.name}.pandas"
    try:
        definition = context.validation_definitions.get(own)
        if definition.data.id != batch.id or definition.suite.id != suite.id:
            raise LookupError("stale")
    except Exception:  # noqa: BLE001 - missing or stale: (re)write it
        definition = context.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=own, data=batch, suite=suite))
    actions = [gx.checkpoint.UpdateDataDocsAction(name="update_data_docs")]
    try:
        checkpoint = context.checkpoints.get(own)
        if ([d.name for d in checkpoint.validation_definitions] != [definition.name]
                or [a.type for a in checkpoint.actions] != [a.type for a in actions]
                or checkpoint.result_format != RESULT_FORMAT):
            raise LookupError("stale")
    except Exception:  # noqa: BLE001 - missing or stale: (re)write it
        checkpoint = context.checkpoints.add_or_update(
            gx.Checkpoint(name=own, validation_definitions=[definition], actions=actions,
                          result_format=RESULT_FORMAT))
    return checkpoint


def _run(checkpoint, df, run_name: str):
    from great_expectations.core.run_identifier import RunIdentifier

    safe_name = _safe_run_name(run_name)
    if _is_pandas(df):
        return checkpoint.run(batch_parameters={"dataframe": df}, run_id=RunIdentifier(run_name=safe_name))
    cached_before = df.is_cached
    try:
        return checkpoint.run(batch_parameters={"dataframe": df},
                              run_id=RunIdentifier(run_name=safe_name))
    finally:
        if not cached_before:
            df.unpersist()


def _safe_run_name(run_name: str) -> str:
    """The run name becomes a directory of the stores and the Data Docs site."""
    return run_name.replace("/", "__").replace("\\", "__")


def _docs_page(context, key) -> str | None:
    """Filesystem path of this validation's Data Docs page, else of the site's index.html."""
    for urls in (context.get_docs_sites_urls(resource_identifier=key),
                 context.get_docs_sites_urls()):
        for site in urls:
            url = site.get("site_url") or ""
            if url.startswith("file://") and os.path.isfile(unquote(urlparse(url).path)):
                return unquote(urlparse(url).path)
    return None


def _statistics(statistics: dict) -> dict:
    return {"evaluated": int(statistics.get("evaluated_expectations", 0)),
            "successful": int(statistics.get("successful_expectations", 0)),
            "unsuccessful": int(statistics.get("unsuccessful_expectations", 0)),
            "success_percent": statistics.get("success_percent")}


def _check(result) -> dict[str, Any]:
    """One readable check from one GX ExpectationValidationResult."""
    config = result.expectation_config
    return suite_check(config.type, config.kwargs, result.success, result.result or {}, result.exception_info)
