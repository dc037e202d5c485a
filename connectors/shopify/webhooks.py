"""Shopify webhook deliveries: HMAC check and parsing, no API call.

Shopify signs the raw body with the app's secret: ``X-Shopify-Hmac-Sha256`` is the base64 of
HMAC-SHA256(secret, body). The body is the REST resource for the topic, unwrapped.

Only the body is signed; every other header could have been changed on the way. So what a
delivery means is decided from the body: an order body is an order event whatever the topic
header says (``orders/cancelled`` only when the body is cancelled), and its identity is the order
id and a digest of the body, not the unsigned ``X-Shopify-Event-Id`` (a retry of one event sends
the same body, so it is recognised; a new header on an old body is too). The shop domain header
must name the store the webhook was posted for. The order is read again from the store before
anything ships, which stays the safety net for whatever a header could still steer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from connectors.payload import json_object
from connectors.shopify.errors import ShopifyPayloadError
from connectors.shopify.mapping import order_from_rest
from connectors.signing import header as header
from connectors.signing import sign as sign
from connectors.signing import verify as verify
from worker.domain import WebhookEvent

HMAC_HEADER = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER = "X-Shopify-Topic"
EVENT_ID_HEADER = "X-Shopify-Event-Id"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"
SHOP_DOMAIN_HEADER = "X-Shopify-Shop-Domain"
ORDER_TOPICS = ("orders/create", "orders/paid", "orders/updated", "orders/cancelled")


def parse(body: bytes, headers: Mapping[str, str], *, shop_url: str = "") -> WebhookEvent:
    """Topic, event id and (for an order body) the order of a verified delivery.

    With ``shop_url`` (the store's), ``X-Shopify-Shop-Domain`` must name that shop. Raises
    ShopifyPayloadError (a PermanentError) when the shop domain does not match, the body is not a
    JSON object, an ``orders/*`` delivery's body has no usable order, or a delivery that is no
    order has no topic.
    """
    if shop_url:
        check_shop_domain(header(headers, SHOP_DOMAIN_HEADER), shop_url)
    said = header(headers, TOPIC_HEADER).strip()
    payload = json_object(body, f"webhook {said[:64] or '(no topic)'}", ShopifyPayloadError)
    if not (_is_order(payload) or said.startswith("orders/")):
        if not said:
            raise ShopifyPayloadError(f"webhook has no {TOPIC_HEADER} header and its body is no order")
        event_id = (header(headers, EVENT_ID_HEADER) or header(headers, WEBHOOK_ID_HEADER)).strip()
        return WebhookEvent(topic=said, event_id=event_id or f"body:{_digest(body)}", order=None)
    if payload.get("id") in (None, ""):
        raise ShopifyPayloadError(f"webhook {said[:64]}: body has no order id")
    try:
        order = order_from_rest(payload)
    except ShopifyPayloadError as exc:
        raise ShopifyPayloadError(f"webhook {said[:64]}: {exc}") from exc
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ShopifyPayloadError(f"webhook {said[:64]}: order body not understood "
                                  f"({type(exc).__name__})") from exc
    if order.cancelled:
        topic = "orders/cancelled"
    else:
        topic = said if said in ORDER_TOPICS and said != "orders/cancelled" else "orders/updated"
    return WebhookEvent(topic=topic, event_id=f"order:{order.platform_order_id}:{_digest(body)}",
                        order=order, order_id=order.platform_order_id)


def check_shop_domain(said: str, shop_url: str) -> None:
    """ShopifyPayloadError unless ``said`` (the shop domain header) names the shop at ``shop_url``."""
    theirs, ours = _host(said), _host(shop_url)
    if not theirs:
        raise ShopifyPayloadError(f"webhook has no {SHOP_DOMAIN_HEADER} header")
    if theirs != ours and theirs.split(":")[0] != ours.split(":")[0]:
        raise ShopifyPayloadError(f"webhook is for the shop {theirs[:100]!r}, not this store's {ours!r}")


def _host(value: str) -> str:
    value = value.strip().lower()
    try:
        return (urlsplit(value).netloc if "://" in value else value.split("/", 1)[0]).rstrip(".")
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return value


def _is_order(payload: Mapping[str, Any]) -> bool:
    """An order resource (a draft order or a checkout has line items, but no financial status)."""
    return isinstance(payload.get("line_items"), list) and "financial_status" in payload


def _digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()[:40]
