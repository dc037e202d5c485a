"""Routing and cancellation through the whole service (issue #5): real web receiver, worker and
scheduler processes on Redis and a real ledger, the store, Amazon and EasyPost sandboxes over
loopback. Each test checks what the sandboxes received and what the ledger says."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.integration.support import make_stack, stop
from worker.ledger.models import EventRow, OrderRow, ShipmentRow
from worker.sandbox.stack import Stack, wait_for

pytestmark = pytest.mark.integration

SQLITE = "sqlite:///var/ledger.db"


# --- reading the ledger ---------------------------------------------------------------------------

def ledger(stack: Stack, store: str, oid: str) -> tuple[OrderRow, list[ShipmentRow]]:
    """The order row (lines loaded) and its shipments (lines loaded), by store and order id."""
    assert stack.app is not None
    with stack.app.sessions() as session:
        order = session.scalar(select(OrderRow).where(OrderRow.store == store,
                                                      OrderRow.platform_order_id == oid))
        assert order is not None, f"no ledger order {store} {oid}"
        _ = order.lines
        shipments = list(order.shipments)
        for s in shipments:
            _ = s.lines
        return order, shipments


def states(stack: Stack, store: str, oid: str) -> list[str]:
    """The order's shipment states in shipment order ([] before routing)."""
    return [s.state for o, s in stack.shipments() if o.store == store and o.platform_order_id == oid]


def status(stack: Stack, store: str, oid: str) -> str:
    return next((o.status for o in stack.orders() if o.store == store and o.platform_order_id == oid), "")


def timeline(stack: Stack, store: str, oid: str) -> list[tuple[str, dict[str, Any]]]:
    """(kind, detail) of each event on the order's timeline, oldest first."""
    order, _ = ledger(stack, store, oid)
    assert stack.app is not None
    with stack.app.sessions() as session:
        rows = session.scalars(select(EventRow).where(EventRow.order_id == order.id).order_by(EventRow.id))
        return [(e.kind, dict(e.detail)) for e in rows]


def lines_of(shipment: ShipmentRow) -> list[tuple[str, int]]:
    return sorted((ln.sku, ln.quantity) for ln in shipment.lines)


def line_id(order: dict[str, Any], sku: str) -> str:
    """The store's line item id of ``sku`` in an order as the sandbox returned it."""
    return str(next(li["id"] for li in order["line_items"] if li["sku"] == sku))


def sweeps_later(stack: Stack, n: int = 2) -> None:
    """Wait until the scheduler has run ``n`` more tracking sweeps (so late side effects would show)."""
    seen = stack.amazon.calls.count("listAllFulfillmentOrders")
    wait_for(lambda: stack.amazon.calls.count("listAllFulfillmentOrders") >= seen + n, 30,
             f"{n} more tracking sweeps")


# --- the stores, seen from outside -----------------------------------------------------------------

def place(stack: Stack, platform: str, lines: list[tuple[str, int]]) -> str:
    """A paid order in the store and its creation webhook; returns the store's order id."""
    if platform == "shopify":
        oid = str(stack.shop.add_order(lines)["id"])
        assert stack.shop.deliver(stack.webhook_url, "orders/paid", oid) == 200
    else:
        oid = str(stack.woo.add_order(lines)["id"])
        assert stack.woo.deliver(stack.woo_webhook_url, "order.created", oid) == 200
    return oid


def cancel_in_store(stack: Stack, platform: str, oid: str) -> None:
    if platform == "shopify":
        stack.shop.cancel_order(oid)
        assert stack.shop.deliver(stack.webhook_url, "orders/cancelled", oid) == 200
    else:
        stack.woo.set_status(oid, "cancelled")
        assert stack.woo.deliver(stack.woo_webhook_url, "order.updated", oid) == 200


def tracking_writes(stack: Stack, platform: str, oid: str) -> int:
    """How many times tracking was written to the store's order."""
    if platform == "shopify":
        return len(stack.shop.fulfillments(oid))
    return stack.woo.calls.count(f"POST /orders/{oid}/notes")  # no tracking extension: one note


# --- 1. hold -> cancel ------------------------------------------------------------------------------

