"""Leases that mean something: a dead worker's work is taken over as soon as its lease lapses, a
live one's lease is renewed, and a worker that lost its lease while it waited writes nothing."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import timedelta

from tests.integration.races.conftest import MakeRig
from worker.ledger import state
from worker.ledger.leases import Heartbeat
from worker.ledger.models import ShipmentRow
from worker.pipeline import fulfill, names
from worker.service.scheduler import dead_here


def test_a_stalled_worker_does_not_overwrite_the_new_owner_or_buy_a_second_label(make_rig: MakeRig) -> None:
    rig = make_rig()
    oid = rig.shop.add_order([("POSTER", 1)])["id"]
    assert rig.deliver("demo", "orders/paid", oid) == 200
    rig.drain(skip=(names.SUBMIT,))
    _, (shipment_pk,) = rig.take(names.SUBMIT) or ("", [0])
    arrived, resume = threading.Event(), threading.Event()

    def stall() -> None:  # worker A's quote hangs; the sandbox answers it only later
        arrived.set()
        resume.wait(20)

    rig.easypost.intercept(lambda m, path, body: m == "POST" and path.endswith("/shipments"), stall,
                           before=False)
    a = threading.Thread(target=fulfill.submit, args=(rig.app, shipment_pk), kwargs={"actor": "worker-a"})
    a.start()
    assert arrived.wait(10)
    rig.clock.advance(rig.app.lease_s + 1)  # A's lease lapses (no heartbeat renews a stalled task)
    assert rig.redrive() >= 1
    rig.drain(skip=(names.PUSH,))  # worker B takes it over, quotes and buys
    resume.set()
    a.join(20)
    (row,) = rig.shipments("demo", oid)
    assert row.state == "label_bought"
    assert rig.easypost.bought == 1, "the stalled worker must not buy a second label"
    assert rig.easypost.shipment(row.label["shipment_id"])["postage_label"] is not None


def test_a_dead_workers_lease_is_taken_over_when_it_lapses_not_after_the_back_stop(make_rig: MakeRig) -> None:
    rig = make_rig(ship_after_s=3600)
    oid = rig.shop.add_order([("TEE-RED-M", 1)])["id"]
    assert rig.deliver("demo", "orders/paid", oid) == 200
    rig.drain(skip=(names.SUBMIT,))
    _, (shipment_pk,) = rig.take(names.SUBMIT) or ("", [0])
    with rig.app.sessions() as s:  # a worker claims it, marks it submitting and dies (kill -9)
        claim = state.claim_shipment(s, shipment_pk, ("pending",), now=rig.clock(), lease_s=rig.app.lease_s)
        assert isinstance(claim, state.Claim)
        claim.row.state, claim.row.sent_at = "submitting", rig.clock()
        claim.row.next_attempt_at = rig.clock() + timedelta(seconds=rig.app.backstop_s)
        s.commit()
    assert rig.redrive() == 0  # its lease still runs
    rig.clock.advance(rig.app.lease_s + 1)
    assert rig.redrive() == 1  # lapsed: nobody renews it, so its holder is gone
    rig.drain()
    (row,) = rig.shipments("demo", oid)
    assert row.state == "submitted" and len(rig.amazon.orders) == 1


def test_the_heartbeat_renews_a_live_tasks_leases_until_its_deadline(make_rig: MakeRig) -> None:
    rig = make_rig(ship_after_s=3600)
    oid = rig.shop.add_order([("TEE-RED-M", 1)])["id"]
    assert rig.deliver("demo", "orders/paid", oid) == 200
    rig.drain(skip=(names.SUBMIT,))
    _, (shipment_pk,) = rig.take(names.SUBMIT) or ("", [0])
    lease_s = 3.0

    def lease_left() -> float:
        with rig.app.sessions() as s:
            row = s.get(ShipmentRow, shipment_pk)
            assert row is not None and row.lease_until is not None
            return (row.lease_until - rig.clock()).total_seconds()

    with Heartbeat(rig.app.sessions, rig.clock, lease_s, deadline_s=4.0), rig.app.sessions() as s:
        claim = state.claim_shipment(s, shipment_pk, ("pending",), now=rig.clock(), lease_s=lease_s)
        assert isinstance(claim, state.Claim)
        time.sleep(3.5)
        assert lease_left() > 1.0  # renewed past its first end
        time.sleep(3.5)  # the deadline passed: no more renewals
        assert lease_left() < 0


def test_a_scheduler_restarted_on_this_host_knows_its_predecessor_is_dead() -> None:
    import os
    import socket

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    host = socket.gethostname()
    assert dead_here(f"{host}:{gone.pid}:abc123")
    assert not dead_here(f"{host}:{os.getppid()}:abc123")  # alive
    assert not dead_here(f"another-host:{gone.pid}:abc123")  # cannot tell: wait for its TTL
