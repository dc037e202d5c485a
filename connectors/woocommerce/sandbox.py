"""``WooSandbox``: a local WooCommerce for tests and ``autofulfill demo``.

A real HTTP server on 127.0.0.1 answering the REST v3 calls ``WooStore`` makes the way WooCommerce
does. It is plain http, so — like WooCommerce on http — it wants OAuth 1.0a one-legged
signatures (HMAC-SHA256 or -SHA1, consumer secret + "&" as key, timestamp within 15 minutes,
each nonce once), checked here independently of the ``woocommerce`` package that makes them.
It also takes ``consumer_key``/``consumer_secret`` query parameters (which real WooCommerce
accepts only over https). Anything else is 401 ``woocommerce_rest_cannot_view`` /
``woocommerce_rest_authentication_error``. With ``tracking_extension`` it serves the routes of
WooCommerce Shipment Tracking (``"shipment-tracking"``) or Advanced Shipment Tracking
(``"ast"``); without, those are 404 ``rest_no_route``. It signs and delivers webhooks and the
creation ping. Refunds made with ``refund_lines`` are listed at ``orders/<id>/refunds`` as
WooCommerce lists them, the order's own line quantities unchanged. Products and variations keep
``stock_quantity`` (``sandbox_products.py``: read by SKU, batch updates; a paid order reduces
it). State lives in ``WooState`` (``sandbox_state.py``) behind one lock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import requests

from connectors.sandbox_server import LoopbackServer, SandboxHandler
from connectors.woocommerce.sandbox_state import Reply, WooState, copy, error
from connectors.woocommerce.webhooks import sign

OAUTH_PARAMS = ("oauth_consumer_key", "oauth_timestamp", "oauth_nonce", "oauth_signature",
                "oauth_signature_method")
OAUTH_WINDOW_S = 15 * 60
USER_AGENT = "WooCommerce/9.4.0 Hookshot (WordPress/6.7.1)"


def _raw(value: str) -> str:
    """PHP's rawurlencode (RFC 3986: only A-Z a-z 0-9 - _ . ~ stay)."""
    return quote(value, safe="-_.~")


def oauth_signature(method: str, base_url: str, params: dict[str, str], consumer_secret: str,
                    algorithm: str = "sha256") -> str:
    """The signature WooCommerce expects (``WC_REST_Authentication::check_oauth_signature``):
    parameters sorted by key, key and value each rawurlencoded, then each ``key=value``
    rawurlencoded again and joined by ``%26``; key = consumer secret + "&"."""
    pairs = sorted((k, v) for k, v in params.items() if k != "oauth_signature")
    query = "%26".join(_raw(f"{_raw(k)}={_raw(v)}") for k, v in pairs)
    base = f"{method.upper()}&{_raw(base_url)}&{query}"
    digest = hmac.new(f"{consumer_secret}&".encode(), base.encode(), getattr(hashlib, algorithm)).digest()
    return base64.b64encode(digest).decode("ascii")


