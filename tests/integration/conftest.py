from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.conftest import REDIS_URL, need, redis_up


@pytest.fixture
def redis_db() -> Iterator[str]:
    """A Redis database of its own for this test, emptied before and after."""
    need("Redis at " + REDIS_URL, redis_up())
    url = f"{REDIS_URL}/9"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()
