"""Store text as long as the platforms allow fits the ledger on SQLite and PostgreSQL (issue 13,
item 10): a 255-character SKU (Shopify's limit) and order name ship, and longer names are refused
by the connector's mapping with a reason, never by the database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.fakes import FakeLabels, make_order
from tests.ledger_support import Env, drain, make_env
from worker.ledger.models import OrderRow, ShipmentRow
from worker.pipeline import intake


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    yield from make_env(db_url, tmp_path, labels=FakeLabels())


def test_a_255_character_sku_and_order_name_ship(env: Env) -> None:
    app, store, _, published, _ = env
    sku, number = "S" * 255, "#" + "N" * 254
    store.orders["6201"] = make_order("6201", lines=((sku, 1),), number=number)
    intake.ingest_and_publish(app, "acme", store.orders["6201"], source="webhook")
    drain(app, published)
    with app.sessions() as s:
        order = s.scalar(select(OrderRow))
        shipment = s.scalar(select(ShipmentRow))
        assert order is not None and shipment is not None
        assert order.number == number and order.lines[0].sku == sku
        assert shipment.state == "pushed" and shipment.lines[0].sku == sku