class WooSandbox(LoopbackServer):
    """Start with ``start()`` (returns self) or ``with WooSandbox() as woo:``; ``.url``."""

    thread_name = "woo-sandbox"

    def __init__(self, consumer_key: str = "ck_sandbox", consumer_secret: str = "cs_sandbox",
                 webhook_secret: str = "sandbox-woo-secret", tracking_extension: str | None = None,
                 utc_offset_hours: float = -5.0) -> None:
        super().__init__()
        if tracking_extension not in (None, "shipment-tracking", "ast"):
            raise ValueError("tracking_extension must be None, 'shipment-tracking' or 'ast'")
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.webhook_secret = webhook_secret
        self.state = WooState(tracking_extension=tracking_extension, utc_offset_hours=utc_offset_hours)
        self._nonces: dict[str, float] = {}
        self.auth_failures: list[str] = []  # WooCommerce's message of every refused request

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    # --- helpers for tests and the demo --------------------------------------------------------

    def add_order(self, lines: list[tuple[Any, ...]], status: str = "processing",
                  shipping_title: str = "Flat rate", country: str = "US", ship_to_billing_only: bool = False,
                  customer_name: str | None = None, meta_data: list[dict[str, Any]] | None = None,
                  customer_note: str = "") -> dict[str, Any]:
        """Create an order; returns its REST JSON (what a webhook body carries).

        ``lines`` are ``(sku, qty)``, ``(sku, qty, name)`` or ``(sku, qty, name, price)``;
        ``meta_data`` entries are ``{"key": ..., "value": ...}`` (each gets an id)."""
        return self.state.add_order(lines, status=status, shipping_title=shipping_title, country=country,
                                    ship_to_billing_only=ship_to_billing_only, customer_name=customer_name,
                                    meta_data=meta_data, customer_note=customer_note)

    def refund_lines(self, order_id: int | str, lines: list[tuple[int | str, int]],
                     reason: str = "") -> dict[str, Any]:
        """Refund ``(line_item_id, qty)`` units as the shop admin would; returns the refund as
        ``GET orders/<id>/refunds`` lists it. The order's line quantities do not change; it is
        ``refunded`` once every unit of every line is. ValueError for an unknown line, or more
        units than are left unrefunded."""
        return self.state.refund_lines(int(order_id), lines, reason)

    def set_status(self, order_id: int | str, status: str) -> dict[str, Any]:
        """Change the status as the shop admin would (date_modified moves on)."""
        return self.state.set_status(int(order_id), status)

    def order(self, order_id: int | str) -> dict[str, Any]:
        with self.state.lock:
            return copy(self.state.orders[int(order_id)])

    def refunds(self, order_id: int | str) -> list[dict[str, Any]]:
        """The order's refunds, newest first (copies)."""
        with self.state.lock:
            return copy(self.state.refunds[int(order_id)])

    def notes(self, order_id: int | str) -> list[dict[str, Any]]:
        """The order's notes, newest first (copies)."""
        with self.state.lock:
            return copy(self.state.notes[int(order_id)])

    def trackings(self, order_id: int | str) -> list[dict[str, Any]]:
        """Tracking items the extension holds for the order (copies)."""
        with self.state.lock:
            return copy(self.state.trackings[int(order_id)])

    def webhooks(self) -> list[dict[str, Any]]:
        with self.state.lock:
            return copy(list(self.state.webhooks.values()))

    def add_webhook(self, topic: str, name: str = "", delivery_url: str = "") -> dict[str, Any]:
        return self.state.add_webhook(topic, name or topic, delivery_url)

    def disable_webhook(self, webhook_id: int) -> None:
        """What WooCommerce does after repeated delivery failures."""
        with self.state.lock:
            self.state.webhooks[int(webhook_id)]["status"] = "disabled"

    def add_product(self, sku: str, stock: int | None = None, name: str = "") -> int:
        """A simple product; ``stock`` None = stock management off. Returns its id."""
        with self.state.lock:
            return int(self.state.products.add(sku, stock, name=name)["id"])

    def add_variable_product(self, sku: str, variations: dict[str, int | None], name: str = "") -> int:
        """A variable product with one variation per SKU (stock None = not managed); its id."""
        with self.state.lock:
            parent = self.state.products.add_variable(sku, name)
            for var_sku, stock in variations.items():
                self.state.products.add(var_sku, stock, parent=int(parent["id"]))
            return int(parent["id"])

    def stock(self, sku: str) -> int | None:
        """``stock_quantity`` of the (first) product or variation with the SKU."""
        with self.state.lock:
            found = self.state.products.with_sku(sku)
            return found[0]["stock_quantity"] if found else None

    def product(self, sku: str) -> dict[str, Any]:
        with self.state.lock:
            return copy(self.state.products.with_sku(sku)[0])

    def sell(self, sku: str, quantity: int = 1) -> None:
        """A sale the sync does not know about yet: the stock goes down."""
        with self.state.lock:
            self.state.products.take(sku, quantity)

    def after(self, call: str, action: Callable[[], None]) -> None:
        """Run ``action`` once, right after the next ``call`` (e.g. "GET /products") is answered."""
        with self.state.lock:
            self.state.after.setdefault(call, []).append(action)

    def fail_next(self, call: str, status: int = 500, count: int = 1) -> None:
        """Answer the next ``count`` requests of ``call`` (e.g. "POST /products/batch") with
        ``status``, doing nothing."""
        with self.state.lock:
            self.state.fail.setdefault(call, []).extend([status] * count)

    @property
    def batches(self) -> list[tuple[str, int]]:
        """(route, objects) of every product batch request received."""
        with self.state.lock:
            return list(self.state.products.batches)

    @property
    def calls(self) -> list[str]:
        """Every REST request received, in order: "GET /orders", "POST /orders/1001/notes",
        "GET /wc-shipment-tracking/v3/orders/1001/shipment-trackings" (wc/v3 routes without prefix)."""
        with self.state.lock:
            return list(self.state.calls)

    def signed_webhook(self, topic: str, order_id: int | str) -> tuple[bytes, dict[str, str]]:
        """Body and headers of a delivery as WooCommerce sends it (a new Delivery-ID every time)."""
        with self.state.lock:
            order = self.state.orders[int(order_id)]
            payload: dict[str, Any] = {"id": order["id"]} if topic.endswith(".deleted") else order
            # wp_json_encode: ASCII only, "/" escaped; the signature is over exactly these bytes.
            body = json.dumps(payload, separators=(",", ":")).replace("/", "\\/").encode()
            hook = next((h for h in self.state.webhooks.values() if h["topic"] == topic), None)
        resource, _, event = topic.partition(".")
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT,
                   "X-WC-Webhook-Source": f"{self.url}/", "X-WC-Webhook-Topic": topic,
                   "X-WC-Webhook-Resource": resource, "X-WC-Webhook-Event": event,
                   "X-WC-Webhook-Signature": sign(body, self.webhook_secret),
                   "X-WC-Webhook-ID": str(hook["id"] if hook else 1),
                   "X-WC-Webhook-Delivery-ID": uuid.uuid4().hex}
        return body, headers

    def ping_body(self, webhook_id: int) -> tuple[bytes, dict[str, str]]:
        """The unsigned hello WooCommerce POSTs when a webhook is saved active."""
        return f"webhook_id={int(webhook_id)}".encode(), {
            "Content-Type": "application/x-www-form-urlencoded", "User-Agent": USER_AGENT}

    def deliver(self, url: str, topic: str, order_id: int | str) -> int:
        """POST the signed webhook to ``url``; returns the HTTP status (0 when nothing answered).

        Like WooCommerce: one try, no retry; more than 5 failures in a row disable the webhook."""
        body, headers = self.signed_webhook(topic, order_id)
        try:
            code = requests.post(url, data=body, headers=headers, timeout=(5, 30)).status_code
        except requests.RequestException:
            code = 0
        with self.state.lock:
            hook = self.state.webhooks.get(int(headers["X-WC-Webhook-ID"]))
            if hook is not None:
                hook["failure_count"] = 0 if 200 <= code < 300 else hook["failure_count"] + 1
                if hook["failure_count"] > 5:
                    hook["status"] = "disabled"
        return code

    # --- auth (called from server threads) ------------------------------------------------------

    def authenticate(self, method: str, host: str, path: str, query: dict[str, str]) -> Reply | None:
        """None when the request may proceed, else the 401 WooCommerce answers."""
        refused = self._refusal(method, host, path, query)
        if refused is None:
            return None
        with self.state.lock:
            self.auth_failures.append(refused[1])
        return error(401, refused[0], refused[1])

    def _refusal(self, method: str, host: str, path: str, query: dict[str, str]) -> tuple[str, str] | None:
        if "consumer_key" in query or "consumer_secret" in query:
            if query.get("consumer_key") != self.consumer_key:
                return "woocommerce_rest_authentication_error", "Consumer key is invalid."
            if query.get("consumer_secret") != self.consumer_secret:
                return "woocommerce_rest_authentication_error", "Consumer secret is invalid."
            return None
        if not any(p in query for p in OAUTH_PARAMS):
            return "woocommerce_rest_cannot_view", "Sorry, you cannot list resources."
        for name in OAUTH_PARAMS:
            if not query.get(name):
                return "woocommerce_rest_authentication_error", f"Missing OAuth parameter {name}"
        if query["oauth_consumer_key"] != self.consumer_key:
            return "woocommerce_rest_authentication_error", "Consumer key is invalid."
        algorithm = {"HMAC-SHA256": "sha256", "HMAC-SHA1": "sha1"}.get(query["oauth_signature_method"])
        if algorithm is None:
            return "woocommerce_rest_authentication_error", "Invalid signature - signature method is invalid."
        given = unquote(query["oauth_signature"].replace(" ", "+"))
        expected = oauth_signature(method, f"http://{host}{path}", query, self.consumer_secret, algorithm)
        if not hmac.compare_digest(given, expected):
            return ("woocommerce_rest_authentication_error",
                    "Invalid signature - provided signature does not match.")
        try:
            stamp = float(query["oauth_timestamp"])
        except ValueError:
            return "woocommerce_rest_authentication_error", "Invalid timestamp."
        now = time.time()
        if abs(now - stamp) > OAUTH_WINDOW_S:
            return "woocommerce_rest_authentication_error", "Invalid timestamp."
        with self.state.lock:
            self._nonces = {n: t for n, t in self._nonces.items() if t > now - OAUTH_WINDOW_S}
            if query["oauth_nonce"] in self._nonces:
                return "woocommerce_rest_authentication_error", "Invalid nonce - nonce has already been used."
            self._nonces[query["oauth_nonce"]] = stamp
        return None


