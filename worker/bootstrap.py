"""The composition root: builds the ledger, the connectors and the publisher from the config.

Nothing connects at import time; tests build an ``App`` with their own publisher and clock.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from connectors.base import Fulfiller, LabelProvider, Limiter, Store
from connectors.ratelimit import LocalLimiter, RedisLimiter
from worker.config import Config
from worker.ledger import make_engine, make_sessions, utcnow
from worker.outbox import Publisher

STORE_TYPES: dict[str, str] = {"shopify": "connectors.shopify.client:ShopifyStore",
                               "woocommerce": "connectors.woocommerce.client:WooStore"}
FULFILLER_TYPES: dict[str, str] = {"amazon": "connectors.amazon_mcf.client:AmazonMCF"}
LABEL_TYPES: dict[str, str] = {"easypost": "connectors.easypost.client:EasyPostLabels"}


def _load(path: str) -> Any:
    module, _, name = path.partition(":")
    return getattr(__import__(module, fromlist=[name]), name)


@dataclass
class App:
    config: Config
    sessions: sessionmaker[Session]
    publisher: Publisher
    limiter: Limiter
    clock: Callable[[], datetime] = utcnow
    stores: dict[str, Store] = field(default_factory=dict)
    fulfillers: dict[str, Fulfiller] = field(default_factory=dict)
    labelers: dict[str, LabelProvider] = field(default_factory=dict)

    def store(self, name: str) -> Store:
        if name not in self.stores:
            cfg = self.config.store(name)
            self.stores[name] = _load(STORE_TYPES[cfg.platform])(name, cfg, self.limiter)
        return self.stores[name]

    def fulfiller(self, account: str) -> Fulfiller:
        if account not in self.fulfillers:
            self.fulfillers[account] = _load(FULFILLER_TYPES["amazon"])(
                account, self.config.amazon[account], self.limiter)
        return self.fulfillers[account]

    def labeler(self, name: str) -> LabelProvider:
        if name not in self.labelers:
            cfg = self.config.labels[name]
            self.labelers[name] = _load(LABEL_TYPES[cfg.provider])(name, cfg)
        return self.labelers[name]

    @property
    def lease_s(self) -> float:
        return self.config.service.task_time_limit_s * 2


def make_limiter(config: Config) -> Limiter:
    if config.embedded_broker:
        return LocalLimiter()
    import redis

    return RedisLimiter(redis.Redis.from_url(config.service.broker_url, socket_timeout=5,
                                             socket_connect_timeout=5))


def bootstrap(config: Config, publisher: Publisher, *, limiter: Limiter | None = None,
              clock: Callable[[], datetime] = utcnow) -> App:
    engine = make_engine(config.database_url)
    return App(config=config, sessions=make_sessions(engine), publisher=publisher,
               limiter=limiter or make_limiter(config), clock=clock)
