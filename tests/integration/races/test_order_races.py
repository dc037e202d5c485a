"""A store-side change that lands while a step works on the order is never overwritten by the step.

Each test forces the interleaving with a sandbox hook: the store changes while the step waits for
an answer from Amazon or the store, and the change is delivered through the real webhook receiver.
"""

from __future__ import annotations

from tests.integration.races.conftest import MakeRig
from tests.integration.races.rig import amazon, graphql
from worker.pipeline import names


def test_a_cancellation_during_release_ships_nothing(make_rig: MakeRig) -> None:
    rig = make_rig()
    oid = rig.shop.add_order([("TEE-RED-M", 1)])["id"]
    assert rig.deliver("demo", "orders/paid", oid) == 200

    def cancel_in_the_store() -> None:
        rig.shop.cancel_order(oid)
        assert rig.deliver("demo", "orders/cancelled", oid) == 200

    # release has read the order from the store and waits for Amazon's preview
    rig.amazon.intercept(amazon("/fulfillmentOrders/preview"), cancel_in_the_store)
    rig.drain()
    rig.redrive()
    rig.drain()
    assert rig.amazon.orders == {}
    assert rig.order("demo", oid).status == "cancelled"


def test_a_refund_during_release_sends_amazon_what_is_left(make_rig: MakeRig) -> None:
    rig = make_rig()
    order = rig.shop.add_order([("TEE-RED-M", 3)])
    oid, line = order["id"], order["line_items"][0]["id"]
    assert rig.deliver("demo", "orders/paid", oid) == 200

    def refund_two() -> None:
        rig.shop.refund_lines(oid, [(line, 2)])
        assert rig.deliver("demo", "orders/updated", oid) == 200

    rig.amazon.intercept(amazon("/fulfillmentOrders/preview"), refund_two)
    rig.drain()
    rig.clock.advance(1)
    rig.redrive()
    rig.drain()
    (created,) = rig.amazon.orders.values()
    assert [i["quantity"] for i in created.request["items"]] == [1]
    assert rig.order("demo", oid).status == "routed"


def test_a_cancellation_while_the_last_push_runs_is_not_overwritten_by_done(make_rig: MakeRig) -> None:
    rig = make_rig()
    oid = rig.shop.add_order([("POSTER", 1)])["id"]  # unmapped: a label
    assert rig.deliver("demo", "orders/paid", oid) == 200
    rig.drain(skip=(names.PUSH,))

    def cancel_in_the_store() -> None:
        rig.shop.cancel_order(oid)
        assert rig.deliver("demo", "orders/cancelled", oid) == 200

    rig.shop.intercept(graphql("CreateFulfillment"), cancel_in_the_store, before=False)
    rig.drain()
    rig.clock.advance(60)
    rig.redrive()
    rig.drain()
    order = rig.order("demo", oid)
    assert order.status != "done"
    (label,) = [s for s in order.shipments if s.route == "self_ship"]
    assert label.label.get("refund"), "the unused label must be refunded"
