"""The pipeline on a real ledger with fake connectors and a hand-driven clock and queue."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from connectors.ratelimit import LocalLimiter
from tests.fakes import FakeFulfiller, FakeLabels, FakeStore
from worker.app import App
from worker.config import parse_config
from worker.ledger import calls
from worker.ledger.migrate import ensure_schema
from worker.ledger.models import make_engine, make_sessions
from worker.pipeline import adjust, cancel, fulfill, names, release, tracking

Env = tuple[App, FakeStore, FakeFulfiller, list[tuple[str, list[Any]]], "Clock"]
LABELS = {"main": {
    "api_key": "EZTK-test",
    "from_address": {"name": "Acme", "street1": "1 Main St", "city": "Austin", "state": "TX", "zip": "78701",
                     "phone": "5125550100"},
    "default_parcel": {"length_in": 10, "width_in": 8, "height_in": 4, "weight_oz": 16}}}


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def make_env(db_url: str, tmp_path: Path, *, labels: FakeLabels | None = None,
             store_extra: dict[str, Any] | None = None,
             labels_extra: dict[str, Any] | None = None,
             alerts: dict[str, Any] | None = None) -> Iterator[Env]:
    """An App on a fresh ledger; with ``labels`` the store self-ships unmapped lines."""
    store_cfg: dict[str, Any] = {"platform": "shopify", "shop_url": "https://acme.example",
                                 "access_token": "t", "order_prefix": "ACME", "amazon": "us",
                                 "routing": {"sku_map": {"TEE-RED-M": "AMZ-TEE"}}, **(store_extra or {})}
    if labels is not None:
        store_cfg["labels"] = "main"
    config = parse_config({
        "service": {"database_url": db_url, "task_time_limit_s": 10, "max_retries": 2,
                    "data_dir": str(tmp_path / "var")},
        "amazon": {"us": {"marketplace_id": "ATVPDKIKX0DER", "client_id": "c", "client_secret": "s",
                          "refresh_token": "r"}},
        "labels": {"main": {**LABELS["main"], **(labels_extra or {})}} if labels is not None else {},
        "stores": {"acme": store_cfg},
        **({"alerts": alerts} if alerts else {}),
    }, tmp_path, env={})
    engine = make_engine(config.database_url)
    ensure_schema(engine)
    published: list[tuple[str, list[Any]]] = []
    clock = Clock()
    store, amazon = FakeStore(), FakeFulfiller()
    app = App(config=config, sessions=make_sessions(engine),
              publisher=lambda name, args, _id: published.append((name, args)),
              limiter=LocalLimiter(), clock=clock, stores={"acme": store}, fulfillers={"us": amazon},
              labelers={"main": labels} if labels is not None else {}, before_call=calls.end_reads)
    yield app, store, amazon, published, clock
    engine.dispose()


def drain(app: App, published: list[tuple[str, list[Any]]]) -> None:
    """Run published tasks in order, as a worker would (including ones they publish)."""
    steps = {names.RELEASE: release.release, names.SUBMIT: fulfill.submit, names.PUSH: tracking.push,
             names.CANCEL: cancel.cancel_order, names.ADJUST: adjust.adjust_order}
    while published:
        name, args = published.pop(0)
        if name in steps:  # alerts stay in the list for the test to read
            steps[name](app, *args)
        else:
            published.append((name, args))
            if all(n not in steps for n, _ in published):
                return


def count(app: App, model: Any) -> int:
    with app.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)
