"""A refund lowered the quantities of a routed order: ship only what is still wanted.

The store's refund is the truth, read again from the store (a webhook body may not carry the
refunded quantities: WooCommerce keeps them on a separate endpoint). What already left the
warehouse (shipped, pushed) stays as it is. Every other shipment that now asks for more than the
order still wants is undone like a cancellation (MCF ``cancelFulfillmentOrder``, label refund; too
late → parked for a person), and what is still wanted of its lines is routed again as new
shipments, after an MCF preview like a release. A shipment in the middle of a submission is
waited for (the order stays ``adjusting`` and is re-driven).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from worker.app import App
from worker.domain import Order, ShipmentState
from worker.errors import PermanentError, TransientError
from worker.ledger import state
from worker.ledger.codec import order_to_json
from worker.ledger.models import OrderRow, ShipmentRow
from worker.ledger.outbox import enqueue, publish_for
from worker.pipeline.availability import Answer, ask_amazon, record_answer
from worker.pipeline.cancel import GONE, RETRY_S, cancel_shipment
from worker.pipeline.names import CANCEL
from worker.pipeline.release import plan_shipments

S = ShipmentState


def adjust_order(app: App, order_pk: int, *, actor: str = "") -> str:
    """Bring an ``adjusting`` order's shipments down to what the store still wants shipped.
    Idempotent: every run starts from the store's order and the ledger's shipments."""
    now = app.clock()
    with app.sessions() as session:
        claim = state.claim_order(session, order_pk, "adjusting", now=now, lease_s=app.lease_s)
        if isinstance(claim, str):
            return claim
        row = claim.row
        mine = _Mine(claim.token, row.changes)
        try:
            fresh = app.store(row.store).fetch_order(row.platform_order_id)
            problem = "" if fresh is not None else "the order no longer exists in the store"
        except TransientError as exc:
            wait = state.backoff_s(row.attempts, retry_after=exc.retry_after)
            state.event(session, row.id, "adjust_retry", actor=actor, at=now, error=str(exc),
                        retry_in_s=round(wait, 1))
            return _finish(app, session, row, mine, "adjusting", row.reason, hold_s=wait)
        except PermanentError as exc:
            fresh, problem = None, f"could not read the order again after a refund: {exc}"
        if fresh is None:
            state.event(session, row.id, "parked", actor=actor, at=now, reason=problem)
            return _finish(app, session, row, mine, "attention", problem)
        if fresh.cancelled:
            row.payload = {**row.payload, "cancelled": True}
            state.event(session, row.id, "cancelled_in_store", actor=actor, at=now, source="adjust")
            oid = enqueue(session, CANCEL, [row.id], f"cancel:{row.id}")
            status = _finish(app, session, row, mine, "cancelling", "cancelled in the store", hold_s=0)
            if status == "cancelling":  # written, not dropped: the task is in the outbox
                publish_for(app, [oid] if oid else [], now=now)
            return status
        return _adjust(app, session, row, mine, fresh, actor=actor)


@dataclass(frozen=True)
class _Mine:
    """This run's hold on the order: its lease token, and the order's ``changes`` when it was
    taken (a newer refund seen meanwhile moves it: then this run's result is not the last word)."""

    token: str
    changes: int


def _adjust(app: App, session: Session, row: OrderRow, mine: _Mine, fresh: Order, *, actor: str) -> str:
    now = app.clock()
    left = {ln.line_id: ln.quantity for ln in fresh.lines}  # still wanted, not yet covered
    live = [s for s in row.shipments if s.state != S.CANCELLED]
    affected: list[ShipmentRow] = []
    def gone(s: ShipmentRow) -> bool:  # left the warehouse (parked after it too): a refund no longer counts
        return s.state in GONE or (s.state == S.ATTENTION and s.parked_from in GONE)

    for s in sorted(live, key=lambda s: (not gone(s), s.n)):  # shipped units count first
        if gone(s) or all(ln.quantity <= left.get(ln.line_id, 0) for ln in s.lines):
            for ln in s.lines:
                left[ln.line_id] = max(0, left.get(ln.line_id, 0) - ln.quantity)
        else:
            affected.append(s)
    waiting = False
    undone: list[str] = []
    for s in affected:
        waiting |= not cancel_shipment(app, session, s, actor=actor)
        session.commit()
        if s.state == S.CANCELLED:
            undone.append(s.external_id)
        elif s.state == S.ATTENTION and s.parked_from not in ("", S.PENDING):
            for ln in s.lines:  # could not be undone: those units ship anyway
                left[ln.line_id] = max(0, left.get(ln.line_id, 0) - ln.quantity)
    if waiting:  # a submission or push is in flight: look again shortly
        return _finish(app, session, row, mine, "adjusting", row.reason, hold_s=RETRY_S)
    again = replace(fresh, lines=tuple(replace(ln, quantity=left[ln.line_id]) for ln in fresh.lines
                                       if left.get(ln.line_id, 0) > 0))
    cfg = app.config.store(row.store)
    answer = Answer(frozenset())
    if again.lines:  # also what an earlier run undid and could not route yet: ask, writing nothing
        try:
            answer = ask_amazon(app, again, cfg)
        except TransientError as exc:
            wait = state.backoff_s(row.attempts, retry_after=exc.retry_after)
            state.event(session, row.id, "adjust_retry", actor=actor, at=now, error=str(exc),
                        retry_in_s=round(wait, 1))
            return _finish(app, session, row, mine, "adjusting", row.reason, hold_s=wait)
    row.payload = order_to_json(fresh)
    state.replace_lines(session, row, fresh.lines)
    state.event(session, row.id, "refund_adjusted", actor=actor, at=now,
                wanted=[f"{ln.sku} x{ln.quantity}" for ln in fresh.lines],
                undone=undone or None,
                routed_again=[f"{ln.sku} x{ln.quantity}" for ln in again.lines] or None)
    outbox: list[int] = []
    if again.lines:
        record_answer(session, row, answer, actor=actor, now=app.clock())
        outbox = plan_shipments(app, session, row, again, cfg, actor=actor, unavailable=answer.unavailable)
    status, reason = _settled(row)
    result = _finish(app, session, row, mine, status, reason)
    if result == status:
        publish_for(app, outbox, now=now)
    return result


def _settled(row: OrderRow) -> tuple[str, str]:
    live = [s for s in row.shipments if s.state != S.CANCELLED]
    if not live:
        return "cancelled", "every line was refunded"
    if all(s.state == S.PUSHED for s in live):
        return "done", ""
    if all(s.state == S.ATTENTION for s in live):
        return "attention", "every line is parked"
    if any(s.state == S.ATTENTION for s in live):
        return "attention", "a shipment needs a person"
    return "routed", ""


def _finish(app: App, session: Session, row: OrderRow, mine: _Mine, status: str, reason: str, *,
            hold_s: float | None = None) -> str:
    """Write the order's new status only if it is still ours, still ``adjusting`` and nothing newer
    was asked meanwhile. Otherwise this run's uncommitted work is dropped (what it undid stays
    undone) and the lease released at once: a cancellation runs next, or a newer refund re-runs
    the adjustment from the store's order. Returns the order's status."""
    session.expire(row, ["status", "reason", "hold_until", "lease_token", "lease_until"])
    values: dict[str, object] = {"status": status, "reason": reason, "lease_token": "", "lease_until": None}
    if hold_s is not None:
        values["hold_until"] = app.clock() + timedelta(seconds=hold_s)
    moved = session.execute(update(OrderRow).where(
        OrderRow.id == row.id, OrderRow.status == "adjusting", OrderRow.lease_token == mine.token,
        OrderRow.changes == mine.changes)
        .values(**values).execution_options(synchronize_session=False))
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        session.execute(update(OrderRow).where(OrderRow.id == row.id, OrderRow.lease_token == mine.token)
                        .values(lease_token="", lease_until=None)
                        .execution_options(synchronize_session=False))
    session.commit()
    session.refresh(row)
    return row.status
