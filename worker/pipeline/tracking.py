"""Tracking: find what the fulfiller shipped, then write it to the store once.

The sweep asks each Amazon account only for orders changed since the last sweep (a cursor in the
ledger, with an overlap), so its cost grows with changed orders, not with all open orders.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from worker.app import App
from worker.domain import FulfillmentStatus, ItemOutcome, Order, PushRequest, ShipmentState, Tracking
from worker.errors import AmbiguousOutcome, ConnectorError, PermanentError, TransientError
from worker.ledger import cursors, state
from worker.ledger.models import OrderRow, ShipmentLineRow, ShipmentRow
from worker.ledger.outbox import enqueue, publish_for
from worker.logs import log
from worker.pipeline import intake
from worker.pipeline.fulfill import give_up, retry_later
from worker.pipeline.intake import external_id, stored_order
from worker.pipeline.inventory_ledger import refresh_soon
from worker.pipeline.names import PUSH

S = ShipmentState
# A sweep lists what changed since the last one started, less an overlap: our clock and Amazon's
# differ, and Amazon may list a change a little after it made it. Once every WIDE_EVERY a sweep
# looks further back (WIDE_LOOKBACK before the last such sweep), for a change listed up to that
# late; one listed later still is found by its shipment's own look-up (``check``). Every sweep
# looking back ten minutes listed a change 60 times at a 10 s interval (a burst's 10,000: 200
# pages a sweep); now a few times.
TRACKING_OVERLAP = timedelta(minutes=1)
WIDE_LOOKBACK = timedelta(minutes=10)
WIDE_EVERY = timedelta(minutes=5)
SWEEP_BATCH = 200  # shipments a sweep reads, looks up and writes per session: its memory stays flat


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
    wide_cursor = f"amazon:{account}:tracking:wide"
    wide_last = cursors.value(app, wide_cursor)
    wide = last is None or wide_last is None or started - wide_last >= WIDE_EVERY
    if last is None:  # first sweep: as far back as our oldest shipment still waiting for tracking
        with app.sessions() as session:
            oldest = session.scalar(select(ShipmentRow.created_at).where(
                ShipmentRow.account == account, ShipmentRow.state == S.SUBMITTED)
                .order_by(ShipmentRow.created_at).limit(1))
        since = (oldest or started) - WIDE_LOOKBACK
    elif wide:
        since = min(last - TRACKING_OVERLAP, (wide_last or last) - WIDE_LOOKBACK)
    else:
        since = last - TRACKING_OVERLAP
    changed = list(fulfiller.changed_since(since))
    shipped = seen = 0
    for start in range(0, len(changed), SWEEP_BATCH):  # a batch in memory, not the whole burst
        with app.sessions() as session:
            ours = list(session.scalars(select(ShipmentRow).where(
                ShipmentRow.external_id.in_(changed[start:start + SWEEP_BATCH]),
                ShipmentRow.account == account, ShipmentRow.state == S.SUBMITTED)))
            seen += len(ours)
            for row in ours:
                try:
                    status = fulfiller.lookup(row.external_id)
                except PermanentError as exc:  # this one order cannot be read: the others go on; its
                    log("track.unreadable", level=30, account=account,  # own look-up parks it
                        shipment=row.external_id, error=str(exc)[:300])
                    continue
                if status is None:
                    continue
                oid = record_status(app, session, row, status, actor=actor)
                session.commit()
                if oid:  # sent now: the sweep may take a minute more (look-ups go at Amazon's pace)
                    publish_for(app, [oid], now=app.clock())
                    shipped += 1
    if wide:  # only once it went through: a wide sweep that failed is done again next time
        cursors.move_up(app, wide_cursor, started)
    log("track.done", account=account, changed=len(changed), ours=seen, shipped=shipped, wide=wide)
    return shipped


def record_status(app: App, session: Session, row: ShipmentRow, status: FulfillmentStatus, *,
                  actor: str, token: str = "") -> int | None:
    """Apply what Amazon says to a submitted shipment; returns an outbox id when a push is due.

    The move out of ``submitted`` is a compare-and-set, so two sweeps never both record it; it is
    made only while nobody else holds the shipment (a cancel in flight at Amazon) — or while the
    caller does (``token``: the back-stop lookup)."""
    now = app.clock()
    if not (status.is_dead or status.is_shipped):
        return None
    free = or_(ShipmentRow.lease_token == "", ShipmentRow.lease_until.is_(None),
               ShipmentRow.lease_until < now)
    moved = session.execute(
        update(ShipmentRow).where(ShipmentRow.id == row.id, ShipmentRow.state == S.SUBMITTED,
                                  or_(free, ShipmentRow.lease_token == token) if token else free)
        .values(state=S.SHIPPED if status.is_shipped else S.ATTENTION, lease_token="", lease_until=None)
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
    row.next_attempt_at = now + timedelta(seconds=app.backstop_s)
    state.event(session, row.order_id, "shipped", shipment_id=row.id, actor=actor, at=now,
                shipment=row.external_id, tracking=[f"{t.carrier} {t.number}" for t in status.tracking])
    return enqueue(session, PUSH, [row.id], f"push:{row.id}:0")


LOOKUP_MAX = timedelta(hours=12)
# A submitted MCF order with no tracking this long after it was sent is late: beyond what the speed
# promises, plus a day of slack for Amazon's own pick-and-pack. `status` and an alert name it.
LATE_AFTER = {"Standard": timedelta(days=7), "Expedited": timedelta(days=4), "Priority": timedelta(days=3),
              "ScheduledDelivery": timedelta(days=3)}


EARLIEST_LATE = min(LATE_AFTER.values())


def late_since(speed: str) -> timedelta:
    return LATE_AFTER.get(speed, LATE_AFTER["Standard"])


def check(app: App, shipment_pk: int, *, actor: str = "") -> str:
    """The back-stop of a submitted MCF order: look it up by id, as the tracking sweep would have
    had it shown up there (a changed-since window that passed, a sweep that skipped it). Still on
    its way: looked up again later (30 min, then doubling up to 12 h). Returns the state after."""
    now = app.clock()
    with app.sessions() as session:
        claim = state.claim_shipment(session, shipment_pk, (S.SUBMITTED,), now=now, lease_s=app.lease_s)
        if isinstance(claim, str):
            return claim
        row, token = claim.row, claim.token
        try:
            status = app.fulfiller(row.account).lookup(row.external_id)
        except (TransientError, AmbiguousOutcome) as exc:
            retry_later(app, session, row, token, exc, actor=actor)
            return row.state
        except PermanentError as exc:
            status, problem = None, str(exc)
        else:
            problem = "Amazon does not know this fulfillment order"
        if status is not None:
            oid = record_status(app, session, row, status, actor=actor, token=token)
            if oid is not None or row.state != S.SUBMITTED:
                session.commit()
                publish_for(app, [oid] if oid else [], now=app.clock())
                session.refresh(row)
                return row.state
        if not state.mine_to_write(session, row, token):
            return row.state
        if status is None:
            state.park(session, row, f"{problem}; find {row.external_id} in Seller Central", now=now,
                       actor=actor)
        else:
            wait = min(LOOKUP_MAX, timedelta(minutes=30) * 2 ** max(0, row.attempts - 1))
            row.next_attempt_at = now + wait
            state.release_lease(row)
            state.event(session, row.order_id, "looked_up", shipment_id=row.id, actor=actor, at=now,
                        shipment=row.external_id, status=status.status,
                        next_in_min=int(wait.total_seconds() // 60))
        session.commit()
        return row.state


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
    state.cas(session, order, expect={"status": ("routed", "attention")},
              values={"status": "attention", "reason": "Amazon shipped only part of a shipment"})


def _no_longer_wanted(row: ShipmentRow, fresh: Order | None) -> str:
    """Why the store no longer wants this shipment's units ("cancelled", "refunded"), or ""."""
    if fresh is None:
        return "deleted"
    if fresh.cancelled:
        return "cancelled"
    left = {ln.line_id: ln.quantity for ln in fresh.lines}
    if any(ln.quantity > left.get(ln.line_id, 0) for ln in row.lines):
        return "refunded"
    return ""


