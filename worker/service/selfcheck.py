"""What a worker checks about its broker before it starts (warnings, loudly; it still starts)."""

from __future__ import annotations

from typing import Any

from worker.config import Config


def broker_warnings(config: Config, redis_client: Any) -> list[str]:
    """Redis must never evict queued tasks."""
    out: list[str] = []  # (visibility_timeout_s vs. task_time_limit_s is refused by the config itself)
    try:
        policy = str((redis_client.config_get("maxmemory-policy") or {}).get("maxmemory-policy", ""))
    except Exception as exc:  # CONFIG may be disabled on managed Redis: say so, do not fail
        return [f"could not read Redis maxmemory-policy ({type(exc).__name__}); make sure it is noeviction"]
    if policy != "noeviction":
        out.append(f"Redis maxmemory-policy is {policy!r}: under memory pressure Redis would drop "
                   "queued tasks; set `maxmemory-policy noeviction`")
    return out
