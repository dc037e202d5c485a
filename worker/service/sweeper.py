"""What the scheduler does on its clock: publish the outbox, re-drive due work, poll stores,
sweep tracking. Every long wait lives in the ledger (``hold_until``, ``next_attempt_at``), not in
delayed broker messages, so a broker restart or a dead worker loses nothing.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from worker.app import App
from worker.domain import ListedUntil, ShipmentState, Unreadable
from worker.errors import ConnectorError, PermanentError
from worker.ledger import cursors, state
from worker.ledger.models import OrderRow, ShipmentRow
from worker.ledger.outbox import enqueue, publish_for
from worker.logs import log
from worker.pipeline import intake, names
from worker.service import alerts

S = ShipmentState
# A poll resumes this far before the last page it read in full: orders changed in that page's last
# second (timestamps have whole seconds) that the next page would have listed are read again.
MARK_MARGIN = timedelta(seconds=1)
ORDER_TASKS = {"held": names.RELEASE, "cancelling": names.CANCEL, "adjusting": names.ADJUST}
STEP_TASKS = {S.PENDING: names.SUBMIT, S.SUBMITTING: names.SUBMIT, S.SUBMITTED: names.LOOKUP,
              S.SHIPPED: names.PUSH, S.LABEL_BOUGHT: names.PUSH}


def redrive_due(app: App, *, limit: int = 500) -> int:
    """Enqueue the release of held orders whose hold is over, the cancellation of cancelling
    orders, and every shipment step whose ``next_attempt_at`` has come (a retry, or the back-stop
    for a lost message / dead worker). Each enqueue pushes the due time on by a lease, so a lost
    message is sent again then, and a delivered one is not doubled meanwhile."""
    now = app.clock()
    outbox: list[int] = []
    with app.sessions() as session:
        # Due: its time has come and nobody holds it, or its holder died (a lapsed lease: nobody
        # renews it any more) — taken over at once, not after the back-stop.
        orders = session.scalars(select(OrderRow).where(
            OrderRow.status.in_(list(ORDER_TASKS)),
            or_(and_(OrderRow.hold_until <= now,
                     or_(OrderRow.lease_until.is_(None), OrderRow.lease_until < now)),
                and_(OrderRow.lease_token != "", OrderRow.lease_until < now))).limit(limit))
        for order in orders:
            key = f"{order.status}:{order.id}:{order.attempts}:{order.hold_until or now:%Y%m%d%H%M%S%f}"
            oid = enqueue(session, ORDER_TASKS[order.status], [order.id], key)
            if oid:
                outbox.append(oid)
                order.hold_until = now + timedelta(seconds=app.backstop_s)
                _let_go_of_lapsed(order, now)
        shipments = session.scalars(select(ShipmentRow).where(
            ShipmentRow.state.in_(list(STEP_TASKS)),
            or_(and_(ShipmentRow.next_attempt_at <= now,
                     or_(ShipmentRow.lease_until.is_(None), ShipmentRow.lease_until < now)),
                and_(ShipmentRow.lease_token != "", ShipmentRow.lease_until < now))).limit(limit))
        for row in shipments:
            due = row.next_attempt_at or now
            oid = enqueue(session, STEP_TASKS[S(row.state)], [row.id],
                          f"redrive:{row.id}:{row.state}:{row.attempts}:{due:%Y%m%d%H%M%S%f}")
            if oid:
                outbox.append(oid)
                # The back-stop fires again only if this message, too, comes to nothing.
                row.next_attempt_at = now + timedelta(seconds=app.backstop_s)
                _let_go_of_lapsed(row, now)
        session.commit()
        _settle_finished(session, now)
    publish_for(app, outbox, now=now)
    return len(outbox)


def _settle_finished(session: Session, now: datetime) -> None:
    """Routed orders with nothing left moving: done when every shipment is pushed or cancelled
    (each push sets that itself, but two pushes of one split order finishing together each see
    the other unfinished); ``attention`` when what is left is parked (e.g. a push that found the
    order refunded after Amazon shipped), so the order is listed for a person, not left routed."""
    still = [S.PUSHED, S.CANCELLED, S.ATTENTION]
    settled = session.scalars(select(OrderRow).where(
        OrderRow.status == "routed", ~OrderRow.shipments.any(ShipmentRow.state.not_in(still)),
        OrderRow.shipments.any(ShipmentRow.state.in_([S.PUSHED, S.ATTENTION]))).limit(100))
    for order in settled:
        parked = any(s.state == S.ATTENTION for s in order.shipments)
        values = ({"status": "attention", "reason": "a shipment needs a person"} if parked
                  else {"status": "done", "reason": ""})
        if state.cas(session, order, expect={"status": "routed"}, values=values):
            state.event(session, order.id, str(values["status"]), actor="scheduler", at=now,
                        reason=values["reason"] or None)
    session.commit()


def _let_go_of_lapsed(row: OrderRow | ShipmentRow, now: datetime) -> None:
    """A lease nobody renews belongs to a dead worker: cleared when its work is sent again (a
    holder that is only stuck finds it gone and writes nothing: ``state.mine_to_write``)."""
    if row.lease_token and row.lease_until is not None and row.lease_until < now:
        row.lease_token, row.lease_until = "", None


def enqueue_periodic(app: App, task: str, key: str, args: list[object], interval_s: float) -> bool:
    """Enqueue a periodic task once per interval slot (dedupe key = slot number)."""
    now = app.clock()
    slot = int(now.timestamp() // interval_s)
    with app.sessions() as session:
        oid = enqueue(session, task, args, f"{task}:{key}:{slot}")
        session.commit()
    if oid:
        publish_for(app, [oid], now=now)
    return oid is not None


def poll_store(app: App, store_name: str, *, actor: str = "") -> int:
    """One reconciliation pass: every order updated since the cursor (minus an overlap) goes
    through ``ingest``, exactly like a webhook. One pass per store at a time; returns how many
    orders were seen (0 when another pass is running)."""
    cfg = app.config.store(store_name)
    overlap = timedelta(seconds=app.config.service.poll_overlap_s)
    store = app.store(store_name)

    budget = app.config.service.task_time_limit_s / 2  # then stop, keep what was read, go on later

    # The cursor holds where the next pass starts: a pass that read everything leaves it at its
    # start minus the overlap (an order changed just before may show in the listing late); a pass
    # that stopped or failed part-way leaves it at its last mark, a few seconds before the last
    # page it read completely (so a store with more orders in an overlap than a pass can read
    # still moves on).
    def one_pass(last: datetime | None, started: datetime, progress: cursors.Progress) -> int:
        since = last if last else started - timedelta(hours=cfg.initial_lookback_hours)
        seen = 0
        began = time.monotonic()
        try:
            # WooCommerce disables a webhook after repeated failures: say so every pass until fixed.
            for warning in store.warnings():
                log("store.warning", level=30, store=store_name, warning=warning)
                alerts.store_warning(app, store_name, warning)
            for order in store.iter_orders(since):
                if isinstance(order, ListedUntil):  # everything changed before this is in
                    resume = order.at - MARK_MARGIN
                    if time.monotonic() - began > budget:
                        progress.stop(resume)
                        log("poll.stopped", store=store_name, seen=seen, until=resume.isoformat(),
                            reason="the pass took half its time limit; the next one goes on from here")
                        return seen
                    progress.mark(resume)
                    continue
                seen += 1
                if isinstance(order, Unreadable):
                    _unreadable(app, store_name, order.platform_order_id, order.reason)
                    continue
                try:
                    intake.ingest_and_publish(app, store_name, order, source="poll", actor=actor)
                except (DataError, IntegrityError, PermanentError) as exc:
                    # This order cannot be stored (a field over a column's size, ...): the others
                    # go on; the database being away is an OperationalError and ends the pass.
                    why = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                    _unreadable(app, store_name, order.platform_order_id, f"could not be recorded ({why})")
        except ConnectorError as exc:
            alerts.store_failed(app, store_name, exc)
            raise
        alerts.store_recovered(app, store_name)
        log("poll.done", store=store_name, seen=seen, since=since.isoformat())
        progress.finish(started - overlap)
        return seen

    seen = cursors.run_pass_in_steps(app, f"store:{store_name}:orders", one_pass)
    if seen is None:
        log("poll.skipped", store=store_name, reason="another poll of this store is running")
    return seen or 0


def _unreadable(app: App, store_name: str, order_id: str, reason: str) -> None:
    """One order of a poll could not be taken in: say so once (the pass goes on without it). It
    is read again when it changes in the store, e.g. once the merchant fixed it."""
    log("poll.unreadable", level=30, store=store_name, order=order_id, reason=reason[:300])
    alerts.queue_now(app, f"unreadable:{store_name}:{order_id}:{reason[:80]}",
                     f"autofulfill: {store_name} order {order_id} could not be read by the poll: "
                     f"{reason[:300]}. Fix it in the store; it is read again when it changes.")
