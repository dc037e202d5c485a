"""A webhook answered 503 leaves nothing behind: the platform's retry (same event id) is ingested.
And a delivery seen before changes nothing, though its ingest runs before its receipt is written.

The failure is injected at the database (the ``orders`` insert fails once), inside the webhook's
one transaction — on SQLite (pysqlite's transaction handling) and on PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import OperationalError

from connectors.ratelimit import LocalLimiter
from connectors.shopify.webhooks import sign
from tests.unit.service.test_web import ORDER, SECRET
from worker.config import parse_config
from worker.ledger.migrate import ensure_schema
from worker.ledger.models import OrderRow, WebhookReceiptRow
from worker.service.bootstrap import bootstrap
from worker.service.web import create_app


@pytest.fixture
def receiver(db_url: str, tmp_path: Path) -> Iterator[tuple[Any, Any]]:
    config = parse_config({
        "service": {"database_url": db_url},
        "amazon": {"us": {"marketplace_id": "M", "client_id": "c", "client_secret": "s",
                          "refresh_token": "r"}},
        "stores": {"acme": {"platform": "shopify", "shop_url": "https://acme.example", "access_token": "t",
                            "webhook_secret": SECRET, "order_prefix": "ACME", "amazon": "us",
                            "routing": {"sku_map": {"TEE": "AMZ-TEE"}}}},
    }, tmp_path, env={})
    app = bootstrap(config, lambda *_: None, limiter=LocalLimiter())
    ensure_schema(app.sessions.kw["bind"])
    yield app, create_app(app).test_client()
    app.sessions.kw["bind"].dispose()


def test_a_failure_inside_the_transaction_leaves_no_receipt(receiver: tuple[Any, Any]) -> None:
    app, client = receiver
    engine = app.sessions.kw["bind"]
    failures = {"left": 1}

    def fail_order_insert(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO ORDERS") and failures["left"]:
            failures["left"] -= 1
            raise OperationalError(statement, {}, Exception("injected: the disk is full"))

    event.listen(engine, "before_cursor_execute", fail_order_insert)
    body, headers = _delivery(ORDER)
    first = client.post("/webhooks/shopify/acme", data=body, headers=headers)
    assert first.status_code == 503
    with app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(WebhookReceiptRow)) == 0
    again = client.post("/webhooks/shopify/acme", data=body, headers=headers)  # the platform retries
    assert again.status_code == 200 and again.get_json()["outcome"] != "duplicate"
    with app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(OrderRow)) == 1
        assert s.scalar(select(func.count()).select_from(WebhookReceiptRow)) == 1


def _delivery(order: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(order).encode()
    return body, {"X-Shopify-Topic": "orders/paid", "X-Shopify-Hmac-Sha256": sign(body, SECRET),
                  "X-Shopify-Event-Id": "evt-1", "X-Shopify-Shop-Domain": "acme.example",
                  "Content-Type": "application/json"}


def test_an_old_delivery_again_does_not_undo_a_newer_one(receiver: tuple[Any, Any]) -> None:
    app, client = receiver
    moved = {**ORDER, "shipping_address": {**ORDER["shipping_address"], "address1": "9 Elm"}}
    for order in (ORDER, moved):
        assert client.post("/webhooks/shopify/acme", data=_delivery(order)[0],
                           headers=_delivery(order)[1]).get_json()["outcome"] == "held"
    again = client.post("/webhooks/shopify/acme", data=_delivery(ORDER)[0], headers=_delivery(ORDER)[1])
    assert again.status_code == 200 and again.get_json()["outcome"] == "duplicate"
    with app.sessions() as s:
        row = s.scalars(select(OrderRow)).one()
        assert row.payload["address"]["address1"] == "9 Elm"  # the retry's ingest was rolled back
        assert s.scalar(select(func.count()).select_from(WebhookReceiptRow)) == 2
