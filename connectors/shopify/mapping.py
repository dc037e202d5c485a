"""Shopify payloads <-> domain records. Pure: no I/O, no clock.

Two order shapes arrive: the REST ``Order`` resource (webhook bodies, numeric ids) and the
GraphQL ``Order`` our queries select (GIDs). Both become ``worker.domain.Order`` with the numeric
id as a string. Lines whose current quantity is 0 (removed or refunded) are dropped: they have
nothing left to ship.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from connectors.payload import MAX_NUMBER, amount, limited
from connectors.payload import text as _s
from connectors.shopify.errors import ShopifyAlreadyFulfilled, ShopifyNotReady, ShopifyPayloadError
from worker.domain import Address, Line, Order, Tracking

# Fulfillment order statuses we may fulfill from, and those that only mean "not yet".
FULFILLABLE = frozenset({"OPEN", "IN_PROGRESS"})
WAITING = frozenset({"ON_HOLD", "SCHEDULED"})


# --- ids and scalars -------------------------------------------------------------------------

def gid_to_id(gid: str) -> str:
    """``gid://shopify/Order/123`` (or a bare ``123``) -> ``"123"``."""
    tail = str(gid).rsplit("/", 1)[-1].split("?", 1)[0]
    if not tail.isdigit():
        raise ShopifyPayloadError(f"not a Shopify id: {gid!r}")
    return tail


def order_gid(order_id: str) -> str:
    return order_id if str(order_id).startswith("gid://") else f"gid://shopify/Order/{order_id}"


