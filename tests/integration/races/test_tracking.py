"""Tracking reaches the store exactly when it should: not for an order cancelled or refunded in
the store meanwhile (the merchant is told instead), and not never — a submitted MCF order that no
tracking sweep saw is looked up by id on its own clock."""

from __future__ import annotations

from tests.integration.races.conftest import MakeRig
from tests.integration.races.rig import Rig
from worker.pipeline import names
from worker.service import alerts


def submitted(rig: Rig, store: str, oid: int) -> str:
    rig.drain()
    (shipment,) = rig.shipments(store, oid)
    assert shipment.state == "submitted", shipment.reason
    return shipment.external_id


def test_an_order_cancelled_before_its_tracking_is_pushed_gets_no_shipped_note(make_rig: MakeRig) -> None:
    rig = make_rig(ship_after_s=3600)
    oid = rig.woo.add_order([("TEE-RED-M", 1)])["id"]
    assert rig.deliver("bolt", "order.created", oid) == 200
    mcf = submitted(rig, "bolt", oid)
    rig.woo.set_status(oid, "cancelled")  # its webhook is lost
    rig.amazon.ship_now(mcf)  # two minutes too late to cancel at Amazon
    rig.run(names.TRACK, "us")
    rig.drain()
    assert not [n for n in rig.woo.notes(oid) if n["customer_note"]], "the customer must not hear 'shipped'"
    assert rig.woo.trackings(oid) == []
    (shipment,) = rig.shipments("bolt", oid)
    assert shipment.state == "attention"
    assert "shipped although cancelled in the store" in shipment.reason
    assert shipment.tracking and shipment.tracking[0]["number"] in shipment.reason
    alerts.scan_parked(rig.app)
    rig.drain()
    assert any("shipped although cancelled" in a for a in rig.alerts)


def test_a_fully_refunded_shopify_order_gets_no_fulfillment(make_rig: MakeRig) -> None:
    rig = make_rig(ship_after_s=3600)
    order = rig.shop.add_order([("TEE-RED-M", 2)])
    oid, line = order["id"], order["line_items"][0]["id"]
    assert rig.deliver("demo", "orders/paid", oid) == 200
    mcf = submitted(rig, "demo", oid)
    rig.amazon.ship_now(mcf)
    rig.run(names.TRACK, "us")
    rig.shop.refund_lines(oid, [(line, 2)])  # between Amazon shipping and our push; webhook lost
    rig.drain()
    assert rig.shop.fulfillments(oid) == []
    (shipment,) = rig.shipments("demo", oid)
    assert shipment.state == "attention" and "shipped although refunded in the store" in shipment.reason


def test_a_submitted_order_no_sweep_saw_is_looked_up_on_its_own(make_rig: MakeRig) -> None:
    rig = make_rig(ship_after_s=3600)
    oid = rig.shop.add_order([("TEE-RED-M", 1)])["id"]
    assert rig.deliver("demo", "orders/paid", oid) == 200
    mcf = submitted(rig, "demo", oid)
    rig.amazon.ship_now(mcf)  # and the sweep's changed-since window passes without it
    rig.clock.advance(31 * 60)
    assert rig.redrive() >= 1
    rig.drain()
    (shipment,) = rig.shipments("demo", oid)
    assert shipment.state == "pushed"
    assert rig.order("demo", oid).status == "done"
    assert len(rig.shop.fulfillments(oid)) == 1


def test_a_submitted_order_still_on_its_way_is_looked_up_again_later(make_rig: MakeRig) -> None:
    rig = make_rig(ship_after_s=3600)
    oid = rig.shop.add_order([("TEE-RED-M", 1)])["id"]
    assert rig.deliver("demo", "orders/paid", oid) == 200
    submitted(rig, "demo", oid)
    looks = []
    for minutes in (31, 61, 121):
        rig.clock.advance(minutes * 60)
        rig.redrive()
        looks.append(rig.drain())
        (shipment,) = rig.shipments("demo", oid)
        assert shipment.state == "submitted" and shipment.next_attempt_at is not None
    assert all(ran == [names.LOOKUP] for ran in looks)


