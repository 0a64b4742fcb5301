"""The contract suite: `source` and `sink` are parametrized over every registered connector
(connectors.py), each harness built with the fixtures it names."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from connectors import SINKS, SOURCES  # noqa: E402


def _build(request, harness):
    return harness({name: request.getfixturevalue(name) for name in harness.fixtures})


@pytest.fixture(params=SOURCES, ids=lambda h: h.type)
def source(request, services):
    return _build(request, request.param)


@pytest.fixture(params=SINKS, ids=lambda h: h.type)
def sink(request, services, mysql):
    return _build(request, request.param)


@pytest.fixture(params=[h for h in SOURCES if h.bad is not None], ids=lambda h: h.type)
def text_source(request, services):
    """The sources that read text (a record can be malformed)."""
    return _build(request, request.param)


@pytest.fixture(params=[h for h in SINKS if h.unseen_mode is not None], ids=lambda h: h.type)
def unseen_sink(request, services, mysql):
    """The sinks with a mode that keeps a run's rows unseen until publish."""
    return _build(request, request.param)
