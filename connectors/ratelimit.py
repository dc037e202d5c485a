"""Token buckets: one in-process (embedded mode, tests), one in Redis shared by every worker."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

# Token bucket in Redis, evaluated atomically. KEYS[1] = bucket; ARGV = rate, burst, cost, now.
# Returns 0 when the tokens were taken, else the seconds to wait before trying again.
_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'paused_until')
local tokens = tonumber(b[1]) or burst
local ts = tonumber(b[2]) or now
local paused = tonumber(b[3]) or 0
if paused > now then return tostring(paused - now) end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= cost then tokens = tokens - cost else wait = (cost - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return tostring(wait)
"""


class LocalLimiter:
    """Token buckets shared by the threads of one process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, timestamp)
        self._paused: dict[str, float] = {}

    def _try(self, key: str, rate: float, burst: float, cost: float) -> float:
        with self._lock:
            now = self._clock()
            paused = self._paused.get(key, 0.0)
            if paused > now:
                return paused - now
            tokens, ts = self._buckets.get(key, (burst, now))
            tokens = min(burst, tokens + max(0.0, now - ts) * rate)
            if tokens >= cost:
                self._buckets[key] = (tokens - cost, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return max((cost - tokens) / rate, 0.001)  # never a zero wait: a coarse clock must move

    def acquire(self, key: str, *, rate: float, burst: float, cost: float = 1.0) -> None:
        cost = min(cost, burst)
        while (wait := self._try(key, rate, burst, cost)) > 0:
            self._sleep(wait)

    def pause(self, key: str, seconds: float) -> None:
        with self._lock:
            self._paused[key] = self._clock() + seconds
            self._buckets[key] = (0.0, self._clock() + seconds)


class RedisLimiter:
    """Token buckets in Redis: every worker on every machine draws from the same bucket."""

    def __init__(self, redis_client: Any, prefix: str = "autofulfill:rl:",
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._redis = redis_client
        self._prefix = prefix
        self._script = redis_client.register_script(_LUA)
        self._sleep = sleep
        self._turns: dict[str, threading.Lock] = {}
        self._turns_lock = threading.Lock()

    def acquire(self, key: str, *, rate: float, burst: float, cost: float = 1.0) -> None:
        """Take ``cost`` tokens, waiting as long as it takes. The threads of this process waiting on
        one bucket take turns: one asks Redis (and sleeps until its token is due) while the others
        wait without asking — otherwise they all wake when a token is due, and all but one ask in
        vain (163 script calls for 24 tokens with 8 threads)."""
        cost = min(cost, burst)
        with self._turn(key):
            while True:
                wait = float(self._script(keys=[self._prefix + key],
                                          args=[rate, burst, cost, time.time()]))
                if wait <= 0:
                    return
                self._sleep(wait)

    def _turn(self, key: str) -> threading.Lock:
        with self._turns_lock:
            turn = self._turns.get(key)
            if turn is None:
                turn = self._turns[key] = threading.Lock()
            return turn

    def pause(self, key: str, seconds: float) -> None:
        self._redis.hset(self._prefix + key, mapping={
            "paused_until": str(time.time() + seconds), "tokens": "0", "ts": str(time.time() + seconds)})
