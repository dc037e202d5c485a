"""The webhook receiver in-process (Flask test client) with the real Shopify verifier and parser,
a real SQLite ledger, and a publisher that records what would go to the broker."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from connectors.ratelimit import LocalLimiter
from connectors.shopify.webhooks import sign
from tests.fakes import DrainingClient
from worker.config import parse_config
from worker.ledger.migrate import ensure_schema
from worker.ledger.models import OrderRow, OutboxRow, WebhookReceiptRow
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


def _config(tmp_path: Path) -> Any:
    return parse_config({
        "service": {"database_url": f"sqlite:///{tmp_path / 'l.db'}"},
        "amazon": {"us": {"marketplace_id": "M", "client_id": "c", "client_secret": "s",
                          "refresh_token": "r"}},
        "stores": {"acme": {"platform": "shopify", "shop_url": "https://acme.example", "access_token": "t",
                            "webhook_secret": SECRET, "order_prefix": "ACME", "amazon": "us",
                            "routing": {"sku_map": {"TEE": "AMZ-TEE"}}}},
    }, tmp_path, env={})


@pytest.fixture
def client(tmp_path: Path) -> Any:
    config = _config(tmp_path)
    published: list[tuple[str, list[Any]]] = []
    app = bootstrap(config, lambda name, args, _id: published.append((name, args)), limiter=LocalLimiter())
    ensure_schema(app.sessions.kw["bind"])
    broker = {"up": True}

    def broker_check() -> None:
        if not broker["up"]:
            raise ConnectionError("broker down")

    web = create_app(app, broker_check=broker_check)
    web.test_client_class = DrainingClient
    yield web.test_client(), published, broker
    app.sessions.kw["bind"].dispose()


def post(client: FlaskClient, body: bytes, *, secret: str = SECRET, event_id: str = "e-1",
         topic: str = "orders/paid", store: str = "acme") -> int:
    headers = {"X-Shopify-Topic": topic, "X-Shopify-Hmac-Sha256": sign(body, secret),
               "X-Shopify-Event-Id": event_id, "X-Shopify-Shop-Domain": "acme.example",
               "Content-Type": "application/json"}
    return client.post(f"/webhooks/shopify/{store}", data=body, headers=headers).status_code


def test_paid_webhook_is_ingested_once_and_release_is_published(client: Any) -> None:
    c, published, _ = client
    body = json.dumps(ORDER).encode()
    assert [post(c, body), post(c, body), post(c, body, event_id="e-2", topic="orders/updated")] == [200] * 3
    assert published == [("autofulfill.release", [1])]


def test_the_answer_never_waits_for_the_broker(tmp_path: Path) -> None:
    """A broker that hangs (or is slow under a burst) does not hold the platform's request: the
    order and its next task are committed to the ledger, the answer goes out, and the task is
    published from the receiver's courier thread once the broker answers."""
    config = _config(tmp_path)
    broker_answers = threading.Event()
    published: list[str] = []

    def hanging_publisher(name: str, _args: list[Any], _id: str) -> None:
        assert broker_answers.wait(30)
        published.append(name)

    app = bootstrap(config, hanging_publisher, limiter=LocalLimiter())
    ensure_schema(app.sessions.kw["bind"])
    web = create_app(app)
    answered = []
    body = json.dumps(ORDER).encode()
    request = threading.Thread(target=lambda: answered.append(post(web.test_client(), body)))
    request.start()
    request.join(10)
    assert answered == [200]  # answered while the broker still hangs
    with app.sessions() as session:
        assert session.scalar(select(OrderRow.status)) == "held"
        assert session.scalar(select(OutboxRow.published_at)) is None
    broker_answers.set()
    assert web.extensions["autofulfill.courier"].drain(10)
    assert published == ["autofulfill.release"]
    with app.sessions() as session:
        assert session.scalar(select(OutboxRow.published_at)) is not None
    app.sessions.kw["bind"].dispose()


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


