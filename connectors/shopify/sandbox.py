"""``ShopifySandbox``: a local Shopify for tests and ``autofulfill demo``.

A real HTTP server on 127.0.0.1 that answers the calls ``ShopifyStore`` makes the way Shopify
does: the access-token header (401 otherwise), the client-credentials grant, GraphQL dispatched
by ``operationName`` (no GraphQL parser: each operation in ``queries.py`` has a handler here)
with ``data`` / ``errors`` / ``extensions.cost.throttleStatus`` from a real leaky bucket, GIDs
as node ids, fulfillment orders that close as fulfillments consume them. It also signs and
delivers webhooks. State lives in ``SandboxState`` (``sandbox_state.py``) behind one lock; the
fulfillment operations' handlers are in ``sandbox_fulfillments.py``, the inventory ones (locations,
items, levels, ``inventorySetQuantities`` with compare-and-swap) in ``sandbox_inventory.py``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs

import requests

from connectors.sandbox_server import LoopbackServer, SandboxHandler
from connectors.shopify import sandbox_fulfillments, sandbox_inventory, sandbox_state
from connectors.shopify.sandbox_state import SandboxState


class ShopifySandbox(LoopbackServer):
    thread_name = "shopify-sandbox"

    """Start with ``start()`` (returns self) or ``with ShopifySandbox() as shop:``; ``.url``."""

    def __init__(self, access_token: str = "sandbox-token", webhook_secret: str = "sandbox-secret",
                 api_version: str = "2026-01", bucket_max: float = 1000, restore_rate: float = 50,
                 fulfillment_orders_delay_s: float = 0.0, client_id: str | None = None,
                 client_secret: str | None = None, shop_name: str = "Sandbox Shop") -> None:
        super().__init__()
        self.access_token = access_token
        self.webhook_secret = webhook_secret
        self.api_version = api_version
        self.client_id = client_id
        self.client_secret = client_secret
        self.state = SandboxState(bucket_max=bucket_max, restore_rate=restore_rate,
                                  fulfillment_orders_delay_s=fulfillment_orders_delay_s,
                                  shop_name=shop_name, webhook_secret=webhook_secret,
                                  api_version=api_version,
                                  handlers={**sandbox_state.HANDLERS, **sandbox_fulfillments.HANDLERS,
                                            **sandbox_inventory.HANDLERS})
        self._issued: dict[str, float] = {}  # client-credentials token -> expiry (time.time())
        self.token_requests = 0

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    @property
    def shop_domain(self) -> str:
        return self.url.split("://", 1)[-1]

    # --- helpers for tests and the demo --------------------------------------------------------

    def add_order(self, lines: list[tuple[Any, ...]], shipping_title: str = "Standard",
                  country: str = "US", financial_status: str = "paid",
                  email: str = "customer@example.com", name: str | None = None,
                  address: dict[str, Any] | None = None, tags: str = "",
                  lines_per_fulfillment_order: int | None = None) -> dict[str, Any]:
        """Create an order with an OPEN fulfillment order; returns it REST-shaped (a webhook body).

        ``lines`` are ``(sku, qty)`` or ``(sku, qty, title)`` or ``(sku, qty, title, price)``.
        ``lines_per_fulfillment_order`` spreads them over several OPEN fulfillment orders of that
        many lines each, in line order (as an order shipped from several locations has).
        """
        return self.state.add_order(lines, shipping_title=shipping_title, country=country,
                                    financial_status=financial_status, email=email, name=name,
                                    address=address, tags=tags,
                                    lines_per_fulfillment_order=lines_per_fulfillment_order)

    def order(self, order_id: int | str) -> dict[str, Any]:
        """The order as REST JSON now."""
        return self.state.rest_order(int(order_id))

    def cancel_order(self, order_id: int | str) -> dict[str, Any]:
        return self.state.cancel_order(int(order_id))

    def set_address(self, order_id: int | str, **fields: Any) -> dict[str, Any]:
        """Edit the shipping address (REST field names: address1, city, zip, ...), as the admin does."""
        with self.state.lock:
            order = self.state.orders[int(order_id)]
            order["address"].update(fields)
            order["updated_at"] = sandbox_state._now()
            return self.state.rest_order(int(order_id))

    def refund_lines(self, order_id: int | str, lines: list[tuple[int | str, int]]) -> dict[str, Any]:
        """Refund (line item id, quantity) pairs; returns the REST order (then deliver orders/updated)."""
        return self.state.refund_lines(int(order_id), [(int(li), q) for li, q in lines])

    def hold(self, order_id: int | str, status: str = "ON_HOLD") -> None:
        """Put the order's open fulfillment orders ON_HOLD (or SCHEDULED); ``status="OPEN"`` releases."""
        self.state.set_fulfillment_order_status(int(order_id), status)

    def fulfillments(self, order_id: int | str) -> list[dict[str, Any]]:
        """What fulfillmentCreate wrote for the order (copies)."""
        return self.state.fulfillments_of(int(order_id))

    def add_location(self, name: str, active: bool = True) -> str:
        """A location (e.g. "Amazon FBA"); returns its gid."""
        with self.state.lock:
            return f"gid://shopify/Location/{self.state.stock.add_location(name, active)}"

    def add_inventory_item(self, sku: str, available: dict[str, int], tracked: bool = True) -> str:
        """A variant's inventory item with ``available`` units per location (name or gid); returns
        its gid. Orders added later commit its units at its first location."""
        with self.state.lock:
            book = self.state.stock
            levels = {book.location_id(loc): qty for loc, qty in available.items()}
            return f"gid://shopify/InventoryItem/{book.add_item(sku, levels, tracked)}"

    def available(self, sku: str, location: str | None = None) -> int | None:
        """``available`` of the SKU's (first) item at the location (name or gid; default: the
        first location); None when it is not stocked there."""
        with self.state.lock:
            level = self.state.stock.level(sku, self.state.stock.location_id(location))
            return None if level is None else level["available"]

    def sell(self, sku: str, quantity: int = 1, location: str | None = None) -> None:
        """A sale the sync does not know about yet: available -> committed."""
        with self.state.lock:
            book = self.state.stock
            book.take(sku, quantity, book.location_id(location) if location is not None else None)

    def after(self, operation: str, action: Callable[[], None]) -> None:
        """Run ``action`` once, right after the next ``operation`` has been answered."""
        with self.state.lock:
            self.state.after.setdefault(operation, []).append(action)

    @property
    def inventory_sets(self) -> list[dict[str, Any]]:
        """Every ``inventorySetQuantities`` input received (copies), refused ones too."""
        with self.state.lock:
            return [dict(c) for c in self.state.stock.set_calls]

    def drain(self, to: float = 0.0) -> None:
        """Set the cost bucket to ``to`` points now (to provoke THROTTLED answers)."""
        self.state.drain(to)

    @property
    def calls(self) -> list[str]:
        """operationName of every GraphQL request received, in order (throttled ones too)."""
        return list(self.state.calls)

    def signed_webhook(self, topic: str, order_id: int | str,
                       event_id: str | None = None) -> tuple[bytes, dict[str, str]]:
        return self.state.signed_webhook(topic, int(order_id), event_id, self.shop_domain)

    def deliver(self, url: str, topic: str, order_id: int | str, event_id: str | None = None) -> int:
        """POST the signed webhook to ``url``; returns the HTTP status code."""
        body, headers = self.signed_webhook(topic, order_id, event_id)
        return requests.post(url, data=body, headers=headers, timeout=(5, 30)).status_code

    # --- request handling (called from server threads) ------------------------------------------

    def _authorised(self, token: str) -> bool:
        if token and token == self.access_token:
            return True
        with self.state.lock:
            expiry = self._issued.get(token)
        return expiry is not None and expiry > time.time()

    def _grant(self, form: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        def one(key: str) -> str:
            return (form.get(key) or [""])[0]
        with self.state.lock:
            self.token_requests += 1
        if one("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type",
                         "error_description": "grant_type must be client_credentials"}
        if (self.client_id is None or one("client_id") != self.client_id
                or one("client_secret") != self.client_secret):
            return 400, {"error": "invalid_client",
                         "error_description": "Client authentication failed."}
        token = f"shpat_sandbox_{len(self._issued) + 1:06d}"
        with self.state.lock:
            self._issued[token] = time.time() + 86399
        return 200, {"access_token": token, "scope": "read_orders,write_merchant_managed_fulfillment_orders",
                     "expires_in": 86399}


def _handler_for(sandbox: ShopifySandbox) -> type[BaseHTTPRequestHandler]:
    graphql_path = f"/admin/api/{sandbox.api_version}/graphql.json"

    class Handler(SandboxHandler):
        def _reply(self, code: int, body: dict[str, Any]) -> None:
            self.reply(code, json.dumps(body).encode(), "application/json; charset=utf-8",
                       {"X-Request-Id": f"sandbox-{time.monotonic_ns()}"})

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            self._reply(404, {"errors": "Not Found"})

        def do_POST(self) -> None:  # noqa: N802
            _, raw = self.read_request()
            path = self.path.split("?", 1)[0]
            if path == "/admin/oauth/access_token":
                code, body = sandbox._grant(parse_qs(raw.decode("utf-8", "replace")))
                self._reply(code, body)
                return
            if path != graphql_path:
                self._reply(404, {"errors": "Not Found"})
                return
            if not sandbox._authorised(self.headers.get("X-Shopify-Access-Token", "")):
                self._reply(401, {"errors": "[API] Invalid API key or access token "
                                            "(unrecognized login or wrong password)"})
                return
            try:
                request = json.loads(raw)
                assert isinstance(request, dict)
            except (ValueError, AssertionError):
                self._reply(400, {"errors": {"query": "Required parameter missing or invalid"}})
                return
            self._reply(200, sandbox.state.graphql(request))

    return Handler
