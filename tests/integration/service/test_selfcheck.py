from __future__ import annotations

from pathlib import Path
from typing import Any

import redis

from tests.conftest import REDIS_URL, need, redis_up
from worker.config import parse_config
from worker.service.selfcheck import broker_warnings


class PolicyOnly:
    """A Redis that answers CONFIG GET with a given eviction policy."""

    def __init__(self, policy: str) -> None:
        self.policy = policy

    def config_get(self, name: str) -> dict[str, Any]:
        return {name: self.policy}


def test_the_machines_redis_keeps_tasks_and_an_evicting_one_is_named(tmp_path: Path) -> None:
    need("Redis at " + REDIS_URL, redis_up())
    config = parse_config({"service": {"broker_url": REDIS_URL + "/0"}}, tmp_path, env={})
    client = redis.Redis.from_url(REDIS_URL)
    policy = client.config_get("maxmemory-policy")["maxmemory-policy"]
    assert (broker_warnings(config, client) == []) == (policy == "noeviction")
    client.close()
    warnings = broker_warnings(config, PolicyOnly("allkeys-lru"))
    assert len(warnings) == 1 and "'allkeys-lru'" in warnings[0] and "noeviction" in warnings[0]
