"""The gate's Arrow evaluation of a suite against Great Expectations itself.

The promise: for every expectation the Arrow path evaluates, the verdict and the result (counts,
percentages, the first unexpected values and their row positions) are what GX's pandas engine
reports on the frame the gate would give it. Each case runs both on the same snapshot files.
Everything else must be handed to GX (evaluate returns None).
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from accelsync.quality import arrow_suite
from accelsync.quality.expectations import validate_dataframe
from accelsync.quality.gate import _pandas_frame

SPACE = "\u3000"  # ideographic space: whitespace to Python's \s, not to RE2's
ROWS = {
    "id": pa.array([1, 2, 2, 3, None, 5, 6, 7, 8, 8, 8, 9], pa.int64()),
    "plain": pa.array([10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 10, 21], pa.int64()),
    "name": pa.array(["Ada", " Bo", "c\n", None, SPACE + "x", "Eve", "", "Fay", "Gus", "héllo", "Ada", "\u00a0z"]),
    "city": pa.array(["Berlin", "Paris", "Berlin", None, "Tokyo", "Rome", "Paris", "Oslo", "Berlin", "Lima",
                      "Paris", "Rome"]),
    "score": pa.array([Decimal("1.50"), None, Decimal("200.00"), Decimal("3.00"), Decimal("100.00"),
                       Decimal("-1.00"), Decimal("0.00"), Decimal("99.99"), Decimal("100.01"), Decimal("50.00"),
                       Decimal("0.00"), Decimal("7.25")], pa.decimal128(6, 2)),
    "ratio": pa.array([0.5, float("nan"), None, -0.0, 0.0, 1.5, 2.5, 0.5, 3.0, -2.0, 4.0, 0.25], pa.float64()),
    "updated_at": pa.array([datetime(2026, 1, d) if d % 4 else None for d in range(1, 13)], pa.timestamp("us")),
}
CASES = [
    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1, "max_value": 100}},
    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 12, "strict_min": True}},
    {"type": "expect_table_row_count_to_be_between", "kwargs": {"max_value": 12}},
    {"type": "expect_table_row_count_to_equal", "kwargs": {"value": 12}},
    {"type": "expect_table_row_count_to_equal", "kwargs": {"value": 3}},
    {"type": "expect_column_to_exist", "kwargs": {"column": "city"}},
    {"type": "expect_column_to_exist", "kwargs": {"column": "nope"}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "ratio", "mostly": 0.8}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "updated_at"}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "plain"}},
    {"type": "expect_column_values_to_be_null", "kwargs": {"column": "name"}},
    {"type": "expect_column_values_to_be_null", "kwargs": {"column": "updated_at", "mostly": 0.2}},
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "plain", "mostly": 0.8}},
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "name"}},
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "ratio"}},
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "score"}},
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "updated_at"}},
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "city", "value_set": ["Berlin", "Paris"]}},
    {"type": "expect_column_values_to_be_in_set",
     "kwargs": {"column": "city", "value_set": ["Berlin", "Paris", "Rome"], "mostly": 0.6}},
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "city", "value_set": []}},
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "id", "value_set": [1, 2, 3, 8.0]}},
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "ratio", "value_set": [0, 0.5, 1]}},
    {"type": "expect_column_values_to_not_be_in_set", "kwargs": {"column": "city", "value_set": ["Rome", "Lima"]}},
    {"type": "expect_column_values_to_not_be_in_set", "kwargs": {"column": "plain", "value_set": [10]}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "score", "min_value": 0, "max_value": 100}},
    {"type": "expect_column_values_to_be_between",
     "kwargs": {"column": "score", "min_value": 0, "max_value": 100, "strict_min": True, "strict_max": True}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "id", "min_value": 2.5}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "plain", "max_value": 15, "strict_max": True,
                                                               "mostly": 0.5}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "ratio", "min_value": -1, "max_value": 2}},
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "name", "regex": "^\\S.*$"}},
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "name", "regex": "^[A-Z]"}},
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "name", "regex": "\\w+", "mostly": 0.5}},
    {"type": "expect_column_values_to_not_match_regex", "kwargs": {"column": "city", "regex": "^(Rome|Lima)$"}},
    {"type": "expect_column_values_to_not_match_regex", "kwargs": {"column": "name", "regex": "\\s"}},
]
# What the Arrow path hands to GX: other types, other arguments, types GX compares differently.
FOR_GX = [
    {"type": "expect_column_mean_to_be_between", "kwargs": {"column": "plain", "min_value": 1}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id", "row_condition": "plain>3",
                                                               "condition_parser": "pandas"}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "updated_at", "min_value": "2026-01-01"}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "name", "min_value": "a"}},
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "plain", "value_set": ["10"]}},
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "plain", "regex": "1"}},
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "name", "regex": "(unclosed"}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "missing"}},
    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": {"$PARAMETER": "low"}}},
]


def write_snapshot(folder: Path, columns: dict[str, pa.Array]) -> tuple[list[str], pa.Schema]:
    """The rows as the write tasks leave them: two files, several batches each."""
    table = pa.table(columns)
    files = []
    for index, (start, stop) in enumerate(((0, 5), (5, table.num_rows))):
        path = folder / f"snapshot-{index}.arrow"
        with pa.ipc.new_file(str(path), table.schema) as out:
            part = table.slice(start, stop - start)
            for batch in part.to_batches(max_chunksize=2) or [
                    pa.record_batch([pa.array([], f.type) for f in part.schema], schema=part.schema)]:
                out.write_batch(batch)
        files.append(str(path))
    return files, table.schema


def plain_json(value):
    """Both results as the JSON GX stores (datetimes as ISO text, NaN as null; GX writes a null
    timestamp, pandas' NaT, as the text "NaT", which is the same null)."""
    text = json.dumps(value, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v))
    return json.loads(text.replace('"NaT"', "null"), parse_constant=lambda _: None)


