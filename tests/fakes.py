"""Fakes of the two connector Protocols, for pipeline tests that need no HTTP at all."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from flask.testing import FlaskClient

from worker.domain import (
    Address,
    FulfillmentRequest,
    FulfillmentStatus,
    ItemOutcome,
    Label,
    LabelRequest,
    Line,
    Order,
    Preview,
    PreviewItem,
    PushRequest,
    PushResult,
    Quote,
    Rate,
    Tracking,
    Unreadable,
    WebhookEvent,
)
from worker.errors import AmbiguousOutcome, PermanentError


def make_order(order_id: str = "1001", lines: tuple[tuple[str, int], ...] = (("TEE-RED-M", 1),),
               **kw: object) -> Order:
    base = Order(
        platform_order_id=order_id, number=f"#{order_id}".lstrip("#"),
        created_at=datetime(2026, 11, 25, 12, 0, tzinfo=UTC), financial_status="PAID",
        lines=tuple(Line(line_id=f"{order_id}{i}", sku=s, quantity=q, title=s, unit_price=Decimal("9.50"))
                    for i, (s, q) in enumerate(lines)),
        address=Address(name="Ada Lovelace", address1="1 Analytical Way", city="Austin", region="TX",
                        postal_code="78701", country="US", phone="5125550100"),
        shipping_title="Standard", email="ada@example.com",
    )
    return replace(base, **kw)  # type: ignore[arg-type]


class FakeStore:
    def __init__(self) -> None:
        self.orders: dict[str, Order] = {}
        self.pushed: list[PushRequest] = []
        self.fail_push: list[Exception] = []
        self.webhook_warnings: list[str] = []

    def fetch_order(self, order_id: str) -> Order | None:
        return self.orders.get(order_id)

    def iter_orders(self, updated_since: datetime) -> Iterator[Order | Unreadable]:
        yield from self.orders.values()

    def is_ping(self, body: bytes, headers: Mapping[str, str]) -> bool:
        return False

    def warnings(self) -> list[str]:
        return list(self.webhook_warnings)

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> bool:
        return True

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        raise NotImplementedError

    def signed_test_delivery(self) -> tuple[bytes, dict[str, str]]:
        raise NotImplementedError

    def push_tracking(self, request: PushRequest) -> PushResult:
        if self.fail_push:
            raise self.fail_push.pop(0)
        numbers = {t.number for p in self.pushed for t in p.tracking}
        if any(t.number in numbers for t in request.tracking):
            return PushResult("F-existing", already_there=True)
        self.pushed.append(request)
        return PushResult(f"F-{len(self.pushed)}")


class FakeFulfiller:
    def __init__(self) -> None:
        self.created: dict[str, FulfillmentRequest] = {}
        self.shipped: set[str] = set()
        self.submits = 0
        self.lookups = 0
        self.fail_submit: list[Exception] = []
        self.last_request_id = ""
        self.cancelled: list[str] = []
        self.picking: set[str] = set()
        self.out_of_stock: set[str] = set()
        self.previews = 0
        self.short: dict[str, dict[str, int]] = {}  # shipped with these item quantities missing
        self.dead: dict[str, str] = {}  # ended without shipping: id -> status ("unfulfillable")
        self.fail_preview: list[Exception] = []

    def submit(self, request: FulfillmentRequest) -> None:
        self.submits += 1
        if self.fail_submit:
            exc = self.fail_submit.pop(0)
            if isinstance(exc, AmbiguousOutcome):  # sent: Amazon has it, we never heard
                self.created.setdefault(request.seller_fulfillment_order_id, request)
            raise exc
        self.created.setdefault(request.seller_fulfillment_order_id, request)
        self.last_request_id = f"req-{self.submits}"

    def lookup(self, seller_fulfillment_order_id: str) -> FulfillmentStatus | None:
        self.lookups += 1
        if seller_fulfillment_order_id not in self.created:
            return None
        request = self.created[seller_fulfillment_order_id]
        missing = self.short.get(seller_fulfillment_order_id, {})
        dead = self.dead.get(seller_fulfillment_order_id)
        items = tuple(ItemOutcome(i.item_id, i.seller_sku, i.quantity,
                                  shipped=0 if dead else i.quantity - missing.get(i.item_id, 0),
                                  unfulfillable=i.quantity if dead else missing.get(i.item_id, 0))
                      for i in request.items)
        if dead:
            return FulfillmentStatus(seller_fulfillment_order_id, dead, items=items)
        if seller_fulfillment_order_id in self.shipped:
            number = f"1Z{sum(map(ord, seller_fulfillment_order_id)):010d}"
            status = "completepartialled" if missing else "complete"
            return FulfillmentStatus(seller_fulfillment_order_id, status, (Tracking("UPS", number),),
                                     items=items)
        return FulfillmentStatus(seller_fulfillment_order_id, "received")

    def preview(self, address: Address, items: Sequence[PreviewItem], speeds: Sequence[str],
                features: Sequence[str] = ()) -> tuple[Preview, ...]:
        self.previews += 1
        if self.fail_preview:
            raise self.fail_preview.pop(0)
        gone = tuple((i.seller_sku, "InventoryUnavailable") for i in items
                     if i.seller_sku in self.out_of_stock)
        fees = sum((Decimal("5.40") * i.quantity for i in items if i.seller_sku not in self.out_of_stock),
                   Decimal(0))
        return tuple(Preview(speed, not gone, gone, fees, "USD", None, None) for speed in speeds)

    def cancel(self, seller_fulfillment_order_id: str) -> None:
        if seller_fulfillment_order_id in self.shipped or seller_fulfillment_order_id in self.picking:
            raise PermanentError(f"{seller_fulfillment_order_id} is past Planning")
        self.cancelled.append(seller_fulfillment_order_id)

    def changed_since(self, since: datetime) -> Iterator[str]:
        yield from self.created


class FakeLabels:
    """A label seller: one purchase per provider shipment, like EasyPost."""

    def __init__(self) -> None:
        self.quotes: dict[str, LabelRequest] = {}
        self.bought: dict[str, Label] = {}
        self.buys = 0
        self.refunded: list[str] = []
        self.fail_buy: list[Exception] = []
        self.fail_quote: list[Exception] = []
        self.scanned: set[str] = set()  # shipments the carrier has scanned

    def quote(self, request: LabelRequest) -> Quote:
        if self.fail_quote:
            raise self.fail_quote.pop(0)
        sid = f"shp_{len(self.quotes) + 1}"
        self.quotes[sid] = request
        return Quote(sid, (Rate("rate_a", "USPS", "GroundAdvantage", Decimal("6.95"), delivery_days=4),
                           Rate("rate_b", "UPS", "Ground", Decimal("8.20"), delivery_days=3)))

    def buy(self, shipment_id: str, rate: Rate) -> Label:
        self.buys += 1
        if shipment_id not in self.bought:
            tracking = Tracking(rate.carrier, f"9400{len(self.bought):018d}", "https://track.example/x")
            self.bought[shipment_id] = Label(shipment_id, tracking, rate,
                                             f"https://labels.example/{shipment_id}.pdf")
        if self.fail_buy:
            raise self.fail_buy.pop(0)  # bought, but the answer was lost
        return self.bought[shipment_id]

    def lookup(self, shipment_id: str) -> Label | None:
        label = self.bought.get(shipment_id)
        if label is None:
            return None
        return replace(label, carrier_status="in_transit" if shipment_id in self.scanned else "pre_transit")

    def label_file(self, label: Label) -> bytes:
        return b"%PDF-1.4 fake label " + label.shipment_id.encode()

    def refund(self, shipment_id: str) -> str:
        self.refunded.append(shipment_id)
        return "submitted"

    def check(self) -> str:
        return "ok"


class DrainingClient(FlaskClient):
    """The receiver's test client, answering only once the receiver's courier has published what
    the request handed it: a test then sees the published tasks as soon as the answer."""

    def open(self, *args: Any, **kwargs: Any) -> Any:
        response = super().open(*args, **kwargs)
        assert self.application.extensions["autofulfill.courier"].drain(30), "the courier is stuck"
        return response