@pytest.mark.parametrize("platform", ["woocommerce", "shopify"])
def test_order_cancelled_during_its_hold_sends_nothing_and_its_sibling_ships_after_the_hold(
        tmp_path: Path, redis_db: str, platform: str) -> None:
    store, prefix = ("bolt", "BOLT") if platform == "woocommerce" else ("demo", "DEMO")
    stack = make_stack(tmp_path, redis_db, SQLITE, poll_interval_s=2, ship_after_s=1,
                       extra={"bolt" if platform == "woocommerce" else "demo": "hold_minutes = 0.2"})
    try:
        stack.start("web", "worker", "scheduler")
        lines = [("MUG-BLK", 1), ("POSTER-A2", 1)] if platform == "shopify" else [("MUG-BLK", 1)]
        doomed = place(stack, platform, lines)
        sibling = place(stack, platform, [("CAP-NAVY", 1)])
        assert status(stack, store, doomed) == status(stack, store, sibling) == "held"
        cancel_in_store(stack, platform, doomed)
        assert status(stack, store, doomed) == "cancelled"  # the webhook itself settles it
        assert stack.amazon.create_calls == 0  # still inside the 12 s hold
        wait_for(lambda: states(stack, store, sibling) == ["pushed"], 60, "the sibling tracked")
        sweeps_later(stack)  # the poller (every 2 s) has read both orders again meanwhile

        # The sibling waited out its hold, then went to Amazon and its tracking to the store.
        order, (shipment,) = ledger(stack, store, sibling)
        (eligible,) = [d for kind, d in timeline(stack, store, sibling) if kind == "eligible"]
        hold_until = datetime.fromisoformat(eligible["hold_until"])
        assert hold_until == order.created_at + timedelta(seconds=12)
        mcf = stack.amazon.orders[f"{prefix}-{sibling}-1"]
        assert mcf.created_at >= hold_until.timestamp()
        assert tracking_writes(stack, platform, sibling) == 1
        assert shipment.tracking[0]["number"] == mcf.tracking
        # The cancelled order: nothing sent anywhere, nothing planned, cancelled in the ledger.
        order, shipments = ledger(stack, store, doomed)
        assert order.status == "cancelled" and shipments == []
        assert sorted(stack.amazon.orders) == [f"{prefix}-{sibling}-1"]
        assert stack.amazon.create_calls == 1
        assert stack.easypost.bought == 0 and stack.easypost.shipments == {}
        assert tracking_writes(stack, platform, doomed) == 0
        assert not [c for c in stack.woo.calls if f"/orders/{doomed}" in c and not c.startswith("GET ")]
        kinds = [kind for kind, _ in timeline(stack, store, doomed)]
        assert "cancelled" in kinds and "routed" not in kinds
    finally:
        stop(stack)


# --- 2. submit -> cancel ----------------------------------------------------------------------------

def test_order_cancelled_after_submission_is_cancelled_at_amazon_and_never_tracked(
        tmp_path: Path, redis_db: str) -> None:
    stack = make_stack(tmp_path, redis_db, SQLITE, poll_interval_s=2, ship_after_s=60)
    try:
        stack.start("web", "worker", "scheduler")
        oid = place(stack, "shopify", [("TEE-RED-M", 1), ("MUG-BLK", 2)])
        mcf_id = f"DEMO-{oid}-1"
        wait_for(lambda: states(stack, "demo", oid) == ["submitted"], 60, "the MCF order submitted")
        assert stack.amazon.status(mcf_id) in ("Received", "Planning")
        cancel_in_store(stack, "shopify", oid)
        wait_for(lambda: status(stack, "demo", oid) == "cancelled", 60, "the cancellation")
        sweeps_later(stack)

        assert stack.amazon.status(mcf_id) == "Cancelled"
        assert stack.amazon.calls.count("cancelFulfillmentOrder") == 1
        assert stack.amazon.create_calls == 1 and sorted(stack.amazon.orders) == [mcf_id]
        order, (shipment,) = ledger(stack, "demo", oid)
        assert order.status == "cancelled" and shipment.state == "cancelled"
        assert shipment.tracking == []
        assert stack.shop.fulfillments(oid) == []
        assert "CreateFulfillment" not in stack.shop.calls
        undone = [d for kind, d in timeline(stack, "demo", oid) if kind == "shipment_cancelled"]
        assert [d["how"] for d in undone] == ["cancelled at Amazon (cancelFulfillmentOrder)"]
    finally:
        stop(stack)


# --- 3. split order -> two shipments, two tracking pushes -------------------------------------------

