"""The webhook receiver in-process (Flask test client) with the real Shopify verifier and parser,
a real SQLite ledger, and a publisher that records what would go to the broker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.ratelimit import LocalLimiter
from connectors.shopify.webhooks import sign
from worker.config import parse_config
from worker.ledger.migrate import ensure_schema
from worker.service.bootstrap import bootstrap
from worker.service.web import create_app

SECRET = "whsec-test"
ORDER = {"id": 820982911946154508, "name": "#9999", "financial_status": "paid", "created_at":
         "2026-11-25T10:00:00-05:00", "updated_at": "2026-11-25T10:00:00-05:00", "currency": "USD",
         "total_price": "19.00", "email": "jon@example.com", "cancelled_at": None, "fulfillment_status": None,
         "line_items": [{"id": 1, "sku": "TEE", "quantity": 1, "title": "Tee", "price": "19.00"}],
         "shipping_address": {"name": "Jon", "address1": "1 Main", "city": "Austin", "province_code": "TX",
                              "zip": "78701", "country_code": "US"},
         "shipping_lines": [{"title": "Standard"}], "tags": ""}


@pytest.fixture
def client(tmp_path: Path) -> Any:
    config = parse_config({
        "service": {"database_url": f"sqlite:///{tmp_path / 'l.db'}"},
        "amazon": {"us": {"marketplace_id": "M", "client_id": "c", "client_secret": "s",
                          "refresh_token": "r"}},
        "stores": {"acme": {"platform": "shopify", "shop_url": "https://acme.example", "access_token": "t",
                            "webhook_secret": SECRET, "order_prefix": "ACME", "amazon": "us",
                            "routing": {"sku_map": {"TEE": "AMZ-TEE"}}}},
    }, tmp_path, env={})
    published: list[tuple[str, list[Any]]] = []
    app = bootstrap(config, lambda name, args, _id: published.append((name, args)), limiter=LocalLimiter())
    ensure_schema(app.sessions.kw["bind"])
    broker = {"up": True}

    def broker_check() -> None:
        if not broker["up"]:
            raise ConnectionError("broker down")

    web = create_app(app, broker_check=broker_check)
    yield web.test_client(), published, broker
    app.sessions.kw["bind"].dispose()


def post(client: FlaskClient, body: bytes, *, secret: str = SECRET, event_id: str = "e-1",
         topic: str = "orders/paid", store: str = "acme") -> int:
    headers = {"X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": sign(body, secret),
               "X-Shopify-Event-Id": event_id, "Content-Type": "application/json"}
    return client.post(f"/webhooks/shopify/{store}", data=body, headers=headers).status_code


def test_paid_webhook_is_ingested_once_and_release_is_published(client: Any) -> None:
    c, published, _ = client
    body = json.dumps(ORDER).encode()
    assert [post(c, body), post(c, body), post(c, body, event_id="e-2", topic="orders/updated")] == [200] * 3
    assert published == [("autofulfill.release", [1])]


def test_checks_come_in_the_documented_order(client: Any) -> None:
    c, published, _ = client
    body = json.dumps(ORDER).encode()
    assert post(c, body, store="nope") == 404
    assert post(c, b"{" + b" " * (1024 * 1024) + b"}") == 413
    assert post(c, body, secret="wrong") == 401
    assert c.post("/webhooks/shopify/acme", data=body,
                  headers={"X-Shopify-Hmac-Sha256": "%%%not-base64"}).status_code == 401
    assert post(c, b"[1, 2") == 400
    assert post(c, b'{"id": "x"}') == 400
    assert c.post("/webhooks/woocommerce/acme", data=body).status_code == 404  # wrong platform
    assert published == []


def test_healthz_reports_the_broker(client: Any) -> None:
    c, _, broker = client
    ok = c.get("/healthz")
    assert ok.status_code == 200 and ok.json == {"status": "ok", "db": "ok", "broker": "ok"}
    broker["up"] = False
    down = c.get("/healthz")
    assert down.status_code == 503 and down.json["broker"].startswith("down")


def test_metrics_count_orders_and_webhook_answers(client: Any) -> None:
    c, _, _ = client
    post(c, json.dumps(ORDER).encode())
    post(c, b"{}", secret="wrong")
    text = c.get("/metrics").get_data(as_text=True)
    assert 'autofulfill_orders_ingested_total{store="acme"} 1' in text
    assert 'autofulfill_webhook_requests_total{platform="shopify",code="200"} 1' in text
    assert 'autofulfill_webhook_requests_total{platform="shopify",code="401"} 1' in text


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=5), max_leaves=20)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode()),
                 st.dictionaries(st.sampled_from(list(ORDER)), json_values, max_size=8)
                 .map(lambda d: json.dumps({**ORDER, **d}).encode())))
def test_signed_garbage_never_makes_a_500(client: Any, body: bytes) -> None:
    c, _, _ = client
    assert post(c, body, event_id=str(hash(body))) in (200, 400)