def _held_back(app: App, session: Session, row: ShipmentRow, token: str, fresh: Order | None, why: str, *,
               actor: str) -> str:
    """The order was cancelled or refunded in the store: no tracking for the customer. The change
    goes in through ingest (as its webhook would have), so the cancellation or adjustment runs: a
    label not yet used is refunded. Units Amazon already sent are parked here for the merchant,
    with the tracking number: intercept the package or expect a return."""
    now = app.clock()
    order: OrderRow = row.order
    store, numbers = order.store, ", ".join(f"{t['carrier']} {t['number']}" for t in row.tracking)
    if not state.mine_to_write(session, row, token):
        return row.state
    numbers = numbers or "no tracking yet"
    if row.state == S.SHIPPED or fresh is None:
        state.park(session, row, f"shipped although {why} in the store: intercept the package or "
                   f"expect a return (tracking {numbers})", now=now, actor=actor)
    else:
        row.next_attempt_at = now + timedelta(seconds=app.backstop_s)
        state.release_lease(row)
        state.event(session, row.order_id, "push_held_back", shipment_id=row.id, actor=actor, at=now,
                    shipment=row.external_id, reason=f"{why} in the store", tracking=numbers)
    session.commit()
    if fresh is not None:
        intake.ingest_and_publish(app, store, fresh, source="push", actor=actor)
    session.refresh(row)
    return row.state


def _ready_siblings(app: App, session: Session, row: ShipmentRow) -> list[tuple[ShipmentRow, str]]:
    """The order's other shipments whose tracking is ready to go now, each claimed (lease)."""
    out: list[tuple[ShipmentRow, str]] = []
    for s in row.order.shipments:
        ready = s.state == S.SHIPPED or (s.state == S.LABEL_BOUGHT and s.next_attempt_at is not None)
        if s.id == row.id or not ready or not s.tracking:
            continue
        claim = state.claim_shipment(session, s.id, (S.SHIPPED, S.LABEL_BOUGHT), now=app.clock(),
                                     lease_s=app.lease_s)
        if isinstance(claim, state.Claim):
            out.append((claim.row, claim.token))
    return out


