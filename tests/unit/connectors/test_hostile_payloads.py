"""Store text the ledger cannot hold is made to fit, or refused with a reason, in the mapping
(issue 13): NUL (PostgreSQL refuses it) is dropped, a lone surrogate becomes U+FFFD, an order
number longer than the ledger keeps is a payload error, a webhook body with a lone surrogate
escape is refused."""

from __future__ import annotations

import copy
import json

import pytest

from connectors import payload
from connectors.shopify import mapping as shopify
from connectors.shopify.errors import ShopifyPayloadError
from connectors.shopify.webhooks import parse as parse_shopify
from connectors.woocommerce import mapping as woo
from connectors.woocommerce.errors import WooPayloadError
from tests.unit.connectors.test_woo_mapping import ORDER as WOO_ORDER
from tests.unit.service.test_web import ORDER as SHOPIFY_ORDER


def test_text_drops_nul_and_replaces_lone_surrogates() -> None:
    assert payload.text("a\x00b") == "ab"
    assert payload.text("x\ud800y") == "x\ufffdy"
    assert payload.text(None) == "" and payload.text(12) == "12"


def test_store_text_with_nul_fits_and_long_numbers_are_refused() -> None:
    order = shopify.order_from_rest({**SHOPIFY_ORDER, "name": "#10\x0001",
                                     "line_items": [{**SHOPIFY_ORDER["line_items"][0], "sku": "T\x00EE"}]})
    assert order.number == "1001" and order.lines[0].sku == "TEE"
    with pytest.raises(ShopifyPayloadError, match="order number is longer than 255"):
        shopify.order_from_rest({**SHOPIFY_ORDER, "name": "#" + "9" * 256})
    body = copy.deepcopy(WOO_ORDER)
    body["number"] = "2026/" + "0" * 300
    with pytest.raises(WooPayloadError, match="order number is longer than 255"):
        woo.order_from_rest(body)
    body = copy.deepcopy(WOO_ORDER)
    body["line_items"][0]["id"] = "x" * 65
    with pytest.raises(WooPayloadError, match="line item has no usable id"):
        woo.order_from_rest(body)


def test_a_lone_surrogate_escape_in_a_webhook_body_is_refused() -> None:
    body = json.dumps({**SHOPIFY_ORDER, "note": "x"}).replace('"x"', '"\\ud800"').encode()
    headers = {"X-Shopify-Topic": "orders/paid", "X-Shopify-Event-Id": "e-1"}
    with pytest.raises(ShopifyPayloadError, match="lone UTF-16 surrogate"):
        parse_shopify(body, headers)
