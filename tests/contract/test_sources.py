"""Every source yields every row exactly (NULLs, unicode, extreme numbers and times), makes each
malformed record dirty with its reason, and reads on a second run what it promises to."""

from __future__ import annotations

import uuid

import pyarrow as pa
import pytest

from accelsync.registry import source_class
from accelsync.spec import parse_spec
from dataset import ROWS, SCHEMA

pytestmark = pytest.mark.integration


def spec_for(source_block: dict):
    return parse_spec({"name": "contract_" + uuid.uuid4().hex[:8], "source": source_block,
                       "target": {"type": "redis", "connection": "test_redis", "key": "k:{id}"}})


def read(spec) -> tuple[list[dict], list[str], object]:
    """Plan and read every partition as a run does: the rows (in id order), the dirty reasons, the plan."""
    source = source_class(spec.source.type)(spec)
    plan = source.plan(2)
    rows, reasons = [], []

    class Dirty:  # the records a source reports dirty, and why
        count, reasons_seen, path = 0, {}, None

        def add(self, location, reason, record=None):
            reasons.append(reason)

        def close(self):
            pass
    for partition in plan.partitions:
        for batch in source.read(plan, partition, Dirty()):
            rows += pa.Table.from_batches([batch]).select(list(SCHEMA)).to_pylist()
    return sorted(rows, key=lambda r: r["id"]), reasons, plan


def test_every_row_arrives_exactly(source):
    rows, reasons, _ = read(spec_for(source.block(ROWS)))
    assert reasons == []
    assert rows == ROWS


def test_malformed_records_are_dirty_with_their_reasons(text_source):
    bad = [text for text, _ in text_source.bad]
    rows, reasons, _ = read(spec_for(text_source.block(ROWS, bad)))
    assert rows == ROWS
    assert sorted(reasons) == sorted(reason for _, reason in text_source.bad)


def test_a_second_run_reads_what_the_source_promises(source):
    spec = spec_for(source.block(ROWS))
    first, _, plan = read(spec)
    assert first == ROWS
    source_class(spec.source.type)(spec).publish(plan)  # the run went live: its position moves
    again, _, _ = read(spec)
    if source.reread_after_publish is None:  # a full read: every row, every run
        assert again == ROWS
    else:  # a delta source: only what it documents reading again
        assert [row["id"] for row in again] == source.reread_after_publish
