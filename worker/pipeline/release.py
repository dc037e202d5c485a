"""Release: a held order whose hold is over is read again from the store, routed, and its
shipments written with their submit tasks.

The store and Amazon (and, for ``prefer = "cheapest"``, the label provider) are asked first, with
nothing written: no ledger write transaction is open during an external call. The result is then
written in one transaction that keeps it only if the order is still ``held``, still ours (lease)
and unchanged in the store meanwhile (``changes``); otherwise it is dropped and the order released
again from what the store says now — a cancellation that landed meanwhile ships nothing.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from worker.app import App
from worker.config import StoreConfig
from worker.domain import Order, Route, ShipmentState
from worker.errors import PermanentError, TransientError
from worker.ledger import state
from worker.ledger.codec import order_to_json
from worker.ledger.models import OrderRow, ShipmentLineRow, ShipmentRow
from worker.ledger.outbox import enqueue, publish_for
from worker.pipeline import routing
from worker.pipeline.availability import (
    Answer,
    Comparison,
    ask_amazon,
    record_answer,
    record_comparison,
    weigh_costs,
)
from worker.pipeline.intake import external_id, stored_order
from worker.pipeline.names import RELEASE, SUBMIT


def release(app: App, order_pk: int, *, actor: str = "") -> str:
    """Route a held order whose hold is over: read it again from the store, plan, write shipments.

    Safe to call any number of times: only the worker holding the order's lease acts, and its
    result is kept only while the order is still ``held`` and unchanged. Returns the order's
    status afterwards."""
    now = app.clock()
    with app.sessions() as session:
        claim = state.claim_order(session, order_pk, "held", now=now, lease_s=app.lease_s)
        if isinstance(claim, str):
            return claim
        row, token, seen = claim.row, claim.token, claim.row.changes
        cfg = app.config.store(row.store)
        next_n = row.next_n  # read now: nothing may be written before the calls below
        # 1. Ask, writing nothing.
        answer, compared = Answer(frozenset()), Comparison()
        try:
            fresh = app.store(row.store).fetch_order(row.platform_order_id)
            problem = "" if fresh is not None else "order no longer exists in the store"
            if fresh is not None and routing.eligible(fresh, cfg)[0]:
                answer = ask_amazon(app, fresh, cfg)
                compared = weigh_costs(app, row.store, fresh, answer, next_n=next_n)
        except TransientError as exc:
            return _retry_release(app, session, row, token, exc, actor=actor)
        except PermanentError as exc:
            fresh, problem = None, f"could not read the order from the store: {exc}"
        # 2. Write, and keep it only if the order is still held, ours and unchanged.
        now = app.clock()
        outbox: list[int] = []
        if fresh is None:
            status, reason = "attention", problem
            state.event(session, row.id, "parked", actor=actor, at=now, reason=problem)
        else:
            row.payload = order_to_json(fresh)
            row.number = fresh.number
            ok, reason = routing.eligible(fresh, cfg)
            if not ok:
                status = "cancelled" if fresh.cancelled else "waiting"
                state.event(session, row.id, status, actor=actor, at=now, reason=reason, source="release")
            else:
                record_answer(session, row, answer, actor=actor, now=now)
                record_comparison(session, row, compared, actor=actor, now=now)
                state.replace_lines(session, row, fresh.lines)
                outbox = plan_shipments(app, session, row, fresh, cfg, actor=actor,
                                        unavailable=answer.unavailable, compared=compared)
                status, reason = planned_status(row)
        if not state.cas(session, row, expect={"status": "held", "lease_token": token, "changes": seen},
                         values={"status": status, "reason": reason, "lease_token": "", "lease_until": None}):
            return _dropped(app, session, row, token, actor=actor)
        session.commit()
    publish_for(app, outbox, now=app.clock())
    return status


def _retry_release(app: App, session: Session, row: OrderRow, token: str, exc: TransientError, *,
                   actor: str) -> str:
    """The store or Amazon could not be asked: the order stays held and is released again later."""
    now = app.clock()
    wait = state.backoff_s(row.attempts, retry_after=exc.retry_after)
    later = now + timedelta(seconds=wait)
    if state.cas(session, row, expect={"status": "held", "lease_token": token},
                 values={"hold_until": later, "lease_token": "", "lease_until": None}):
        state.event(session, row.id, "release_retry", actor=actor, at=now, error=str(exc),
                    retry_in_s=round(wait, 1))
    session.commit()
    return row.status


def _dropped(app: App, session: Session, row: OrderRow, token: str, *, actor: str) -> str:
    """The order moved while it was routed (a cancellation, a refund, an edit): nothing of this run
    is kept. The lease goes at once; a still-held order is released again from the store now."""
    session.rollback()
    now = app.clock()
    session.execute(update(OrderRow).where(OrderRow.id == row.id, OrderRow.lease_token == token)
                    .values(lease_token="", lease_until=None).execution_options(synchronize_session=False))
    session.refresh(row)
    outbox: list[int] = []
    state.event(session, row.id, "release_dropped", actor=actor, at=now, now=row.status,
                reason="the order changed in the store while it was routed; nothing was sent")
    if row.status == "held" and state.cas(session, row, expect={"status": "held", "changes": row.changes},
                                          values={"hold_until": now}):
        oid = enqueue(session, RELEASE, [row.id], f"release:{row.id}:{row.changes}")
        outbox += [oid] if oid else []
    session.commit()
    publish_for(app, outbox, now=now)
    return row.status


def planned_status(row: OrderRow) -> tuple[str, str]:
    """``routed``, or ``attention`` when every live shipment is parked."""
    live = [s for s in row.shipments if s.state != ShipmentState.CANCELLED]
    if all(s.state == ShipmentState.ATTENTION for s in live):
        return "attention", "every line is parked"
    return "routed", ""


def plan_shipments(app: App, session: Session, row: OrderRow, order: Order, cfg: StoreConfig, *,
                   actor: str, unavailable: frozenset[str] = frozenset(),
                   compared: Comparison | None = None) -> list[int]:
    """Route ``order``'s lines and write the shipments (numbered after any existing ones), parking
    what cannot go anywhere and enqueueing the rest. Returns outbox ids to publish after commit.
    Leaves the order's status to the caller (``planned_status``), who sets it by compare-and-set."""
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
            speed=planned.speed, next_attempt_at=now + timedelta(seconds=app.backstop_s),
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
