"""Shopify webhook deliveries: HMAC check and parsing, no API call.

Shopify signs the raw body with the app's secret: ``X-Shopify-Hmac-Sha256`` is the base64 of
HMAC-SHA256(secret, body). The body is the REST resource for the topic, unwrapped.
"""

from __future__ import annotations

from collections.abc import Mapping

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
    payload = json_object(body, f"webhook {topic}", ShopifyPayloadError)
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
