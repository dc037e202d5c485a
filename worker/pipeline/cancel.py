"""A store cancelled an order that was already routed: undo what can be undone, say what cannot.

Per shipment: nothing sent yet → cancelled; an MCF order → ``cancelFulfillmentOrder`` (Amazon
allows it only before picking starts; later → parked "cancel too late, intercept manually");
a bought label → refund (void) it; something already shipped → parked for a person. A shipment
in the middle of a submission is waited for (the order stays ``cancelling`` and is re-driven).
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from worker.app import App
from worker.domain import ShipmentState
from worker.errors import AmbiguousOutcome, PermanentError, TransientError
from worker.ledger import state
from worker.ledger.models import ShipmentRow
from worker.pipeline.inventory_ledger import refresh_soon

S = ShipmentState
RETRY_S = 30.0
SETTLE = timedelta(minutes=2)  # an unanswered create or purchase shows within this, or never
GONE = (S.SHIPPED, S.PUSHED)  # left the warehouse


def cancel_order(app: App, order_pk: int, *, actor: str = "") -> str:
    """Cancel every shipment of a ``cancelling`` order. Idempotent; returns the order status."""
    now = app.clock()
    with app.sessions() as session:
        claim = state.claim_order(session, order_pk, "cancelling", now=now, lease_s=app.lease_s)
        if isinstance(claim, str):
            return claim
        order = claim.row
        waiting = False
        for row in list(order.shipments):
            if row.state == S.CANCELLED:
                continue
            waiting |= not cancel_shipment(app, session, row, actor=actor)
            session.commit()
        session.refresh(order)
        values: dict[str, object] = {"lease_token": "", "lease_until": None}
        if waiting:  # a submission is in flight: look again shortly
            values["hold_until"] = app.clock() + timedelta(seconds=RETRY_S)
        elif all(s.state == S.CANCELLED for s in order.shipments):
            values.update(status="cancelled", reason="cancelled in the store")
        else:
            values.update(status="attention",
                          reason="cancelled in the store; some shipments could not be undone")
        mine = {"status": "cancelling", "lease_token": claim.token}
        if state.cas(session, order, expect=mine, values=values):
            if values.get("status") == "cancelled":
                state.event(session, order.id, "cancelled", actor=actor, at=app.clock())
            session.commit()
        else:
            session.rollback()
        session.refresh(order)
        return order.status


def cancel_shipment(app: App, session: Session, row: ShipmentRow, *, actor: str) -> bool:
    """Undo one shipment; False when it must be tried again later."""
    if row.state == S.ATTENTION and row.parked_from in GONE:
        return True  # it left the warehouse and a person already has it (parked with its tracking)
    claim = state.claim_shipment(session, row.id, tuple(s for s in S if s != S.CANCELLED),
                                 now=app.clock(), lease_s=app.lease_s)
    if not isinstance(claim, state.Claim):
        return False  # someone holds it (a submit or push in flight)
    was, token = claim.was, claim.token
    try:
        if row.route == "fba":
            done = _cancel_mcf(app, row, was)
        else:
            done = _refund_label(app, row, was)
    except (TransientError, AmbiguousOutcome) as exc:
        if state.mine_to_write(session, row, token):
            state.release_lease(row)
            state.event(session, row.order_id, "cancel_retry", shipment_id=row.id, actor=actor,
                        at=app.clock(), shipment=row.external_id, error=str(exc))
        return False
    except PermanentError as exc:
        done = "park:" + ("cancel too late, intercept manually: " if row.route == "fba"
                          else "label could not be refunded: ") + str(exc)
    if not state.mine_to_write(session, row, token):
        return False  # taken over meanwhile: looked at again with the order
    if done.startswith("park:"):
        row.state = was
        state.park(session, row, done.removeprefix("park:"), now=app.clock(), actor=actor)
        return True
    row.state, row.reason, row.next_attempt_at = S.CANCELLED, "", None
    if row.route == "fba":  # Amazon's units are back: the inventory sync looks early
        refresh_soon(session, row.account, [ln.seller_sku for ln in row.lines], app.clock())
    state.release_lease(row)
    state.event(session, row.order_id, "shipment_cancelled", shipment_id=row.id, actor=actor,
                at=app.clock(), shipment=row.external_id, how=done)
    return True


def _cancel_mcf(app: App, row: ShipmentRow, was: str) -> str:
    if was in GONE:
        numbers = ", ".join(f"{t['carrier']} {t['number']}" for t in row.tracking) or "no tracking yet"
        return ("park:shipped although cancelled in the store: intercept the package or expect a "
                f"return (tracking {numbers})")
    fulfiller = app.fulfiller(row.account) if row.account in app.config.amazon else None
    if fulfiller is None:
        return "nothing was sent to Amazon"
    if was in (S.PENDING, S.SUBMITTING, S.ATTENTION):  # was anything created at Amazon?
        found = fulfiller.lookup(row.external_id)
        if found is None:
            _not_yet(app, row, "Amazon does not show")
            return "nothing was sent to Amazon"
        if found.is_dead:
            return f"Amazon had already ended it ({found.status})"
    fulfiller.cancel(row.external_id)
    return "cancelled at Amazon (cancelFulfillmentOrder)"


def _refund_label(app: App, row: ShipmentRow, was: str) -> str:
    shipment_id = row.label.get("shipment_id")
    if not shipment_id or row.account not in app.config.labels:
        return "no label was bought"
    provider = app.labeler(row.account)
    if provider.lookup(shipment_id) is None:
        _not_yet(app, row, "EasyPost shows no label for")
        return "the quoted label was never bought"
    status = provider.refund(shipment_id)
    row.label = {**row.label, "refund": status}
    return f"label refund {status}"


def _not_yet(app: App, row: ShipmentRow, says: str) -> None:
    """"Not found" is "never sent" only once an unanswered request had time to take effect:
    Amazon's reads lag its writes, and an EasyPost purchase may still be in progress. Until then
    (``SETTLE`` after the last create or purchase went out) look again later."""
    if row.sent_at is None:
        return  # never sent: pending shipments, or sent before sent_at was kept
    waited = app.clock() - row.sent_at
    if waited < SETTLE:
        ago = int(waited.total_seconds())
        raise TransientError(f"{says} {row.external_id} yet; a request sent {ago}s ago may still take "
                             "effect: looking again before calling it unsent")
