"""WooCommerce through the whole service: real web receiver, worker and scheduler processes on
Redis, the WooCommerce and Amazon sandboxes over loopback."""

from __future__ import annotations

from pathlib import Path

from tests.integration.support import make_stack, stop, store_pushed
from worker.sandbox.stack import Stack, wait_for


def bolt_pushed(stack: Stack) -> int:
    return store_pushed(stack, "bolt")


def test_woo_order_ships_once_with_one_note_then_completes(tmp_path: Path, redis_db: str) -> None:
    stack = make_stack(tmp_path, redis_db, "sqlite:///var/ledger.db", poll_interval_s=2, ship_after_s=2)
    try:
        stack.start("web", "worker", "scheduler")
        order = stack.woo.add_order([("TEE-RED-M", 1), ("MUG-BLK", 2)], shipping_title="Express")
        oid = str(order["id"])
        for _ in range(3):  # WooCommerce's delivery id differs each time; the event does not
            assert stack.woo.deliver(stack.woo_webhook_url, "order.created", oid) == 200
        wait_for(lambda: bolt_pushed(stack) == 1, 90, "tracking on the WooCommerce order")
        wait_for(lambda: stack.amazon.calls.count("listAllFulfillmentOrders") >= 3, 30, "more sweeps")
        assert len(stack.amazon.orders) == 1
        mcf = stack.amazon.orders[f"BOLT-{oid}-1"]
        assert mcf.request["shippingSpeedCategory"] == "Expedited"
        notes = [n for n in stack.woo.notes(oid) if mcf.tracking in n["note"]]
        assert len(notes) == 1 and notes[0]["customer_note"] is True
        assert stack.woo.order(oid)["status"] == "completed"
        completes = [c for c in stack.woo.calls if c.startswith("PUT /orders/")]
        note_posts = [c for c in stack.woo.calls if c.startswith("POST /orders/") and c.endswith("/notes")]
        assert len(completes) == 1 and len(note_posts) == 1
        assert stack.woo.calls.index(note_posts[0]) < stack.woo.calls.index(completes[0])
    finally:
        stop(stack)


def test_woo_missed_webhook_is_found_by_polling_and_uses_the_tracking_extension(
        tmp_path: Path, redis_db: str) -> None:
    stack = make_stack(tmp_path, redis_db, "sqlite:///var/ledger.db", poll_interval_s=2, ship_after_s=1,
                       woo_tracking_extension="ast")
    try:
        stack.start("worker", "scheduler")
        order = stack.woo.add_order([("CAP-NAVY", 1)])
        wait_for(lambda: bolt_pushed(stack) == 1, 90, "the polled order to be tracked")
        oid = str(order["id"])
        trackings = stack.woo.trackings(oid)
        assert len(trackings) == 1 and trackings[0]["tracking_number"] == stack.amazon.orders[
            f"BOLT-{oid}-1"].tracking
        assert stack.woo.notes(oid) == [] or all(
            trackings[0]["tracking_number"] not in n["note"] for n in stack.woo.notes(oid))
        assert stack.woo.order(oid)["status"] == "completed"
    finally:
        stop(stack)
