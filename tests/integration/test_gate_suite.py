"""A GX suite in the gate, on real MariaDB and Redis.

Promises: the gate's verdict and every check's detail are the same whether the suite is computed
on the run's Arrow snapshot (`suite_engine: auto`) or by Great Expectations (`suite_engine: gx`);
a passing run is published and then gets its Data Docs page; a failing run has its page when the
gate fails (the alert links it) and publishes nothing.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import pytest

from accelsync import pipeline
from accelsync.runs import GATE_FILE, PUBLISHED_FILE, RunDir
from accelsync.spec import parse_spec

pytestmark = pytest.mark.integration

ROWS = [
    (1, "Ada", "Berlin", Decimal("99.50"), datetime(2026, 1, 1, 12)),
    (2, "  Bo", "Paris", Decimal("0.00"), datetime(2026, 1, 2, 12)),
    (3, "中文", "Tokyo", None, None),
    (4, "Dara", None, Decimal("100.00"), datetime(2026, 1, 4, 12)),
]
EXPECTATIONS = [
    {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 1, "max_value": 10}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}},
    {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "id"}},
    {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "name", "regex": "^\\S.*$"}},
    {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "city", "value_set": ["Berlin", "Paris"]}},
    {"type": "expect_column_values_to_be_between", "kwargs": {"column": "score", "min_value": 0, "max_value": 100}},
    {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "updated_at", "mostly": 0.7}},
]


@pytest.fixture()
def users(mysql):
    cursor = mysql.cursor()
    cursor.execute("CREATE TABLE gs_users (id BIGINT PRIMARY KEY, name VARCHAR(40), city VARCHAR(40),"
                   " score DECIMAL(6,2), updated_at DATETIME) DEFAULT CHARSET utf8mb4")
    cursor.executemany("INSERT INTO gs_users VALUES (%s, %s, %s, %s, %s)", ROWS)


def spec_with(tmp_path: Path, name: str, expectations: list[dict], engine: str):
    suite = tmp_path / f"{name}.json"
    suite.write_text(json.dumps({"name": name, "expectations": expectations}))
    return parse_spec({
        "name": name,
        "source": {"type": "mysql", "connection": "test_mysql", "table": "gs_users", "split_pk": "id"},
        "target": {"type": "redis", "connection": "test_redis", "key": f"{name}:{{id}}", "value": {"type": "hash"}},
        "speed": {"channels": 2},
        "quality": {"suite": str(suite), "suite_engine": engine, "readback": {"sample": 10}},
    })


def checks(summary: dict) -> list[tuple[str, bool, str]]:
    return [(c["name"], c["passed"], c["detail"]) for c in summary["gate"]["checks"]
            if c["name"].startswith("suite: ")]


def test_arrow_and_gx_give_the_same_checks_and_a_passing_run_gets_its_page_after_publish(
        users, redis_client, tmp_path):
    passing = [e for e in EXPECTATIONS if e["kwargs"].get("column") not in ("name", "city")]
    ours = pipeline.run(spec_with(tmp_path, "gs_arrow", passing, "auto"))
    theirs = pipeline.run(spec_with(tmp_path, "gs_gx", passing, "gx"))

    assert ours["status"] == theirs["status"] == "published", (ours["reason"], theirs["reason"])
    assert checks(ours) == checks(theirs) and len(checks(ours)) == len(passing)
    gate = RunDir("gs_arrow", ours["run_id"]).read_json(GATE_FILE)
    assert gate["suite_evaluated_by"] == "arrow"
    assert RunDir("gs_gx", theirs["run_id"]).read_json(GATE_FILE)["suite_evaluated_by"] == "gx"
    # The page is drawn after the data went live, and the summary links it.
    page = Path(ours["data_docs"])
    published = RunDir("gs_arrow", ours["run_id"]).path / PUBLISHED_FILE
    assert page.is_file() and "gs_arrow" in page.read_text(encoding="utf-8")
    assert page.stat().st_mtime >= published.stat().st_mtime
    assert ours["stage_seconds"]["data docs"] > 0
    assert redis_client.hget("gs_arrow:3", "name").decode() == "中文"


def test_a_failing_suite_fails_alike_on_both_and_its_page_exists_when_the_gate_fails(users, redis_client, tmp_path):
    ours = pipeline.run(spec_with(tmp_path, "gs_fail_arrow", EXPECTATIONS, "auto"))
    theirs = pipeline.run(spec_with(tmp_path, "gs_fail_gx", EXPECTATIONS, "gx"))

    assert ours["status"] == theirs["status"] == "failed"
    assert checks(ours) == checks(theirs)
    failed = {name: detail for name, passed, detail in checks(ours) if not passed}
    assert failed == {
        "suite: expect_column_values_to_match_regex(name)":
            "1 unexpected of 4 values (25%); e.g. '  Bo'",
        "suite: expect_column_values_to_be_in_set(city)":
            "1 unexpected of 3 non-null values (33.33%); e.g. 'Tokyo'",
    }
    gate = RunDir("gs_fail_arrow", ours["run_id"]).read_json(GATE_FILE)
    assert gate["suite_evaluated_by"] == "arrow" and Path(gate["data_docs"]).is_file()
    assert ours["data_docs"] == gate["data_docs"]
    assert not RunDir("gs_fail_arrow", ours["run_id"]).exists(PUBLISHED_FILE)