def test_mixed_order_splits_into_an_mcf_order_and_a_label_each_tracked_once(
        tmp_path: Path, redis_db: str) -> None:
    stack = make_stack(tmp_path, redis_db, SQLITE, poll_interval_s=2, ship_after_s=1)
    try:
        stack.start("web", "worker", "scheduler")
        placed = stack.shop.add_order([("MUG-BLK", 1), ("POSTER-A2", 1)])
        oid = str(placed["id"])
        assert stack.shop.deliver(stack.webhook_url, "orders/paid", oid) == 200
        wait_for(lambda: states(stack, "demo", oid) == ["pushed", "pushed"], 60, "both shipments tracked")
        sweeps_later(stack)

        order, (fba, label) = ledger(stack, "demo", oid)
        assert order.status == "done"
        assert (fba.route, fba.external_id, lines_of(fba)) == ("fba", f"DEMO-{oid}-1", [("MUG-BLK", 1)])
        assert (label.route, label.external_id, lines_of(label)) == (
            "self_ship", f"DEMO-{oid}-2", [("POSTER-A2", 1)])
        # One Amazon create (the mapped line only), one label (the unmapped line only).
        assert stack.amazon.create_calls == 1 and sorted(stack.amazon.orders) == [fba.external_id]
        mcf = stack.amazon.orders[fba.external_id]
        assert [(i["sellerSku"], i["quantity"]) for i in mcf.request["items"]] == [("AMZ-MUG-BLK", 1)]
        assert stack.easypost.bought == 1 and stack.easypost.bought_for(label.external_id) == 1
        # Two fulfillments in Shopify, each with its own tracking number and its own line.
        by_number = {f["tracking_numbers"][0]: f for f in stack.shop.fulfillments(oid)}
        assert len(stack.shop.fulfillments(oid)) == 2 and len(by_number) == 2
        assert set(by_number) == {mcf.tracking, label.tracking[0]["number"]}
        assert [(li["line_item_id"], li["quantity"]) for li in by_number[mcf.tracking]["line_items"]] == [
            (line_id(placed, "MUG-BLK"), 1)]
        assert [(li["line_item_id"], li["quantity"]) for li in
                by_number[label.tracking[0]["number"]]["line_items"]] == [(line_id(placed, "POSTER-A2"), 1)]
        assert stack.shop.calls.count("CreateFulfillment") == 2
    finally:
        stop(stack)


# --- 4. preview says unfulfillable -> fallback --------------------------------------------------------

def test_line_amazon_cannot_fulfil_takes_the_fallback_label(tmp_path: Path, redis_db: str) -> None:
    stack = make_stack(tmp_path, redis_db, SQLITE, poll_interval_s=2, ship_after_s=1)
    try:
        stack.amazon.set_stock("AMZ-TEE-RED-M", False)
        stack.start("web", "worker", "scheduler")
        oid = place(stack, "shopify", [("TEE-RED-M", 1), ("MUG-BLK", 1)])
        wait_for(lambda: states(stack, "demo", oid) == ["pushed", "pushed"], 60, "both shipments tracked")

        order, (fba, label) = ledger(stack, "demo", oid)
        assert order.status == "done"
        assert (fba.route, lines_of(fba)) == ("fba", [("MUG-BLK", 1)])
        assert (label.route, lines_of(label)) == ("self_ship", [("TEE-RED-M", 1)])
        # No MCF create ever carried the out-of-stock SKU; a label was bought for it instead.
        assert stack.amazon.create_calls == 1
        assert [i["sellerSku"] for o in stack.amazon.orders.values() for i in o.request["items"]] == [
            "AMZ-MUG-BLK"]
        assert stack.easypost.bought == 1 and stack.easypost.bought_for(label.external_id) == 1
        assert sorted(n for f in stack.shop.fulfillments(oid) for n in f["tracking_numbers"]) == sorted(
            [stack.amazon.orders[fba.external_id].tracking, label.tracking[0]["number"]])
        events = timeline(stack, "demo", oid)
        previewed = [d for kind, d in events if kind == "previewed"]
        assert len(previewed) == 1
        assert previewed[0]["fulfillable"] is False
        assert previewed[0]["unfulfillable"] == ["AMZ-TEE-RED-M: InventoryUnavailable"]
        (routed,) = [d for kind, d in events if kind == "routed"]
        assert any("Amazon cannot fulfil AMZ-TEE-RED-M now (preview)" in r and "self-ship" in r
                   for r in routed["reasons"])
    finally:
        stop(stack)


