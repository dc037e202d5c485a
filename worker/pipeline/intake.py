"""Ingest and release: the order's way from a webhook or a poll to a plan of shipments.

``ingest`` is the one function both doors feed (webhook receiver, reconciliation poller): one
transaction writes the order row and, when the order may ship now, an outbox row for ``release``.
``release`` reads the order again from the store (the webhook was only a notification), routes it
and writes the shipments with their submit tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker.app import App
from worker.config import StoreConfig
from worker.domain import Order, Route, ShipmentState
from worker.errors import PermanentError, TransientError
from worker.ledger import state
from worker.ledger.codec import order_from_json, order_to_json
from worker.ledger.models import LineRow, OrderRow, ShipmentLineRow, ShipmentRow
from worker.ledger.outbox import enqueue, publish
from worker.pipeline import routing
from worker.pipeline.availability import Comparison, compare_costs, unavailable_at_amazon
from worker.pipeline.names import ADJUST, CANCEL, RELEASE, SUBMIT

OPEN_STATUSES = ("waiting", "held")
ADJUSTABLE = ("routed", "attention", "adjusting")  # a refund may still change what ships


@dataclass(frozen=True)
class Ingested:
    order_pk: int
    created: bool
    status: str
    outbox_ids: tuple[int, ...] = ()


def external_id(store: StoreConfig, platform_order_id: str, n: int) -> str:
    """``{order_prefix}-{platform order id}-{n}``: the MCF id and the label reference (≤ 40 chars)."""
    value = f"{store.order_prefix}-{platform_order_id}-{n}"
    if len(value) > 40:
        raise PermanentError(f"fulfillment id {value!r} is longer than 40 characters: "
                             "use a shorter order_prefix")
    return value


def ingest(app: App, session: Session, store_name: str, order: Order, *, source: str,
           actor: str = "") -> Ingested:
    """Record the order (once per store + id) and decide whether it waits, is held or goes on.

    Runs inside the caller's transaction; the caller commits, then publishes ``outbox_ids``.
    Idempotent: the same order seen again only refreshes what we know of it."""
    cfg = app.config.store(store_name)
    now = app.clock()
    row = _order_row(session, store_name, order.platform_order_id)
    created = row is None
    if row is None:
        row = OrderRow(store=store_name, platform_order_id=order.platform_order_id, number=order.number,
                       status="waiting", payload=order_to_json(order), created_at=now, updated_at=now)
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:  # another door ingested it a moment ago
            created = False
            row = _order_row(session, store_name, order.platform_order_id)
            assert row is not None
        else:
            state.event(session, row.id, "ingested", actor=actor, at=now, source=source,
                        number=order.number, store=store_name)
    if row.status not in OPEN_STATUSES:
        outbox_ids: tuple[int, ...] = ()
        if order.cancelled and not row.payload.get("cancelled") and row.status != "cancelled":
            row.payload = {**row.payload, "cancelled": True}
            row.status, row.hold_until = "cancelling", now
            state.event(session, row.id, "cancelled_in_store", actor=actor, at=now, source=source)
            oid = enqueue(session, CANCEL, [row.id], f"cancel:{row.id}")
            outbox_ids = (oid,) if oid else ()
        elif row.status in ADJUSTABLE and (why := _lowered(row, order)):
            now_qty = {ln.line_id: ln.quantity for ln in order.lines}  # seen: not a reason again
            lines = [{**ln, "quantity": min(int(ln["quantity"]), now_qty.get(ln["line_id"], 0))}
                     for ln in row.payload.get("lines", ())]
            row.payload = {**row.payload, "refunds": max(order.refunds, int(row.payload.get("refunds", 0))),
                           "lines": lines}
            row.status, row.hold_until, row.changes = "adjusting", now, row.changes + 1
            state.event(session, row.id, "refunded_in_store", actor=actor, at=now, source=source, reason=why)
            oid = enqueue(session, ADJUST, [row.id], f"adjust:{row.id}:{order.refunds}:{now.timestamp()}")
            outbox_ids = (oid,) if oid else ()
        return Ingested(row.id, created, row.status, outbox_ids)
    row.payload = order_to_json(order)
    row.number = order.number
    ok, why = routing.eligible(order, cfg)
    outbox: list[int] = []
    if order.cancelled:
        row.status, row.reason = "cancelled", why
        state.event(session, row.id, "cancelled", actor=actor, at=now, source=source)
    elif not ok:
        if row.status != "waiting" or created or row.reason != why:
            state.event(session, row.id, "waiting", actor=actor, at=now, reason=why, source=source)
        row.status, row.reason = "waiting", why
    elif row.status == "waiting":
        row.status, row.reason = "held", ""
        row.hold_until = row.created_at + timedelta(minutes=cfg.hold_minutes)
        state.event(session, row.id, "eligible", actor=actor, at=now, reason=why, source=source,
                    hold_until=row.hold_until.isoformat() if cfg.hold_minutes else None)
        if row.hold_until <= now:
            oid = enqueue(session, RELEASE, [row.id], f"release:{row.id}")
            outbox += [oid] if oid else []
    return Ingested(row.id, created, row.status, tuple(outbox))


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
        publish(app.sessions, app.publisher, result.outbox_ids, now=app.clock())
    return result


def _order_row(session: Session, store: str, platform_order_id: str) -> OrderRow | None:
    return session.scalar(select(OrderRow).where(OrderRow.store == store,
                                                 OrderRow.platform_order_id == platform_order_id))


def release(app: App, order_pk: int, *, actor: str = "") -> str:
    """Route a held order whose hold is over: read it again from the store, plan, write shipments.

    Safe to call any number of times: only the worker holding the order's lease acts, and only
    while the order is still ``held``. Returns the order's status afterwards."""
    now = app.clock()
    with app.sessions() as session:
        claim = state.claim_order(session, order_pk, "held", now=now, lease_s=app.lease_s)
        if isinstance(claim, str):
            return claim
        row = claim.row
        cfg = app.config.store(row.store)
        try:
            fresh = app.store(row.store).fetch_order(row.platform_order_id)
        except TransientError as exc:
            return _retry_release(app, session, row, exc, actor=actor)
        except PermanentError as exc:
            fresh = None
            why = f"could not read the order from the store: {exc}"
        else:
            why = "order no longer exists in the store"
        if fresh is None:
            row.status, row.reason = "attention", why
            state.release_lease(row)
            state.event(session, row.id, "parked", actor=actor, at=now, reason=why)
            session.commit()
            return row.status
        ok, reason = routing.eligible(fresh, cfg)
        row.payload = order_to_json(fresh)
        if not ok:
            row.status, row.reason = ("cancelled" if fresh.cancelled else "waiting"), reason
            state.release_lease(row)
            state.event(session, row.id, row.status, actor=actor, at=now, reason=reason, source="release")
            session.commit()
            return row.status
        try:
            answer = unavailable_at_amazon(app, session, row, fresh, cfg, actor=actor)
            compared = compare_costs(app, session, row, fresh, answer, actor=actor)
        except TransientError as exc:
            return _retry_release(app, session, row, exc, actor=actor)
        row.lines.clear()
        session.flush()
        for line in fresh.lines:
            row.lines.append(LineRow(line_id=line.line_id, sku=line.sku, quantity=line.quantity,
                                     title=line.title))
        outbox = plan_shipments(app, session, row, fresh, cfg, actor=actor, unavailable=answer.unavailable,
                                compared=compared)
        state.release_lease(row)
        session.commit()
    publish(app.sessions, app.publisher, outbox, now=now)
    return row.status


