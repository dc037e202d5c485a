"""What the fault-injection run (bench/chaos.py, tests/integration/e2e/test_chaos.py) found, each
reduced to its interleaving and forced here, as the other race tests are. All four are fixed: B1
by the scheduler settling a routed order whose only unfinished shipments are parked
(``sweeper._settle_finished``), B2 by push reading the order again when the store refuses the
tracking, B3 by a poll that keeps what it read as it goes (tests/integration/races/test_poll.py),
B4 by ``autofulfill run`` watching all its parts; B5 (the check's own mistake) by the pushed event
saying when push read the store (``store_checked_at``), which the check takes as the moment the
units were past recall.

B1 — an order stays ``routed`` for good with a shipment parked. A refund lands while the MCF
order is on its way; the tracking sweep records it shipped; ``adjust`` then runs, counts the
shipped (not yet pushed) shipment as gone and settles the order ``routed``; ``push`` reads the
store, finds the units refunded and parks the shipment "shipped although refunded in the store".
Nothing moves the order out of ``routed`` afterwards (push parks only the shipment, ingest sees
no new refund, the scheduler settles only orders whose shipments are all pushed or cancelled):
`orders --status attention` does not list it; only `status` counts it among "routed order(s) with
nothing moving". Seen in a chaos run (split, PostgreSQL, seed 573798116, order BOLT-1006).

B2 — a cancellation that lands between push's read of the order and its fulfillmentCreate parks
the shipped MCF shipment as "the store refused the tracking: ... Fulfillment order ... has an
unfulfillable status= cancelled" instead of "shipped although cancelled in the store: intercept the
package or expect a return (tracking ...)". The order ends `attention` ("cancelled in the store;
some shipments could not be undone") and nothing is lost, but the reason does not say what
happened or what to do (a `retry` would re-read the store and give the right one). Seen in a chaos
run (split, PostgreSQL, seed 382064379, Shopify order 1011).

B3 (no test here: it takes minutes of real time) — a poll pass that outruns its time limit never
completes again. ``cursors.run_pass`` moves the cursor only when a whole pass succeeds, so a pass
that fails part-way (the soft time limit, a transient error on a later page, a kill) keeps nothing
and the next one starts from the same ``last - poll_overlap_s``: its window is longer by the time
gone by, so it takes longer still. Shopify's poll is paced by the GraphQL cost bucket: ListOrders
with its lines costs ~7 points an order (~350 a page of 50) at 50 points/s, i.e. ~0.18 s per
order in the window (measured against the sandbox: 80 orders, 14.4 s a pass, all of it in the rate
limiter's sleep). Once a window holds more than ~(task_time_limit_s - 5) / 0.18 orders the poll is
dead for good, and every order whose webhook was lost meanwhile (and every cancellation seen only
by the poll) with it. Seen in a chaos run with the default 120 s overlap and a 2 s poll
(seed 718190932, task_time_limit_s 30): Shopify passes took 10-16 s at 40-50 orders, then every
pass hit the soft time limit for 15 minutes; 41 Shopify orders whose webhooks were dropped were
never ingested and one cancellation was never seen (a label bought and pushed for a cancelled
order, never refunded). With the defaults (300 s limit) the budget is ~1,600 orders a window: the
first start on a store with more orders than that updated in ``initial_lookback_hours`` (24 h), or
a restart after an outage that long at a busy store, never completes a Shopify poll. Reproduce:
``bench/chaos.py --kills 100 --poll-overlap 120``. Fix ideas: keep the cursor per page (Shopify's
keyset cursor is ordered by UPDATED_AT: advance to the last fully ingested updated_at), or bound a
pass and continue on the next tick.

B4 — `autofulfill run` goes on without its scheduler (or web receiver) when that part dies. It
waits on its parts in order, worker first (``for p in parts: p.wait()``), so it notices a dead
scheduler or web only when the worker exits: meanwhile nothing is re-driven, polled or swept
(or no webhook is answered), and the `run` process is alive, so no supervisor restarts it. Seen
in every `bench/chaos.py --mode run` kill of its scheduler or web part (the harness kills `run`
after 10 s and counts these kills apart).

B5 — a refund between push's read of the order and its write was judged "shipped, 0 wanted (the
refund was recorded before anything shipped)": the check timed a push by its ``pushed`` event,
written after the store answered, although nothing after the read can stop it. Seen in CI (split,
PostgreSQL, seed 897346652, WooCommerce order 1043).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.integration.races.conftest import MakeRig
from tests.integration.races.rig import graphql
from tests.integration.support import make_stack, stop
from worker.pipeline import names
from worker.sandbox.chaos import part_child
from worker.sandbox.stack import wait_for


def test_a_refund_adjusted_before_the_push_of_a_shipped_mcf_order_leaves_the_order_for_a_person(
        make_rig: MakeRig) -> None:
    rig = make_rig(ship_after_s=3600)
    order = rig.shop.add_order([("TEE-RED-M", 2)])
    oid, line = order["id"], order["line_items"][0]["id"]
    assert rig.deliver("demo", "orders/paid", oid) == 200
    rig.drain()
    (shipment,) = rig.shipments("demo", oid)
    assert shipment.state == "submitted"
    rig.shop.refund_lines(oid, [(line, 1)])
    assert rig.deliver("demo", "orders/updated", oid) == 200  # the order goes adjusting
    rig.amazon.ship_now(shipment.external_id)  # too late to cancel at Amazon
    rig.run(names.TRACK, "us")  # recorded shipped; a push is enqueued
    adjust = rig.take(names.ADJUST)
    assert adjust is not None
    rig.run(adjust[0], *adjust[1])  # adjust first: the shipped shipment counts as gone, the order goes routed
    assert rig.order("demo", oid).status == "routed"
    rig.drain()  # then the push: the store says refunded, the shipment is parked
    (shipment,) = rig.shipments("demo", oid)
    assert shipment.state == "attention"
    assert "shipped although refunded in the store" in shipment.reason
    rig.redrive()
    rig.drain()
    assert rig.shop.fulfillments(oid) == []
    assert rig.order("demo", oid).status == "attention"  # fails: it stays routed


def test_a_cancellation_between_the_push_read_and_its_write_parks_shipped_although_cancelled(
        make_rig: MakeRig) -> None:
    rig = make_rig(ship_after_s=3600)
    oid = rig.shop.add_order([("TEE-RED-M", 1)])["id"]
    assert rig.deliver("demo", "orders/paid", oid) == 200
    rig.drain()
    (shipment,) = rig.shipments("demo", oid)
    rig.amazon.ship_now(shipment.external_id)
    rig.run(names.TRACK, "us")

    def cancel_in_the_store() -> None:  # after push read the order, before its fulfillmentCreate
        rig.shop.cancel_order(oid)
        assert rig.deliver("demo", "orders/cancelled", oid) == 200

    rig.shop.intercept(graphql("CreateFulfillment"), cancel_in_the_store)
    rig.drain()
    rig.clock.advance(60)
    rig.redrive()
    rig.drain()
    assert rig.shop.fulfillments(oid) == []
    order = rig.order("demo", oid)
    assert order.status == "attention"
    (shipment,) = order.shipments
    assert shipment.state == "attention"
    assert "shipped although cancelled in the store" in shipment.reason, shipment.reason  # fails


def test_autofulfill_run_does_not_go_on_without_its_scheduler(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, "", "sqlite:///var/ledger.db", poll_interval_s=3600)
    try:
        stack.start("run")
        run = stack.procs["run"]
        wait_for(lambda: part_child(run.pid, "scheduler") is not None, 30, "the scheduler part")
        scheduler = part_child(run.pid, "scheduler")
        assert scheduler is not None
        os.kill(scheduler, signal.SIGKILL)
        # Expected: `run` stops its other parts and exits non-zero, so whatever supervises it
        # (systemd, docker) starts it again. It goes on instead, without a scheduler.
        wait_for(lambda: run.poll() is not None, 15, "`run` to exit after its scheduler died")
        assert run.returncode != 0
    finally:
        stop(stack)


def test_a_refund_between_the_push_read_and_its_write_is_judged_shipped_after_the_refund(
        make_rig: MakeRig) -> None:
    """B5 — the judge's side of push's read-then-write window. A WooCommerce label is pushed; its
    push read the order (nothing refunded), and before its note is written a line is refunded
    and the ledger records ``refunded_in_store``. The push cannot have known: the units left (the
    customer has the tracking) before the refund was there to read. The chaos check called it a
    wrong state ("the refund was recorded before anything shipped") because it timed the push by
    its ``pushed`` event, written after the store answered. Seen in CI (split, PostgreSQL, seed
    897346652, BOLT-1043: label bought 16:20:24, refund seen by the poll 16:20:26, pushed 16:20:27)."""
    import time

    from worker.sandbox.chaos import StoreOrder, check

    rig = make_rig(ship_after_s=3600,
                   extra={"bolt": 'labels = "main"', "bolt_routing": 'default = "self_ship"'})
    body = rig.woo.add_order([("CAP-NAVY", 1), ("SOCK-GRN", 1)])
    oid = body["id"]
    lines = {str(li["id"]): (str(li["sku"]), int(li["quantity"])) for li in body["line_items"]}
    sock = next(li for li, (sku, _) in lines.items() if sku == "SOCK-GRN")
    order = StoreOrder("bolt", str(oid), "label", lines, time.time())

    def refund_in_the_store() -> None:  # after push read the order, before its note is written
        rig.clock.advance(1)
        rig.woo.refund_lines(oid, [(sock, 1)])
        order.refunds.append((time.time(), sock, 1))
        assert rig.deliver("bolt", "order.updated", oid) == 200  # recorded refunded_in_store
        rig.clock.advance(1)

    rig.woo.intercept(lambda method, path, body: method == "POST" and f"orders/{oid}/notes" in path,
                      refund_in_the_store)
    assert rig.deliver("bolt", "order.created", oid) == 200
    rig.drain()
    for s in rig.shipments("bolt", oid):  # CAP-NAVY goes to Amazon (sku_map), SOCK-GRN gets a label
        if s.route == "fba":
            rig.amazon.ship_now(s.external_id)
    rig.run(names.TRACK, "us")
    rig.drain()
    kinds = [kind for kind, _ in rig.events("bolt", oid)]
    assert kinds.index("refunded_in_store") < kinds.index("pushed"), kinds
    assert rig.order("bolt", oid).status == "done", rig.events("bolt", oid)
    verdict = check(rig.stack, [order])
    assert verdict.problems == [], verdict.problems  # fails: "SOCK-GRN: 1 units shipped, 0 wanted"
    assert verdict.shipped_after_refund == 1
