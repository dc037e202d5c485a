"""The sandbox shop's data, GraphQL dispatch and the order operations' handlers (see
``sandbox.py``; the fulfillment operations are in ``sandbox_fulfillments.py``). Guarded by ``lock``.

Costs follow Shopify's rule of thumb (object 1, connection 2 + first x node, mutation 10): a
request needs its *requested* cost available in the bucket, and is charged its *actual* cost.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from connectors.shopify.sandbox_stock import StockBook
from connectors.shopify.webhooks import sign

Handler = Callable[["SandboxState", dict[str, Any]], tuple[dict[str, Any], float]]
CostFn = Callable[[dict[str, Any]], float]  # variables -> requested cost
_FIRST_ID = 820982911946154500  # above 2**53, like real Shopify ids: exactness matters


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _rest_time(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat()


def _gql_time(t: datetime | None) -> str | None:
    return None if t is None else t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _gid(kind: str, n: int) -> str:
    return f"gid://shopify/{kind}/{n}"


def _cursor(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()


def _uncursor(cursor: str) -> dict[str, Any]:
    return dict(json.loads(base64.urlsafe_b64decode(cursor.encode())))


class SandboxError(Exception):
    """Answered as a top-level GraphQL error."""


class SandboxState:
    def __init__(self, *, bucket_max: float, restore_rate: float, fulfillment_orders_delay_s: float,
                 shop_name: str, webhook_secret: str, api_version: str,
                 handlers: Mapping[str, tuple[CostFn, Handler]]) -> None:
        self.lock = threading.RLock()
        self.handlers = dict(handlers)  # operationName -> (requested cost, handler)
        self.bucket_max = float(bucket_max)
        self.restore_rate = float(restore_rate)
        self.available = float(bucket_max)
        self._refilled = time.monotonic()
        self.fo_delay_s = fulfillment_orders_delay_s
        self.shop_name = shop_name
        self.webhook_secret = webhook_secret
        self.api_version = api_version
        self.calls: list[str] = []
        self.orders: dict[int, dict[str, Any]] = {}
        self.fos: dict[int, list[dict[str, Any]]] = {}  # order id -> fulfillment orders
        self.fuls: dict[int, list[dict[str, Any]]] = {}  # order id -> fulfillments
        self._next = _FIRST_ID
        self._number = 1000
        self.stock = StockBook(new_id=self._id)  # locations, inventory items, levels
        self.after: dict[str, list[Callable[[], None]]] = {}  # operationName -> run once, after it

    def _id(self) -> int:
        self._next += 1
        return self._next

    # --- test helpers ---------------------------------------------------------------------------

    def add_order(self, lines: list[tuple[Any, ...]], *, shipping_title: str, country: str,
                  financial_status: str, email: str, name: str | None,
                  address: dict[str, Any] | None, tags: str,
                  lines_per_fulfillment_order: int | None = None) -> dict[str, Any]:
        with self.lock:
            oid = self._id()
            self._number += 1
            items = []
            for spec in lines:
                sku, qty = str(spec[0]), int(spec[1])
                title = str(spec[2]) if len(spec) > 2 else sku
                price = str(Decimal(str(spec[3])) if len(spec) > 3 else Decimal("10.00"))
                items.append({"id": self._id(), "sku": sku, "title": title, "quantity": qty, "price": price})
                self.stock.take(sku, qty)  # the sale commits the units, as Shopify does
            addr = {"first_name": "Jane", "last_name": "Doe", "name": "Jane Doe", "company": None,
                    "address1": "1 Main St", "address2": "", "city": "Austin", "province": "Texas",
                    "province_code": "TX", "zip": "78701", "country": "United States",
                    "country_code": country, "phone": "+15125550100"}
            addr.update(address or {})
            now = _now()
            self.orders[oid] = {
                "id": oid, "name": name or f"#{self._number}", "number": self._number, "email": email,
                "created_at": now, "updated_at": now, "financial_status": financial_status,
                "cancelled_at": None, "currency": "USD", "tags": tags, "address": addr,
                "shipping_title": shipping_title, "lines": items}
            visible_at = time.monotonic() + self.fo_delay_s
            size = lines_per_fulfillment_order or max(1, len(items))
            self.fos[oid] = [{"id": self._id(), "status": "OPEN", "visible_at": visible_at,
                              "lines": [{"id": self._id(), "line": li, "remaining": li["quantity"]}
                                        for li in items[start:start + size]],
                              "fulfillments": []}  # ids of the fulfillments made from it
                             for start in range(0, max(1, len(items)), size)]
            self.fuls[oid] = []
            return self.rest_order(oid)

    def _order(self, oid: int) -> dict[str, Any]:
        try:
            return self.orders[oid]
        except KeyError:
            raise KeyError(f"sandbox has no order {oid}") from None

    def cancel_order(self, oid: int) -> dict[str, Any]:
        """Cancel as the admin does by default ("Refund payment"): a paid order becomes REFUNDED,
        an authorized one VOIDED, so a search by shipping status no longer finds it."""
        with self.lock:
            order = self._order(oid)
            order["cancelled_at"] = order["updated_at"] = _now()
            order["financial_status"] = {"paid": "refunded", "partially_refunded": "refunded",
                                         "authorized": "voided"}.get(order["financial_status"],
                                                                     order["financial_status"])
            for fo in self.fos[oid]:
                if fo["status"] not in ("CLOSED", "CANCELLED"):
                    fo["status"] = "CANCELLED"
            return self.rest_order(oid)

    def refund_lines(self, oid: int, lines: list[tuple[int, int]]) -> dict[str, Any]:
        """Refund (line item id, quantity) pairs as Shopify does with a refund that removes items:
        the lines' current quantity and the open fulfillment orders' remaining quantity go down,
        the order gets a refund and becomes PARTIALLY_REFUNDED (REFUNDED when nothing is left)."""
        with self.lock:
            order = self._order(oid)
            by_id = {li["id"]: li for li in order["lines"]}
            refund_id = self._id()
            for line_id, qty in lines:
                li = by_id[line_id]
                qty = min(qty, li["quantity"] - li.get("refunded", 0))
                li["refunded"] = li.get("refunded", 0) + qty
                for fo in self.fos[oid]:
                    for fl in fo["lines"]:
                        if fl["line"]["id"] == line_id and fo["status"] in ("OPEN", "IN_PROGRESS", "ON_HOLD"):
                            taken = min(qty, fl["remaining"])
                            fl["remaining"] -= taken
                            qty -= taken
            order.setdefault("refunds", []).append(refund_id)
            left = sum(li["quantity"] - li.get("refunded", 0) for li in order["lines"])
            order["financial_status"] = "partially_refunded" if left else "refunded"
            order["updated_at"] = _now()
            return self.rest_order(oid)

    def set_fulfillment_order_status(self, oid: int, status: str) -> None:
        with self.lock:
            for fo in self.fos[oid]:
                if fo["status"] not in ("CLOSED", "CANCELLED"):
                    fo["status"] = status
            self._order(oid)["updated_at"] = _now()

    def drain(self, to: float) -> None:
        with self.lock:
            self.available = float(to)
            self._refilled = time.monotonic()

    def fulfillments_of(self, oid: int) -> list[dict[str, Any]]:
        with self.lock:
            copied: list[dict[str, Any]] = json.loads(json.dumps(self.fuls.get(oid, [])))
            return copied

    def signed_webhook(self, topic: str, oid: int, event_id: str | None,
                       shop_domain: str) -> tuple[bytes, dict[str, str]]:
        with self.lock:
            body = json.dumps(self.rest_order(oid)).encode()
        headers = {
            "Content-Type": "application/json", "X-Shopify-Topic": topic,
            "X-Shopify-Hmac-Sha256": sign(body, self.webhook_secret),
            "X-Shopify-Shop-Domain": shop_domain, "X-Shopify-Event-Id": event_id or str(uuid.uuid4()),
            "X-Shopify-Webhook-Id": str(uuid.uuid4()), "X-Shopify-API-Version": self.api_version,
            "X-Shopify-Triggered-At": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
        return body, headers

    # --- shapes ---------------------------------------------------------------------------------

    def _remaining(self, oid: int, line_id: int, statuses: tuple[str, ...]) -> int:
        return sum(fl["remaining"] for fo in self.fos[oid] if fo["status"] in statuses
                   for fl in fo["lines"] if fl["line"]["id"] == line_id)

    def _fulfillment_status(self, oid: int) -> str:
        open_ = ("OPEN", "IN_PROGRESS", "ON_HOLD", "SCHEDULED")
        left = sum(self._remaining(oid, li["id"], open_) for li in self.orders[oid]["lines"])
        total = sum(li["quantity"] for li in self.orders[oid]["lines"])
        return "FULFILLED" if left == 0 else ("UNFULFILLED" if left == total else "PARTIALLY_FULFILLED")

    def _total(self, order: dict[str, Any]) -> str:
        return str(sum((Decimal(li["price"]) * li["quantity"] for li in order["lines"]), Decimal("0.00")))

    def rest_order(self, oid: int) -> dict[str, Any]:
        with self.lock:
            o = self._order(oid)
            status = {"FULFILLED": "fulfilled", "PARTIALLY_FULFILLED": "partial"}.get(
                self._fulfillment_status(oid))
            open_ = ("OPEN", "IN_PROGRESS", "ON_HOLD", "SCHEDULED")
            items = [{"id": li["id"], "admin_graphql_api_id": _gid("LineItem", li["id"]),
                      "sku": li["sku"], "title": li["title"], "name": li["title"], "price": li["price"],
                      "quantity": li["quantity"], "current_quantity": li["quantity"] - li.get("refunded", 0),
                      "fulfillable_quantity": self._remaining(oid, li["id"], open_),
                      "fulfillment_service": "manual", "fulfillment_status": None, "gift_card": False,
                      "grams": 0, "product_id": None, "variant_id": None, "properties": [],
                      "requires_shipping": True, "taxable": True, "total_discount": "0.00"}
                     for li in o["lines"]]
            total = self._total(o)
            return {
                "id": oid, "admin_graphql_api_id": _gid("Order", oid), "name": o["name"],
                "number": o["number"] - 1000, "order_number": o["number"], "email": o["email"],
                "contact_email": o["email"], "created_at": _rest_time(o["created_at"]),
                "updated_at": _rest_time(o["updated_at"]), "processed_at": _rest_time(o["created_at"]),
                "cancelled_at": _rest_time(o["cancelled_at"]),
                "cancel_reason": "customer" if o["cancelled_at"] else None, "closed_at": None,
                "confirmed": True, "test": False, "currency": o["currency"],
                "presentment_currency": o["currency"], "financial_status": o["financial_status"],
                "fulfillment_status": status, "tags": o["tags"], "total_price": total,
                "subtotal_price": total, "current_total_price": total, "total_tax": "0.00",
                "line_items": items, "shipping_address": dict(o["address"]),
                "refunds": [{"id": r, "admin_graphql_api_id": _gid("Refund", r), "order_id": oid}
                            for r in o.get("refunds", [])],
                "billing_address": dict(o["address"]),
                "shipping_lines": [{"id": oid + 7, "title": o["shipping_title"], "code": o["shipping_title"],
                                    "price": "0.00", "source": "shopify"}],
                "fulfillments": [{"id": f["id"], "admin_graphql_api_id": _gid("Fulfillment", f["id"]),
                                  "order_id": oid, "status": "success",
                                  "tracking_company": f["tracking_company"],
                                  "tracking_numbers": f["tracking_numbers"],
                                  "tracking_urls": f["tracking_urls"]} for f in self.fuls[oid]],
            }

    def _gql_order(self, oid: int, lines: int, after: str | None, summary: bool) -> dict[str, Any]:
        o = self.orders[oid]
        a = o["address"]
        start = int(_uncursor(after)["i"]) if after else 0
        page = o["lines"][start:start + lines]
        nodes = []
        for li in page:
            node: dict[str, Any] = {"id": _gid("LineItem", li["id"]), "sku": li["sku"], "title": li["title"],
                                    "quantity": li["quantity"],
                                    "currentQuantity": li["quantity"] - li.get("refunded", 0)}
            if not summary:
                node["originalUnitPriceSet"] = {"shopMoney": {"amount": li["price"]}}
            nodes.append(node)
        more = start + lines < len(o["lines"])
        page_info: dict[str, Any] = {"hasNextPage": more}
        if not summary:
            page_info["endCursor"] = _cursor({"i": start + len(page)}) if page else None
        return {
            "id": _gid("Order", oid), "name": o["name"], "email": o["email"],
            "createdAt": _gql_time(o["created_at"]), "updatedAt": _gql_time(o["updated_at"]),
            "cancelledAt": _gql_time(o["cancelled_at"]),
            "displayFinancialStatus": o["financial_status"].upper(),
            "displayFulfillmentStatus": self._fulfillment_status(oid),
            "tags": [t.strip() for t in o["tags"].split(",") if t.strip()],
            "shippingAddress": {"name": a["name"], "address1": a["address1"], "address2": a["address2"],
                                "city": a["city"], "provinceCode": a["province_code"], "zip": a["zip"],
                                "countryCodeV2": a["country_code"], "phone": a["phone"],
                                "company": a["company"]},
            "shippingLine": {"title": o["shipping_title"]},
            "totalPriceSet": {"shopMoney": {"amount": self._total(o), "currencyCode": o["currency"]}},
            "lineItems": {"pageInfo": page_info, "nodes": nodes},
            **({} if summary else {"refunds": [{"id": _gid("Refund", r)} for r in o.get("refunds", [])]}),
        }

    # --- GraphQL ------------------------------------------------------------------------------

    def graphql(self, request: dict[str, Any]) -> dict[str, Any]:
        """One GraphQL request -> the response body Shopify would send (always HTTP 200)."""
        op = str(request.get("operationName") or "")
        query = str(request.get("query") or "")
        variables = request.get("variables") or {}
        with self.lock:
            self.calls.append(op)
            if not op or not re.search(rf"\b(query|mutation)\s+{re.escape(op)}\b", query):
                return {"errors": [{"message": "operationName must name an operation in the document "
                                               f"(got {op!r})"}]}
            entry = self.handlers.get(op)
            if entry is None:
                return {"errors": [{"message": f"Sandbox does not implement operation {op}",
                                    "extensions": {"code": "undefinedField"}}]}
            cost_fn, handler = entry
            requested = float(cost_fn(variables))
            now = time.monotonic()
            self.available = min(self.bucket_max, self.available + (now - self._refilled) * self.restore_rate)
            self._refilled = now
            if requested > self.bucket_max:
                return {"errors": [{"message": f"Query cost is {requested:.0f}, which exceeds the single "
                                               f"query max cost limit ({self.bucket_max:.0f}).",
                                    "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested,
                                                   "maxCost": self.bucket_max}}]}
            if requested > self.available:
                return {"errors": [{"message": "Throttled",
                                    "extensions": {"code": "THROTTLED",
                                                   "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                        "extensions": {"cost": self._cost(requested, None)}}
            try:
                data, actual = handler(self, variables)
            except (SandboxError, KeyError, ValueError, TypeError) as exc:
                message = str(exc) if isinstance(exc, SandboxError) else f"Invalid variables ({exc!r})"
                return {"errors": [{"message": message}], "extensions": {"cost": self._cost(requested, 1)}}
            self.available -= actual
            for hook in self.after.pop(op, []):  # a test's "meanwhile, in the shop ..."
                hook()
            return {"data": data, "extensions": {"cost": self._cost(requested, actual)}}

    def _cost(self, requested: float, actual: float | None) -> dict[str, Any]:
        return {"requestedQueryCost": requested, "actualQueryCost": actual,
                "throttleStatus": {"maximumAvailable": self.bucket_max,
                                   "currentlyAvailable": round(self.available, 3),
                                   "restoreRate": self.restore_rate}}

    def _oid(self, gid: Any, kind: str = "Order") -> int:
        m = re.fullmatch(rf"gid://shopify/{kind}/(\d+)", str(gid))
        if not m:
            raise SandboxError(f"Invalid global id '{gid}'")
        return int(m.group(1))


def _shop(state: SandboxState, v: dict[str, Any]) -> tuple[dict[str, Any], float]:
    return {"shop": {"name": state.shop_name}}, 1


def _get_order(state: SandboxState, v: dict[str, Any]) -> tuple[dict[str, Any], float]:
    oid = state._oid(v.get("id"))
    if oid not in state.orders:
        return {"order": None}, 1
    node = state._gql_order(oid, int(v["lines"]), v.get("linesAfter"), summary=False)
    return {"order": node}, 7 + 3 * len(node["lineItems"]["nodes"])


def _matches(order: dict[str, Any], search: str) -> bool:
    for op, value in re.findall(r"updated_at:([<>]=?)'?([^'\s)]+)'?", search):
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        u = order["updated_at"]
        if not {">=": u >= when, ">": u > when, "<=": u <= when, "<": u < when}[op]:
            return False
    statuses = {s.lower() for s in re.findall(r"financial_status:(\w+)", search)}
    return not statuses or order["financial_status"].lower() in statuses


def _list_orders(state: SandboxState, v: dict[str, Any]) -> tuple[dict[str, Any], float]:
    first, lines = int(v["first"]), int(v["lines"])
    found = sorted((o for o in state.orders.values() if _matches(o, str(v.get("query") or ""))),
                   key=lambda o: (o["updated_at"], o["id"]))
    if v.get("after"):
        c = _uncursor(v["after"])
        mark = (datetime.fromisoformat(c["u"]), int(c["id"]))
        found = [o for o in found if (o["updated_at"], o["id"]) > mark]
    page = found[:first]
    nodes = [state._gql_order(o["id"], lines, None, summary=True) for o in page]
    end = _cursor({"u": page[-1]["updated_at"].isoformat(), "id": page[-1]["id"]}) if page else None
    actual = 2 + sum(7 + len(n["lineItems"]["nodes"]) for n in nodes)
    return {"orders": {"pageInfo": {"hasNextPage": len(found) > first, "endCursor": end},
                       "nodes": nodes}}, actual


# The order operations; the fulfillment ones are in ``sandbox_fulfillments.py``.
HANDLERS: dict[str, tuple[CostFn, Handler]] = {
    "ShopName": (lambda v: 1, _shop),
    "GetOrder": (lambda v: 7 + 3 * int(v.get("lines") or 0) + int(v.get("refunds") or 0), _get_order),
    "ListOrders": (lambda v: 2 + int(v.get("first") or 0) * (7 + int(v.get("lines") or 0)), _list_orders),
}
