"""Ingest: the one door both the webhook receiver and the reconciliation poller feed.

One transaction writes what the store says about an order and decides what follows: an order
that may ship goes ``held`` (and ``release`` is enqueued when its hold is over); a store-side
change to an order we already acted on — a cancellation, a refund, an edited address — moves it
to the step that must act (``cancelling``, ``adjusting``) or records it for the steps still to
come. Every write of the order's status is a compare-and-set on the status and ``changes`` it
read, and every change that matters bumps ``changes``: a step working on the order meanwhile
(release, adjust) then finds it moved and drops its result instead of writing over it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session, make_transient_to_detached

from worker.app import App
from worker.config import StoreConfig
from worker.domain import Order
from worker.errors import PermanentError
from worker.ledger import state
from worker.ledger.codec import order_from_json, order_to_json
from worker.ledger.models import OrderRow, insert_new
from worker.ledger.outbox import enqueue, publish_for
from worker.pipeline import routing
from worker.pipeline.names import ADJUST, CANCEL, NEW_RELEASE, RELEASE

OPEN_STATUSES = ("waiting", "held")  # nothing was sent yet
ADJUSTABLE = ("routed", "attention", "adjusting")  # a refund may still change what ships
SETTLED = ("cancelling", "cancelled")  # a cancellation is the last word
RACES = 5  # compare-and-set attempts before giving up (the caller answers 503 / retries the pass)


@dataclass(frozen=True)
class Ingested:
    order_pk: int  # 0: not recorded (a poll's order that was never ours and cannot ship)
    created: bool
    status: str
    outbox_ids: tuple[int, ...] = ()


@dataclass
class _Change:
    """What ingest writes: order columns, timeline events, tasks (name, dedupe key)."""

    values: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    tasks: list[tuple[str, str]] = field(default_factory=list)  # dedupe key: "{id}" is the order's id


def external_id(store: StoreConfig, platform_order_id: str, n: int) -> str:
    """``{order_prefix}-{platform order id}-{n}``: the MCF id and the label reference (≤ 40 chars)."""
    value = f"{store.order_prefix}-{platform_order_id}-{n}"
    if len(value) > 40:
        raise PermanentError(f"fulfillment id {value!r} is longer than 40 characters: "
                             "use a shorter order_prefix")
    return value


def ingest(app: App, session: Session, store_name: str, order: Order, *, source: str,
           actor: str = "") -> Ingested:
    """Record the order (once per store + id) and decide what follows.

    Runs inside the caller's transaction; the caller commits, then publishes ``outbox_ids``.
    Idempotent: the same order seen again changes nothing. A poll (``source == "poll"``) does not
    record an order it never saw that cannot ship now (unpaid, cancelled, refunded, fulfilled
    elsewhere): the poll lists every status, and only what is ours or may become ours counts."""
    cfg = app.config.store(store_name)
    now = app.clock()
    row = _order_row(session, store_name, order.platform_order_id)
    if row is None:
        if source == "poll" and not routing.eligible(order, cfg)[0]:
            return Ingested(0, False, "skipped")
        created = _create(session, store_name, order, cfg, now=now, source=source, actor=actor,
                          backstop_s=app.backstop_s)
        if created is not None:
            return created
        row = _order_row(session, store_name, order.platform_order_id)  # another door, a moment ago
        assert row is not None
    for _ in range(RACES):
        change = _decide(row, order, cfg, now=now, created=False, source=source, backstop_s=app.backstop_s)
        if not change.values:
            return Ingested(row.id, False, row.status)
        expect = {"status": row.status, "changes": row.changes}
        if state.cas(session, row, expect=expect, values=change.values):
            return _follow_up(session, row, change, created=False, now=now, actor=actor)
        session.refresh(row)  # a step moved the order meanwhile: decide again on what is there now
    raise RuntimeError(f"order {order.platform_order_id}: lost {RACES} races in a row; try again")


def _create(session: Session, store_name: str, order: Order, cfg: StoreConfig, *, now: datetime,
            source: str, actor: str, backstop_s: float) -> Ingested | None:
    """A new order, inserted with its first decision already made (one ``INSERT … ON CONFLICT DO
    NOTHING``: nobody else can have seen it yet); None when another door inserted it first."""
    values: dict[str, Any] = {
        "store": store_name, "platform_order_id": order.platform_order_id, "number": order.number,
        "status": "new", "reason": "", "hold_until": None, "payload": order_to_json(order),
        "lease_token": "", "lease_until": None, "attempts": 0, "changes": 0, "created_at": now,
        "updated_at": now}
    change = _decide(OrderRow(**values), order, cfg, now=now, created=True, source=source,
                     backstop_s=backstop_s)
    values.update(change.values)
    new_id = insert_new(session, OrderRow, **values)
    if new_id is None:
        return None
    row = OrderRow(id=new_id, **values)  # the row as written, known to the session without a read
    make_transient_to_detached(row)
    session.add(row)
    change.events.insert(0, ("ingested", {"source": source, "number": order.number, "store": store_name}))
    return _follow_up(session, row, change, created=True, now=now, actor=actor)


def _follow_up(session: Session, row: OrderRow, change: _Change, *, created: bool, now: datetime,
               actor: str) -> Ingested:
    """The timeline events and the tasks of a change just written."""
    for kind, detail in change.events:
        state.event(session, row.id, kind, actor=actor, at=now, **detail)
    outbox = [enqueue(session, task, [row.id], key.format(id=row.id)) for task, key in change.tasks]
    return Ingested(row.id, created, row.status, tuple(o for o in outbox if o))


def _decide(row: OrderRow, order: Order, cfg: StoreConfig, *, now: datetime, created: bool,
            source: str, backstop_s: float) -> _Change:
    if row.status in (*OPEN_STATUSES, "new"):
        return _before_routing(row, order, cfg, now=now, created=created, source=source,
                               backstop_s=backstop_s)
    return _after_routing(row, order, now=now, source=source)


def _content(payload: dict[str, Any]) -> dict[str, Any]:
    """What a change of the order is judged by: not the store's own modification time, and not the
    lines' prices — Shopify's poll lists lines without them, and a paid order's prices change only
    with an edit that changes its total too. (``release`` reads the whole order again anyway.)"""
    content = {k: v for k, v in payload.items() if k != "updated_at"}
    if isinstance(content.get("lines"), list):
        content["lines"] = [{k: v for k, v in ln.items() if k != "unit_price"} if isinstance(ln, dict) else ln
                            for ln in content["lines"]]
    return content


def _before_routing(row: OrderRow, order: Order, cfg: StoreConfig, *, now: datetime, created: bool,
                    source: str, backstop_s: float) -> _Change:
    """Nothing was sent yet: the order's payload is the store's, and its status follows it."""
    change = _Change()
    payload = order_to_json(order)
    if _content(payload) != _content(row.payload) or row.status == "new":
        change.values = {"payload": payload, "number": order.number}
        if not created:
            change.values["changes"] = OrderRow.changes + 1  # a release in flight must read it again
    ok, why = routing.eligible(order, cfg)
    if order.cancelled:
        if row.status != "cancelled":
            change.values.update(status="cancelled", reason=why)
            change.events.append(("cancelled", {"source": source}))
    elif not ok:
        if row.status != "waiting" or row.reason != why:
            change.values.update(status="waiting", reason=why)
            change.events.append(("waiting", {"reason": why, "source": source}))
    elif row.status in ("waiting", "new"):
        hold_until = row.created_at + timedelta(minutes=cfg.hold_minutes)
        change.values.update(status="held", reason="", hold_until=hold_until)
        held = hold_until.isoformat() if cfg.hold_minutes else None
        change.events.append(("eligible", {"reason": why, "source": source, "hold_until": held}))
        if hold_until <= now:
            change.tasks.append((RELEASE, NEW_RELEASE + "{id}"))
            # Enqueued: the scheduler's back-stop looks again only if it comes to nothing, not on
            # its next tick (a burst's queued releases would each be sent twice).
            change.values["hold_until"] = now + timedelta(seconds=backstop_s)
    return change


def _after_routing(row: OrderRow, order: Order, *, now: datetime, source: str) -> _Change:
    """Something may have been sent: a change in the store goes to the step that must act."""
    change = _Change()
    if row.status in SETTLED:
        return change
    if order.cancelled and not row.payload.get("cancelled"):
        change.values = {"payload": {**row.payload, "cancelled": True}, "status": "cancelling",
                         "hold_until": now, "changes": OrderRow.changes + 1}
        change.events.append(("cancelled_in_store", {"source": source}))
        change.tasks.append((CANCEL, "cancel:{id}"))
        return change
    if row.status in ADJUSTABLE and (why := _lowered(row, order)):
        now_qty = {ln.line_id: ln.quantity for ln in order.lines}  # seen: not a reason again
        lines = [{**ln, "quantity": min(int(ln["quantity"]), now_qty.get(ln["line_id"], 0))}
                 for ln in row.payload.get("lines", ())]
        payload = {**row.payload, "refunds": max(order.refunds, int(row.payload.get("refunds", 0))),
                   "lines": lines}
        change.values = {"payload": payload, "status": "adjusting", "hold_until": now,
                         "changes": OrderRow.changes + 1}
        change.events.append(("refunded_in_store", {"source": source, "reason": why}))
        change.tasks.append((ADJUST, f"adjust:{{id}}:{order.refunds}:{now.timestamp()}"))
        return change
    new_address = order_to_json(order).get("address")
    if row.status != "done" and new_address != row.payload.get("address"):
        # Shipments not sent yet (and a `retry`) use the new address; those sent keep theirs.
        change.values = {"payload": {**row.payload, "address": new_address}, "changes": OrderRow.changes + 1}
        change.events.append(("address_changed_in_store", {"source": source}))
    return change


def _lowered(row: OrderRow, order: Order) -> str:
    """Why a routed order must be read again (a refund, a line quantity lower than planned), or ""."""
    known = int(row.payload.get("refunds", 0))
    if order.refunds > known:
        return f"the store recorded a refund ({order.refunds} in all)"
    now = {ln.line_id: ln.quantity for ln in order.lines}
    lower = [f"{ln['sku']} {ln['quantity']} -> {now.get(ln['line_id'], 0)}"
             for ln in row.payload.get("lines", ()) if now.get(ln["line_id"], 0) < int(ln["quantity"])]
    return f"line quantities went down: {', '.join(lower)}" if lower else ""


def ingest_and_publish(app: App, store_name: str, order: Order, *, source: str,
                       actor: str = "") -> Ingested:
    with app.sessions() as session:
        result = ingest(app, session, store_name, order, source=source, actor=actor)
        session.commit()
    if result.outbox_ids:
        publish_for(app, result.outbox_ids, now=app.clock())
    return result


def _order_row(session: Session, store: str, platform_order_id: str) -> OrderRow | None:
    row: OrderRow | None = session.scalar(_order_row_statement(), {"store": store, "oid": platform_order_id})
    return row


@functools.cache
def _order_row_statement() -> Any:
    """Built once: every webhook's first statement (its values are parameters)."""
    return select(OrderRow).where(OrderRow.store == bindparam("store"),
                                  OrderRow.platform_order_id == bindparam("oid"))


def stored_order(row: OrderRow) -> Order:
    return order_from_json(row.payload)
