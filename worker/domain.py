"""The domain model: what an order, a line, an address, a shipment and a tracking number are.

Frozen dataclasses, no I/O. Money is ``Decimal``; times are timezone-aware UTC. Connectors
translate their payloads into these (``connectors/*/mapping.py``); the worker never sees JSON
from a platform.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


@dataclass(frozen=True)
class Address:
    name: str
    address1: str
    address2: str = ""
    city: str = ""
    region: str = ""  # state / province code, e.g. "TX"
    postal_code: str = ""
    country: str = ""  # ISO 3166-1 alpha-2
    phone: str = ""
    company: str = ""

    def redacted(self) -> str:
        """City, region and country only: what logs and command output may show."""
        return ", ".join(p for p in (self.city, self.region, self.country) if p)


@dataclass(frozen=True)
class Line:
    line_id: str  # the platform's line item id (Shopify: numeric id as a string)
    sku: str
    quantity: int
    title: str = ""
    unit_price: Decimal = Decimal("0")


@dataclass(frozen=True)
class Order:
    platform_order_id: str  # Shopify: numeric id (not the GID), as a string
    number: str  # shown to the customer, without '#'
    created_at: datetime
    financial_status: str  # platform's own word, upper case (Shopify: PAID, PARTIALLY_REFUNDED, ...)
    lines: tuple[Line, ...]
    address: Address | None
    cancelled: bool = False
    fulfilled: bool = False  # nothing left to fulfill on the platform's side
    shipping_title: str = ""
    email: str = ""
    tags: tuple[str, ...] = ()
    currency: str = ""
    total: Decimal = Decimal("0")
    updated_at: datetime | None = None
    # How many refunds the store recorded. A new one may have lowered line quantities: a routed
    # order is then read again and its unshipped lines adjusted (worker/pipeline/adjust.py).
    refunds: int = 0


@dataclass(frozen=True)
class Unreadable:
    """An order a poll listed but could not understand (a malformed field): the pass goes on
    without it, and a person is told which order and why."""

    platform_order_id: str
    reason: str


@dataclass(frozen=True)
class ListedUntil:
    """In a poll's listing: every order changed before ``at`` has been listed (a store that lists
    in order of change says so after each page), so a pass that stops or fails later keeps that."""

    at: datetime


class Route(StrEnum):
    FBA = "fba"
    SELF_SHIP = "self_ship"
    HOLD = "hold"


class ShipmentState(StrEnum):
    PENDING = "pending"
    SUBMITTING = "submitting"
    SUBMITTED = "submitted"
    LABEL_BOUGHT = "label_bought"
    SHIPPED = "shipped"
    PUSHED = "pushed"
    ATTENTION = "attention"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Tracking:
    """One package's tracking as the carrier knows it; the store connector maps the carrier name."""

    carrier: str  # raw carrier code, e.g. "UPS", "USPS", "FEDEX", "AMZN_US"
    number: str
    url: str = ""


@dataclass(frozen=True)
class FulfillmentItem:
    seller_sku: str
    item_id: str  # sellerFulfillmentOrderItemId: we use the store's line id
    quantity: int


@dataclass(frozen=True)
class FulfillmentRequest:
    """What a fulfiller is asked to ship: one shipment of one order."""

    seller_fulfillment_order_id: str
    displayable_order_id: str
    displayable_order_date: datetime
    displayable_comment: str
    speed: str  # MCF shippingSpeedCategory: Standard | Expedited | Priority | ScheduledDelivery
    address: Address
    items: tuple[FulfillmentItem, ...]
    features: tuple[str, ...] = ()
    notification_emails: tuple[str, ...] = ()


@dataclass(frozen=True)
class ItemOutcome:
    """One item of a fulfillment order as the fulfiller ended it (MCF ``FulfillmentOrderItem`` plus
    the quantities of its shipped packages)."""

    item_id: str  # sellerFulfillmentOrderItemId: the store's line id
    seller_sku: str
    quantity: int
    shipped: int = 0  # in shipments with status SHIPPED
    unfulfillable: int = 0
    cancelled: int = 0


