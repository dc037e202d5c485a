"""`autofulfill status`: what an operator (or cron, or monitoring) needs to know at a glance.

Per store: the last successful poll, the last webhook, orders by status, parked shipments and
the age of the oldest; the last inventory pass. Per Amazon account: the last tracking sweep. The
queue depth and whether a worker answers. ``needs_person`` is true when something is parked, a
poll, sweep or inventory pass is overdue or failing, or no worker answers — the command then exits 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, or_, select

from worker.app import App
from worker.ledger.models import CursorRow, OrderRow, ShipmentRow, WebhookReceiptRow
from worker.pipeline.tracking import EARLIEST_LATE, late_since
from worker.service.stock_view import inventory_health
from worker.service.sweeper import ORDER_TASKS
from worker.service.views import table

OVERDUE_FACTOR = 3  # a pass is overdue after this many intervals without success


@dataclass
class Health:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def needs_person(self) -> bool:
        return bool(self.problems)

    def text(self) -> str:
        verdict = ["status: OK"] if not self.problems else [f"status: ATTENTION ({len(self.problems)})"]
        return "\n".join(self.lines + [""] + verdict + [f"  - {p}" for p in self.problems])


def _ago(now: datetime, when: datetime | None) -> str:
    if when is None:
        return "never"
    seconds = int((now - when).total_seconds())
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago"


def health(app: App, *, queue_depth: Callable[[], int | None],
           workers: Callable[[], int | None],
           webhook_warnings: Callable[[str], list[str] | None] | None = None) -> Health:
    """``webhook_warnings(store)``: the store's webhook problems (None when the API could not say)."""
    now = app.clock()
    svc = app.config.service
    out = Health()
    rows = []
    with app.sessions() as session:
        for name in app.config.stores:
            cursor = session.get(CursorRow, f"store:{name}:orders")
            # The poll's cursor is where its next pass starts: a complete pass's start minus the
            # overlap (sweeper.poll_store).
            last_poll = (min(now, cursor.value + timedelta(seconds=svc.poll_overlap_s))
                         if cursor is not None and cursor.value is not None else None)
            last_hook = session.scalar(select(func.max(WebhookReceiptRow.received_at))
                                       .where(WebhookReceiptRow.store == name))
            by_status = dict(session.execute(select(OrderRow.status, func.count()).where(
                OrderRow.store == name).group_by(OrderRow.status)).all())
            parked = session.execute(
                select(func.count(), func.min(ShipmentRow.updated_at)).join(OrderRow)
                .where(OrderRow.store == name, ShipmentRow.state == "attention")).one()
            parked_orders = session.scalar(select(func.count()).select_from(OrderRow).where(
                OrderRow.store == name, OrderRow.status == "attention",
                ~OrderRow.shipments.any()))
            n_parked = int(parked[0] or 0) + int(parked_orders or 0)
            warnings = webhook_warnings(name) if webhook_warnings else []
            hooks = ("not checked (--live)" if webhook_warnings is None else "unknown" if warnings is None
                     else f"{len(warnings)} problem(s)" if warnings else "ok")
            out.problems += [f"store {name}: {w}" for w in warnings or []]
            rows.append((name, _ago(now, last_poll), _ago(now, last_hook), hooks,
                         ", ".join(f"{k} {v}" for k, v in sorted(by_status.items())) or "-",
                         f"{n_parked} (oldest {_ago(now, parked[1])})" if n_parked else "0"))
            if n_parked:
                out.problems.append(f"store {name}: {n_parked} parked — `autofulfill orders --status "
                                    f"attention --store {name}`")
            every = app.config.poll_interval(name)
            if last_poll is None or now - last_poll > timedelta(seconds=OVERDUE_FACTOR * every):
                out.problems.append(f"store {name}: no successful poll {_ago(now, last_poll)}")
        out.lines.append(table(("store", "last poll", "last webhook", "webhooks", "orders", "parked"), rows))
        sweeps = []
        for account in app.config.amazon:
            cursor = session.get(CursorRow, f"amazon:{account}:tracking")
            last = cursor.value if cursor else None
            waiting = session.scalar(select(func.count()).select_from(ShipmentRow).where(
                ShipmentRow.account == account, ShipmentRow.state == "submitted"))
            sweeps.append((account, _ago(now, last), waiting or 0))
            overdue = timedelta(seconds=OVERDUE_FACTOR * svc.tracking_interval_s)
            if waiting and (last is None or now - last > overdue):
                out.problems.append(f"amazon {account}: no tracking sweep {_ago(now, last)}")
        if sweeps:
            out.lines += ["", table(("amazon", "last tracking sweep", "awaiting tracking"), sweeps)]
        slow = [s for s in session.scalars(select(ShipmentRow).where(
                    ShipmentRow.state == "submitted", ShipmentRow.sent_at < now - EARLIEST_LATE))
                if s.sent_at is not None and now - s.sent_at > late_since(s.speed)]
        if slow:
            names = ", ".join(s.external_id for s in slow[:10]) + (" ..." if len(slow) > 10 else "")
            out.problems.append(f"{len(slow)} MCF order(s) sent long ago without tracking: {names} "
                                "(look them up in Seller Central)")
        stuck = session.scalar(select(func.count()).select_from(OrderRow).where(
            OrderRow.status == "routed",
            ~OrderRow.shipments.any(ShipmentRow.state.not_in(["pushed", "cancelled", "attention"]))))
        if stuck:
            out.problems.append(f"{stuck} routed order(s) with nothing moving (every shipment finished or "
                                "parked): `autofulfill orders --status routed`")
        stock, stock_problems = inventory_health(app, session, now, OVERDUE_FACTOR)  # FBA stock -> store
        out.lines += ["", stock] if stock else []
        out.problems += stock_problems
        late = now - timedelta(seconds=app.backstop_s)
        due = session.scalar(select(func.count()).select_from(ShipmentRow).where(
            ShipmentRow.next_attempt_at < late,
            or_(ShipmentRow.lease_until.is_(None), ShipmentRow.lease_until < now)))
        due = (due or 0) + (session.scalar(select(func.count()).select_from(OrderRow).where(
            OrderRow.status.in_(list(ORDER_TASKS)), OrderRow.hold_until < late,  # release/cancel/adjust
            or_(OrderRow.lease_until.is_(None), OrderRow.lease_until < now))) or 0)
    depth = queue_depth()
    alive = workers()
    out.lines += ["", f"queue: {depth if depth is not None else 'n/a (embedded broker)'} waiting; "
                      f"workers answering: {alive if alive is not None else 'n/a (embedded broker)'}; "
                      f"overdue steps: {due or 0}"]
    if alive == 0:
        out.problems.append("no worker answers: start `autofulfill worker` (or check the broker)")
    if due:
        out.problems.append(f"{due} step(s) overdue by more than a lease: is the scheduler running?")
    return out
