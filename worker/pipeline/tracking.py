"""Tracking: find what the fulfiller shipped, then write it to the store once.

The sweep asks each Amazon account only for orders changed since the last sweep (a cursor in the
ledger, with an overlap), so its cost grows with changed orders, not with all open orders.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from worker.app import App
from worker.domain import FulfillmentStatus, ItemOutcome, PushRequest, ShipmentState, Tracking
from worker.errors import AmbiguousOutcome, PermanentError, TransientError
from worker.ledger import cursors, state
from worker.ledger.models import OrderRow, ShipmentLineRow, ShipmentRow
from worker.ledger.outbox import enqueue, publish
from worker.logs import log
from worker.pipeline.fulfill import retry_later
from worker.pipeline.intake import external_id
from worker.pipeline.inventory_ledger import refresh_soon
from worker.pipeline.names import PUSH

S = ShipmentState
TRACKING_OVERLAP = timedelta(minutes=10)


def sweep(app: App, account: str, *, actor: str = "") -> int:
    """Look at this account's fulfillment orders changed since the last sweep; returns how many
    of our shipments got tracking. One sweep per account at a time; the cursor moves only when
    the whole sweep succeeded."""
    shipped = cursors.run_pass(app, f"amazon:{account}:tracking",
                               lambda last, started: _sweep(app, account, last, started, actor=actor))
    if shipped is None:
        log("track.skipped", account=account, reason="another sweep of this account is running")
    return shipped or 0


def _sweep(app: App, account: str, last: datetime | None, started: datetime, *, actor: str) -> int:
    fulfiller = app.fulfiller(account)
    if last is not None:
        since = last - TRACKING_OVERLAP
    else:  # first sweep: as far back as our oldest shipment still waiting for tracking
        with app.sessions() as session:
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
                shipped += 1
            session.commit()
    publish(app.sessions, app.publisher, outbox, now=app.clock())
    log("track.done", account=account, changed=len(changed), ours=len(ours), shipped=shipped)
    return shipped


def record_status(app: App, session: Session, row: ShipmentRow, status: FulfillmentStatus, *,
                  actor: str) -> int | None:
    """Apply what Amazon says to a submitted shipment; returns an outbox id when a push is due.

    The move out of ``submitted`` is a compare-and-set, so two sweeps never both record it."""
    now = app.clock()
    if not (status.is_dead or status.is_shipped):
        return None
    moved = session.execute(  # not while someone holds it (a cancel in flight at Amazon)
        update(ShipmentRow).where(ShipmentRow.id == row.id, ShipmentRow.state == S.SUBMITTED,
                                  or_(ShipmentRow.lease_token == "", ShipmentRow.lease_until.is_(None),
                                      ShipmentRow.lease_until < now))
        .values(state=S.SHIPPED if status.is_shipped else S.ATTENTION)
        .execution_options(synchronize_session=False))
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        return None
    session.refresh(row)
    if status.is_dead or status.partial:  # Amazon's units moved: the inventory sync looks early
        refresh_soon(session, row.account, [ln.seller_sku for ln in row.lines], now)
    if status.is_dead:
        # Nothing shipped and Amazon will not ship this id again: `retry` routes the lines anew.
        row.state = S.PENDING
        state.park(session, row, f"Amazon reports the fulfillment order {status.status}"
                   f"{_shortfall(status)}; fix it in Seller Central, then retry", now=now, actor=actor)
        return None
    if status.partial:
        _split_off_shortfall(app, session, row, status, actor=actor)
    row.tracking = [{"carrier": t.carrier, "number": t.number, "url": t.url} for t in status.tracking]
    row.attempts = 0
    row.next_attempt_at = now + timedelta(seconds=app.lease_s)
    state.event(session, row.order_id, "shipped", shipment_id=row.id, actor=actor, at=now,
                shipment=row.external_id, tracking=[f"{t.carrier} {t.number}" for t in status.tracking])
    return enqueue(session, PUSH, [row.id], f"push:{row.id}:0")


def _shortfall(status: FulfillmentStatus) -> str:
    short = [f"{i.seller_sku} x{i.quantity - i.shipped} ({_why_short(i)})"
             for i in status.items if i.shipped < i.quantity]
    return f": not shipped {', '.join(short)}" if short else ""


def _why_short(item: ItemOutcome) -> str:
    parts = [f"{n} {word}" for n, word in ((item.unfulfillable, "unfulfillable"),
                                           (item.cancelled, "cancelled")) if n]
    return ", ".join(parts) or "not in a shipped package"


def _split_off_shortfall(app: App, session: Session, row: ShipmentRow, status: FulfillmentStatus, *,
                         actor: str) -> None:
    """Amazon shipped part of the shipment (``CompletePartialled``): keep what shipped on this
    shipment (its tracking goes to the store for those quantities only) and park the rest as a new
    shipment with Amazon's reason; `retry` routes it again once the merchant has fixed it."""
    shipped = {i.item_id: i.shipped for i in status.items}
    order: OrderRow = row.order
    missing = []
    for line in list(row.lines):
        got = min(shipped.get(line.line_id, line.quantity), line.quantity)
        if got < line.quantity:
            missing.append(ShipmentLineRow(line_id=line.line_id, sku=line.sku, seller_sku=line.seller_sku,
                                           quantity=line.quantity - got))
            if got:
                line.quantity = got
            else:
                row.lines.remove(line)
    if not missing:
        return
    n = order.next_n
    rest = ShipmentRow(order_id=order.id, n=n, route=row.route, state=S.PENDING,
                       external_id=external_id(app.config.store(order.store), order.platform_order_id, n),
                       account=row.account, speed=row.speed, lines=missing)
    order.shipments.append(rest)
    session.flush()
    state.event(session, order.id, "short_shipped", shipment_id=row.id, actor=actor, at=app.clock(),
                shipment=row.external_id, status=status.status,
                shipped=[f"{ln.sku} x{ln.quantity}" for ln in row.lines],
                not_shipped=[f"{ln.sku} x{ln.quantity}" for ln in missing], rest=rest.external_id)
    state.park(session, rest, f"Amazon shipped only part of {row.external_id} ({status.status})"
               f"{_shortfall(status)}; retry routes these lines again", now=app.clock(), actor=actor)
    order.status, order.reason = "attention", "Amazon shipped only part of a shipment"


def push(app: App, shipment_pk: int, *, actor: str = "") -> str:
    """Write the shipment's tracking to the store, once; returns the state afterwards."""
    now = app.clock()
    with app.sessions() as session:
        claim = state.claim_shipment(session, shipment_pk, (S.SHIPPED, S.LABEL_BOUGHT), now=now,
                                     lease_s=app.lease_s)
        if isinstance(claim, str):
            return claim
        row, token = claim.row, claim.token
        order: OrderRow = row.order
        cfg = app.config.store(order.store)
        request = PushRequest(
            order_id=order.platform_order_id,
            lines=tuple((ln.line_id, ln.quantity) for ln in row.lines),
            tracking=tuple(Tracking(t["carrier"], t["number"], t.get("url", "")) for t in row.tracking),
            notify_customer=cfg.notify_customer,
            final=all(s.state in (S.PUSHED, S.CANCELLED) for s in order.shipments if s.id != row.id),
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
