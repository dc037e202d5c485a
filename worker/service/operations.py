"""Operator actions on parked work (`autofulfill retry`)."""

from __future__ import annotations

from datetime import datetime

from worker.app import App
from worker.domain import ShipmentState
from worker.errors import PermanentError, TransientError
from worker.ledger import state
from worker.ledger.models import ShipmentRow
from worker.ledger.outbox import enqueue, publish_for
from worker.pipeline.cancel import SETTLE
from worker.pipeline.intake import ingest_and_publish
from worker.pipeline.names import PUSH, RELEASE, SUBMIT
from worker.pipeline.release import replan_parked
from worker.service.views import find_order

S = ShipmentState
RESUME = {S.PENDING: SUBMIT, S.SUBMITTING: SUBMIT, S.SHIPPED: PUSH, S.LABEL_BOUGHT: PUSH}


def retry_order(app: App, store: str, ref: str) -> str:
    """Re-drive a parked order from where it stopped, from the store's order as it is now.

    The order is read again from the store first (a fixed address, an edit, a cancellation whose
    webhook was lost go in through ingest), and a label quote not bought is dropped, so the label
    is rated again for the address the store has now. Then lines parked by routing (nothing was
    sent) are routed again under the current config; a step that failed later resumes (a submit
    looks the MCF order up before creating anything); an order that could not be read from the
    store is released again. Raises TransientError (nothing done) when the store does not answer."""
    with app.sessions() as session:
        found = find_order(session, store, ref)
        if found is None:
            return f"no order {ref} in store {store}"
        platform_order_id = found.platform_order_id
    try:
        fresh = app.store(store).fetch_order(platform_order_id)
    except TransientError as exc:
        raise TransientError(f"the store could not be read now ({exc}); nothing was retried, "
                             "try again") from exc
    except PermanentError:
        fresh = None  # the release below says why, on the order's timeline
    if fresh is not None:
        ingested = ingest_and_publish(app, store, fresh, source="retry", actor="cli:retry")
        if ingested.status in ("cancelling", "cancelled"):
            return f"the order is cancelled in the store ({ingested.status}): nothing is retried"
    dropped = _drop_unbought_quotes(app, store, platform_order_id)
    now = app.clock()
    outbox: list[int] = []
    notes: list[str] = [f"label quote dropped for shipment {n} (rated again)" for n in dropped]
    with app.sessions() as session:
        row = find_order(session, store, platform_order_id)
        assert row is not None
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
    publish_for(app, outbox, now=now)
    return f"{summary} (shipments now {now_states})" if notes else summary


def _resume(s: ShipmentRow, back: S, *, now: datetime) -> None:
    s.state, s.reason, s.attempts = back, "", 0
    s.next_attempt_at = now
    state.release_lease(s)


def _drop_unbought_quotes(app: App, store: str, platform_order_id: str) -> list[int]:
    """Parked self-ship shipments whose quote was never bought lose it: the next attempt rates
    the shipment again with the order as it is now (its address may have been fixed). A quote
    whose purchase may still be in progress (sent moments ago) is kept. Returns the numbers."""
    with app.sessions() as session:
        row = find_order(session, store, platform_order_id)
        assert row is not None
        candidates = [(s.id, s.n, s.account, str(s.label["shipment_id"])) for s in row.shipments
                      if s.state == S.ATTENTION and s.route == "self_ship" and s.label.get("shipment_id")
                      and not s.label.get("path")
                      and (s.sent_at is None or app.clock() - s.sent_at >= SETTLE)]
    dropped: list[int] = []
    for shipment_pk, n, account, shipment_id in candidates:
        if account not in app.config.labels:
            continue
        try:
            bought = app.labeler(account).lookup(shipment_id) is not None
        except (TransientError, PermanentError):
            continue  # not known: keep it, the submit looks it up before buying
        if bought:
            continue
        with app.sessions() as session:
            s = session.get(ShipmentRow, shipment_pk)
            if s is not None and s.state == S.ATTENTION and s.label.get("shipment_id") == shipment_id:
                s.label = {}
                state.event(session, s.order_id, "quote_dropped", shipment_id=s.id, actor="cli:retry",
                            at=app.clock(), shipment=s.external_id, provider_shipment=shipment_id)
                session.commit()
                dropped.append(n)
    return dropped
