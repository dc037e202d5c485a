"""Submit a shipment to its fulfiller, exactly once.

The idempotency key (the deterministic ``sellerFulfillmentOrderId``) is in the ledger before the
call. A shipment found in ``submitting`` with an expired lease was left by a dead worker: the
outcome is unknown, so it is looked up first and created only if the fulfiller does not have it.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from connectors.errors import AmbiguousOutcome, ConnectorError, PermanentError, TransientError
from worker import state
from worker.bootstrap import App
from worker.domain import FulfillmentItem, FulfillmentRequest, ShipmentState
from worker.ledger import ShipmentRow
from worker.pipeline import stored_order
from worker.routing import NO_SELF_SHIP

S = ShipmentState


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
        features=tuple(cfg.routing.features),
        notification_emails=(order.email,) if order.email and cfg.notify_customer else (),
    )


def submit(app: App, shipment_pk: int, *, actor: str = "") -> str:
    """Create the MCF order for this shipment unless it exists; returns the state afterwards."""
    now = app.clock()
    with app.sessions() as session:
        claim = state.claim_shipment(session, shipment_pk, (S.PENDING, S.SUBMITTING), now=now,
                                     lease_s=app.lease_s)
        if isinstance(claim, str):
            return claim
        row, token, was = claim.row, claim.token, claim.was
        if row.route != "fba" or row.account not in app.config.amazon:
            # Labels (self-ship) arrive with their own issue; until then nothing can take it.
            state.park(session, row, NO_SELF_SHIP if row.route != "fba" else
                       f"no [amazon.{row.account}] account configured", now=now, actor=actor)
            session.commit()
            return row.state
        fulfiller = app.fulfiller(row.account)
        row.state = S.SUBMITTING
        row.next_attempt_at = now + timedelta(seconds=app.lease_s)
        state.event(session, row.order_id, "submitting", shipment_id=row.id, actor=actor, at=now,
                    shipment=row.external_id, attempt=row.attempts,
                    recovering=True if was == S.SUBMITTING else None)
        session.commit()
        try:
            request = build_request(app, row)
            found = fulfiller.lookup(row.external_id) if was == S.SUBMITTING else None
            if found is None:
                fulfiller.submit(request)
                how = "created"
            else:
                how = "found after an unknown outcome"
        except (AmbiguousOutcome, TransientError) as exc:
            # Left in `submitting`: the next attempt looks it up before creating anything.
            retry_later(app, session, row, token, exc, actor=actor)
            return row.state
        except PermanentError as exc:
            session.refresh(row)
            if state.still_mine(row, token):
                state.park(session, row, f"Amazon refused the order: {exc}", now=app.clock(), actor=actor)
                session.commit()
            return row.state
        session.refresh(row)
        if not state.still_mine(row, token):
            return row.state
        row.state = S.SUBMITTED
        row.attempts = 0
        row.next_attempt_at = None
        row.request_id = getattr(fulfiller, "last_request_id", "") or row.request_id
        state.release_lease(row)
        state.event(session, row.order_id, "submitted", shipment_id=row.id, actor=actor, at=app.clock(),
                    shipment=row.external_id, how=how, request_id=row.request_id, route=row.route)
        session.commit()
        return row.state


def retry_later(app: App, session: Session, row: ShipmentRow, token: str, exc: ConnectorError, *,
                actor: str) -> None:
    """Schedule the next attempt in the ledger (the sweeper re-drives it), or park when out of tries."""
    now = app.clock()
    session.refresh(row)
    if not state.still_mine(row, token):
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
