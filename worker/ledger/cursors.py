"""Cursors of periodic passes (store polls, tracking sweeps), one pass at a time per cursor.

``run_pass`` is what callers use. Underneath, ``take`` leases the cursor (or returns None when
another pass holds it); ``advance`` moves it and lets go; ``give_back`` lets go without moving
it, so a failed pass is redone from the same point.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from worker.app import App
from worker.ledger import leases
from worker.ledger.models import CursorRow

T = TypeVar("T")


def _ensure(session: Session, name: str) -> None:
    if session.get(CursorRow, name) is None:
        try:
            with session.begin_nested():
                session.add(CursorRow(name=name, value=None))
        except IntegrityError:
            pass  # created a moment ago by someone else
        session.commit()


def hold(app: App, name: str, token: str, ttl_s: float, *,
         holder_is_dead: Callable[[str], bool] | None = None) -> bool:
    """Take or renew a lease on ``name`` for ``token`` (e.g. the one active scheduler). A lease
    whose holder ``holder_is_dead`` says is gone (a process of this host that no longer runs) is
    taken over at once instead of after its time-to-live."""
    now = app.clock()
    with app.sessions() as session:
        _ensure(session, name)
        row = session.get(CursorRow, name)
        dead = (row is not None and row.lease_token not in ("", token) and holder_is_dead is not None
                and holder_is_dead(row.lease_token))
        free = [CursorRow.lease_token == token, CursorRow.lease_until.is_(None), CursorRow.lease_until < now]
        if dead and row is not None:
            free.append(CursorRow.lease_token == row.lease_token)
        result = session.execute(
            update(CursorRow).where(CursorRow.name == name, or_(*free))
            .values(lease_token=token, lease_until=now + timedelta(seconds=ttl_s))
            .execution_options(synchronize_session=False))
        session.commit()
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def take(app: App, name: str) -> tuple[str, datetime | None] | None:
    now = app.clock()
    token = uuid.uuid4().hex
    with app.sessions() as session:
        _ensure(session, name)
        result = session.execute(
            update(CursorRow)
            .where(CursorRow.name == name,
                   or_(CursorRow.lease_until.is_(None), CursorRow.lease_until < now))
            .values(lease_token=token, lease_until=now + timedelta(seconds=app.lease_s))
            .execution_options(synchronize_session=False))
        session.commit()
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        leases.watch(CursorRow, name, token)
        row = session.get(CursorRow, name)
        assert row is not None
        session.refresh(row)
        return token, row.value


def value(app: App, name: str) -> datetime | None:
    """Where ``name`` is, without taking it (e.g. a mark kept beside a pass's own cursor)."""
    with app.sessions() as session:
        return session.scalar(select(CursorRow.value).where(CursorRow.name == name))


def move_up(app: App, name: str, to: datetime) -> None:
    """Move ``name`` to ``to`` unless it is there or further already; for a cursor that no pass
    leases, written only by the holder of another (the wide look-back of a tracking sweep)."""
    with app.sessions() as session:
        _ensure(session, name)
    _move_up(app, name, to)


def _move_up(app: App, name: str, to: datetime, *only: ColumnElement[bool]) -> None:
    with app.sessions() as session:
        session.execute(update(CursorRow).where(
            CursorRow.name == name, or_(CursorRow.value.is_(None), CursorRow.value < to), *only)
            .values(value=to).execution_options(synchronize_session=False))
        session.commit()


def _let_go(app: App, name: str, token: str, value: datetime | None) -> None:
    values: dict[str, object] = {"lease_token": "", "lease_until": None}
    if value is not None:
        values["value"] = value
    with app.sessions() as session:
        session.execute(update(CursorRow).where(CursorRow.name == name, CursorRow.lease_token == token)
                        .values(**values).execution_options(synchronize_session=False))
        session.commit()


def advance(app: App, name: str, token: str, value: datetime) -> None:
    _let_go(app, name, token, value)


def give_back(app: App, name: str, token: str) -> None:
    _let_go(app, name, token, None)


class Progress:
    """A pass's way to keep what it has done: ``mark(value)`` moves the cursor that far now (it
    stays there if the pass fails later; a mark never moves it backwards); ``stop(value)`` ends the
    pass there (the rest is the next pass's); ``finish(value)`` is where a pass that went all the
    way leaves it (which may be behind its marks: e.g. its start minus an overlap)."""

    def __init__(self, app: App, name: str, token: str) -> None:
        self._app, self._name, self._token = app, name, token
        self.until: datetime | None = None
        self.stopped = False

    def finish(self, value: datetime) -> None:
        self.until = value

    def mark(self, value: datetime) -> None:
        _move_up(self._app, self._name, value, CursorRow.lease_token == self._token)

    def stop(self, value: datetime) -> None:
        self.mark(value)
        self.stopped = True


def run_pass_in_steps(app: App, name: str,
                      work: Callable[[datetime | None, datetime, Progress], T]) -> T | None:
    """``run_pass`` for a pass that keeps what it did as it goes (``Progress``): a failure part-way
    loses only the part since its last mark, and a long pass may stop and leave the rest."""
    started = app.clock()
    claim = take(app, name)
    if claim is None:
        return None
    token, last = claim
    progress = Progress(app, name, token)
    try:
        result = work(last, started, progress)
    except BaseException:
        give_back(app, name, token)
        raise
    if progress.stopped:
        give_back(app, name, token)  # the cursor is at the stop mark already
    else:
        advance(app, name, token, progress.until or started)
    return result


def run_pass(app: App, name: str, work: Callable[[datetime | None, datetime], T]) -> T | None:
    """Run ``work(last cursor value, start time)`` while holding the cursor; on success the cursor
    moves to the start time. None when another pass holds the cursor."""
    started = app.clock()
    claim = take(app, name)
    if claim is None:
        return None
    token, last = claim
    try:
        result = work(last, started)
    except BaseException:
        give_back(app, name, token)
        raise
    advance(app, name, token, started)
    return result