# --- 5. dry run -----------------------------------------------------------------------------------------

def test_dry_run_routes_and_records_what_it_would_send_and_sends_nothing(
        tmp_path: Path, redis_db: str) -> None:
    stack = make_stack(tmp_path, redis_db, SQLITE, poll_interval_s=2, ship_after_s=1,
                       extra={"demo": "dry_run = true"})
    try:
        stack.start("web", "worker", "scheduler")
        oid = place(stack, "shopify", [("MUG-BLK", 2), ("POSTER-A2", 1)])
        wait_for(lambda: status(stack, "demo", oid) == "done", 60, "the dry run to finish")
        sweeps_later(stack)

        order, (fba, label) = ledger(stack, "demo", oid)
        assert (order.status, order.reason) == ("done", "dry run: nothing was sent")
        assert [(s.route, s.state, s.reason) for s in (fba, label)] == [
            ("fba", "cancelled", "dry run: nothing was sent"),
            ("self_ship", "cancelled", "dry run: nothing was sent")]
        # The two shipments are submitted in parallel: their events come in either order.
        would = {d["shipment"]: d["would"] for kind, d in timeline(stack, "demo", oid) if kind == "dry_run"}
        assert sorted(would) == [fba.external_id, label.external_id]
        assert would[fba.external_id].startswith(
            f"create MCF order {fba.external_id} (Standard; AMZ-MUG-BLK x2;")
        assert would[label.external_id].startswith("buy a label (cheapest) for POSTER-A2 x1, parcel 24x3x3")
        # Nothing left the building.
        assert stack.amazon.create_calls == 0 and stack.amazon.orders == {}
        assert stack.easypost.bought == 0 and stack.easypost.buy_calls == 0 and stack.easypost.shipments == {}
        assert "CreateFulfillment" not in stack.shop.calls and stack.shop.fulfillments(oid) == []
    finally:
        stop(stack)


# --- 6. partial refund before shipping ---------------------------------------------------------------

def test_partial_refund_before_shipping_replaces_the_mcf_order_with_a_smaller_one(
        tmp_path: Path, redis_db: str, pg_fresh: str) -> None:
    stack = make_stack(tmp_path, redis_db, pg_fresh, poll_interval_s=2, ship_after_s=60)
    try:
        stack.start("web", "worker", "scheduler")
        placed = stack.shop.add_order([("TEE-RED-M", 3)])
        oid = str(placed["id"])
        assert stack.shop.deliver(stack.webhook_url, "orders/paid", oid) == 200
        first, second = f"DEMO-{oid}-1", f"DEMO-{oid}-2"
        wait_for(lambda: states(stack, "demo", oid) == ["submitted"], 60, "the first MCF order submitted")
        stack.shop.refund_lines(oid, [(line_id(placed, "TEE-RED-M"), 1)])
        assert stack.shop.deliver(stack.webhook_url, "orders/updated", oid) == 200
        wait_for(lambda: states(stack, "demo", oid) == ["cancelled", "submitted"], 60,
                 "the smaller MCF order")

        assert stack.amazon.status(first) == "Cancelled"
        assert stack.amazon.calls.count("cancelFulfillmentOrder") == 1
        assert stack.amazon.create_calls == 2 and sorted(stack.amazon.orders) == [first, second]
        assert [(i["sellerSku"], i["quantity"]) for i in stack.amazon.orders[second].request["items"]] == [
            ("AMZ-TEE-RED-M", 2)]
        order, (old, new) = ledger(stack, "demo", oid)
        assert [(ln.sku, ln.quantity) for ln in order.lines] == [("TEE-RED-M", 2)]
        assert (old.external_id, lines_of(old)) == (first, [("TEE-RED-M", 3)])
        assert (new.external_id, lines_of(new)) == (second, [("TEE-RED-M", 2)])

        # Amazon ships the new order: two units reach Shopify, under its tracking number.
        stack.amazon.ship_now(second)
        wait_for(lambda: states(stack, "demo", oid) == ["cancelled", "pushed"], 60, "tracking pushed")
        (fulfillment,) = stack.shop.fulfillments(oid)
        assert fulfillment["tracking_numbers"] == [stack.amazon.orders[second].tracking]
        assert [(li["line_item_id"], li["quantity"]) for li in fulfillment["line_items"]] == [
            (line_id(placed, "TEE-RED-M"), 2)]
        assert status(stack, "demo", oid) == "done"
        # The poller read the order every 2 s meanwhile: one refund, one adjustment.
        assert [kind for kind, _ in timeline(stack, "demo", oid)].count("refunded_in_store") == 1
    finally:
        stop(stack)


