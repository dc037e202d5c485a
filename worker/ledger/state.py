"""Small ledger operations every pipeline step shares: events, leases, parking, back-off.

A *lease* is how one worker owns a shipment (or an order) while it performs a side effect:
a compare-and-set on ``lease_token``/``lease_until``. A lease that outlives the task time limit
belongs to a dead worker; the sweeper re-drives such work, and the step then looks up what the
dead worker may have done before doing anything again.
"""

from __future__ import annotations

import functools
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, insert, or_, update
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, SessionTransaction, selectinload
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.sql.elements import ClauseElement

from worker.domain import Line, ShipmentState
from worker.ledger import leases
from worker.ledger.models import EventRow, LineRow, OrderRow, ShipmentRow
from worker.logs import log

EVENTS = "autofulfill.events"  # session.info: this transaction's events, written at its commit


def event(session: Session, order_id: int, kind: str, *, shipment_id: int | None = None,
          actor: str = "", at: datetime, **detail: Any) -> None:
    """Append one event to the order's timeline (and log it with the same fields). The events of
    a transaction are written when it commits, in one statement (``_write_events``), and are gone
    with it when it rolls back."""
    clean = {k: v for k, v in detail.items() if v not in (None, "")}
    if not session.in_transaction():  # begun now, so that a rollback or close ends it (and these)
        session.begin()
    session.info.setdefault(EVENTS, []).append({
        "order_id": order_id, "shipment_id": shipment_id, "kind": kind, "actor": actor, "at": at,
        "detail": clean})
    order = session.get(OrderRow, order_id)  # in the session already: no query
    where = {"store": order.store, "order": order.number} if order is not None else {"order_pk": order_id}
    log(kind, **{**where, **clean})


@sa_event.listens_for(Session, "before_commit")
def _write_events(session: Session) -> None:
    """The transaction's events, as one executemany ``INSERT`` after the session's other pending
    changes (their shipments are flushed first): objects added one by one cost the ORM's unit of
    work about as much again as the statement."""
    rows = session.info.pop(EVENTS, None)
    if rows:
        session.flush()  # what they name (a new shipment) first: a Core statement does not autoflush
        table: Any = EventRow.__table__  # the table's insert: one statement for all rows
        session.execute(insert(table), rows)


