"""The contract suite: `source` and `target` are parametrized over every registered connector
(connectors.py), each harness built with the fixtures it names."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from connectors import TARGETS, SOURCES  # noqa: E402


def _build(request, harness):
    return harness({name: request.getfixturevalue(name) for name in harness.fixtures})


@pytest.fixture(params=SOURCES, ids=lambda h: h.type)
def source(request, services):
    return _build(request, request.param)


@pytest.fixture(params=TARGETS, ids=lambda h: h.type)
def target(request, services, mysql):
    return _build(request, request.param)


@pytest.fixture(params=[h for h in SOURCES if h.bad is not None], ids=lambda h: h.type)
def text_source(request, services):
    """The sources that read text (a record can be malformed)."""
    return _build(request, request.param)


@pytest.fixture(params=[h for h in TARGETS if h.unseen_mode is not None], ids=lambda h: h.type)
def unseen_target(request, services, mysql):
    """The targets with a mode that keeps a run's rows unseen until publish."""
    return _build(request, request.param)
