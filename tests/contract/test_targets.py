"""Every target holds exactly the synced rows (read with a client that is not accelsync's), refuses
the rows it cannot store with a reason, converges on a rerun, shows nothing before publish where
its mode promises that, and leaves nothing staged after a failed gate."""

from __future__ import annotations

import json
import uuid

import pytest

from accelsync import pipeline
from accelsync.engine.dirty import read_dirty
from accelsync.runs import RunDir
from accelsync.spec import parse_spec
from dataset import ROWS
from sources import MysqlHarness

pytestmark = pytest.mark.integration


def spec_for(harness, mysql, test_database, **extra):
    source = MysqlHarness({"mysql": mysql, "test_database": test_database}).block(ROWS)
    harness.sync = "contract_" + uuid.uuid4().hex[:8]
    block = harness.block(**extra.pop("target", {}))
    return parse_spec({"name": harness.sync, "source": source, "target": block,
                       "speed": {"channels": 2}, "error_limit": {"records": 1}, **extra})


def test_every_row_lands_exactly_and_the_bad_row_is_dirty(target, mysql, test_database):
    spec = spec_for(target, mysql, test_database)
    summary = pipeline.run(spec)
    assert summary["status"] == "published", summary["reason"]
    assert (summary["read"], summary["written"], summary["dirty"]) == (5, 4, 1)
    [entry] = read_dirty(RunDir(spec.name, summary["run_id"]).path / "dirty")
    assert entry["reason"] == target.bad_reason and entry["record"]["id"] == 5
    assert target.stored() == target.expected()


def test_a_rerun_converges_to_the_same_target(target, mysql, test_database):
    spec = spec_for(target, mysql, test_database)
    assert pipeline.run(spec)["status"] == "published"
    again = pipeline.run(spec)
    assert again["status"] == "published" and again["written"] == 4
    assert target.stored() == target.expected()


def test_nothing_is_visible_before_publish(unseen_target, mysql, test_database):
    spec = spec_for(unseen_target, mysql, test_database, target=unseen_target.unseen_mode)
    run_id = "contract-" + uuid.uuid4().hex[:6]
    pipeline.stage_sync(spec, run_id)
    pipeline.stage_gate(spec, run_id)
    assert unseen_target.stored() == {}  # written and gated, not published: readers see nothing
    pipeline.stage_publish(spec, run_id)
    assert unseen_target.stored() == unseen_target.expected()


def test_a_failed_gate_leaves_nothing_staged(target, mysql, test_database, tmp_path):
    suite = tmp_path / "fails.json"  # a suite the dataset cannot pass: four rows, at most one allowed
    suite.write_text(json.dumps({"name": "fails", "expectations": [
        {"type": "expect_table_row_count_to_be_between", "kwargs": {"min_value": 0, "max_value": 1}}]}))
    spec = spec_for(target, mysql, test_database, quality={"suite": str(suite)})
    summary = pipeline.run(spec)
    assert summary["status"] == "failed" and summary["reason"].startswith("gate failed: suite: ")
    assert target.leftovers() == []
    if target.live_before_gate:  # written in place: live, and the summary says so
        assert summary["note"] == "rows written in upsert mode stay live; the source position was not advanced"
        assert target.stored() == target.expected()
    else:
        assert target.stored() == {}
