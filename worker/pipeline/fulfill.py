"""Submit a shipment exactly once: to Amazon MCF (fba) or as a bought label (self_ship).

The idempotency key (the deterministic ``sellerFulfillmentOrderId``) is in the ledger before the
call. A shipment found in ``submitting`` with an expired lease was left by a dead worker: the
outcome is unknown, so it is looked up first and created only if the fulfiller does not have it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session

from worker.app import App
from worker.domain import FulfillmentItem, FulfillmentRequest, Label, ShipmentState
from worker.errors import AmbiguousOutcome, ConnectorError, PermanentError, TransientError
from worker.ledger import state
from worker.ledger.models import ShipmentRow
from worker.ledger.outbox import enqueue, publish_for
from worker.pipeline import labels
from worker.pipeline.intake import stored_order
from worker.pipeline.names import PUSH
from worker.pipeline.routing import NO_SELF_SHIP, features_for

S = ShipmentState
LOOKUP_FIRST = timedelta(minutes=30)  # a submitted MCF order is looked up by id this long after
LEFT_TO_OTHERS = ("cancelling", "cancelled", "adjusting")  # order statuses in which nothing is sent


def build_request(app: App, row: ShipmentRow) -> FulfillmentRequest:
    order = stored_order(row.order)
    cfg = app.config.store(row.order.store)
    if order.address is None:
        raise PermanentError("order has no shipping address")
    return FulfillmentRequest(
        seller_fulfillment_order_id=row.external_id,
        displayable_order_id=order.number.lstrip("#"),
        displayable_order_date=order.created_at,
        displayable_comment=cfg.packing_slip_comment,
        speed=row.speed or "Standard",
        address=order.address,
        items=tuple(FulfillmentItem(seller_sku=ln.seller_sku, item_id=ln.line_id, quantity=ln.quantity)
                    for ln in row.lines),
        features=features_for(order, cfg),
        notification_emails=(order.email,) if order.email and cfg.notify_customer else (),
    )


def submit(app: App, shipment_pk: int, *, actor: str = "") -> str:
    """Send this shipment on its way exactly once: the MCF order (fba) or the label (self_ship).

    Returns the state afterwards. Safe to call any number of times (lease + lookup first)."""
    now = app.clock()
    with app.sessions() as session:
        # Committed with what follows it (every path below commits before any call goes out).
        claim = state.claim_shipment(session, shipment_pk, (S.PENDING, S.SUBMITTING), now=now,
                                     lease_s=app.lease_s, commit=False)
        if isinstance(claim, str):
            return claim
        row, token, was = claim.row, claim.token, claim.was
        if row.order.status in LEFT_TO_OTHERS:
            # A cancellation or refund is being acted on: that step decides what becomes of this
            # shipment (it waits for nobody to hold it); if it stays, the back-stop sends it later.
            row.attempts -= 1
            row.next_attempt_at = now + timedelta(seconds=app.backstop_s)
            state.release_lease(row)
            session.commit()
            return row.state
        if row.attempts > app.config.service.max_retries + 1:  # the last attempt ended unrecorded
            return give_up(app, session, row, actor=actor)
        fba = row.route == "fba"
        accounts = app.config.amazon if fba else app.config.labels
        if row.account not in accounts:
            state.park(session, row, f"no [amazon.{row.account}] account configured" if fba else NO_SELF_SHIP,
                       now=now, actor=actor)
            session.commit()
            return row.state
        if app.config.store(row.order.store).dry_run:
            return _dry_run(app, session, row, actor=actor)
        row.state = S.SUBMITTING
        row.sent_at = now
        row.next_attempt_at = now + timedelta(seconds=app.backstop_s)
        state.event(session, row.order_id, "submitting", shipment_id=row.id, actor=actor, at=now,
                    shipment=row.external_id, attempt=row.attempts, route=row.route,
                    recovering=True if was == S.SUBMITTING else None)
        session.commit()
        try:
            if fba:
                how = _send_to_mcf(app, row, recovering=was == S.SUBMITTING)
            else:
                how, label, path = labels.buy_label(app, session, row, token, actor=actor)
        except labels.LabelNotSaved as exc:  # bought: keep it, park, never loop
            _park_bought(app, session, row, token, exc, actor=actor)
            return row.state
        except (AmbiguousOutcome, TransientError) as exc:
            # Left in `submitting`: the next attempt looks it up before creating anything.
            retry_later(app, session, row, token, exc, actor=actor)
            return row.state
        except PermanentError as exc:
            if state.mine_to_write(session, row, token):
                why = f"Amazon refused the order: {exc}" if fba else f"no label bought: {exc}"
                state.park(session, row, why, now=app.clock(), actor=actor)
                session.commit()
            return row.state
        except state.LeaseLost:
            return row.state
        if fba:  # one statement: the lease is still ours, and the shipment is submitted
            request_id = getattr(app.fulfiller(row.account), "last_request_id", "") or row.request_id
            if not state.cas(session, row, expect={"lease_token": token}, values={
                    "state": S.SUBMITTED, "attempts": 0, "lease_token": "", "lease_until": None,
                    "next_attempt_at": app.clock() + LOOKUP_FIRST,  # the back-stop if no sweep sees it ship
                    "request_id": request_id}):
                session.rollback()  # taken over meanwhile: the new holder looks it up first
                return row.state
            state.event(session, row.order_id, "submitted", shipment_id=row.id, actor=actor,
                        at=app.clock(), shipment=row.external_id, how=how, request_id=request_id,
                        route=row.route)
            session.commit()
            return row.state
        if not state.mine_to_write(session, row, token):
            return row.state
        row.attempts = 0
        state.release_lease(row)
        outbox = _record_label(app, session, row, label, path, how, actor=actor)
        session.commit()
    publish_for(app, outbox, now=app.clock())
    return S.LABEL_BOUGHT


def _dry_run(app: App, session: Session, row: ShipmentRow, *, actor: str) -> str:
    """``dry_run = true``: say what would be sent, send nothing, close the shipment."""
    now = app.clock()
    lines = ", ".join(f"{ln.seller_sku or ln.sku} x{ln.quantity}" for ln in row.lines)
    if row.route == "fba":
        request = build_request(app, row)
        would = (f"create MCF order {row.external_id} ({request.speed}; {lines}; to "
                 f"{request.address.redacted()}; features {list(request.features) or 'none'})")
    else:
        request_ = labels.label_request(app, row)
        p = request_.parcel
        would = (f"buy a label ({app.config.labels[row.account].choose}) for {lines}, parcel "
                 f"{p.length_in}x{p.width_in}x{p.height_in} in {p.weight_oz} oz, to "
                 f"{request_.to_address.redacted()}")
    row.state, row.reason, row.next_attempt_at = S.CANCELLED, "dry run: nothing was sent", None
    state.release_lease(row)
    state.event(session, row.order_id, "dry_run", shipment_id=row.id, actor=actor, at=now,
                shipment=row.external_id, would=would)
    order = row.order
    if all(s.state in (S.CANCELLED, S.ATTENTION) for s in order.shipments):
        state.cas(session, order, expect={"status": ("routed", "attention")},
                  values={"status": "done", "reason": "dry run: nothing was sent"})
    session.commit()
    return row.state


def _send_to_mcf(app: App, row: ShipmentRow, *, recovering: bool) -> str:
    fulfiller = app.fulfiller(row.account)
    request = build_request(app, row)
    if recovering and fulfiller.lookup(row.external_id) is not None:
        return "found after an unknown outcome"
    fulfiller.submit(request)
    return "created"


def _record_label(app: App, session: Session, row: ShipmentRow, label: Label, path: Path, how: str, *,
                  actor: str) -> list[int]:
    """The label is bought: its tracking goes to the store now (push is enqueued)."""
    now = app.clock()
    row.state = S.LABEL_BOUGHT
    row.tracking = [{"carrier": label.tracking.carrier, "number": label.tracking.number,
                     "url": label.tracking.url}]
    row.label = {**row.label, "path": str(path), "cost": str(label.rate.amount),
                 "currency": label.rate.currency, "carrier": label.rate.carrier,
                 "service": label.rate.service}
    at_scan = app.config.labels[row.account].push_tracking == "first_scan"
    state.event(session, row.order_id, "label_bought", shipment_id=row.id, actor=actor, at=now,
                shipment=row.external_id, how=how, carrier=f"{label.rate.carrier}:{label.rate.service}",
                cost=f"{label.rate.amount} {label.rate.currency}", tracking=label.tracking.number,
                file=str(path), route=row.route,
                push="at the carrier's first scan" if at_scan else "now")
    if at_scan:  # the label sweep enqueues the push once the carrier has the parcel
        row.next_attempt_at = None
        return []
    row.next_attempt_at = now + timedelta(seconds=app.backstop_s)
    oid = enqueue(session, PUSH, [row.id], f"push:{row.id}:0")
    return [oid] if oid else []


def give_up(app: App, session: Session, row: ShipmentRow, *, actor: str) -> str:
    """Attempts that ended with nothing recorded (an unexpected error, a worker that died) count
    too: past the limit the shipment is parked (and so announced), not re-driven for ever."""
    state.park(session, row, f"gave up after {row.attempts - 1} attempts: the last ones ended without a "
               "result (see the worker's log); retry looks it up before sending anything again",
               now=app.clock(), actor=actor)
    session.commit()
    return row.state


def _park_bought(app: App, session: Session, row: ShipmentRow, token: str, exc: labels.LabelNotSaved, *,
                 actor: str) -> None:
    if not state.mine_to_write(session, row, token):
        return
    label = exc.label
    row.label = {**row.label, "tracking": label.tracking.number, "carrier": label.rate.carrier,
                 "service": label.rate.service, "cost": str(label.rate.amount),
                 "currency": label.rate.currency}
    state.park(session, row, f"label bought ({label.rate.carrier} {label.tracking.number}) but its file "
               f"could not be saved: {exc}; fix that, then retry (the label is looked up, not bought again)",
               now=app.clock(), actor=actor)
    session.commit()


def retry_later(app: App, session: Session, row: ShipmentRow, token: str, exc: ConnectorError, *,
                actor: str) -> None:
    """Schedule the next attempt in the ledger (the sweeper re-drives it), or park when out of tries."""
    now = app.clock()
    if not state.mine_to_write(session, row, token):
        return
    limit = app.config.service.max_retries
    if row.attempts > limit:
        state.park(session, row, f"gave up after {row.attempts} attempts: {exc}", now=now, actor=actor)
    else:
        wait = state.backoff_s(row.attempts, retry_after=getattr(exc, "retry_after", None))
        row.next_attempt_at = now + timedelta(seconds=wait)
        state.release_lease(row)
        state.event(session, row.order_id, "retry_scheduled", shipment_id=row.id, actor=actor, at=now,
                    shipment=row.external_id, error=str(exc), error_type=type(exc).__name__,
                    retry_in_s=round(wait, 1), request_id=exc.request_id)
    session.commit()
