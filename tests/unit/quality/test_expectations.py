"""accelsync.quality.expectations against real GX Core and a real local Spark."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from accelsync.errors import SpecError
from accelsync.quality.expectations import load_suite, validate_dataframe

DEMO_SUITE = str(Path(__file__).resolve().parents[3] / "expectations" / "demo_users.json")
ORDERS_SUITE = str(Path(__file__).resolve().parents[3] / "expectations" / "demo_orders.json")
ORDERS_SCHEMA = "order_id bigint, user_id int, amount decimal(10,2), status string, created_at timestamp"
USERS_SCHEMA = "id bigint, name string, city string, score decimal(6,2), updated_at timestamp"
GOOD_USERS = [
    (1, "Ada", "Berlin", Decimal("99.50"), datetime(2026, 1, 1, 12, 0)),
    (2, "Bo", "São Paulo", Decimal("0.00"), datetime(2026, 1, 2, 12, 0)),
    (3, "Chen", "Tokyo", Decimal("100.00"), datetime(2026, 1, 3, 12, 0)),
    (4, "Dara", "Nairobi", Decimal("42.42"), datetime(2026, 1, 4, 12, 0)),
]


@pytest.fixture(scope="module")
def spark():
    os.environ["PYSPARK_PYTHON"] = sys.executable
    from pyspark.sql import SparkSession

    existing = SparkSession.getActiveSession()
    session = (SparkSession.builder.master("local[2]").appName("test_expectations")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.sql.shuffle.partitions", "2")
               .getOrCreate())
    session.sparkContext.setLogLevel("ERROR")
    yield session
    if existing is None:
        session.stop()


@pytest.fixture(scope="module")
def docs_root(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("gx_docs"))


@pytest.fixture(scope="module")
def passing(spark, docs_root):
    frame = spark.createDataFrame(GOOD_USERS, USERS_SCHEMA)
    return frame, validate_dataframe(frame, DEMO_SUITE, run_name="demo_users/run-pass",
                                     docs_root=docs_root)


def write_suite(directory: Path, expectations: list, name: str = "tmp_suite") -> str:
    path = directory / f"{name}.json"
    path.write_text(json.dumps({"name": name, "expectations": expectations}), encoding="utf-8")
    return str(path)


def by_name(result) -> dict[str, dict]:
    return {check["name"]: check for check in result.checks}


def test_passing_suite_passes_with_every_check_passed(passing):
    _, result = passing
    assert result.success is True
    assert len(result.checks) == 8
    assert all(check["passed"] for check in result.checks), result.checks
    assert result.statistics["evaluated"] == 8
    assert result.statistics["successful"] == 8
    assert result.statistics["unsuccessful"] == 0
    # One check per expectation, in suite order, named by type and column.
    assert [c["name"] for c in result.checks] == [
        "expect_table_row_count_to_be_between(min_value=1, max_value=10000000)",
        "expect_column_values_to_not_be_null(id)",
        "expect_column_values_to_be_unique(id)",
        "expect_column_values_to_not_be_null(name)",
        "expect_column_values_to_match_regex(name)",
        "expect_column_values_to_be_in_set(city)",
        "expect_column_values_to_be_between(score)",
        "expect_column_values_to_not_be_null(updated_at)",
    ]
    assert by_name(result)["expect_table_row_count_to_be_between(min_value=1, max_value=10000000)"][
        "detail"] == "observed 4"


def test_validation_leaves_the_dataframe_uncached(passing):
    frame, _ = passing
    assert frame.is_cached is False


def test_failing_suite_names_the_expectation_and_shows_the_bad_value(spark, docs_root):
    rows = GOOD_USERS + [(5, None, "Paris", Decimal("10.00"), datetime(2026, 1, 5)),
                         (6, "Eve", "Rome", Decimal("20.00"), datetime(2026, 1, 6))]
    frame = spark.createDataFrame(rows, USERS_SCHEMA)
    result = validate_dataframe(frame, DEMO_SUITE, run_name="demo_users/run-fail",
                                docs_root=docs_root)
    assert result.success is False
    checks = by_name(result)
    not_null = checks["expect_column_values_to_not_be_null(name)"]
    assert not_null["passed"] is False
    assert "1 unexpected of 6 values" in not_null["detail"]
    assert "null" in not_null["detail"]
    in_set = checks["expect_column_values_to_be_in_set(city)"]
    assert in_set["passed"] is False
    assert "'Rome'" in in_set["detail"]
    failed = {c["name"] for c in result.checks if not c["passed"]}
    assert failed == {"expect_column_values_to_not_be_null(name)",
                      "expect_column_values_to_be_in_set(city)"}
    assert result.statistics["unsuccessful"] == 2


def test_aggregate_failure_shows_observed_value_and_errors_are_failures(spark, docs_root, tmp_path):
    suite = write_suite(tmp_path, [
        {"type": "expect_column_max_to_be_between", "kwargs": {"column": "id", "max_value": 10}},
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "no_such_column"}},
    ], name="max_suite")
    result = validate_dataframe(spark.range(100), suite, run_name="max", docs_root=docs_root)
    aggregate, missing = result.checks
    assert aggregate == {"name": "expect_column_max_to_be_between(id)", "passed": False,
                         "detail": "observed 99; expected max_value=10"}
    assert missing["name"] == "expect_column_values_to_not_be_null(no_such_column)"
    assert missing["passed"] is False
    assert "could not be evaluated" in missing["detail"] and "no_such_column" in missing["detail"]
    assert result.success is False


def test_unknown_expectation_type_raises_spec_error_naming_file_and_index(tmp_path):
    path = write_suite(tmp_path, [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
        {"type": "expect_column_values_to_be_purple", "kwargs": {"column": "id"}},
    ])
    with pytest.raises(SpecError) as caught:
        load_suite(path)
    error = caught.value
    assert error.path == path
    assert [field for field, _ in error.problems] == ["expectations[2].type"]
    assert "expect_column_values_to_be_purple" in error.problems[0][1]
    assert f"{path}: expectations[2].type: unknown expectation type" in str(error)


def test_unknown_type_also_fails_validate_before_touching_spark(tmp_path, docs_root):
    path = write_suite(tmp_path, [{"type": "expect_nothing", "kwargs": {}}])
    with pytest.raises(SpecError, match=r"expectations\[0\]\.type"):
        validate_dataframe(object(), path, run_name="never", docs_root=docs_root)


@pytest.mark.parametrize("content, field, message", [
    ("{not json", "", "invalid JSON at line 1"),
    ("[]", "", "JSON object"),
    ('{"expectations": []}', "name", "required"),
    ('{"name": "a/b", "expectations": []}', "name", "must not contain"),
    ('{"name": "s", "expectations": {}}', "expectations", "list"),
    ('{"name": "s", "expectations": [{"expectation_type": "expect_column_values_to_be_unique",'
     ' "kwargs": {"column": "id"}}]}', "expectations[0].expectation_type", "'type'"),
    ('{"name": "s", "expectations": [{"type": "expect_column_values_to_be_unique",'
     ' "kwargs": {"colum": "id"}}]}', "expectations[0].kwargs.colum", "unknown argument"),
    ('{"name": "s", "expectations": [{"type": "expect_column_values_to_be_in_set",'
     ' "kwargs": {"column": "id"}}]}', "expectations[0].kwargs.value_set", "field required"),
])
def test_bad_suite_files_raise_spec_error_with_field(tmp_path, content, field, message):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SpecError) as caught:
        load_suite(str(path))
    assert caught.value.path == str(path)
    problems = dict(caught.value.problems)
    assert field in problems, caught.value.problems
    assert message in problems[field]


def test_missing_suite_file_raises_spec_error(tmp_path):
    path = str(tmp_path / "nope.json")
    with pytest.raises(SpecError) as caught:
        load_suite(path)
    assert caught.value.path == path
    assert "cannot read suite file" in str(caught.value)


def test_demo_suite_loads():
    suite = load_suite(DEMO_SUITE)
    assert suite.name == "demo_users"
    assert len(suite.expectations) == 8


def test_data_docs_page_exists_and_mentions_the_suite(passing, docs_root):
    _, result = passing
    assert result.data_docs is not None
    page = Path(result.data_docs)
    assert page.is_file()
    assert page.suffix == ".html"
    assert page.resolve().is_relative_to(Path(docs_root).resolve())
    assert "run-pass" in str(page)  # the run name identifies the run in the site
    assert "demo_users" in page.read_text(encoding="utf-8")


def test_two_validations_in_one_process_are_independent(spark, docs_root, tmp_path):
    other = write_suite(tmp_path, [
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "id", "min_value": 0, "max_value": 9}},
    ], name="other_suite")
    first = validate_dataframe(spark.range(20), other, run_name="independent/1",
                               docs_root=docs_root)
    second = validate_dataframe(spark.range(5), other, run_name="independent/2",
                                docs_root=docs_root)
    third = validate_dataframe(spark.createDataFrame(GOOD_USERS, USERS_SCHEMA), DEMO_SUITE,
                               run_name="independent/3", docs_root=docs_root)
    assert first.success is False
    assert "10 unexpected of 20 values" in first.checks[0]["detail"]
    assert second.success is True
    assert second.checks == [{"name": "expect_column_values_to_be_between(id)", "passed": True,
                              "detail": "all 5 values as expected"}]
    assert third.success is True
    assert len(third.checks) == 8
    assert len({first.data_docs, second.data_docs, third.data_docs}) == 3
    # All runs accumulate in one Data Docs site.
    index = Path(docs_root, "gx", "uncommitted", "data_docs", "local_site", "index.html")
    text = index.read_text(encoding="utf-8")
    assert "independent__1" in text and "independent__2" in text and "run-pass" in text


def test_extra_expectations_are_checked_with_the_suite(spark, docs_root):
    frame = spark.createDataFrame(GOOD_USERS, USERS_SCHEMA)
    extra = [{"type": "expect_table_row_count_to_be_between",
              "kwargs": {"min_value": 10, "max_value": 10}}]
    result = validate_dataframe(frame, DEMO_SUITE, run_name="extra", docs_root=docs_root,
                                extra_expectations=extra)
    assert result.success is False
    assert len(result.checks) == 9
    last = result.checks[-1]
    assert last["name"] == "expect_table_row_count_to_be_between(min_value=10, max_value=10)"
    assert last["passed"] is False
    assert last["detail"] == "observed 4; expected min_value=10, max_value=10"
    # The suite file on disk, without the extra, is what the next run checks.
    again = validate_dataframe(frame, DEMO_SUITE, run_name="extra-2", docs_root=docs_root)
    assert again.success is True and len(again.checks) == 8


def test_bad_extra_expectation_raises_spec_error(docs_root):
    with pytest.raises(SpecError) as caught:
        validate_dataframe(object(), DEMO_SUITE, run_name="x", docs_root=docs_root,
                           extra_expectations=[{"type": "expect_table_row_count_to_be_between",
                                                "kwargs": {"min_value": "many"}}])
    assert caught.value.path == DEMO_SUITE
    assert "extra_expectations[0].kwargs.min_value" in dict(caught.value.problems)


def test_no_progress_bars_on_the_console(spark, docs_root, tmp_path, capfd):
    suite = write_suite(tmp_path, [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
        {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "id", "min_value": 0}},
    ], name="quiet_suite")
    capfd.readouterr()
    validate_dataframe(spark.range(10), suite, run_name="quiet", docs_root=docs_root)
    captured = capfd.readouterr()
    assert "Calculating Metrics" not in captured.err + captured.out


def test_demo_orders_suite_passes_on_demo_orders_and_names_a_bad_status(spark, docs_root):
    from accelsync.dev.demo import order_is_live, order_row

    rows = [order_row(i, 50) for i in range(1, 101) if order_is_live(i)]
    live = [(i, user, amount, status.lower(), created) for i, user, amount, status, created in rows]
    result = validate_dataframe(spark.createDataFrame(live, ORDERS_SCHEMA), ORDERS_SUITE,
                                run_name="demo_orders/run-pass", docs_root=docs_root)
    assert result.success, [c for c in result.checks if not c["passed"]]
    assert len(result.checks) == 8

    # An order the transform should have dropped, and one that was not lower-cased.
    bad = live + [(1001, 3, Decimal("5.00"), "cancelled", datetime(2024, 1, 1)),
                  (1002, 3, Decimal("5.00"), "Shipped", datetime(2024, 1, 1))]
    result = validate_dataframe(spark.createDataFrame(bad, ORDERS_SCHEMA), ORDERS_SUITE,
                                run_name="demo_orders/run-fail", docs_root=docs_root)
    failed = {c["name"]: c["detail"] for c in result.checks if not c["passed"]}
    assert len(failed) == 2, failed
    in_set, regex = sorted(failed)
    assert "status" in in_set and "cancelled" in failed[in_set] and "Shipped" in failed[in_set]
    assert "status" in regex and "Shipped" in failed[regex]
