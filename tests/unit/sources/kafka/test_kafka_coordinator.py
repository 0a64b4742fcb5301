"""A group coordinator that is moving or still loading (a fresh broker, a failover) is waited for,
as Kafka's own clients do; any other error still fails at once (a scripted consumer, no broker)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition


class Scripted:
    """committed()/commit() answer from a script: an error code raises, a list is returned."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.calls = 0

    def _next(self):
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, int):
            raise KafkaException(KafkaError(answer))
        return answer

    def committed(self, partitions, timeout):
        return self._next()

    def commit(self, offsets, asynchronous):
        return self._next()


@pytest.fixture
def client(monkeypatch):
    from accelsync.connections import Connection
    from accelsync.sources.kafka import client as module

    monkeypatch.setattr(module.time, "sleep", lambda seconds: None)
    return module.KafkaClient(Connection(conn_id="k", conn_type="kafka", host="127.0.0.1", port=9092))


def test_committed_waits_for_a_coordinator_that_is_moving_or_loading(client):
    answers = Scripted(KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                       [TopicPartition("t", 0, 42), TopicPartition("t", 1, -1001)])
    assert client.committed(answers, "t", [0, 1]) == {0: 42}
    assert answers.calls == 3


def test_commit_waits_for_the_coordinator_when_a_partition_reports_it(client):
    # confluent-kafka's TopicPartition.error is read-only: a stand-in with the same attributes
    moving = SimpleNamespace(topic="t", partition=0, offset=5,
                             error=KafkaError(KafkaError.COORDINATOR_NOT_AVAILABLE))
    answers = Scripted([moving], [TopicPartition("t", 0, 5)])
    client.commit(answers, "t", {0: 5})
    assert answers.calls == 2


def test_other_errors_fail_at_once(client):
    from accelsync.errors import TerminalError

    answers = Scripted(KafkaError.GROUP_AUTHORIZATION_FAILED)
    with pytest.raises(TerminalError, match="fetching committed offsets"):
        client.committed(answers, "t", [0])
    assert answers.calls == 1


def test_a_coordinator_that_never_comes_is_a_transient_error_after_the_timeout(client, monkeypatch):
    from accelsync.errors import TransientError
    from accelsync.sources.kafka import client as module

    clock = iter(range(0, 1000, 5))
    monkeypatch.setattr(module.time, "monotonic", lambda: next(clock))
    answers = Scripted(*[KafkaError.NOT_COORDINATOR] * 10)
    with pytest.raises(TransientError, match="Not coordinator"):
        client.committed(answers, "t", [0])
    assert answers.calls == 3  # 0 s, 5 s, 10 s: the next ask would pass the 15 s timeout
