"""error_limit means what DataX's errorLimit means: the run fails when its dirty records exceed
`records` (when set) or their share of the records read exceeds `percentage` (when set); with
neither set, no dirty record is allowed."""

from __future__ import annotations

import pytest

from accelsync.spec import ErrorLimit

# (records, percentage, dirty, read, fails): every combination of set / not set, under / at / over.
TRUTH_TABLE = [
    # neither set: no dirty record allowed
    (None, None, 0, 1000, False),
    (None, None, 1, 1000, True),
    # records only: at the limit passes, one over fails, whatever the share
    (10, None, 10, 20, False),
    (10, None, 11, 1_000_000, True),
    (0, None, 0, 5, False),
    (0, None, 1, 1_000_000, True),
    # percentage only: at the share passes, over fails, whatever the count
    (None, 0.01, 10, 1000, False),
    (None, 0.01, 11, 1000, True),
    (None, 0.5, 400, 1000, False),
    (None, 0.0, 1, 1_000_000, True),
    (None, 0.01, 0, 0, False),
    # both set: either one over fails
    (10, 0.01, 10, 1000, False),
    (10, 0.01, 11, 10_000, True),    # over records, under the share
    (100, 0.01, 50, 1000, True),     # under records, over the share
    (100, 0.01, 101, 1000, True),    # over both
    (100, 0.5, 100, 200, False),     # at both
]


@pytest.mark.parametrize("records, percentage, dirty, read, fails", TRUTH_TABLE)
def test_the_run_fails_when_either_limit_that_is_set_is_exceeded(records, percentage, dirty, read, fails):
    assert ErrorLimit(records=records, percentage=percentage).exceeded(dirty, read) is fails


@pytest.mark.parametrize("records, percentage, max_records, cap", [
    (None, None, None, 0),          # no dirty record allowed: the first one stops the task
    (10, None, None, 10),
    (10, None, 1000, 10),
    (None, 0.01, None, None),       # no upper bound of the records read: no early stop
    (None, 0.01, 5000, 50),         # 51 dirty of at most 5000 read is over 1% for sure
    (100, 0.01, 5000, 50),          # the tighter of the two
    (10, 0.5, 5000, 10),
])
def test_a_task_stops_early_only_when_the_run_is_sure_to_fail(records, percentage, max_records, cap):
    limit = ErrorLimit(records=records, percentage=percentage)
    assert limit.task_cap(max_records) == cap
    if cap is not None and max_records is not None:
        # one more than the cap in one task alone fails the run, read being at most max_records
        assert limit.exceeded(cap + 1, max_records)


def test_an_unset_limit_reads_as_its_default():
    assert ErrorLimit().describe() == "no dirty record allowed"
    assert ErrorLimit(records=5, percentage=0.02).describe() == "records: 5, percentage: 0.02"
