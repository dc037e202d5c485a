"""Shopify webhook deliveries: HMAC check and parsing, no API call.

Shopify signs the raw body with the app's secret: ``X-Shopify-Hmac-Sha256`` is the base64 of
HMAC-SHA256(secret, body). The body is the REST resource for the topic, unwrapped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping

from connectors.shopify.errors import ShopifyPayloadError
from connectors.shopify.mapping import order_from_rest
from worker.domain import WebhookEvent

HMAC_HEADER = "X-Shopify-Hmac-Sha256"
TOPIC_HEADER = "X-Shopify-Topic"
EVENT_ID_HEADER = "X-Shopify-Event-Id"
WEBHOOK_ID_HEADER = "X-Shopify-Webhook-Id"


def header(headers: Mapping[str, str], name: str) -> str:
    """Header value by case-insensitive name; "" when absent."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return ""


def sign(body: bytes, secret: str) -> str:
    """The ``X-Shopify-Hmac-Sha256`` value for ``body`` (used by the sandbox and tests)."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(body: bytes, hmac_header: str, secret: str) -> bool:
    """True when ``hmac_header`` is the signature of ``body`` under ``secret`` (constant time)."""
    if not hmac_header or not secret:
        return False
    return hmac.compare_digest(sign(body, secret).encode("ascii"),
                               hmac_header.strip().encode("utf-8", "replace"))


def parse(body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
    """Topic, event id and (for ``orders/*``) the order of a verified delivery.

    Raises ShopifyPayloadError (a PermanentError) when the topic or event id header is missing,
    the body is not a JSON object, or an order topic's body has no usable order.
    """
    topic = header(headers, TOPIC_HEADER).strip()
    if not topic:
        raise ShopifyPayloadError(f"webhook has no {TOPIC_HEADER} header")
    event_id = (header(headers, EVENT_ID_HEADER) or header(headers, WEBHOOK_ID_HEADER)).strip()
    if not event_id:
        raise ShopifyPayloadError(f"webhook has no {EVENT_ID_HEADER} (or {WEBHOOK_ID_HEADER}) header")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ShopifyPayloadError(f"webhook {topic}: body is not valid JSON") from exc
    if not isinstance(payload, dict):
        raise ShopifyPayloadError(f"webhook {topic}: body is not a JSON object")
    if not topic.startswith("orders/"):
        return WebhookEvent(topic=topic, event_id=event_id, order=None)  # not an order topic
    if payload.get("id") in (None, ""):
        raise ShopifyPayloadError(f"webhook {topic}: body has no order id")
    try:
        order = order_from_rest(payload)
    except ShopifyPayloadError as exc:
        raise ShopifyPayloadError(f"webhook {topic}: {exc}") from exc
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise ShopifyPayloadError(f"webhook {topic}: order body not understood "
                                  f"({type(exc).__name__})") from exc
    return WebhookEvent(topic=topic, event_id=event_id, order=order,
                        order_id=order.platform_order_id)