def assert_same(ours, theirs, where):
    if isinstance(theirs, dict):
        assert isinstance(ours, dict) and set(ours) == set(theirs), f"{where}: keys {ours} vs GX {theirs}"
        for key in theirs:
            assert_same(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), f"{where}: {ours} vs GX {theirs}"
        for index, (a, b) in enumerate(zip(ours, theirs)):
            assert_same(a, b, f"{where}[{index}]")
    elif isinstance(theirs, float) and isinstance(ours, (int, float)):
        assert math.isclose(ours, theirs, rel_tol=1e-9), f"{where}: {ours} vs GX {theirs}"
    else:
        assert ours == theirs, f"{where}: {ours!r} vs GX {theirs!r}"


def gx_results(tmp_path, files, expectations, name="arrow_vs_gx"):
    suite = tmp_path / f"{name}.json"
    suite.write_text(json.dumps({"name": name, "expectations": expectations}))
    return validate_dataframe(_pandas_frame(files, None), str(suite), run_name=f"{name}/r",
                              docs_root=str(tmp_path / "docs"))


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory):
    return write_snapshot(tmp_path_factory.mktemp("snapshot"), ROWS)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c['type']}({json.dumps(c['kwargs'])})")
def test_each_expectation_gives_what_gx_gives(case, snapshot, tmp_path):
    files, schema = snapshot
    ours = arrow_suite.evaluate({"name": "s", "expectations": [case]}, [], files, schema, {})
    assert ours is not None, "the Arrow path handed a supported expectation to GX"
    [theirs] = gx_results(tmp_path, files, [case]).results
    [mine] = ours["results"]
    assert mine["success"] == theirs["success"]
    assert_same(plain_json(mine["result"]), plain_json(theirs["result"]), case["type"])


def test_a_whole_suite_gives_gx_statistics_and_order(snapshot, tmp_path):
    files, schema = snapshot
    ours = arrow_suite.evaluate({"name": "s", "expectations": CASES}, [], files, schema, {})
    theirs = gx_results(tmp_path, files, CASES)
    assert [r["expectation_config"]["type"] for r in ours["results"]] == [c["type"] for c in CASES]
    assert [r["success"] for r in ours["results"]] == [r["success"] for r in theirs.results]
    assert ours["success"] is theirs.success is False
    assert ours["statistics"]["successful_expectations"] == theirs.statistics["successful"]
    assert ours["statistics"]["evaluated_expectations"] == theirs.statistics["evaluated"] == len(CASES)


def test_an_empty_snapshot_gives_what_gx_gives(tmp_path):
    empty = {name: array.slice(0, 0) for name, array in ROWS.items()}
    files, schema = write_snapshot(tmp_path, empty)
    cases = [c for c in CASES if c["type"] != "expect_column_to_exist"]
    ours = arrow_suite.evaluate({"name": "s", "expectations": cases}, [], files, schema, {})
    theirs = gx_results(tmp_path, files, cases, name="empty")
    for case, mine, their in zip(cases, ours["results"], theirs.results):
        assert mine["success"] == their["success"], case
        assert_same(plain_json(mine["result"]), plain_json(their["result"]), case["type"])