def _handler_for(sandbox: WooSandbox) -> type[BaseHTTPRequestHandler]:
    class Handler(SandboxHandler):
        def _reply(self, code: int, body: Any, headers: dict[str, str]) -> None:
            self.reply(code, json.dumps(body).encode(), "application/json; charset=UTF-8", headers)

        def _html(self, code: int) -> None:
            raw = b"<!DOCTYPE html><html><head><title>Page not found</title></head><body>Oops</body></html>"
            self.reply(code, raw, "text/html; charset=UTF-8")

        def _serve(self) -> None:
            _, raw = self.read_request()
            split = urlsplit(self.path)
            if not split.path.startswith("/wp-json/"):
                self._html(404)  # the theme's 404 page, as WordPress answers outside the REST API
                return
            query = dict(parse_qsl(split.query, keep_blank_values=True))
            refused = sandbox.authenticate(self.command, self.headers.get("Host", ""), split.path, query)
            if refused is not None:
                self._reply(*refused)
                return
            query = {k: v for k, v in query.items()
                     if k not in OAUTH_PARAMS and k not in ("consumer_key", "consumer_secret")}
            body: Any = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    self._reply(*error(400, "rest_invalid_json", "Invalid JSON body passed."))
                    return
            self._reply(*sandbox.state.handle(self.command, split.path.removeprefix("/wp-json"), query, body))

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve  # noqa: N815 - http.server's naming

    return Handler
