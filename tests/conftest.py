"""Fixtures shared by the test modules."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The `gunicorn_server` fixture and the hook that puts gunicorn's log into a
# failing test's report live in servers.py, with the rest of the e2e harness;
# the real redis-server fixtures (`redis_server`, `redis_url`) in redis_server.py.
from redis_server import redis_server, redis_url
from servers import REPO_ROOT, gunicorn_process, gunicorn_server, pytest_runtest_makereport

__all__ = [
    "gunicorn_process",
    "gunicorn_server",
    "pytest_runtest_makereport",
    "redis_server",
    "redis_url",
]


@pytest.fixture(params=["sqlite", "redis"])
def store_spec(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A shared store for an app under gunicorn, as tests/store_specs.py spells it."""
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        return url
    return f"sqlite:{tmp_path / 'store.db'}"


if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))  # so in-process tests can import examples.*
