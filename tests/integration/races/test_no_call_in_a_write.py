"""No external call runs inside a ledger write transaction: while a step waits for Amazon or
EasyPost, the webhook receiver still writes (on SQLite one writer at a time: a step holding the
write lock across a 30 s call would make every webhook wait, then fail)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from tests.integration.races.conftest import MakeRig
from tests.integration.races.rig import Rig, amazon
from worker.pipeline import names

HELD_S = 20.0  # how long the call may be held open; the webhook must be answered well before


def hold_open(rig: Rig, server: object, match: Callable[[str, str, bytes], bool]) -> tuple[
        threading.Event, threading.Event]:
    """The next matching request waits (in the sandbox) until ``release`` is set."""
    arrived, release = threading.Event(), threading.Event()

    def wait() -> None:
        arrived.set()
        release.wait(HELD_S)

    server.intercept(match, wait)  # type: ignore[attr-defined]
    return arrived, release


def webhook_meanwhile(rig: Rig, step: Callable[[], object], arrived: threading.Event,
                      release: threading.Event) -> None:
    worker = threading.Thread(target=step)
    worker.start()
    try:
        assert arrived.wait(10), "the step never made the call"
        other = rig.shop.add_order([("MUG-BLK", 1)])["id"]
        answered: list[int] = []
        door = threading.Thread(target=lambda: answered.append(rig.deliver("demo", "orders/paid", other)))
        door.start()
        door.join(5)
        assert answered == [200], "a webhook must be accepted while a step waits for an external call"
        assert rig.order("demo", other).status in ("held", "waiting")
    finally:
        release.set()
        worker.join(30)


def test_release_comparing_costs_holds_no_write_lock_while_it_quotes(make_rig: MakeRig) -> None:
    rig = make_rig(extra={"demo_routing": 'prefer = "cheapest"'})
    oid = rig.shop.add_order([("TEE-RED-M", 1)])["id"]
    assert rig.deliver("demo", "orders/paid", oid) == 200
    (task,) = [t for t in rig.published]
    rig.published.clear()
    arrived, release = hold_open(rig, rig.easypost, lambda m, path, body: m == "POST" and path.endswith(
        "/shipments"))
    webhook_meanwhile(rig, lambda: rig.run(task[0], *task[1]), arrived, release)
    assert rig.order("demo", oid).status == "routed"


def test_adjust_holds_no_write_lock_while_it_previews_the_rest(make_rig: MakeRig) -> None:
    rig = make_rig()
    order = rig.shop.add_order([("TEE-RED-M", 3)])
    oid, line = order["id"], order["line_items"][0]["id"]
    assert rig.deliver("demo", "orders/paid", oid) == 200
    rig.drain()
    rig.shop.refund_lines(oid, [(line, 1)])
    assert rig.deliver("demo", "orders/updated", oid) == 200
    (task,) = [t for t in rig.published]
    rig.published.clear()
    arrived, release = hold_open(rig, rig.amazon, amazon("/fulfillmentOrders/preview"))
    webhook_meanwhile(rig, lambda: rig.run(task[0], *task[1]), arrived, release)
    assert rig.order("demo", oid).status == "routed"


def test_no_step_holds_a_ledger_connection_while_it_calls_out(make_rig: MakeRig) -> None:
    """Not even a read: a step that touches a relation it never loaded after its commit opens a
    transaction there, and keeps it (and its pooled connection, and on PostgreSQL its snapshot)
    across the call that follows — during a burst, a thread waiting its turn at Amazon's quota
    held a connection "idle in transaction" while the pool ran dry for the rest."""
    from sqlalchemy import event

    rig = make_rig(ship_after_s=3600,
                   extra={"bolt": 'labels = "main"', "bolt_routing": 'default = "self_ship"'})
    engine = rig.app.sessions.kw["bind"]
    held: dict[int, int] = {}  # pooled connection -> the thread holding it

    @event.listens_for(engine, "checkout")
    def _out(_dbapi: object, record: object, _proxy: object) -> None:
        held[id(record)] = threading.get_ident()

    @event.listens_for(engine, "checkin")
    def _in(_dbapi: object, record: object) -> None:
        held.pop(id(record), None)

    steps = threading.get_ident()  # the rig runs every step in this thread
    calls: list[tuple[str, str, bool]] = []
    for server in (rig.shop, rig.woo, rig.amazon, rig.easypost):

        def note(method: str, path: str, _body: bytes, name: str = type(server).__name__) -> bool:
            calls.append((name, f"{method} {path.split('?')[0]}", steps in held.values()))
            return False  # only seen: nothing happens to the request

        server.intercept(note, lambda: None, times=-1)

    woo = rig.woo.add_order([("CAP-NAVY", 1), ("SOCK-GRN", 1)])["id"]
    shop = rig.shop.add_order([("TEE-RED-M", 2)])["id"]
    assert rig.deliver("bolt", "order.created", woo) == 200
    assert rig.deliver("demo", "orders/paid", shop) == 200
    rig.drain()
    for store, oid in (("bolt", woo), ("demo", shop)):
        for s in rig.shipments(store, oid):
            if s.route == "fba":
                rig.amazon.ship_now(s.external_id)
    rig.run(names.TRACK, "us")
    rig.drain()
    assert rig.order("bolt", woo).status == "done" and rig.order("demo", shop).status == "done"
    assert {name for name, _, _ in calls} >= {"ShopifySandbox", "WooSandbox", "AmazonSandbox",
                                              "EasyPostSandbox"}, calls
    assert [c for c in calls if c[2]] == [], ("calls made while the step held a ledger connection", calls)
