from __future__ import annotations

import base64
import hashlib
import hmac
import json
from pathlib import Path

import pytest

from connectors.shopify.webhooks import parse, verify
from worker.errors import PermanentError

SECRET = "hush-its-a-secret"


def _hmac(body: bytes, secret: str = SECRET) -> str:
    # Computed here, independently of connectors.shopify.webhooks.sign.
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


@pytest.fixture
def body(specs_dir: Path) -> bytes:
    return (specs_dir / "shopify" / "examples" / "rest-order-2026-01-new-paid-unfulfilled.json").read_bytes()


def test_valid_signature(body: bytes) -> None:
    assert verify(body, _hmac(body), SECRET)
    assert verify(body, "  " + _hmac(body) + "\n", SECRET)


def test_tampered_body_wrong_secret_missing_header(body: bytes) -> None:
    signature = _hmac(body)
    assert not verify(body.replace(b"238.47", b"0.01"), signature, SECRET)
    assert not verify(body, signature, "other-secret")
    assert not verify(body, "", SECRET)
    assert not verify(body, signature, "")
    assert not verify(body, "not base64 at all ✓", SECRET)


def _headers(**extra: str) -> dict[str, str]:
    return {"x-shopify-topic": "orders/create", "X-SHOPIFY-EVENT-ID": "evt-1", **extra}


def test_parse_order_with_case_insensitive_headers(body: bytes) -> None:
    event = parse(body, _headers())
    assert (event.topic, event.order_id) == ("orders/create", "1073459976")
    assert event.event_id == f"order:1073459976:{hashlib.sha256(body).hexdigest()[:40]}"
    assert event.order is not None and event.order.number == "1002"


def test_unsigned_headers_do_not_change_what_an_order_body_means(body: bytes) -> None:
    """Issue 13: the event id and the topic come from the signed body, not from the headers."""
    plain = parse(body, _headers())
    for headers in ({"X-Shopify-Topic": "orders/paid", "X-Shopify-Event-Id": "another-event"},
                    {"X-Shopify-Topic": "orders/cancelled", "X-Shopify-Event-Id": "evt-1"},
                    {"X-Shopify-Topic": "products/update"}, {}):
        event = parse(body, headers)
        assert event.event_id == plain.event_id and event.order == plain.order
        assert event.topic in ("orders/paid", "orders/updated")  # not cancelled: the body is not
    cancelled = json.loads(body)
    cancelled["cancelled_at"] = "2026-01-09T10:00:00-05:00"
    assert parse(json.dumps(cancelled).encode(), _headers()).topic == "orders/cancelled"


def test_the_shop_domain_must_be_the_stores(body: bytes) -> None:
    ok = parse(body, _headers(**{"X-Shopify-Shop-Domain": "Acme.myshopify.com"}),
               shop_url="https://acme.myshopify.com")
    assert ok.order is not None
    with pytest.raises(PermanentError, match="not this store's 'acme.myshopify.com'"):
        parse(body, _headers(**{"X-Shopify-Shop-Domain": "other.myshopify.com"}),
              shop_url="https://acme.myshopify.com")
    with pytest.raises(PermanentError, match="no X-Shopify-Shop-Domain"):
        parse(body, _headers(), shop_url="https://acme.myshopify.com")


def test_other_topics_carry_no_order() -> None:
    event = parse(b'{"id": 1, "name": "shop"}', {"X-Shopify-Topic": "app/uninstalled",
                                                 "X-Shopify-Event-Id": "e"})
    assert event.order is None and event.order_id == ""


@pytest.mark.parametrize(("raw", "headers", "reason"), [
    (b"{not json", _headers(), "not valid JSON"),
    (b"\xff\xfe", _headers(), "not valid JSON"),
    (b"[1, 2]", _headers(), "not a JSON object"),
    (b'{"name": "#1"}', _headers(), "no order id"),
    (b'{"id": 5, "created_at": "yesterday"}', _headers(), "bad timestamp"),
    (b'{"id": 5}', {"X-Shopify-Event-Id": "e"}, "X-Shopify-Topic"),
])
def test_malformed_is_permanent(raw: bytes, headers: dict[str, str], reason: str) -> None:
    with pytest.raises(PermanentError, match=reason):
        parse(raw, headers)


def test_line_without_id_is_permanent(body: bytes) -> None:
    payload = json.loads(body)
    del payload["line_items"][0]["id"]
    with pytest.raises(PermanentError, match="line item has no id"):
        parse(json.dumps(payload).encode(), _headers())
