"""A store cancels an order after it was routed: MCF cancel, label refund, or a clear reason why
not — on a real ledger (SQLite and PostgreSQL) with fake connectors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.fakes import FakeLabels, make_order
from tests.ledger_support import Env, drain, make_env
from worker import pipeline, tracking
from worker.ledger import OrderRow, ShipmentRow


@pytest.fixture
def labels() -> FakeLabels:
    return FakeLabels()


@pytest.fixture
def env(db_url: str, tmp_path: Path, labels: FakeLabels) -> Iterator[Env]:
    yield from make_env(db_url, tmp_path, labels=labels)


def state_of(env: Env) -> tuple[str, dict[str, tuple[str, str]]]:
    app = env[0]
    with app.sessions() as s:
        order = s.scalar(select(OrderRow))
        assert order is not None
        return order.status, {r.route: (r.state, r.reason) for r in s.scalars(select(ShipmentRow))}


def ship_and_cancel(env: Env, order_id: str, lines: tuple[tuple[str, int], ...]) -> None:
    app, store, amazon, published, _ = env
    order = make_order(order_id, lines=lines)
    store.orders[order_id] = order
    pipeline.ingest_and_publish(app, "acme", order, source="webhook")
    drain(app, published)


def cancel(env: Env, order_id: str) -> None:
    app, store, _, published, _ = env
    cancelled = replace(store.orders[order_id], cancelled=True)
    for _ in range(2):  # the webhook and the poller both see it
        pipeline.ingest_and_publish(app, "acme", cancelled, source="webhook orders/cancelled")
    drain(app, published)


def test_submitted_mcf_order_is_cancelled_at_amazon_and_label_refunded(env: Env, labels: FakeLabels) -> None:
    ship_and_cancel(env, "7001", (("TEE-RED-M", 1), ("POSTER", 1)))
    cancel(env, "7001")
    status, ships = state_of(env)
    assert status == "cancelled"
    assert ships == {"fba": ("cancelled", ""), "self_ship": ("cancelled", "")}
    assert env[2].cancelled == ["ACME-7001-1"]
    assert labels.refunded == ["shp_1"]


def test_too_late_at_amazon_is_parked_for_a_person(env: Env) -> None:
    app, store, amazon, published, _ = env
    ship_and_cancel(env, "7002", (("TEE-RED-M", 1),))
    amazon.picking.add("ACME-7002-1")
    cancel(env, "7002")
    status, ships = state_of(env)
    assert status == "attention"
    assert ships["fba"][0] == "attention"
    assert ships["fba"][1].startswith("cancel too late, intercept manually")


def test_already_shipped_is_parked_not_cancelled(env: Env) -> None:
    app, store, amazon, published, clock = env
    ship_and_cancel(env, "7003", (("TEE-RED-M", 1),))
    amazon.shipped.add("ACME-7003-1")
    clock.advance(60)
    tracking.sweep(app, "us")
    drain(app, published)
    cancel(env, "7003")
    status, ships = state_of(env)
    assert status == "attention" and ships["fba"] == (
        "attention", "already shipped by Amazon: intercept the package manually")
    assert amazon.cancelled == []
