"""Operator actions on parked work (`autofulfill retry`)."""

from __future__ import annotations

from datetime import datetime

from worker.app import App
from worker.domain import ShipmentState
from worker.ledger import state
from worker.ledger.models import ShipmentRow
from worker.ledger.outbox import enqueue, publish
from worker.pipeline.names import PUSH, RELEASE, SUBMIT
from worker.pipeline.release import replan_parked
from worker.service.views import find_order

S = ShipmentState
RESUME = {S.PENDING: SUBMIT, S.SUBMITTING: SUBMIT, S.SHIPPED: PUSH, S.LABEL_BOUGHT: PUSH}


def retry_order(app: App, store: str, ref: str) -> str:
    """Re-drive a parked order from where it stopped.

    Lines parked by routing (nothing was sent) are routed again under the current config; a step
    that failed later resumes (a submit looks the MCF order up before creating anything); an order
    that could not be read from the store is released again."""
    now = app.clock()
    outbox: list[int] = []
    notes: list[str] = []
    with app.sessions() as session:
        row = find_order(session, store, ref)
        if row is None:
            return f"no order {ref} in store {store}"
        parked = [s for s in row.shipments if s.state == S.ATTENTION]
        unrouted = [s for s in parked if s.parked_from == S.PENDING]
        if unrouted:
            outbox += replan_parked(app, session, row, unrouted, actor="cli:retry")
            notes.append("re-planned " + ", ".join(f"shipment {s.n}" for s in unrouted))
        for s in parked:
            if s in unrouted:
                continue
            back = S(s.parked_from) if s.parked_from in RESUME else S.PENDING
            _resume(s, back, now=now)
            oid = enqueue(session, RESUME[back], [s.id], f"retry:{s.id}:{now.timestamp()}")
            outbox += [oid] if oid else []
            notes.append(f"shipment {s.n} -> {back}")
        live = [s for s in row.shipments if s.state != S.CANCELLED]
        if row.status == "attention" and not row.shipments:
            row.status, row.reason, row.hold_until, row.attempts = "held", "", now, 0
            oid = enqueue(session, RELEASE, [row.id], f"retry-release:{row.id}:{now.timestamp()}")
            outbox += [oid] if oid else []
            notes.append("order -> held (read from the store and routed again)")
        elif notes:
            still_parked = all(s.state == S.ATTENTION for s in live)
            row.status, row.reason = ("attention", "every line is parked") if still_parked else ("routed", "")
        if notes:
            state.event(session, row.id, "retry", actor="cli:retry", at=now, what=notes)
        session.commit()
        summary = "; ".join(notes) if notes else "nothing parked on this order"
        now_states = ", ".join(f"{s.n}:{s.route}:{s.state}" for s in row.shipments)
    publish(app.sessions, app.publisher, outbox, now=now)
    return f"{summary} (shipments now {now_states})" if notes else summary


def _resume(s: ShipmentRow, back: S, *, now: datetime) -> None:
    s.state, s.reason, s.attempts = back, "", 0
    s.next_attempt_at = now
    state.release_lease(s)
