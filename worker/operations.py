"""Operator actions on parked work (`autofulfill retry`)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from worker import state
from worker.bootstrap import App
from worker.domain import ShipmentState
from worker.ledger import ShipmentRow
from worker.outbox import enqueue, publish
from worker.pipeline import RELEASE, SUBMIT
from worker.tracking import PUSH
from worker.views import find_order

S = ShipmentState
RESUME = {S.PENDING: SUBMIT, S.SUBMITTING: SUBMIT, S.SHIPPED: PUSH}


def retry_order(app: App, store: str, ref: str) -> str:
    """Put parked shipments back where they stopped (or re-release a parked order) and enqueue."""
    now = app.clock()
    outbox: list[int] = []
    with app.sessions() as session:
        row = find_order(session, store, ref)
        if row is None:
            return f"no order {ref} in store {store}"
        done: list[str] = []
        for s in row.shipments:
            if s.state != S.ATTENTION:
                continue
            back = S(s.parked_from) if s.parked_from in RESUME else S.PENDING
            _resume(session, s, back, now=now)
            oid = enqueue(session, RESUME[back], [s.id], f"retry:{s.id}:{now.timestamp()}")
            outbox += [oid] if oid else []
            done.append(f"shipment {s.n} -> {back}")
        if row.status == "attention" and not row.shipments:
            row.status, row.reason, row.hold_until, row.attempts = "held", "", now, 0
            oid = enqueue(session, RELEASE, [row.id], f"retry-release:{row.id}:{now.timestamp()}")
            outbox += [oid] if oid else []
            done.append("order -> held (release again)")
        elif done:
            row.status, row.reason = "routed", ""
        if done:
            state.event(session, row.id, "retry", actor="cli:retry", at=now, what=done)
        session.commit()
    publish(app.sessions, app.publisher, outbox, now=now)
    return "; ".join(done) if done else "nothing parked on this order"


def _resume(session: Session, s: ShipmentRow, back: S, *, now: object) -> None:
    s.state, s.reason, s.attempts = back, "", 0
    s.next_attempt_at = now  # type: ignore[assignment]
    state.release_lease(s)
