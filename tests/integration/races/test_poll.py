"""The reconciliation poll sees every change in its window — cancellations and refunds too — and
pages without skipping, when the store lists ties differently on every request; one order it
cannot read never stops it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.integration.races.conftest import MakeRig
from tests.integration.races.rig import Rig
from worker.pipeline import names


def poll(rig: Rig, store: str) -> None:
    rig.run(names.POLL, store)
    rig.drain()


def test_a_cancellation_seen_only_by_the_poll_cancels_at_amazon_shopify(make_rig: MakeRig) -> None:
    rig = make_rig(ship_after_s=3600)
    oid = rig.shop.add_order([("TEE-RED-M", 1)])["id"]
    assert rig.deliver("demo", "orders/paid", oid) == 200
    rig.drain()
    (shipment,) = rig.shipments("demo", oid)
    assert shipment.state == "submitted"
    rig.shop.cancel_order(oid)  # its webhook is lost
    poll(rig, "demo")
    assert rig.amazon.status(shipment.external_id).lower() == "cancelled"
    assert rig.order("demo", oid).status == "cancelled"


def test_a_cancellation_seen_only_by_the_poll_cancels_at_amazon_woocommerce(make_rig: MakeRig) -> None:
    rig = make_rig(ship_after_s=3600)
    oid = rig.woo.add_order([("TEE-RED-M", 1)])["id"]
    assert rig.deliver("bolt", "order.created", oid) == 200
    rig.drain()
    (shipment,) = rig.shipments("bolt", oid)
    assert shipment.state == "submitted"
    rig.woo.set_status(oid, "cancelled")  # WooCommerce sends each webhook once: this one is lost
    poll(rig, "bolt")
    assert rig.amazon.status(shipment.external_id).lower() == "cancelled"
    assert rig.order("bolt", oid).status == "cancelled"


def test_the_woocommerce_poll_loses_nothing_when_250_orders_change_in_one_second(make_rig: MakeRig) -> None:
    rig = make_rig(ship_after_s=3600)
    ids = [rig.woo.add_order([("TEE-RED-M", 1)], status="on-hold")["id"] for _ in range(250)]
    for oid in ids:  # a bulk action: on-hold -> processing, all in (about) the same second
        rig.woo.set_status(oid, "processing")
    moved: list[int] = []

    def an_order_changes_while_we_page() -> None:  # the store keeps working during the pass
        rig.woo.set_status(ids[3], "processing")  # no-op status, but date_modified moves on
        moved.append(ids[3])

    rig.woo.intercept(lambda m, path, body: m == "GET" and "/orders" in path and "page=2" in path,
                      an_order_changes_while_we_page)
    rig.run(names.POLL, "bolt")
    assert moved
    with rig.app.sessions() as s:
        from sqlalchemy import select

        from worker.ledger.models import OrderRow
        got = set(s.scalars(select(OrderRow.platform_order_id).where(OrderRow.store == "bolt")))
    assert got == {str(i) for i in ids}


def test_one_order_the_poll_cannot_read_does_not_stop_it(make_rig: MakeRig) -> None:
    rig = make_rig()
    bad = rig.woo.add_order([("TEE-RED-M", 1)])["id"]
    with rig.woo.state.lock:
        rig.woo.state.orders[bad]["line_items"][0]["quantity"] = "1 pc"
    good = rig.woo.add_order([("MUG-BLK", 1)])["id"]
    for _ in range(2):  # every pass goes on past it, and says so once
        rig.run(names.POLL, "bolt")
        rig.drain()
    assert rig.order("bolt", good).status in ("routed", "done")
    unreadable = [a for a in rig.alerts if f"order {bad} could not be read" in a]
    assert len(unreadable) == 1, rig.alerts
    assert "quantity" in unreadable[0]
    assert json.dumps(rig.alerts)  # plain text


def test_a_shopify_poll_keeps_what_it_read_when_it_fails_part_way(make_rig: MakeRig) -> None:
    """Chaos finding B3: a pass that fails on a later page (or outruns its time) kept nothing, so
    the next window was longer still and the poll never completed again."""
    from sqlalchemy import func, select

    from connectors.shopify.sandbox_state import SandboxError
    from worker.ledger.models import CursorRow, OrderRow
    from worker.pipeline.names import POLL

    rig = make_rig(ship_after_s=3600)
    with rig.shop.state.lock:  # a shop on a plan with a large cost bucket: no throttle waits here
        rig.shop.state.bucket_max = rig.shop.state.available = 10.0 ** 6
        rig.shop.state.restore_rate = 10.0 ** 5
    ids = [rig.shop.add_order([("TEE-RED-M", 1)])["id"] for _ in range(120)]  # 3 pages of 50
    cost, list_orders = rig.shop.state.handlers["ListOrders"]
    listings = [0]

    def failing(state: Any, variables: dict[str, Any]) -> Any:
        listings[0] += 1
        if listings[0] >= 2:  # the second page: the store fails (an internal error)
            raise SandboxError("Internal error. Looks like something went wrong on our end.")
        return list_orders(state, variables)

    rig.shop.state.handlers["ListOrders"] = (cost, failing)
    try:
        rig.run(POLL, "demo")
    except Exception:  # the pass fails (the scheduler retries it later)
        pass
    with rig.app.sessions() as s:
        assert s.scalar(select(func.count()).select_from(OrderRow)) == 50  # the first page stays
        cursor = s.get(CursorRow, "store:demo:orders")
        assert cursor is not None and cursor.value is not None  # and the cursor moved past them
    rig.shop.state.handlers["ListOrders"] = (cost, list_orders)  # the store answers again
    rig.run(POLL, "demo")
    with rig.app.sessions() as s:
        got = set(s.scalars(select(OrderRow.platform_order_id)))
    assert got == {str(i) for i in ids}


def test_a_long_shopify_poll_stops_at_half_its_time_limit_and_the_next_goes_on(make_rig: MakeRig) -> None:
    from sqlalchemy import func, select

    from worker.ledger.models import OrderRow
    from worker.pipeline.names import POLL

    rig = make_rig(ship_after_s=3600, task_time_limit_s=4)  # a pass may take 2 s
    with rig.shop.state.lock:  # each page of 50 waits ~1.4 s for Shopify's cost bucket
        rig.shop.state.bucket_max = rig.shop.state.available = 1000.0
        rig.shop.state.restore_rate = 500.0
    ids = [rig.shop.add_order([("TEE-RED-M", 1)])["id"] for _ in range(400)]  # 8 pages: > 2 s
    with rig.shop.state.lock:  # changed over the last minutes, a second or two apart
        start = datetime.now(UTC) - timedelta(seconds=2 * len(ids))
        for i, oid in enumerate(ids):
            rig.shop.state.orders[int(oid)]["updated_at"] = start + timedelta(seconds=2 * i)

    def recorded() -> int:
        with rig.app.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(OrderRow)) or 0)

    rig.run(POLL, "demo")
    first = recorded()
    assert 0 < first < len(ids)  # it stopped, keeping what it read
    for _ in range(5):
        rig.run(POLL, "demo")
    assert recorded() == len(ids)