def test_woo_partial_refund_read_from_the_refunds_endpoint_shrinks_the_mcf_order(
        tmp_path: Path, redis_db: str) -> None:
    """WooCommerce keeps line quantities as ordered: the refund's quantities come from
    GET orders/<id>/refunds, and the webhook only says that a refund happened."""
    stack = make_stack(tmp_path, redis_db, SQLITE, poll_interval_s=2, ship_after_s=60)
    try:
        stack.start("web", "worker", "scheduler")
        placed = stack.woo.add_order([("TEE-RED-M", 3), ("MUG-BLK", 1)])
        oid = str(placed["id"])
        assert stack.woo.deliver(stack.woo_webhook_url, "order.created", oid) == 200
        first, second = f"BOLT-{oid}-1", f"BOLT-{oid}-2"
        wait_for(lambda: states(stack, "bolt", oid) == ["submitted"], 60, "the first MCF order submitted")
        stack.woo.refund_lines(oid, [(line_id(placed, "TEE-RED-M"), 2), (line_id(placed, "MUG-BLK"), 1)])
        assert stack.woo.order(oid)["line_items"][0]["quantity"] == 3  # as WooCommerce keeps it
        assert stack.woo.deliver(stack.woo_webhook_url, "order.updated", oid) == 200
        wait_for(lambda: states(stack, "bolt", oid) == ["cancelled", "submitted"], 60,
                 "the smaller MCF order")
        assert stack.amazon.status(first) == "Cancelled"
        assert [(i["sellerSku"], i["quantity"]) for i in stack.amazon.orders[second].request["items"]] == [
            ("AMZ-TEE-RED-M", 1)]
        order, _ = ledger(stack, "bolt", oid)
        assert [(ln.sku, ln.quantity) for ln in order.lines] == [("TEE-RED-M", 1)]
        assert any(c.startswith(f"GET /orders/{oid}/refunds") for c in stack.woo.calls)
        assert [kind for kind, _ in timeline(stack, "bolt", oid)].count("refunded_in_store") == 1
    finally:
        stop(stack)


# --- 7. Amazon ships part ------------------------------------------------------------------------------

def test_amazon_ships_part_tracking_covers_what_shipped_and_the_rest_is_parked(
        tmp_path: Path, redis_db: str) -> None:
    stack = make_stack(tmp_path, redis_db, SQLITE, poll_interval_s=2, ship_after_s=60)
    try:
        stack.start("web", "worker", "scheduler")
        placed = stack.shop.add_order([("TEE-RED-M", 2), ("MUG-BLK", 1)])
        oid = str(placed["id"])
        assert stack.shop.deliver(stack.webhook_url, "orders/paid", oid) == 200
        mcf_id = f"DEMO-{oid}-1"
        wait_for(lambda: states(stack, "demo", oid) == ["submitted"], 60, "the MCF order submitted")
        stack.amazon.ship_short(mcf_id, {line_id(placed, "MUG-BLK"): 1})
        wait_for(lambda: states(stack, "demo", oid) == ["pushed", "attention"], 60,
                 "the shipped part tracked, the rest parked")
        sweeps_later(stack)

        assert stack.amazon.status(mcf_id) == "CompletePartialled"
        (fulfillment,) = stack.shop.fulfillments(oid)
        assert fulfillment["tracking_numbers"] == [stack.amazon.orders[mcf_id].tracking]
        assert [(li["line_item_id"], li["quantity"]) for li in fulfillment["line_items"]] == [
            (line_id(placed, "TEE-RED-M"), 2)]
        order, (shipped, rest) = ledger(stack, "demo", oid)
        assert order.status == "attention"
        assert lines_of(shipped) == [("TEE-RED-M", 2)]
        assert (rest.external_id, rest.state, lines_of(rest)) == (
            f"DEMO-{oid}-2", "attention", [("MUG-BLK", 1)])
        assert "Amazon" in rest.reason and "unfulfillable" in rest.reason and mcf_id in rest.reason
        assert stack.amazon.create_calls == 1  # the missing unit waits for a person, not a new order
    finally:
        stop(stack)