def _retry_release(app: App, session: Session, row: OrderRow, exc: TransientError, *, actor: str) -> str:
    """The store or Amazon could not be asked: the order stays held and is released again later."""
    now = app.clock()
    wait = state.backoff_s(row.attempts, retry_after=exc.retry_after)
    row.hold_until = now + timedelta(seconds=wait)
    state.release_lease(row)
    state.event(session, row.id, "release_retry", actor=actor, at=now, error=str(exc),
                retry_in_s=round(wait, 1))
    session.commit()
    return row.status


def plan_shipments(app: App, session: Session, row: OrderRow, order: Order, cfg: StoreConfig, *,
                   actor: str, unavailable: frozenset[str] = frozenset(),
                   compared: Comparison | None = None) -> list[int]:
    """Route ``order``'s lines and write the shipments (numbered after any existing ones), parking
    what cannot go anywhere and enqueueing the rest. Returns outbox ids to publish after commit."""
    now = app.clock()
    compared = compared or Comparison()
    plan = routing.plan(order, cfg, unavailable=unavailable, label_is_cheaper=compared.label_is_cheaper)
    state.event(session, row.id, "routed", actor=actor, at=now, reasons=list(plan.reasons))
    outbox: list[int] = []
    for planned in plan.shipments:
        n = row.next_n  # each shipment is appended below, so this moves on
        shipment = ShipmentRow(
            order_id=row.id, n=n, route=str(planned.route),
            state=ShipmentState.PENDING, external_id=external_id(cfg, row.platform_order_id, n),
            account=(cfg.amazon or "") if planned.route == Route.FBA else (cfg.labels or ""),
            speed=planned.speed, next_attempt_at=now + timedelta(seconds=app.lease_s),
            lines=[ShipmentLineRow(line_id=pl.line.line_id, sku=pl.line.sku, seller_sku=pl.seller_sku,
                                   quantity=pl.line.quantity) for pl in planned.lines],
        )
        quote = compared.quote
        if (quote is not None and planned.route == Route.SELF_SHIP and not planned.parked_reason
                and quote.reference == shipment.external_id
                and quote.lines == {(pl.line.line_id, pl.line.quantity) for pl in planned.lines}):
            shipment.label = dict(quote.label)  # buy the compared quote: no second rating
        row.shipments.append(shipment)
        session.flush()
        state.event(session, row.id, "shipment_planned", shipment_id=shipment.id, actor=actor, at=now,
                    shipment=shipment.external_id, route=shipment.route, speed=planned.speed,
                    lines=[f"{pl.line.sku} x{pl.line.quantity}" for pl in planned.lines],
                    label_quote=shipment.label.get("shipment_id") or None)
        if planned.parked_reason:
            state.park(session, shipment, planned.parked_reason, now=now, actor=actor)
        else:
            oid = enqueue(session, SUBMIT, [shipment.id], f"submit:{shipment.id}:0")
            outbox += [oid] if oid else []
    live = [s for s in row.shipments if s.state != ShipmentState.CANCELLED]
    everything_parked = all(s.state == ShipmentState.ATTENTION for s in live)
    row.status = "attention" if everything_parked else "routed"
    row.reason = "every line is parked" if everything_parked else ""
    return outbox


def replan_parked(app: App, session: Session, row: OrderRow, parked: list[ShipmentRow], *,
                  actor: str) -> list[int]:
    """Route the lines of shipments parked before anything was sent again, under the current
    config (e.g. after a SKU was added to sku_map). The old shipments are closed as cancelled."""
    now = app.clock()
    wanted: dict[str, int] = {}  # line id -> the parked quantity (a short shipment parks part of a line)
    for s in parked:
        for ln in s.lines:
            wanted[ln.line_id] = wanted.get(ln.line_id, 0) + ln.quantity
        s.state, s.reason, s.next_attempt_at = ShipmentState.CANCELLED, "re-planned by retry", None
        state.event(session, row.id, "replanned", shipment_id=s.id, actor=actor, at=now,
                    shipment=s.external_id)
    order = stored_order(row)
    subset = replace(order, lines=tuple(replace(ln, quantity=wanted[ln.line_id])
                                        for ln in order.lines if ln.line_id in wanted))
    return plan_shipments(app, session, row, subset, app.config.store(row.store), actor=actor)


def stored_order(row: OrderRow) -> Order:
    return order_from_json(row.payload)
