"""Tracking: find what the fulfiller shipped, then write it to the store once.

The sweep asks each Amazon account only for orders changed since the last sweep (a cursor in the
ledger, with an overlap), so its cost grows with changed orders, not with all open orders.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors.errors import AmbiguousOutcome, PermanentError, TransientError
from worker import state
from worker.bootstrap import App
from worker.domain import FulfillmentStatus, PushRequest, ShipmentState, Tracking
from worker.fulfill import retry_later
from worker.ledger import CursorRow, OrderRow, ShipmentRow
from worker.outbox import enqueue, publish

S = ShipmentState
PUSH = "autofulfill.push"
TRACKING_OVERLAP = timedelta(minutes=10)


def get_cursor(session: Session, name: str) -> CursorRow | None:
    return session.get(CursorRow, name)


def set_cursor(session: Session, name: str, value: object) -> None:
    row = session.get(CursorRow, name)
    if row is None:
        session.add(CursorRow(name=name, value=value))
    else:
        row.value = value  # type: ignore[assignment]


def sweep(app: App, account: str, *, actor: str = "") -> int:
    """Look at this account's fulfillment orders changed since the last sweep; returns how many
    of our shipments got tracking. The cursor moves only when the whole sweep succeeded."""
    started = app.clock()
    name = f"amazon:{account}:tracking"
    fulfiller = app.fulfiller(account)
    with app.sessions() as session:
        cursor = get_cursor(session, name)
        if cursor is not None:
            since = cursor.value - TRACKING_OVERLAP
        else:  # first sweep: as far back as our oldest shipment still waiting for tracking
            oldest = session.scalar(select(ShipmentRow.created_at).where(
                ShipmentRow.account == account, ShipmentRow.state == S.SUBMITTED)
                .order_by(ShipmentRow.created_at).limit(1))
            since = (oldest or started) - TRACKING_OVERLAP
    changed = list(fulfiller.changed_since(since))
    shipped = 0
    outbox: list[int] = []
    with app.sessions() as session:
        ours = list(session.scalars(select(ShipmentRow).where(
            ShipmentRow.external_id.in_(changed), ShipmentRow.account == account,
            ShipmentRow.state == S.SUBMITTED))) if changed else []
        for row in ours:
            status = fulfiller.lookup(row.external_id)
            if status is None:
                continue
            oid = record_status(app, session, row, status, actor=actor)
            if oid:
                outbox.append(oid)
            shipped += row.state == S.SHIPPED
            session.commit()
        set_cursor(session, name, started)
        session.commit()
    publish(app.sessions, app.publisher, outbox, now=app.clock())
    return shipped


def record_status(app: App, session: Session, row: ShipmentRow, status: FulfillmentStatus, *,
                  actor: str) -> int | None:
    """Apply what Amazon says to a submitted shipment; returns an outbox id when a push is due."""
    now = app.clock()
    if status.is_dead:
        state.park(session, row, f"Amazon reports the fulfillment order {status.status}", now=now,
                   actor=actor)
        return None
    if not status.is_shipped:
        return None
    row.state = S.SHIPPED
    row.tracking = [{"carrier": t.carrier, "number": t.number, "url": t.url} for t in status.tracking]
    row.attempts = 0
    row.next_attempt_at = now + timedelta(seconds=app.lease_s)
    state.event(session, row.order_id, "shipped", shipment_id=row.id, actor=actor, at=now,
                shipment=row.external_id, tracking=[f"{t.carrier} {t.number}" for t in status.tracking])
    return enqueue(session, PUSH, [row.id], f"push:{row.id}:0")


def push(app: App, shipment_pk: int, *, actor: str = "") -> str:
    """Write the shipment's tracking to the store, once; returns the state afterwards."""
    now = app.clock()
    with app.sessions() as session:
        claimed = state.claim_shipment(session, shipment_pk, (S.SHIPPED,), now=now, lease_s=app.lease_s)
        row = session.get(ShipmentRow, shipment_pk)
        if row is None:
            return "missing"
        if claimed is None:
            return row.state
        token, _ = claimed
        order: OrderRow = row.order
        cfg = app.config.store(order.store)
        request = PushRequest(
            order_id=order.platform_order_id,
            lines=tuple((ln.line_id, ln.quantity) for ln in row.lines),
            tracking=tuple(Tracking(t["carrier"], t["number"], t.get("url", "")) for t in row.tracking),
            notify_customer=cfg.notify_customer,
        )
        try:
            result = app.store(order.store).push_tracking(request)
        except (TransientError, AmbiguousOutcome) as exc:  # ambiguous: the next try reads the store first
            retry_later(app, session, row, token, exc, actor=actor)
            return row.state
        except PermanentError as exc:
            session.refresh(row)
            if state.still_mine(row, token):
                state.park(session, row, f"the store refused the tracking: {exc}", now=app.clock(),
                           actor=actor)
                session.commit()
            return row.state
        session.refresh(row)
        if not state.still_mine(row, token):
            return row.state
        row.state = S.PUSHED
        row.store_fulfillment_id = result.fulfillment_id
        row.next_attempt_at = None
        state.release_lease(row)
        state.event(session, row.order_id, "pushed", shipment_id=row.id, actor=actor, at=app.clock(),
                    shipment=row.external_id, fulfillment=result.fulfillment_id,
                    already_there=True if result.already_there else None,
                    notify_customer=cfg.notify_customer)
        if all(s.state in (S.PUSHED, S.CANCELLED) for s in order.shipments):
            order.status = "done"
            state.event(session, order.id, "done", actor=actor, at=app.clock())
        session.commit()
        return row.state
