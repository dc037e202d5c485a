"""WooCommerce webhook deliveries: the creation ping, the HMAC check and parsing; no API call.

WooCommerce signs the raw body with the webhook's secret: ``X-WC-Webhook-Signature`` is the base64
of HMAC-SHA256(secret, body). The body of an ``order.*`` topic is the REST v3 order at delivery
time. WooCommerce has no event id: ``X-WC-Webhook-Delivery-ID`` is new for every delivery, so the
event is the order's state, ``{order id}:{date_modified_gmt}``. Topics are returned as WooCommerce
names them (``order.created``, ``order.updated``, ``order.deleted``, ...).

Only the body is signed. An order body is an order event whatever the topic header says, and
``X-WC-Webhook-Source``, when sent, must name the store the webhook was posted for. The order is
read again from the store before anything ships, which stays the safety net for whatever a header
could still steer.

When a webhook is created (or saved as active) WooCommerce POSTs an unsigned hello: the form body
``webhook_id=N`` with none of the ``X-WC-Webhook-*`` headers. It must be answered 200, or the
webhook cannot be saved.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from connectors.payload import json_object
from connectors.signing import header as header
from connectors.signing import sign as sign
from connectors.signing import verify as verify
from connectors.woocommerce.errors import WooPayloadError
from connectors.woocommerce.mapping import order_from_rest, order_id_of
from worker.domain import WebhookEvent

SIGNATURE_HEADER = "X-WC-Webhook-Signature"
TOPIC_HEADER = "X-WC-Webhook-Topic"
RESOURCE_HEADER = "X-WC-Webhook-Resource"
EVENT_HEADER = "X-WC-Webhook-Event"
SOURCE_HEADER = "X-WC-Webhook-Source"
WEBHOOK_ID_HEADER = "X-WC-Webhook-ID"
DELIVERY_ID_HEADER = "X-WC-Webhook-Delivery-ID"
_PING = re.compile(rb"\s*webhook_id=\d+\s*")


def is_ping(body: bytes, headers: Mapping[str, str]) -> bool:
    """WooCommerce's unsigned hello: ``webhook_id=N`` and no signature or topic header."""
    if header(headers, SIGNATURE_HEADER) or header(headers, TOPIC_HEADER):
        return False
    return _PING.fullmatch(body or b"") is not None


def parse(body: bytes, headers: Mapping[str, str], *, tag_meta_keys: Iterable[str] = (),
          note_keywords: Iterable[str] = (), shop_url: str = "") -> WebhookEvent:
    """Topic, event id and (for ``order.*``) the order of a verified delivery; the order's tags
    are read as ``mapping.order_from_rest`` reads them (the store's ``tag_meta_keys`` and
    ``note_keywords``). Its lines are as ordered: refunds are not read here.

    Raises WooPayloadError (a PermanentError) when the source header names another site than
    ``shop_url`` (when given), the topic header is missing from a body that is no order, the body
    is not a JSON object, or an order topic's body has no usable order.
    """
    source = header(headers, SOURCE_HEADER).strip()
    if shop_url and source and _site(source) != _site(shop_url):
        raise WooPayloadError(f"webhook is from the site {source[:100]!r}, not this store's {shop_url!r}")
    topic = header(headers, TOPIC_HEADER).strip()
    payload = json_object(body, f"webhook {topic[:64] or '(no topic)'}", WooPayloadError)
    if _is_order(payload):  # an order body is an order event, whatever the unsigned topic says
        topic = topic if topic in ("order.created", "order.updated") else "order.updated"
    elif not topic:
        raise WooPayloadError(f"webhook has no {TOPIC_HEADER} header")
    resource = topic.split(".", 1)[0]
    if resource != "order":
        # Not ours to ingest; still a stable key so a repeat is recognised.
        ident = payload.get("id", "")
        stamp = payload.get("date_modified_gmt") or header(headers, DELIVERY_ID_HEADER)
        return WebhookEvent(topic=topic, event_id=f"{resource}:{ident}:{stamp}", order=None)
    try:
        order_id = order_id_of(payload)
    except WooPayloadError as exc:
        raise WooPayloadError(f"webhook {topic}: {exc}") from exc
    if topic == "order.deleted":  # the body is only {"id": N}
        return WebhookEvent(topic=topic, event_id=f"{order_id}:deleted", order=None, order_id=order_id)
    modified = payload.get("date_modified_gmt")
    if not isinstance(modified, str) or not modified:
        raise WooPayloadError(f"webhook {topic}: order {order_id} has no date_modified_gmt")
    try:
        order = order_from_rest(payload, tag_meta_keys=tag_meta_keys, note_keywords=note_keywords)
    except WooPayloadError as exc:
        raise WooPayloadError(f"webhook {topic}: {exc}") from exc
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise WooPayloadError(f"webhook {topic}: order body not understood ({type(exc).__name__})") from exc
    return WebhookEvent(topic=topic, event_id=f"{order_id}:{modified}", order=order, order_id=order_id)


def _is_order(payload: Mapping[str, Any]) -> bool:
    """A REST order (a subscription looks alike, but has a billing period)."""
    return (isinstance(payload.get("line_items"), list) and "order_key" in payload
            and "date_modified_gmt" in payload and "billing_period" not in payload)


def _site(url: str) -> str:
    """``https://Shop.example/`` -> ``shop.example`` (WooCommerce sends its home URL as the source)."""
    try:
        parts = urlsplit(url.strip().lower())
    except ValueError:
        return url
    return f"{parts.hostname or ''}{parts.path.rstrip('/')}"