# The fulfiller's statuses (lower-cased) after which there is something to record: it shipped, whole
# or in part, or it never will. Any other (new, received, planning, processing) means "working on it".
SHIPPED_STATUSES = frozenset({"complete", "completepartialled"})
DEAD_STATUSES = frozenset({"cancelled", "unfulfillable", "invalid"})


@dataclass(frozen=True)
class FulfillmentStatus:
    """What the fulfiller says about one of our fulfillment orders."""

    seller_fulfillment_order_id: str
    status: str  # the provider's word, lower-cased for comparison (e.g. "received", "complete")
    tracking: tuple[Tracking, ...] = ()
    status_updated_at: datetime | None = None
    items: tuple[ItemOutcome, ...] = ()  # empty when the provider did not say

    @property
    def partial(self) -> bool:
        """Amazon says it shipped part (``CompletePartialled``) and its packages say which part.
        A ``Complete`` order, or one whose packages list no items, counts as shipped whole."""
        return (self.is_shipped and self.status == "completepartialled" and any(i.shipped for i in self.items)
                and any(i.shipped < i.quantity for i in self.items))

    @property
    def is_shipped(self) -> bool:
        return self.status in SHIPPED_STATUSES and bool(self.tracking)

    @property
    def is_dead(self) -> bool:
        return self.status in DEAD_STATUSES


@dataclass(frozen=True)
class WebhookEvent:
    """A verified webhook, parsed without calling any API."""

    topic: str
    event_id: str  # dedupe key for this delivery's event
    order: Order | None  # None when the body carried no usable order (parked / ignored)
    order_id: str = ""


@dataclass(frozen=True)
class PushResult:
    fulfillment_id: str
    already_there: bool = False  # the store already had this tracking number: nothing was written


@dataclass(frozen=True)
class PushRequest:
    order_id: str  # platform order id
    lines: tuple[tuple[str, int], ...]  # (platform line id, quantity) of this shipment
    tracking: tuple[Tracking, ...]
    notify_customer: bool = True
    final: bool = False  # with this push every line of the order has shipped (Woo: may complete it)


@dataclass(frozen=True)
class Parcel:
    length_in: Decimal
    width_in: Decimal
    height_in: Decimal
    weight_oz: Decimal


@dataclass(frozen=True)
class Rate:
    rate_id: str
    carrier: str  # as the provider names it, e.g. "USPS", "UPS", "FedEx"
    service: str  # e.g. "GroundAdvantage", "Ground"
    amount: Decimal
    currency: str = "USD"
    delivery_days: int | None = None


@dataclass(frozen=True)
class CustomsItem:
    """One shipment line as declared to customs (EasyPost ``CustomsItem``): value and weight are
    the line's totals (unit × quantity), not per unit."""

    description: str
    quantity: int
    value: Decimal  # unit price × quantity, in ``currency``
    currency: str  # ISO 4217, e.g. "USD"
    weight_oz: Decimal  # the line's total weight in ounces, > 0
    hs_tariff_number: str = ""  # Harmonized System code, e.g. "610910" or "6109.10.0012"; "" = none given
    origin_country: str = ""  # ISO 3166-1 alpha-2: where the goods were made
    code: str = ""  # the store SKU (some carriers require an item code)


@dataclass(frozen=True)
class CustomsInfo:
    """The customs declaration of an international shipment (EasyPost ``CustomsInfo``), certified
    electronically by ``signer``."""

    contents_type: str  # merchandise | gift | documents | returned_goods | sample | other | ...
    eel_pfc: str  # US exports: "NOEEI 30.37(a)" when no line is worth over $2,500 per Schedule B
    signer: str  # "" only in a dry run (nothing is bought)
    non_delivery_option: str  # return | abandon
    restriction_type: str  # none | other | quarantine | sanitary_phytosanitary_inspection
    items: tuple[CustomsItem, ...]
    contents_explanation: str = ""  # required when contents_type is "other"
    restriction_comments: str = ""  # required when restriction_type is not "none"


