"""WooCommerce webhook signature, creation ping and parsing (no API call)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import pytest

from connectors.woocommerce import webhooks
from connectors.woocommerce.errors import WooPayloadError
from tests.unit.connectors.test_woo_mapping import ORDER

SECRET = "wh-secret-ünï"


def independent_signature(body: bytes, secret: str) -> str:
    return base64.b64encode(hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()).decode()


def delivery(topic: str = "order.updated", body: bytes | None = None) -> tuple[bytes, dict[str, str]]:
    # wp_json_encode escapes "/" and non-ASCII: the signature covers these exact bytes.
    raw = body if body is not None else json.dumps(ORDER, separators=(",", ":")).replace("/", "\\/").encode()
    return raw, {"content-type": "application/json", "x-wc-webhook-source": "https://bolt.example/",
                 "x-wc-webhook-topic": topic, "x-wc-webhook-resource": topic.split(".")[0],
                 "x-wc-webhook-event": topic.split(".")[-1], "x-wc-webhook-id": "4",
                 "x-wc-webhook-delivery-id": "c81e728d9d4c2f636f067f89cc14862c",
                 "x-wc-webhook-signature": independent_signature(raw, SECRET)}


def test_signature_matches_an_independent_hmac() -> None:
    body, headers = delivery()
    assert webhooks.sign(body, SECRET) == independent_signature(body, SECRET)
    assert webhooks.verify(body, headers["x-wc-webhook-signature"], SECRET)


def test_tampered_wrong_secret_or_missing_signature_fail() -> None:
    body, headers = delivery()
    sig = headers["x-wc-webhook-signature"]
    assert not webhooks.verify(body.replace(b"processing", b"completed"), sig, SECRET)
    assert not webhooks.verify(body, sig, "another-secret")
    assert not webhooks.verify(body, "", SECRET)
    assert not webhooks.verify(body, sig, "")
    assert not webhooks.verify(body, "not base64 at all ✓", SECRET)


def test_ping_is_recognised_and_is_not_a_signed_order() -> None:
    ping = b"webhook_id=17"
    assert webhooks.is_ping(ping, {"Content-Type": "application/x-www-form-urlencoded",
                                   "User-Agent": "WooCommerce/9.4.0 Hookshot (WordPress/6.7.1)"})
    body, headers = delivery()
    assert not webhooks.is_ping(body, headers)
    assert not webhooks.is_ping(ping, {"X-WC-Webhook-Signature": "abc"})  # signed: not the hello
    assert not webhooks.is_ping(ping, {"X-WC-Webhook-Topic": "order.created"})
    assert not webhooks.is_ping(b"webhook_id=17&x=1", {})
    assert not webhooks.is_ping(b"", {})


def test_parse_uses_order_id_and_date_modified_gmt_as_event_id() -> None:
    body, headers = delivery("order.created")
    event = webhooks.parse(body, headers)
    assert event.topic == "order.created"
    assert event.event_id == "727:2026-11-25T10:03:17"
    assert event.order_id == "727"
    assert event.order is not None and event.order.address is not None
    assert event.order.address.name == "Zoë Ångström"  # \u escapes decoded


def test_event_id_ignores_the_delivery_id_and_headers_are_case_insensitive() -> None:
    body, headers = delivery()
    again = {k.upper(): v for k, v in headers.items()}
    again["X-WC-WEBHOOK-DELIVERY-ID"] = "a87ff679a2f3e71d9181a67b7542122c"
    assert webhooks.parse(body, headers).event_id == webhooks.parse(body, again).event_id
    changed = {**ORDER, "date_modified_gmt": "2026-11-25T10:09:00"}
    raw = json.dumps(changed).encode()
    assert webhooks.parse(raw, headers).event_id == "727:2026-11-25T10:09:00"


def test_deleted_and_other_resources() -> None:
    body, headers = delivery("order.deleted", b'{"id":727}')
    event = webhooks.parse(body, headers)
    assert (event.order, event.order_id, event.event_id) == (None, "727", "727:deleted")
    product = json.dumps({"id": 93, "date_modified_gmt": "2026-11-25T10:00:00"}).encode()
    event = webhooks.parse(*delivery("product.updated", product))
    assert event.order is None and event.event_id == "product:93:2026-11-25T10:00:00"


@pytest.mark.parametrize(("body", "topic", "reason"), [
    (b"not json", "order.created", "not valid JSON"),
    (b"[1, 2]", "order.created", "not a JSON object"),
    (b'{"status": "processing"}', "order.updated", "no usable id"),
    (json.dumps({**ORDER, "date_modified_gmt": None}).encode(), "order.updated", "date_modified_gmt"),
    (json.dumps({**ORDER, "date_created_gmt": "soon"}).encode(), "order.created", "timestamp"),
    (json.dumps({**ORDER, "line_items": [{"quantity": 1}]}).encode(), "order.created", "line item"),
    (b"\xff\xfe", "order.created", "not valid JSON"),
])
def test_malformed_bodies_are_permanent_errors(body: bytes, topic: str, reason: str) -> None:
    _, headers = delivery(topic)
    with pytest.raises(WooPayloadError, match=reason):
        webhooks.parse(body, headers)


def test_missing_topic_header() -> None:
    body, headers = delivery(body=b'{"id": 5}')
    del headers["x-wc-webhook-topic"]
    with pytest.raises(WooPayloadError, match="X-WC-Webhook-Topic"):
        webhooks.parse(body, headers)


def test_unsigned_headers_do_not_change_what_an_order_body_means() -> None:
    """Issue 13: the body decides. An order body is an order event under any topic header, with
    the same identity; the source header, when sent, must be the store's site."""
    body, headers = delivery()
    plain = webhooks.parse(body, headers, shop_url="https://bolt.example")
    for topic in ("product.updated", "order.deleted", "", "coupon.created"):
        event = webhooks.parse(body, {**headers, "x-wc-webhook-topic": topic}, shop_url="https://bolt.example")
        assert (event.topic, event.event_id, event.order) == ("order.updated", plain.event_id, plain.order)
    same = webhooks.parse(body, {**headers, "x-wc-webhook-source": "https://Bolt.example/"},
                          shop_url="https://bolt.example")
    assert same.event_id == plain.event_id
    with pytest.raises(WooPayloadError, match="not this store's"):
        webhooks.parse(body, {**headers, "x-wc-webhook-source": "https://other.example/"},
                       shop_url="https://bolt.example")
