from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis

from tests.conftest import REDIS_URL, need, redis_up

# Another checkout's suite running at the same time on this Redis takes another database.
REDIS_DB = int(os.environ.get("AUTOFULFILL_TEST_REDIS_DB", "9"))


@pytest.fixture
def redis_db() -> Iterator[str]:
    """A Redis database of its own for this test, emptied before and after."""
    need("Redis at " + REDIS_URL, redis_up())
    url = f"{REDIS_URL}/{REDIS_DB}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()
