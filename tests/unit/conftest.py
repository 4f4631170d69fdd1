"""Fixtures of the fast lane (``pytest tests/unit``): no models, no buses, no servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from listend.commit import Commit
from tests.support.pipeline import NotedSupervisor


@pytest.fixture
def supervisor() -> NotedSupervisor:
    return NotedSupervisor()


@pytest.fixture
def commit(supervisor: NotedSupervisor) -> Iterator[Commit]:
    c = Commit(supervisor)
    yield c
    c.close(0.05)
