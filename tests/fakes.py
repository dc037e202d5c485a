"""Fakes of the two connector Protocols, for pipeline tests that need no HTTP at all."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

from connectors.errors import AmbiguousOutcome, TransientError
from worker.domain import (
    Address,
    FulfillmentRequest,
    FulfillmentStatus,
    Line,
    Order,
    PushRequest,
    PushResult,
    Tracking,
    WebhookEvent,
)


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

    def iter_orders(self, updated_since: datetime) -> Iterator[Order]:
        yield from self.orders.values()

    def is_ping(self, body: bytes, headers: Mapping[str, str]) -> bool:
        return False

    def warnings(self) -> list[str]:
        return list(self.webhook_warnings)

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> bool:
        return True

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
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
        if seller_fulfillment_order_id in self.shipped:
            number = f"1Z{sum(map(ord, seller_fulfillment_order_id)):010d}"
            return FulfillmentStatus(seller_fulfillment_order_id, "complete", (Tracking("UPS", number),))
        return FulfillmentStatus(seller_fulfillment_order_id, "received")

    def cancel(self, seller_fulfillment_order_id: str) -> None:
        raise TransientError("not in the fake")

    def changed_since(self, since: datetime) -> Iterator[str]:
        yield from self.created
