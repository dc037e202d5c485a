"""The reconciliation poll sees every change in its window — cancellations and refunds too — and
pages without skipping, when the store lists ties differently on every request; one order it
cannot read never stops it."""

from __future__ import annotations

import json

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