def scrape(c: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, parsed as Prometheus parses it."""
    text = c.get("/metrics").get_data(as_text=True)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_orders_and_webhook_answers(client: Any) -> None:
    c, _, _ = client
    post(c, json.dumps(ORDER).encode())
    post(c, b"{}", secret="wrong")
    samples = scrape(c)
    assert samples[("autofulfill_orders_ingested_total", (("store", "acme"),))] == 1
    assert samples[("autofulfill_orders_parked", (("store", "acme"),))] == 0
    assert samples[("autofulfill_shipments_submitted_total", (("route", "fba"),))] == 0
    assert samples[("autofulfill_tracking_pushed_total", (("store", "acme"),))] == 0
    assert samples[("autofulfill_webhook_requests_total", (("code", "200"), ("platform", "shopify")))] == 1
    assert samples[("autofulfill_webhook_requests_total", (("code", "401"), ("platform", "shopify")))] == 1
    # how long answers took (a histogram) and what became of the accepted ones, per store
    assert samples[("autofulfill_webhook_seconds_count", (("platform", "shopify"),))] == 2
    assert samples[("autofulfill_webhook_seconds_bucket", (("le", "+Inf"), ("platform", "shopify")))] == 2
    assert samples[("autofulfill_webhook_outcomes_total", (("outcome", "held"), ("store", "acme")))] == 1
    post(c, json.dumps(ORDER).encode())
    outcome = ("autofulfill_webhook_outcomes_total", (("outcome", "duplicate"), ("store", "acme")))
    assert scrape(c)[outcome] == 1


def test_unsigned_requests_cannot_add_series_or_break_metrics(client: Any) -> None:
    """Issue 13 item 4: a path's platform segment is no label value; /metrics stays parseable
    and as small as before, however many odd requests came."""
    c, _, _ = client
    for n in range(300):
        platform = ['a%22b', '%0Afake_series{x="1"} 1', f"p{n}", "x" * 200][n % 4]
        assert c.post(f"/webhooks/{platform}/acme", data=b"{}").status_code == 404
        c.post(f"/webhooks/{platform}/store{n}", data=b"{}")
    samples = scrape(c)
    assert samples[("autofulfill_webhook_requests_total", (("code", "404"), ("platform", "other")))] == 600
    assert {name for name, _ in samples} - {name for name, _ in samples if "_seconds" in name} <= {
        "autofulfill_webhook_requests_total", "autofulfill_webhook_requests_created",
        "autofulfill_orders_ingested_total", "autofulfill_shipments_submitted_total",
        "autofulfill_tracking_pushed_total", "autofulfill_orders_parked"}
    assert len(samples) < 40  # with the answer-time histogram of the one platform label "other"


def test_a_chunked_body_over_1_mib_is_413_and_a_lone_surrogate_is_400(client: Any) -> None:
    c, published, _ = client
    big = json.dumps({**ORDER, "note": "x" * (1024 * 1024)}).encode()
    headers = {"X-Shopify-Topic": "orders/paid", "X-Shopify-Hmac-Sha256": sign(big, SECRET),
               "X-Shopify-Shop-Domain": "acme.example", "Transfer-Encoding": "chunked"}
    answer = c.post("/webhooks/shopify/acme", input_stream=io.BytesIO(big), headers=headers,
                    environ_overrides={"wsgi.input_terminated": True})  # as gunicorn serves chunked bodies
    assert answer.status_code == 413
    lone = json.dumps({**ORDER, "note": "x"}).replace('"x"', '"\\ud800"').encode()
    assert b"\\ud800" in lone
    answer = c.post("/webhooks/shopify/acme", data=lone, headers={
        "X-Shopify-Topic": "orders/paid", "X-Shopify-Hmac-Sha256": sign(lone, SECRET),
        "X-Shopify-Shop-Domain": "acme.example"})
    assert answer.status_code == 400 and "surrogate" in answer.json["error"]
    assert published == []


def test_unsigned_headers_do_not_change_what_a_signed_body_means(client: Any) -> None:
    """Issue 13 item 7: a new event id or topic on a signed body is the same event; another shop's
    domain is refused; the webhook stays a notification (release reads the store again)."""
    c, published, _ = client
    body = json.dumps(ORDER).encode()
    assert post(c, body, event_id="e-1") == 200
    assert post(c, body, event_id="e-2") == 200
    assert post(c, body, event_id="e-3", topic="orders/cancelled") == 200
    assert published == [("autofulfill.release", [1])]
    other = {"X-Shopify-Topic": "orders/paid", "X-Shopify-Hmac-Sha256": sign(body, SECRET),
             "X-Shopify-Event-Id": "e-4", "X-Shopify-Shop-Domain": "other.example"}
    answer = c.post("/webhooks/shopify/acme", data=body, headers=other)
    assert answer.status_code == 400 and "not this store's" in answer.json["error"]
    app = c.application.extensions["autofulfill"]
    with app.sessions() as session:
        receipts = session.scalars(select(WebhookReceiptRow)).all()
        orders = session.scalars(select(OrderRow)).all()
    assert len(receipts) == 1 and len(orders) == 1 and orders[0].status == "held"
    assert receipts[0].topic == "orders/paid"


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