def test_an_mcf_order_without_tracking_beyond_its_promise_is_named_by_status_and_alerted_once(
        make_rig: MakeRig) -> None:
    from worker.service.status import health

    rig = make_rig(ship_after_s=10 ** 7)
    oid = rig.shop.add_order([("TEE-RED-M", 1)])["id"]
    assert rig.deliver("demo", "orders/paid", oid) == 200
    mcf = submitted(rig, "demo", oid)
    assert mcf not in health(rig.app, queue_depth=lambda: 0, workers=lambda: 1).text()
    rig.clock.advance(8 * 24 * 3600)  # Standard: late after 7 days
    assert mcf in health(rig.app, queue_depth=lambda: 0, workers=lambda: 1).text()
    for _ in range(2):
        alerts.scan_late(rig.app)
        rig.drain()
    assert len([a for a in rig.alerts if mcf in a and "no tracking yet" in a]) == 1


def test_a_woocommerce_split_order_shipped_together_gets_one_note(make_rig: MakeRig) -> None:
    rig = make_rig(ship_after_s=3600, extra={"bolt": 'labels = "main"'})
    oid = rig.woo.add_order([("TEE-RED-M", 1), ("POSTER", 1)])["id"]
    assert rig.deliver("bolt", "order.created", oid) == 200
    rig.drain(skip=(names.PUSH,))  # the label is bought; its push waits in the queue
    fba = next(s for s in rig.shipments("bolt", oid) if s.route == "fba")
    rig.amazon.ship_now(fba.external_id)
    rig.run(names.TRACK, "us")  # Amazon's tracking arrives in the same pass
    rig.drain()
    notes = [n for n in rig.woo.notes(oid) if n["customer_note"]]
    assert len(notes) == 1 and "shipped in 2 parts" in notes[0]["note"]
    assert {s.state for s in rig.shipments("bolt", oid)} == {"pushed"}
    assert rig.woo.order(oid)["status"] == "completed"


def test_one_mcf_order_the_sweep_cannot_read_does_not_stop_the_others(make_rig: MakeRig) -> None:
    rig = make_rig(ship_after_s=3600)
    first, second = (rig.shop.add_order([("TEE-RED-M", 1)])["id"] for _ in range(2))
    for oid in (first, second):
        assert rig.deliver("demo", "orders/paid", oid) == 200
    mcf = [submitted(rig, "demo", oid) for oid in (first, second)]
    for m in mcf:
        rig.amazon.ship_now(m)
    rig.amazon.fail_next("getFulfillmentOrder", 400)  # the first look-up is refused
    rig.run(names.TRACK, "us")
    rig.drain()
    states = sorted(rig.shipments("demo", oid)[0].state for oid in (first, second))
    assert states == ["pushed", "submitted"]  # the other went on; the refused one waits for its look-up


def test_completing_a_woocommerce_order_never_overwrites_a_cancellation(make_rig: MakeRig) -> None:
    """Found by the chaos test: the merchant cancels between our read of the order and our
    ``PUT status=completed``; WooCommerce has no conditional write, so the order came out
    completed and the cancellation was lost."""
    rig = make_rig(ship_after_s=3600)
    oid = rig.woo.add_order([("TEE-RED-M", 1)])["id"]
    assert rig.deliver("bolt", "order.created", oid) == 200
    mcf = submitted(rig, "bolt", oid)
    rig.amazon.ship_now(mcf)
    rig.run(names.TRACK, "us")
    reads = [0]

    def cancel_after_the_completions_read(method: str, path: str, body: bytes) -> bool:
        if method == "GET" and path.split("?")[0].endswith(f"/orders/{oid}"):
            reads[0] += 1
            return reads[0] == 2  # push's own read of the order first, then the completion's
        return False

    rig.woo.intercept(cancel_after_the_completions_read, lambda: rig.woo.set_status(oid, "cancelled"),
                      before=False, times=-1)
    rig.drain()
    rig.clock.advance(60)
    rig.redrive()
    rig.drain()
    assert rig.woo.order(oid)["status"] == "cancelled"
    (shipment,) = rig.shipments("bolt", oid)
    assert shipment.state == "attention" and "shipped although cancelled in the store" in shipment.reason
    assert rig.order("bolt", oid).status == "attention"
