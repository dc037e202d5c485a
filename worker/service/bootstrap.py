"""The composition root: builds the ledger, the adapters and the publisher from the config.

The only module of ``worker/`` (with the sandbox stack) that imports ``connectors``: a plain dict
per port maps the config's ``platform`` / ``provider`` name to a builder that turns the config's
block into the adapter's own settings. Nothing connects at import time; tests build an ``App``
with their own publisher, clock and fakes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from pydantic import SecretStr

from connectors.amazon_mcf.client import AmazonMCF, AmazonSettings
from connectors.easypost.client import EasyPostLabels, EasyPostSettings
from connectors.ratelimit import LocalLimiter, RedisLimiter
from connectors.shopify.client import ShopifySettings, ShopifyStore
from connectors.woocommerce.client import WooSettings, WooStore
from worker.app import App, utcnow
from worker.config import AmazonConfig, Config, LabelsConfig, StoreConfig
from worker.ledger import calls
from worker.ledger.models import make_engine, make_sessions
from worker.ports import Fulfiller, LabelProvider, Limiter, Publisher, Store


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


def shopify_store(name: str, cfg: StoreConfig, limiter: Limiter) -> Store:
    return ShopifyStore(name, ShopifySettings(
        shop_url=cfg.shop_url, api_version=cfg.api_version, access_token=_secret(cfg.access_token),
        client_id=_secret(cfg.client_id), client_secret=_secret(cfg.client_secret),
        webhook_secret=_secret(cfg.webhook_secret), inventory_location=cfg.inventory.location), limiter)


def woo_store(name: str, cfg: StoreConfig, limiter: Limiter) -> Store:
    return WooStore(name, woo_settings(cfg), limiter)


def woo_settings(cfg: StoreConfig) -> WooSettings:
    return WooSettings(
        shop_url=cfg.shop_url, consumer_key=_secret(cfg.consumer_key) or "",
        consumer_secret=_secret(cfg.consumer_secret) or "", webhook_secret=_secret(cfg.webhook_secret),
        query_string_auth=cfg.query_string_auth,
        tag_meta_keys=tuple(cfg.tag_meta_keys), note_keywords=tuple(cfg.note_keywords),
        complete_on_ship=cfg.complete_on_ship)


def amazon_settings(cfg: AmazonConfig) -> AmazonSettings:
    return AmazonSettings(
        marketplace_id=cfg.marketplace_id, client_id=cfg.client_id.get_secret_value(),
        client_secret=cfg.client_secret.get_secret_value(),
        refresh_token=cfg.refresh_token.get_secret_value(),
        base_url=cfg.base_url, token_url=cfg.token_url, quota=dict(cfg.quota))


def easypost_settings(cfg: LabelsConfig) -> EasyPostSettings:
    return EasyPostSettings(api_key=cfg.api_key.get_secret_value(), endpoint=cfg.endpoint,
                            label_format=cfg.label_format, timeout_s=cfg.timeout_s)


STORE_TYPES: dict[str, Callable[[str, StoreConfig, Limiter], Store]] = {
    "shopify": shopify_store, "woocommerce": woo_store}
FULFILLER_TYPES: dict[str, Callable[[str, AmazonConfig, Limiter], Fulfiller]] = {
    "amazon": lambda account, cfg, limiter: AmazonMCF(account, amazon_settings(cfg), limiter)}
LABEL_TYPES: dict[str, Callable[[str, LabelsConfig], LabelProvider]] = {
    "easypost": lambda name, cfg: EasyPostLabels(name, easypost_settings(cfg))}


class Registry:
    """``worker.app.Connect`` over the dicts above."""

    def store(self, name: str, config: Config, limiter: Limiter) -> Store:
        cfg = config.store(name)
        return STORE_TYPES[cfg.platform](name, cfg, limiter)

    def fulfiller(self, account: str, config: Config, limiter: Limiter) -> Fulfiller:
        return FULFILLER_TYPES["amazon"](account, config.amazon[account], limiter)

    def labeler(self, name: str, config: Config) -> LabelProvider:
        cfg = config.labels[name]
        return LABEL_TYPES[cfg.provider](name, cfg)


def make_limiter(config: Config) -> Limiter:
    if config.embedded_broker:
        return LocalLimiter()
    import redis

    return RedisLimiter(redis.Redis.from_url(config.service.broker_url, socket_timeout=5,
                                             socket_connect_timeout=5))


def bootstrap(config: Config, publisher: Publisher, *, limiter: Limiter | None = None,
              clock: Callable[[], datetime] = utcnow, pool_size: int = 5) -> App:
    """``pool_size``: database connections kept (as many again when busy) — a worker passes its
    thread count, every other part keeps the small default."""
    engine = make_engine(config.database_url, pool_size=pool_size)
    return App(config=config, sessions=make_sessions(engine), publisher=publisher,
               limiter=limiter or make_limiter(config), clock=clock, connect=Registry(),
               before_call=calls.end_reads)