@sa_event.listens_for(Session, "after_transaction_end")
def _drop_events(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # rolled back or closed: its events go with it
        session.info.pop(EVENTS, None)


@dataclass(frozen=True)
class Claim:
    row: ShipmentRow
    token: str
    was: str  # the state the shipment was in when we took it


def claim_shipment(session: Session, shipment_id: int, states: tuple[str, ...], *, now: datetime,
                   lease_s: float, commit: bool = True) -> Claim | str:
    """Take the shipment's lease when it is in one of ``states`` and nobody holds it. Commits,
    unless ``commit=False``: then the caller commits the claim with its next write (before any
    external call), and the row stays locked until then.

    Returns the claim, or, when the shipment is not ours to work on, its state ("missing" when
    there is no such shipment). One ``UPDATE … RETURNING`` and the commit."""
    token = uuid.uuid4().hex
    row = _take(session, ShipmentRow, "state", shipment_id, states, token, now=now, lease_s=lease_s,
                commit=commit)
    if row is None:
        current = session.get(ShipmentRow, shipment_id, populate_existing=True)
        session.commit()
        return "missing" if current is None else current.state
    leases.watch(ShipmentRow, shipment_id, token)
    return Claim(row, token, row.state)  # the claim does not change the state: it was this


@dataclass
class OrderClaim:
    row: OrderRow
    token: str


def claim_order(session: Session, order_id: int, status: str, *, now: datetime,
                lease_s: float) -> OrderClaim | str:
    """Take the order's lease when it is in ``status`` and nobody holds it. Commits.

    Returns the claim, or, when the order is not ours to work on, its status ("missing" when
    there is no such order). One ``UPDATE … RETURNING`` and the commit."""
    token = uuid.uuid4().hex
    row = _take(session, OrderRow, "status", order_id, (status,), token, now=now, lease_s=lease_s)
    if row is None:
        current = session.get(OrderRow, order_id, populate_existing=True)
        session.commit()
        return "missing" if current is None else current.status
    leases.watch(OrderRow, order_id, token)
    return OrderClaim(row, token)


def _take(session: Session, model: type[ShipmentRow] | type[OrderRow], column: str, pk: int,
          states: tuple[str, ...], token: str, *, now: datetime, lease_s: float, commit: bool = True) -> Any:
    """The lease on row ``pk`` when its ``column`` holds one of ``states`` and nobody holds it:
    the row as it is now, committed; None when it is not there, not in such a state, or held."""
    row = session.scalars(
        _take_statement(model, column),
        {"pk": pk, "states": list(states), "now": now, "token": token,
         "until": now + timedelta(seconds=lease_s)},
        execution_options={"synchronize_session": False, "populate_existing": True},
    ).one_or_none()
    if row is not None and commit:
        session.commit()
    return row


@functools.cache
def _take_statement(model: type[ShipmentRow] | type[OrderRow], column: str) -> Any:
    """The claim's ``UPDATE … RETURNING``, built once per table (building it on every claim cost
    about a third of a claim's CPU, measured): its values are parameters. It loads what the steps
    read of the row — a shipment's order and lines, an order's shipments — in the claim's
    transaction: read later, after its commit, they would begin a transaction of their own, which
    the step's next external call would then have to end first (``calls.end_reads``)."""
    loads = ((selectinload(ShipmentRow.order), selectinload(ShipmentRow.lines)) if model is ShipmentRow
             else (selectinload(OrderRow.shipments),))
    return (update(model)
            .where(model.id == bindparam("pk"),
                   getattr(model, column).in_(bindparam("states", expanding=True)),
                   or_(model.lease_token == "", model.lease_until.is_(None),
                       model.lease_until < bindparam("now")))
            .values(lease_token=bindparam("token"), lease_until=bindparam("until"),
                    attempts=model.attempts + 1)
            .returning(model)
            .options(*loads))


def cas(session: Session, row: ShipmentRow | OrderRow, *, expect: dict[str, Any],
        values: dict[str, Any]) -> bool:
    """Compare-and-set: ``UPDATE ... SET values WHERE id = row.id AND`` each ``expect`` column equals
    its value (a tuple: is one of them). Runs in the caller's transaction after the session's
    pending changes; True when the row moved (the caller commits), False when someone else moved
    it first (the caller drops its work: rollback). ``row`` is updated in memory when it moved."""
    model = type(row)
    where = [model.id == row.id]
    for key, want in expect.items():
        column = getattr(model, key)
        where.append(column.in_(want) if isinstance(want, tuple) else column == want)
    moved = session.execute(update(model).where(*where).values(**values)
                            .execution_options(synchronize_session=False))
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        return False
    for key, value in values.items():
        if isinstance(value, ClauseElement):
            session.expire(row, [key])
        else:
            set_committed_value(row, key, value)
    return True


class LeaseLost(Exception):
    """The step's lease went to another worker while it waited for an external call: it writes
    nothing more (the new holder looks up what this one may have done)."""


def mine_to_write(session: Session, row: ShipmentRow | OrderRow, token: str) -> bool:
    """Begin the writes that follow an external call: True while ``token`` still holds ``row``'s
    lease — the row is then locked for the rest of this transaction (PostgreSQL row lock, SQLite
    write lock), so the lease cannot change hands before the commit; False (and the session
    rolled back, nothing written) when another worker took it over meanwhile."""
    model = type(row)
    with session.no_autoflush:
        moved = session.execute(update(model).where(model.id == row.id, model.lease_token == token)
                                .values(lease_token=token).execution_options(synchronize_session=False))
    if moved.rowcount != 1:  # type: ignore[attr-defined]
        session.rollback()
        return False
    return True


def replace_lines(session: Session, row: OrderRow, lines: tuple[Line, ...]) -> None:
    """The order's lines are now these (as the store says), in the caller's transaction: two
    statements, without loading the old ones (the ORM's collection would read them first)."""
    session.execute(delete(LineRow).where(LineRow.order_id == row.id))
    if lines:
        session.execute(insert(LineRow), [{"order_id": row.id, "line_id": ln.line_id, "sku": ln.sku,
                                           "quantity": ln.quantity, "title": ln.title} for ln in lines])
    session.expire(row, ["lines"])


def release_lease(row: ShipmentRow | OrderRow) -> None:
    row.lease_token = ""
    row.lease_until = None


def backoff_s(attempt: int, *, base: float = 5.0, cap: float = 900.0,
              retry_after: float | None = None) -> float:
    """Exponential back-off with full jitter; an API's Retry-After wins when it is longer."""
    wait = random.uniform(base / 2, min(cap, base * 2 ** max(0, attempt - 1)))
    return max(wait, retry_after or 0.0)


def park(session: Session, row: ShipmentRow, reason: str, *, now: datetime, actor: str) -> None:
    """Set the shipment aside for a person: state attention with a reason `retry` can undo."""
    if row.state != ShipmentState.ATTENTION:
        row.parked_from = row.state
    row.state = ShipmentState.ATTENTION
    row.reason = reason
    row.next_attempt_at = None
    release_lease(row)
    event(session, row.order_id, "parked", shipment_id=row.id, actor=actor, at=now, reason=reason,
          shipment=row.external_id)