def parse_time(value: Any) -> datetime:
    """ISO 8601 with an offset (REST ``-05:00``, GraphQL ``Z``) -> aware UTC datetime."""
    if not isinstance(value, str) or not value:
        raise ShopifyPayloadError(f"missing or bad timestamp: {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ShopifyPayloadError(f"bad timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _money(value: Any) -> Decimal:
    return amount(value, ShopifyPayloadError)


def _require_id(payload: Mapping[str, Any], what: str) -> str:
    raw = payload.get("id")
    if raw is None or raw == "":
        raise ShopifyPayloadError(f"{what} has no id")
    return gid_to_id(str(raw))


def _number(raw: Any) -> str:
    """The store's order number without '#'; refused when longer than the ledger keeps."""
    return limited(_s(raw).removeprefix("#"), MAX_NUMBER, "order number", ShopifyPayloadError)


# --- orders ----------------------------------------------------------------------------------

def order_from_rest(payload: Mapping[str, Any]) -> Order:
    """A REST Order resource (a webhook body, unwrapped) -> Order."""
    if not isinstance(payload, Mapping):
        raise ShopifyPayloadError("order payload is not a JSON object")
    order_id = _require_id(payload, "order")
    lines = []
    for item in payload.get("line_items") or ():
        qty = item.get("current_quantity")
        qty = item.get("quantity", 0) if qty is None else qty
        if int(qty) <= 0:
            continue
        lines.append(Line(line_id=_require_id(item, "line item"), sku=_s(item.get("sku")),
                          quantity=int(qty), title=_s(item.get("title")),
                          unit_price=_money(item.get("price"))))
    addr = payload.get("shipping_address")
    address = None
    if addr:
        name = _s(addr.get("name")) or " ".join(
            p for p in (_s(addr.get("first_name")), _s(addr.get("last_name"))) if p)
        address = Address(name=name, address1=_s(addr.get("address1")),
                          address2=_s(addr.get("address2")), city=_s(addr.get("city")),
                          region=_s(addr.get("province_code")), postal_code=_s(addr.get("zip")),
                          country=_s(addr.get("country_code")), phone=_s(addr.get("phone")),
                          company=_s(addr.get("company")))
    shipping = payload.get("shipping_lines") or []
    tags = _s(payload.get("tags"))
    return Order(
        platform_order_id=order_id,
        number=_number(payload.get("name") or payload.get("order_number")),
        created_at=parse_time(payload.get("created_at")),
        financial_status=_s(payload.get("financial_status")).upper(),
        lines=tuple(lines),
        address=address,
        cancelled=payload.get("cancelled_at") is not None,
        fulfilled=payload.get("fulfillment_status") == "fulfilled",
        shipping_title=_s(shipping[0].get("title")) if shipping else "",
        email=_s(payload.get("email") or payload.get("contact_email")),
        tags=tuple(t.strip() for t in tags.split(",") if t.strip()),
        currency=_s(payload.get("currency")),
        total=_money(payload.get("total_price")),
        updated_at=parse_time(payload["updated_at"]) if payload.get("updated_at") else None,
        refunds=_count(payload.get("refunds")),
    )


def _count(items: Any) -> int:
    return len(items) if isinstance(items, list) else 0


def _nodes(connection: Any) -> list[dict[str, Any]]:
    if not connection:
        return []
    if "nodes" in connection:
        return list(connection["nodes"] or [])
    return [edge["node"] for edge in connection.get("edges") or []]


def lines_from_graphql(connection: Any) -> list[Line]:
    lines = []
    for item in _nodes(connection):
        qty = item.get("currentQuantity")
        qty = item.get("quantity", 0) if qty is None else qty
        if int(qty) <= 0:
            continue
        price = ((item.get("originalUnitPriceSet") or {}).get("shopMoney") or {}).get("amount")
        lines.append(Line(line_id=_require_id(item, "line item"), sku=_s(item.get("sku")),
                          quantity=int(qty), title=_s(item.get("title")), unit_price=_money(price)))
    return lines


def order_from_graphql(node: Mapping[str, Any], lines: Sequence[Line] | None = None) -> Order:
    """The GraphQL Order our queries select -> Order. ``lines`` overrides ``lineItems`` (paged)."""
    if not isinstance(node, Mapping):
        raise ShopifyPayloadError("order node is not an object")
    order_id = _require_id(node, "order")
    addr = node.get("shippingAddress")
    address = None
    if addr:
        address = Address(name=_s(addr.get("name")), address1=_s(addr.get("address1")),
                          address2=_s(addr.get("address2")), city=_s(addr.get("city")),
                          region=_s(addr.get("provinceCode")), postal_code=_s(addr.get("zip")),
                          country=_s(addr.get("countryCodeV2")), phone=_s(addr.get("phone")),
                          company=_s(addr.get("company")))
    money = (node.get("totalPriceSet") or {}).get("shopMoney") or {}
    return Order(
        platform_order_id=order_id,
        number=_number(node.get("name")),
        created_at=parse_time(node.get("createdAt")),
        financial_status=_s(node.get("displayFinancialStatus")).upper(),
        lines=tuple(lines if lines is not None else lines_from_graphql(node.get("lineItems"))),
        address=address,
        cancelled=node.get("cancelledAt") is not None,
        fulfilled=node.get("displayFulfillmentStatus") == "FULFILLED",
        shipping_title=_s((node.get("shippingLine") or {}).get("title")),
        email=_s(node.get("email")),
        tags=tuple(t.strip() for t in node.get("tags") or () if t.strip()),
        currency=_s(money.get("currencyCode")),
        total=_money(money.get("amount")),
        updated_at=parse_time(node["updatedAt"]) if node.get("updatedAt") else None,
        refunds=_count(node.get("refunds")),  # GetOrder reads them; the poll's list does not
    )


def orders_search_query(updated_since: datetime) -> str:
    """The ``orders(query:)`` search string: updated at/after the time, in any status (ingest
    decides what a status means)."""
    if updated_since.tzinfo is None:
        updated_since = updated_since.replace(tzinfo=UTC)
    since = updated_since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"updated_at:>='{since}'"


def node_id(node: object) -> str:
    """The numeric id of an order node, as well as it can be read (for a report)."""
    raw = node.get("id") if isinstance(node, Mapping) else None
    return str(raw).rsplit("/", 1)[-1] if raw else "?"


# --- tracking company ------------------------------------------------------------------------

# Names exactly as Shopify lists them (FulfillmentTrackingInfo, "supported tracking companies").
SHOPIFY_COMPANIES = (
    "4PX", "Amazon", "Amazon Logistics UK", "An Post", "APC", "Asendia USA", "Australia Post",
    "BPost", "Canada Post", "Canpar", "China Post", "Chronopost", "Colissimo", "Correios",
    "Correos", "Deutsche Post", "DHL eCommerce", "DHL eCommerce Asia", "DHL Express", "DPD",
    "DPD Local", "DPD UK", "Estes", "Evri", "FedEx", "GLS", "Israel Post", "Lasership",
    "Lone Star Overnight", "Mondial Relay", "New Zealand Post", "NinjaVan", "OnTrac", "Packeta",
    "Pitney Bowes", "PostNL", "PostNord DK", "PostNord NO", "PostNord SE", "Poste Italiane",
    "Purolator", "Royal Mail", "Sendle", "SF Express", "Singapore Post", "StarTrack",
    "Swiss Post", "TNT", "UPS", "USPS", "Whistl", "XPO Logistics", "YunExpress",
)
_ALIASES = {
    "fedex": "FedEx", "fdx": "FedEx", "fedexground": "FedEx", "dhl": "DHL Express",
    "dhlecom": "DHL eCommerce", "amazonlogistics": "Amazon", "amzl": "Amazon",
    "amazonshipping": "Amazon", "lso": "Lone Star Overnight", "royalmailgroup": "Royal Mail",
    "parcelforce": "Royal Mail", "hermes": "Evri", "laser": "Lasership",
}


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_BY_KEY = {**{_key(n): n for n in SHOPIFY_COMPANIES}, **_ALIASES}


def tracking_company(carrier: str) -> str | None:
    """A carrier code or name -> Shopify's exact company name; None when Shopify does not know it.

    MCF's UPS/USPS/FEDEX/DHL -> "UPS", "USPS", "FedEx", "DHL Express"; Amazon Logistics
    (``AMZN_US``, ``AMZN_UK``...) -> "Amazon". Case, spaces, ``_`` and ``-`` do not matter.
    """
    key = _key(carrier or "")
    if not key:
        return None
    if key.startswith("amzn"):
        return "Amazon"
    return _BY_KEY.get(key)


# --- fulfillment orders and the fulfillmentCreate input --------------------------------------

@dataclass(frozen=True)
class FulfillmentOrderLine:
    id: str  # FulfillmentOrderLineItem GID
    line_id: str  # the order's LineItem id, numeric
    sku: str
    remaining: int


@dataclass(frozen=True)
class FulfillmentOrderState:
    id: str  # FulfillmentOrder GID
    status: str
    lines: tuple[FulfillmentOrderLine, ...]
    lines_after: str | None = None  # while ``lines`` is only a first page: where the next begins


def next_cursor(connection: Any, what: str) -> str | None:
    """The ``after`` for a connection's next page; None on its last page."""
    page = (connection or {}).get("pageInfo") or {}
    if not page.get("hasNextPage"):
        return None
    cursor = page.get("endCursor")
    if not cursor:
        raise ShopifyPayloadError(f"{what}: hasNextPage without an endCursor")
    return str(cursor)


def fulfillment_order_lines(connection: Any) -> tuple[FulfillmentOrderLine, ...]:
    """One page of ``FulfillmentOrder.lineItems``."""
    return tuple(
        FulfillmentOrderLine(id=str(li["id"]), line_id=gid_to_id((li.get("lineItem") or {})["id"]),
                             sku=_s((li.get("lineItem") or {}).get("sku")),
                             remaining=int(li.get("remainingQuantity") or 0))
        for li in _nodes(connection))


def fulfillment_order_from_graphql(node: Mapping[str, Any]) -> FulfillmentOrderState:
    """A FulfillmentOrder node with the first page of its lines (``lines_after`` says if more)."""
    if not node.get("id"):
        raise ShopifyPayloadError("fulfillment order has no id")
    return FulfillmentOrderState(
        id=str(node["id"]), status=_s(node.get("status")).upper(),
        lines=fulfillment_order_lines(node.get("lineItems")),
        lines_after=next_cursor(node.get("lineItems"), f"fulfillment order {node['id']}: lines"))


def fulfillment_orders_from_graphql(order: Mapping[str, Any]) -> tuple[FulfillmentOrderState, ...]:
    """One page of ``order.fulfillmentOrders``, each with the first page of its lines."""
    return tuple(fulfillment_order_from_graphql(fo) for fo in _nodes(order.get("fulfillmentOrders")))


# Fulfillments in these states no longer carry their tracking: the number may be pushed again.
_DEAD_FULFILLMENTS = frozenset({"CANCELLED", "ERROR", "FAILURE"})


@dataclass(frozen=True)
class FulfillmentTracking:
    id: str  # Fulfillment GID
    live: bool  # not cancelled or failed: its numbers count as pushed
    numbers: tuple[str, ...]  # normalised
    complete: bool  # False when ``trackingInfo`` came back full: it may have been cut


def fulfillment_tracking(node: Mapping[str, Any], first: int) -> FulfillmentTracking:
    """A Fulfillment node whose ``trackingInfo`` was asked with ``first``."""
    if not node.get("id"):
        raise ShopifyPayloadError("fulfillment has no id")
    infos = list(node.get("trackingInfo") or ())
    return FulfillmentTracking(
        id=str(node["id"]), live=_s(node.get("status")).upper() not in _DEAD_FULFILLMENTS,
        numbers=tuple(normalise_number(i["number"]) for i in infos if i.get("number")),
        complete=len(infos) < first)


def fulfillments_from_graphql(value: Any, first: int) -> list[FulfillmentTracking]:
    """``Order.fulfillments`` (a list) or a page of ``FulfillmentOrder.fulfillments`` (a connection)."""
    items = _nodes(value) if isinstance(value, Mapping) else list(value or ())
    return [fulfillment_tracking(node, first) for node in items]


def existing_tracking(fulfillments: Iterable[FulfillmentTracking]) -> dict[str, str]:
    """Normalised tracking number -> numeric fulfillment id, for the live fulfillments."""
    found: dict[str, str] = {}
    for ful in fulfillments:
        if ful.live:
            for number in ful.numbers:
                found.setdefault(number, gid_to_id(ful.id))
    return found


def normalise_number(number: str) -> str:
    return re.sub(r"\s+", "", number).upper()


def allocate(
    fulfillment_orders: Sequence[FulfillmentOrderState], wanted: Sequence[tuple[str, int]]
) -> list[dict[str, Any]]:
    """Spread (line id, quantity) over OPEN/IN_PROGRESS fulfillment orders by remaining quantity.

    Returns ``lineItemsByFulfillmentOrder`` for ``FulfillmentInput``. All or nothing: raises
    ShopifyNotReady when there is no fulfillment order yet or the lines wait in ON_HOLD/SCHEDULED
    ones, ShopifyAlreadyFulfilled when a line has less remaining than asked and nothing waits.
    CLOSED, CANCELLED and INCOMPLETE fulfillment orders are never used.
    """
    if not fulfillment_orders:
        raise ShopifyNotReady("fulfillment orders not ready yet (the order has none)")
    if any(fo.lines_after is not None for fo in fulfillment_orders):
        raise ShopifyPayloadError("fulfillment order lines were read only in part")
    left = {(fo.id, li.id): li.remaining for fo in fulfillment_orders for li in fo.lines}
    picked: dict[str, dict[str, int]] = {}  # fo id -> fo line id -> quantity, in order
    for line_id, qty in wanted:
        if qty <= 0:
            continue
        need = qty
        for fo in fulfillment_orders:
            if fo.status not in FULFILLABLE:
                continue
            for li in fo.lines:
                if need and li.line_id == str(line_id) and left[(fo.id, li.id)] > 0:
                    take = min(need, left[(fo.id, li.id)])
                    left[(fo.id, li.id)] -= take
                    need -= take
                    per_fo = picked.setdefault(fo.id, {})
                    per_fo[li.id] = per_fo.get(li.id, 0) + take
        if need:
            waiting = any(li.line_id == str(line_id) and li.remaining > 0
                          for fo in fulfillment_orders if fo.status in WAITING for li in fo.lines)
            if waiting or all(fo.status in WAITING for fo in fulfillment_orders):
                raise ShopifyNotReady(
                    f"fulfillment orders not ready yet: line {line_id} is on hold or scheduled")
            raise ShopifyAlreadyFulfilled(
                f"line {line_id}: only {qty - need} of {qty} left to fulfill on Shopify; "
                "the rest was fulfilled (or cancelled) outside autofulfill")
    return [{"fulfillmentOrderId": fo_id,
             "fulfillmentOrderLineItems": [{"id": li, "quantity": q} for li, q in lines.items()]}
            for fo_id, lines in picked.items()]


def tracking_input(tracking: Sequence[Tracking]) -> dict[str, Any]:
    """``FulfillmentTrackingInput`` for one shipment's packages (one company per fulfillment).

    A Shopify-known company gets its exact name; an unknown carrier is sent as written, with
    its urls (Shopify cannot build them). Urls go only when every number has one, because
    Shopify pairs ``urls`` with ``numbers`` by position.
    """
    if not tracking:
        return {}
    carrier = tracking[0].carrier
    info: dict[str, Any] = {"numbers": [t.number for t in tracking]}
    company = tracking_company(carrier) or carrier
    if company:
        info["company"] = company
    if all(t.url for t in tracking):
        info["urls"] = [t.url for t in tracking]
    return info


def fulfillment_input(
    line_items_by_fulfillment_order: list[dict[str, Any]],
    tracking: Sequence[Tracking],
    notify_customer: bool,
) -> dict[str, Any]:
    """The ``FulfillmentInput`` variable of ``fulfillmentCreate``."""
    out: dict[str, Any] = {"lineItemsByFulfillmentOrder": line_items_by_fulfillment_order,
                           "notifyCustomer": bool(notify_customer)}
    info = tracking_input(tracking)
    if info:
        out["trackingInfo"] = info
    return out