def test_constant_columns_are_the_gate_measurements(snapshot):
    files, schema = snapshot
    extra = [{"type": "expect_column_values_to_be_between", "kwargs": {"column": "accelsync_reconcile", "max_value": 0}}]
    ours = arrow_suite.evaluate({"name": "s", "expectations": []}, extra, files, schema, {"accelsync_reconcile": 3.0})
    [result] = ours["results"]
    assert result["success"] is False
    assert result["result"]["unexpected_count"] == 12
    assert result["result"]["partial_unexpected_list"] == [3.0] * 12


@pytest.mark.parametrize("case", FOR_GX, ids=lambda c: f"{c['type']}({json.dumps(c['kwargs'])})")
def test_what_the_arrow_path_does_not_evaluate_goes_to_gx(case, snapshot):
    files, schema = snapshot
    suite = {"name": "s", "expectations": [CASES[0], case]}
    assert arrow_suite.evaluate(suite, [], files, schema, {}) is None


def test_suite_parameters_go_to_gx(snapshot):
    files, schema = snapshot
    suite = {"name": "s", "expectations": [CASES[0]], "suite_parameters": {"low": 1}}
    assert arrow_suite.evaluate(suite, [], files, schema, {}) is None


def test_wide_decimals_go_to_gx(tmp_path):
    files, schema = write_snapshot(tmp_path, {"amount": pa.array([Decimal("1.5")] * 6, pa.decimal128(20, 2))})
    suite = {"name": "s", "expectations": [{"type": "expect_column_values_to_be_between",
                                            "kwargs": {"column": "amount", "min_value": 0}}]}
    assert arrow_suite.evaluate(suite, [], files, schema, {}) is None


def test_gx_draws_the_arrow_results_into_data_docs(snapshot, tmp_path):
    """The page quality owners read: GX renders what the Arrow path computed, failures and all."""
    from accelsync.quality.expectations import render_results

    files, schema = snapshot
    cases = [CASES[0], CASES[19], CASES[31]]  # row count, city in {Berlin, Paris}, name ^\S.*$
    raw = arrow_suite.evaluate({"name": "drawn", "expectations": cases}, [], files, schema, {})
    page = render_results(raw, run_name="drawn/run-1", docs_root=str(tmp_path / "docs"))
    html = Path(page).read_text(encoding="utf-8")
    assert page.endswith(".html") and "drawn" in page and "run-1" in page
    for shown in ("Tokyo", "Rome", "Oslo", "Lima", " Bo", "Berlin"):  # unexpected values and the value set
        assert shown in html, shown
    assert "Failed" in html or "failed" in html
    index = (tmp_path / "docs" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").read_text()
    assert "drawn" in index


def test_validate_can_tell_from_the_suite_alone_when_gx_computes_it():
    assert arrow_suite.needs_gx({"expectations": CASES}) is None
    assert arrow_suite.needs_gx({"expectations": [CASES[0], FOR_GX[0]]}) == \
        "expectations[1] (expect_column_mean_to_be_between) is not one accelsync computes"
    assert arrow_suite.needs_gx({"expectations": [FOR_GX[1]]}) == \
        "expectations[0] (expect_column_values_to_not_be_null) has the argument 'condition_parser'"
    assert arrow_suite.needs_gx({"expectations": [FOR_GX[-1]]}) == \
        "expectations[0] (expect_table_row_count_to_be_between) has a $PARAMETER"
    assert arrow_suite.needs_gx({"expectations": [], "suite_parameters": {"a": 1}}) == "it has suite_parameters"


def test_uniqueness_beyond_the_row_limit_goes_to_gx(snapshot, monkeypatch):
    files, schema = snapshot
    monkeypatch.setattr(arrow_suite, "UNIQUE_ROWS", 11)  # the snapshot has 12 rows
    unique = {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}}
    assert arrow_suite.evaluate({"name": "s", "expectations": [unique]}, [], files, schema, {}) is None
    monkeypatch.setattr(arrow_suite, "UNIQUE_ROWS", 12)
    assert arrow_suite.evaluate({"name": "s", "expectations": [unique]}, [], files, schema, {}) is not None
