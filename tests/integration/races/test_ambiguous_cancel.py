"""A cancellation that lands while a create or a purchase has an unknown outcome waits for a
definite answer: "not found" right after an unanswered request is not "never sent"."""

from __future__ import annotations

import time

from tests.integration.races.conftest import MakeRig
from worker.pipeline import names


def test_a_late_mcf_create_is_found_and_cancelled(make_rig: MakeRig) -> None:
    rig = make_rig(ship_after_s=3600)
    rig.amazon.read_lag_s = 2.0  # Amazon shows a new order by id only after a while
    rig.amazon.fail_next("createFulfillmentOrder", 500, after=True)  # created, then no answer
    oid = rig.shop.add_order([("TEE-RED-M", 1)])["id"]
    assert rig.deliver("demo", "orders/paid", oid) == 200
    rig.drain()
    (shipment,) = rig.shipments("demo", oid)
    assert shipment.state == "submitting"
    rig.shop.cancel_order(oid)
    assert rig.deliver("demo", "orders/cancelled", oid) == 200
    rig.drain()
    assert rig.order("demo", oid).status == "cancelling"  # not "nothing was sent" yet
    time.sleep(2.2)
    rig.clock.advance(40)
    rig.redrive()
    rig.drain()
    assert rig.amazon.status(shipment.external_id).lower() == "cancelled"
    assert rig.order("demo", oid).status == "cancelled"


def test_a_label_purchase_in_progress_is_refunded_once_it_completes(make_rig: MakeRig) -> None:
    rig = make_rig()
    rig.easypost.purchase_lag_s = 2.0
    oid = rig.shop.add_order([("POSTER", 1)])["id"]
    assert rig.deliver("demo", "orders/paid", oid) == 200
    rig.drain()
    (shipment,) = rig.shipments("demo", oid)
    assert shipment.state == "submitting"  # the purchase answered without a label
    rig.shop.cancel_order(oid)
    assert rig.deliver("demo", "orders/cancelled", oid) == 200
    rig.drain()
    assert rig.order("demo", oid).status == "cancelling"
    time.sleep(2.2)
    rig.clock.advance(40)
    rig.redrive()
    rig.drain(skip=(names.SUBMIT,))
    (shipment,) = rig.shipments("demo", oid)
    assert shipment.state == "cancelled" and shipment.label.get("refund") == "submitted"
    assert rig.easypost.refunds == [shipment.label["shipment_id"]]
    assert rig.order("demo", oid).status == "cancelled"