@dataclass(frozen=True)
class LabelRequest:
    """One self-ship shipment to quote: our reference goes into the provider's reference field."""

    reference: str  # {order_prefix}-{order id}-{n}
    to_address: Address
    from_address: Address
    parcel: Parcel
    email: str = ""
    customs: CustomsInfo | None = None  # set when the destination is another country than the origin


@dataclass(frozen=True)
class Quote:
    """A provider-side shipment with its rates; nothing is bought yet."""

    shipment_id: str  # e.g. EasyPost "shp_..."
    rates: tuple[Rate, ...]
    messages: tuple[str, ...] = ()  # carriers' rating errors, for the timeline


@dataclass(frozen=True)
class Label:
    shipment_id: str
    tracking: Tracking
    rate: Rate
    label_url: str
    label_format: str = "PDF"
    carrier_status: str = ""  # the tracker's status: "pre_transit" until the carrier's first scan


# One line of a fulfillment preview (MCF ``GetFulfillmentPreviewItem``): the same three fields a
# create sends for an item.
PreviewItem = FulfillmentItem


@dataclass(frozen=True)
class Preview:
    """What the fulfiller says it could do for one shipping speed, before anything is created.

    ``fees`` is the sum of the estimated fees in ``currency`` (``Decimal(0)`` and ``currency`` ""
    when the provider gave none, e.g. Amazon IN). When some lines are unfulfillable the fees cover
    only what the provider would ship. ``reasons`` are order-level refusals (e.g.
    ``DeliverySLAUnavailable``, ``InvalidDestinationAddress``), possibly with no line listed."""

    speed: str  # MCF shippingSpeedCategory
    fulfillable: bool
    unfulfillable: tuple[tuple[str, str], ...]  # (seller_sku, reason codes joined by ", ")
    fees: Decimal
    currency: str
    earliest_arrival: datetime | None
    latest_arrival: datetime | None
    reasons: tuple[str, ...] = ()


# --- inventory: FBA stock -> store stock ---------------------------------------------------------


@dataclass(frozen=True)
class FbaStock:
    """One seller SKU's units at Amazon (FBA Inventory ``InventorySummary`` with details).

    Only ``fulfillable`` can ship now; the others are shown to people, never sold. ``fulfillable``
    is None when Amazon's answer did not say (such a SKU is left as it is)."""

    seller_sku: str
    fulfillable: int | None
    reserved: int = 0  # totalReservedQuantity: customer orders, transfers between centres, processing
    inbound: int = 0  # working + shipped + receiving
    researching: int = 0
    unfulfillable: int = 0


@dataclass(frozen=True)
class StockLevel:
    """What a store shows for one SKU where we keep it in step (Shopify: ``available`` at the FBA
    location; WooCommerce: ``stock_quantity``)."""

    sku: str
    quantity: int
    ref: str  # the store's handle for a write (Shopify inventory item GID; WooCommerce product id)
    managed: bool = True  # WooCommerce manage_stock; False: the first write turns it on


@dataclass(frozen=True)
class SkuProblem:
    """One SKU a sync cannot handle, in one line that says what to fix."""

    sku: str
    message: str


@dataclass(frozen=True)
class StockRead:
    levels: tuple[StockLevel, ...]
    problems: tuple[SkuProblem, ...] = ()  # SKUs the store does not know, has twice, cannot stock


@dataclass(frozen=True)
class StockChange:
    """Set one SKU's number, only while the store still shows ``expected`` (compare-and-swap)."""

    sku: str
    ref: str
    expected: int  # the quantity just read
    quantity: int
    manage: bool = False  # also turn stock management on (WooCommerce manage_stock)


@dataclass(frozen=True)
class StockWriteResult:
    written: tuple[str, ...]  # SKUs now at their new quantity
    stale: tuple[str, ...] = ()  # the store's number had moved from ``expected``: nothing written
    problems: tuple[SkuProblem, ...] = ()  # refused for a reason a person must fix
