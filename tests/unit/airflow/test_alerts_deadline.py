"""The deadline callback's decision: alert for a run still going, not for one that ended in time."""

from accelsync.airflow.alerts import finished_before_deadline

DUE = {"deadline_time": "2026-12-01T10:00:20+00:00"}


def test_a_running_run_past_its_deadline_is_alerted():
    assert not finished_before_deadline({"state": "running", "end_date": None}, DUE)


def test_a_run_that_failed_before_its_deadline_is_not():
    assert finished_before_deadline({"state": "failed", "end_date": "2026-12-01T10:00:10Z"}, DUE)


def test_a_run_that_ended_after_its_deadline_is_alerted():
    assert not finished_before_deadline({"state": "failed", "end_date": "2026-12-01T10:00:30Z"}, DUE)
