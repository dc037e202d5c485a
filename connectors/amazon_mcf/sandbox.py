"""A local stand-in for SP-API Fulfillment Outbound v2020-07-01 and LWA, over real HTTP.

For tests and ``autofulfill demo``: ``AmazonSandbox().start()`` listens on 127.0.0.1; use ``.url``
as ``endpoint`` and ``.token_url`` as ``token_url``. It checks credentials and tokens, throttles
per operation (429 QuotaExceeded, no Retry-After), validates create bodies, refuses a reused
sellerFulfillmentOrderId, and moves orders Received → Planning → Processing → Complete over
``ship_after_s`` seconds, then shows one package per shipment (UPS, USPS, AMZN_US in turn).
``getFulfillmentPreview`` answers per speed with deterministic fees and arrival dates; SKUs in
``out_of_stock`` (or ``set_stock(sku, False)``) are ``InventoryUnavailable``, SKUs outside
``known_skus`` (when given) are ``InvalidSKU``. FBA Inventory ``getInventorySummaries`` (2 req/s,
burst 2) answers from the same stock: ``set_stock(sku, n)`` counts a SKU's units, which orders
then reserve and ship (``sandbox_inventory.py``); SKUs outside ``known_skus`` are not listed.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from connectors.amazon_mcf import sandbox_inventory
from connectors.amazon_mcf.sandbox_inventory import SandboxStock
from connectors.amazon_mcf.sandbox_model import (
    CANCELLABLE,
    InvalidInput,
    SandboxOrder,
    parse_iso,
    preview_payload,
    validate_create,
    validate_preview,
)
from connectors.sandbox_server import LoopbackServer, SandboxHandler

API = "/fba/outbound/2020-07-01"
INVENTORY_PATH = "/fba/inventory/v1/summaries"
QUOTAS = {"getInventorySummaries": (2.0, 2.0)}  # published usage plans other than rate/burst
# Our best knowledge of the real answer to a reused id (see mapping._DUPLICATE_TEXT).
DUPLICATE_MESSAGE = "Value {id} for parameter SellerFulfillmentOrderId is invalid. Reason: Duplicate."
_ERRORS = {
    400: ("InvalidInput", "Invalid input."),
    403: ("Unauthorized", "Access to requested resource is denied."),
    404: ("NotFound", "The requested resource was not found."),
    429: ("QuotaExceeded", "You exceeded your quota for the requested resource."),
    500: ("InternalFailure", "We encountered an internal error. Please try again."),
    503: ("ServiceUnavailable", "Temporary overloading or maintenance of the server."),
}
Reply = tuple[int, dict[str, Any]]


class AmazonSandbox(LoopbackServer):
    thread_name = "amazon-sandbox"

    def __init__(self, *, client_id: str = "sandbox-client", client_secret: str = "sandbox-secret",
                 refresh_token: str = "sandbox-refresh", ship_after_s: float = 2.0, rate: float = 2.0,
                 burst: float = 30, create_delay_s: float = 0.0, page_size: int = 10,
                 token_ttl_s: int = 3600, clock: Callable[[], float] = time.time,
                 out_of_stock: tuple[str, ...] = (), known_skus: tuple[str, ...] | None = None,
                 stock: dict[str, int] | None = None, default_stock: int = 100,
                 inventory_page_size: int = 50, read_lag_s: float = 0.0) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.refresh_token = refresh_token
        self.ship_after_s = ship_after_s
        self.rate = rate
        self.burst = burst
        self.create_delay_s = create_delay_s
        self.page_size = page_size
        self.token_ttl_s = token_ttl_s
        self._clock = clock
        self._offset = 0.0
        self._lock = threading.RLock()
        self.orders: dict[str, SandboxOrder] = {}
        self.create_calls = 0  # create requests that reached the handler (accepted, duplicate, invalid)
        self.calls: list[str] = []  # operation names of authorised calls, throttled ones included
        self.tokens_issued = 0
        self._tokens: dict[str, float] = {}  # access token -> expiry
        self._buckets: dict[str, tuple[float, float]] = {}  # operation -> (tokens, at)
        self._failures: dict[str, list[tuple[int, bool]]] = {}  # operation -> [(status, after)]
        self._pages: dict[str, list[str]] = {}  # nextToken -> remaining ids
        self.known_skus: set[str] | None = set(known_skus) if known_skus is not None else None
        self.stock = SandboxStock(default_stock=default_stock, counted=dict(stock or {}),
                                  out_of_stock=set(out_of_stock))
        self.out_of_stock = self.stock.out_of_stock  # the same set: tests add to it directly
        self.quotas = dict(QUOTAS)  # operation -> (rate, burst); others use rate and burst
        self.inventory_page_size = inventory_page_size
        # nextToken -> (the SKUs still to show, when the token expires, details asked)
        self._inventory_pages: dict[str, tuple[list[str], float, bool]] = {}
        # Amazon's reads lag its writes: a created order is not found by id (nor listed, nor
        # cancellable) for this long after the create.
        self.read_lag_s = read_lag_s

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler(self)

    @property
    def token_url(self) -> str:
        return self.url + "/auth/o2/token"

    # -- test and demo helpers --------------------------------------------------------------------

    def now(self) -> float:
        return self._clock() + self._offset

    def set_time_offset(self, seconds: float) -> None:
        """Move the sandbox's clock (order life cycle, token expiry) by ``seconds``."""
        with self._lock:
            self._offset = seconds

    def ship_now(self, seller_fulfillment_order_id: str) -> None:
        """Complete the order now, with its package and tracking number."""
        with self._lock:
            order = self.orders[seller_fulfillment_order_id]
            status, _ = order.status_at(self.now())
            if not status.startswith("Complete") and status != "Cancelled":
                order.shipped_at = self.now()

    def ship_short(self, seller_fulfillment_order_id: str, missing: dict[str, int]) -> None:
        """Complete the order now without ``missing`` (item id -> quantity): ``CompletePartialled``,
        those quantities ``unfulfillableQuantity``, the rest in one package."""
        with self._lock:
            order = self.orders[seller_fulfillment_order_id]
            order.short = dict(missing)
            order.shipped_at = self.now()

    def status(self, seller_fulfillment_order_id: str) -> str:
        with self._lock:
            return self.orders[seller_fulfillment_order_id].status_at(self.now())[0]

    def fail_next(self, operation: str, status: int = 500, count: int = 1, *, after: bool = False) -> None:
        """Answer the next ``count`` calls of ``operation`` with ``status`` (Amazon's error shape).

        ``after=True`` performs the call first and then fails it: an outcome the caller cannot see."""
        with self._lock:
            self._failures.setdefault(operation, []).extend([(status, after)] * count)

    def set_stock(self, sku: str, available: bool | int, *, inbound: int | None = None) -> None:
        """``True``/``False``: make ``sku`` fulfillable or ``InventoryUnavailable`` (previews, and
        0 fulfillable in inventory summaries). A number: count the SKU's fulfillable units from
        now on (orders reserve them, a preview asking for more is ``InventoryUnavailable``)."""
        with self._lock:
            if isinstance(available, bool):
                (self.out_of_stock.discard if available else self.out_of_stock.add)(sku)
            else:
                self.stock.counted[sku] = max(0, int(available))
                self.out_of_stock.discard(sku)
            if inbound is not None:
                self.stock.inbound[sku] = inbound

    def fulfillable(self, sku: str) -> int:
        """What getInventorySummaries says can ship of ``sku`` now."""
        with self._lock:
            return self.stock.fulfillable(sku)

    def expire_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    # -- request handling (called by the HTTP handler threads) -------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        parts = urlsplit(raw_path)
        path, query = parts.path, parse_qs(parts.query)
        if path == "/auth/o2/token" and method == "POST":
            return self._token(parse_qs(body.decode("utf-8", "replace")))
        route = self._route(method, path)
        if route is None:
            return _error(404, "NotFound", f"Resource {path} is not found.")
        operation, handler, arg = route
        with self._lock:
            token = headers.get("x-amz-access-token", "")
            if self._tokens.get(token, 0.0) <= self.now():
                return _error(403, "Unauthorized", "Access to requested resource is denied.",
                              "The access token you provided is revoked, malformed or invalid.")
            self.calls.append(operation)
            if not self._take(operation):
                return _error(429, "QuotaExceeded", _ERRORS[429][1])
            failures = self._failures.get(operation)
            failure = failures.pop(0) if failures else None
            if failure is not None and not failure[1]:
                return _error(failure[0], *_ERRORS.get(failure[0], ("Error", "Injected failure.")))
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            return _error(400, "InvalidInput", "The request body is not valid JSON.")
        status, reply = handler(arg, query, payload)
        if failure is not None:
            return _error(failure[0], *_ERRORS.get(failure[0], ("Error", "Injected failure.")))
        return status, reply

    def rate_limit(self, method: str, raw_path: str) -> float:
        """The rate our ``x-amzn-RateLimit-Limit`` header says for this call's operation."""
        route = self._route(method, urlsplit(raw_path).path)
        return self.quotas.get(route[0], (self.rate, self.burst))[0] if route else self.rate

    def _route(self, method: str, path: str) -> tuple[str, Callable[..., Reply], str] | None:
        if path == INVENTORY_PATH and method == "GET":
            return "getInventorySummaries", self._summaries, ""
        if not path.startswith(API + "/"):
            return None
        rest = [unquote(p) for p in path[len(API) + 1:].split("/")]
        if path == INVENTORY_PATH and method == "GET":
            return "getInventorySummaries", self._summaries, ""
        if rest == ["fulfillmentOrders"]:
            if method == "POST":
                return "createFulfillmentOrder", self._create, ""
            if method == "GET":
                return "listAllFulfillmentOrders", self._list, ""
        if rest == ["fulfillmentOrders", "preview"] and method == "POST":
            return "getFulfillmentPreview", self._preview, ""
        if rest == ["tracking"] and method == "GET":
            return "getPackageTrackingDetails", self._tracking, ""
        if len(rest) == 2 and rest[0] == "fulfillmentOrders" and method == "GET" and rest[1] != "preview":
            return "getFulfillmentOrder", self._get, rest[1]
        if len(rest) == 3 and rest[0] == "fulfillmentOrders" and rest[2] == "cancel" and method == "PUT":
            return "cancelFulfillmentOrder", self._cancel, rest[1]
        return None

    def _token(self, form: dict[str, list[str]]) -> tuple[int, Any]:
        def one(key: str) -> str:
            return form.get(key, [""])[0]
        if one("client_id") != self.client_id or one("client_secret") != self.client_secret:
            return 401, {"error": "invalid_client", "error_description": "Client authentication failed"}
        if one("grant_type") != "refresh_token":
            return 400, {"error": "unsupported_grant_type", "error_description": "Unsupported grant type"}
        if one("refresh_token") != self.refresh_token:
            return 400, {"error": "invalid_grant",
                         "error_description": "The request has an invalid grant parameter : refresh_token"}
        token = "Atza|" + secrets.token_urlsafe(24)
        with self._lock:
            self._tokens[token] = self.now() + self.token_ttl_s
            self.tokens_issued += 1
        return 200, {"access_token": token, "refresh_token": self.refresh_token, "token_type": "bearer",
                     "expires_in": self.token_ttl_s}

    def _take(self, operation: str) -> bool:
        now = time.monotonic()
        rate, burst = self.quotas.get(operation, (self.rate, self.burst))
        tokens, at = self._buckets.get(operation, (float(burst), now))
        tokens = min(float(burst), tokens + (now - at) * rate)
        ok = tokens >= 1.0
        self._buckets[operation] = (tokens - 1.0 if ok else tokens, now)
        return ok

    def _create(self, _: str, query: dict[str, list[str]], body: Any) -> Reply:
        with self._lock:
            self.create_calls += 1
            try:
                validate_create(body)
            except InvalidInput as exc:
                return _error(400, "InvalidInput", str(exc))
            oid = body["sellerFulfillmentOrderId"]
            if oid in self.orders:
                return _error(400, "InvalidInput", DUPLICATE_MESSAGE.format(id=oid))
            self.orders[oid] = SandboxOrder(request=body, created_at=self.now(), seq=len(self.orders) + 1,
                                            ship_after_s=self.ship_after_s)
            self.stock.reserve(body["items"])
        if self.create_delay_s > 0:
            time.sleep(self.create_delay_s)  # recorded first: the caller may die while waiting
        return 200, {}

    def _unfulfillable(self, sku: str, quantity: int) -> str | None:
        if self.known_skus is not None and sku not in self.known_skus:
            return "InvalidSKU"
        if not self.stock.enough(sku, quantity):
            return "InventoryUnavailable"
        return None

    def _preview(self, _: str, query: dict[str, list[str]], body: Any) -> Reply:
        try:
            validate_preview(body)
        except InvalidInput as exc:
            return _error(400, "InvalidInput", str(exc))
        with self._lock:
            return 200, {"payload": preview_payload(body, self.now(), self._unfulfillable)}

    def _visible(self, oid: str) -> SandboxOrder | None:
        order = self.orders.get(oid)
        if order is None or order.created_at + self.read_lag_s > self.now():
            return None
        return order

    def _get(self, oid: str, query: dict[str, list[str]], body: Any) -> Reply:
        with self._lock:
            order = self._visible(oid)
            if order is None:
                return _error(404, "NotFound", f"Requested order {oid} not found")
            return 200, {"payload": order.payload(self.now())}

    def _list(self, _: str, query: dict[str, list[str]], body: Any) -> Reply:
        with self._lock:
            token = query.get("nextToken", [""])[0]
            if token:
                ids = self._pages.pop(token, None)
                if ids is None:
                    return _error(400, "InvalidInput", "Value for parameter nextToken is invalid.")
            else:
                raw = query.get("queryStartDate", [""])[0]
                start = parse_iso(raw) if raw else self.now() - 36 * 3600
                if start is None:
                    return _error(400, "InvalidInput", "Value for parameter queryStartDate is invalid. "
                                  "Reason: not an ISO 8601 date-time.")
                now = self.now()
                rows = [(int(o.status_at(now)[1]), o.id) for o in self.orders.values() if self._visible(o.id)]
                ids = [oid for updated, oid in sorted(rows) if updated >= start]
            page, rest = ids[:self.page_size], ids[self.page_size:]
            result: dict[str, Any] = {"fulfillmentOrders": [
                self.orders[oid].order_json(self.now()) for oid in page]}
            if rest:
                next_token = secrets.token_urlsafe(16)
                self._pages[next_token] = rest
                result["nextToken"] = next_token
            return 200, {"payload": result}

    def _tracking(self, _: str, query: dict[str, list[str]], body: Any) -> Reply:
        raw = query.get("packageNumber", [""])[0]
        if not raw.isdigit():
            return _error(400, "InvalidInput", "Value for parameter packageNumber is invalid.")
        with self._lock:
            now = self.now()
            for order in self.orders.values():
                if order.package_number == int(raw) and order.status_at(now)[0].startswith("Complete"):
                    return 200, {"payload": order.tracking_payload(now)}
        return _error(404, "NotFound", f"Package {raw} not found")

    def _cancel(self, oid: str, query: dict[str, list[str]], body: Any) -> Reply:
        with self._lock:
            order = self._visible(oid)
            if order is None:
                return _error(404, "NotFound", f"Requested order {oid} not found")
            status, _ = order.status_at(self.now())
            if status not in CANCELLABLE:
                return _error(400, "InvalidInput", f"Fulfillment order {oid} cannot be cancelled "
                              f"in its current status: {status}.")
            order.cancelled_at = self.now()
            self.stock.release(order.request["items"])
        return 200, {}

    def _reserved(self, sku: str) -> int:
        """Units of ``sku`` in accepted orders that have not shipped or been cancelled."""
        now = self.now()
        return sum(int(i["quantity"]) for o in self.orders.values()
                   if not o.status_at(now)[0].startswith(("Complete", "Cancelled"))
                   for i in o.request["items"] if i["sellerSku"] == sku)

    def _summaries(self, _: str, query: dict[str, list[str]], body: Any) -> Reply:
        try:
            asked, token = sandbox_inventory.parse_query(query)
        except InvalidInput as exc:
            return _error(400, "InvalidInput", str(exc))
        details = (query.get("details") or ["false"])[0] == "true"
        with self._lock:
            now = self.now()
            if token:
                page = self._inventory_pages.pop(token, None)
                if page is None or page[1] < now:
                    return _error(400, "InvalidInput", "Value for parameter nextToken is invalid or expired.")
                skus, _expiry, details = page
            else:
                everything = sorted(self.known_skus or set()) or sorted(self.stock.counted)
                skus = [s for s in dict.fromkeys(asked if asked is not None else everything)
                        if self.known_skus is None or s in self.known_skus]
            size = max(1, self.inventory_page_size)
            summaries = [sandbox_inventory.summary(s, self.stock.fulfillable(s), self._reserved(s),
                                                   self.stock.inbound.get(s, 0), now, details)
                         for s in skus[:size]]
            result: dict[str, Any] = {"payload": {
                "granularity": {"granularityType": "Marketplace",
                                "granularityId": (query.get("granularityId") or [""])[0]},
                "inventorySummaries": summaries}}
            if skus[size:]:
                next_token = secrets.token_urlsafe(16)
                expires = now + sandbox_inventory.TOKEN_TTL_S
                self._inventory_pages[next_token] = (skus[size:], expires, details)
                result["pagination"] = {"nextToken": next_token}
            return 200, result


def _error(status: int, code: str, message: str, details: str = "") -> tuple[int, Any]:
    return status, {"errors": [{"code": code, "message": message, "details": details}]}


def _handler(sandbox: AmazonSandbox) -> type[BaseHTTPRequestHandler]:
    class Handler(SandboxHandler):
        server_version = "AmazonSandbox/1.0"

        def _serve(self) -> None:
            headers, body = self.read_request()
            try:
                status, reply = sandbox.handle(self.command, self.path, headers, body)
            except Exception as exc:  # a sandbox bug must look like a 500, not a dropped connection
                status, reply = _error(500, "InternalFailure", f"sandbox error: {type(exc).__name__}")
            extra = {"x-amzn-RequestId": str(uuid.uuid4())}
            if not self.path.startswith("/auth/"):
                extra["x-amzn-RateLimit-Limit"] = f"{sandbox.rate_limit(self.command, self.path):g}"
            self.reply(status, json.dumps(reply).encode(), "application/json", extra)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

    return Handler