def _let_go(session: Session, claimed: list[tuple[ShipmentRow, str]]) -> None:
    """Give the siblings' leases back at once (each has its own push queued or its back-stop)."""
    for s, token in claimed:
        session.execute(update(ShipmentRow).where(ShipmentRow.id == s.id, ShipmentRow.lease_token == token)
                        .values(lease_token="", lease_until=None)
                        .execution_options(synchronize_session=False))
    session.commit()


def push(app: App, shipment_pk: int, *, actor: str = "") -> str:
    """Write the shipment's tracking to the store, once; returns the state afterwards."""
    now = app.clock()
    with app.sessions() as session:
        claim = state.claim_shipment(session, shipment_pk, (S.SHIPPED, S.LABEL_BOUGHT), now=now,
                                     lease_s=app.lease_s, commit=False)
        if isinstance(claim, str):
            return claim
        row, token = claim.row, claim.token
        if row.attempts > app.config.service.max_retries + 1:  # the last attempts ended unrecorded
            return give_up(app, session, row, actor=actor)
        order: OrderRow = row.order
        siblings = order.shipments  # read with the claim, committed now: nothing open across the calls
        session.commit()
        cfg = app.config.store(order.store)
        # The store is the truth: an order cancelled or refunded since (its webhook late or lost)
        # must not tell the customer "shipped". A change after this read and before the write
        # below cannot be seen: the pushed event says when the store was read.
        checked_at = app.clock()
        try:
            fresh = app.store(order.store).fetch_order(order.platform_order_id)
        except (TransientError, AmbiguousOutcome) as exc:
            retry_later(app, session, row, token, exc, actor=actor)
            return row.state
        except PermanentError:
            fresh = stored_order(order)  # cannot read it now: the push itself will say why
        unwanted = _no_longer_wanted(row, fresh)
        if unwanted:
            return _held_back(app, session, row, token, fresh, unwanted, actor=actor)
        # WooCommerce mails the customer once per note: shipments of one order ready together go
        # in one note ("shipped in 2 parts"). Shopify takes one fulfillment per shipment.
        along = _ready_siblings(app, session, row) if cfg.platform == "woocommerce" else []
        together = [row, *(s for s, _ in along)]
        ids = {s.id for s in together}
        request = PushRequest(
            order_id=order.platform_order_id,
            lines=tuple((ln.line_id, ln.quantity) for s in together for ln in s.lines),
            tracking=tuple(Tracking(t["carrier"], t["number"], t.get("url", "")) for s in together
                           for t in s.tracking),
            notify_customer=cfg.notify_customer,
            final=all(s.state in (S.PUSHED, S.CANCELLED) for s in siblings if s.id not in ids),
        )
        try:
            result = app.store(order.store).push_tracking(request)
        except (TransientError, AmbiguousOutcome) as exc:  # ambiguous: the next try reads the store first
            _let_go(session, along)
            retry_later(app, session, row, token, exc, actor=actor)
            return row.state
        except PermanentError as exc:
            _let_go(session, along)
            try:  # refused because the order was cancelled or refunded a moment ago?
                again = app.store(order.store).fetch_order(order.platform_order_id)
            except ConnectorError:
                again = fresh
            unwanted = _no_longer_wanted(row, again)
            if unwanted:
                return _held_back(app, session, row, token, again, unwanted, actor=actor)
            if state.mine_to_write(session, row, token):
                state.park(session, row, f"the store refused the tracking: {exc}", now=app.clock(),
                           actor=actor)
                session.commit()
            return row.state
        if not state.mine_to_write(session, row, token):
            return row.state
        for s, _ in along:
            session.refresh(s)
        done = [row, *(s for s, t in along if s.lease_token == t)]  # a sibling taken over meanwhile
        for s in done:                                                # pushes again: already there
            s.state = S.PUSHED
            s.store_fulfillment_id = result.fulfillment_id
            s.next_attempt_at = None
            state.release_lease(s)
            state.event(session, s.order_id, "pushed", shipment_id=s.id, actor=actor, at=app.clock(),
                        shipment=s.external_id, fulfillment=result.fulfillment_id,
                        already_there=True if result.already_there else None,
                        notify_customer=cfg.notify_customer, store_checked_at=checked_at.isoformat(),
                        together_with=[o.external_id for o in done if o is not s] or None)
        # Done only from routed/attention: a cancellation or refund that landed meanwhile keeps the
        # order for the step that must act on it (it finds this shipment pushed).
        finished = all(s.state in (S.PUSHED, S.CANCELLED) for s in order.shipments)
        if finished and state.cas(session, order, expect={"status": ("routed", "attention")},
                                  values={"status": "done", "reason": ""}):
            state.event(session, order.id, "done", actor=actor, at=app.clock())
        session.commit()
        return row.state
