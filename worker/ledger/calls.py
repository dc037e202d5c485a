"""No ledger transaction stays open across an external call.

A step writes, commits, then calls Amazon, a store or the label provider. An attribute it never
loaded, read after that commit, begins a new (read) transaction, which would then stay open across
the call: its pooled connection held — during a burst, by every thread waiting its turn at
Amazon's quota, while the others wait for the pool — and on PostgreSQL its snapshot, which keeps
VACUUM from clearing what the rest of the service updates meanwhile.

``end_reads`` runs before every call an adapter makes for a step (``App.before_call``; the
composition root sets it): it commits this thread's read-only transactions — nothing is written,
and nothing loaded is lost (sessions do not expire objects on commit). A transaction that has
written (the database is asked, then: nothing is tracked per statement), or has changes or events
waiting for its commit, is the bug this rule exists for: it is logged
(``ledger.write_across_call``), and raised where ``STRICT`` is set (the test suite).
"""

from __future__ import annotations

import threading
import weakref
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session, SessionTransaction

from worker.ledger.state import EVENTS
from worker.logs import log

STRICT = False  # raise WriteAcrossCall instead of logging it (the test suite sets this)
_local = threading.local()


class WriteAcrossCall(RuntimeError):
    """A step is about to call out while its ledger transaction holds writes."""


def _open() -> weakref.WeakSet[Session]:
    sessions = getattr(_local, "sessions", None)
    if sessions is None:
        sessions = _local.sessions = weakref.WeakSet()
    return sessions


@sa_event.listens_for(Session, "after_begin")
def _began(session: Session, _transaction: SessionTransaction, _connection: Any) -> None:
    _open().add(session)


@sa_event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        _open().discard(session)


def end_reads() -> None:
    """Before an external call: commit this thread's open read-only ledger transactions; log (or,
    ``STRICT``, raise) one that has written."""
    for session in list(_open()):
        if not session.in_transaction():
            _open().discard(session)
            continue
        pending = session.new or session.dirty or session.deleted or session.info.get(EVENTS)
        if pending or _has_written(session):
            message = "a ledger transaction with writes is open across an external call"
            if STRICT:
                raise WriteAcrossCall(message)
            log("ledger.write_across_call", level=40, error=message)
            continue
        session.commit()


def _has_written(session: Session) -> bool:
    """Asked of the database (only here, not on every statement): SQLite's connection is in a
    transaction only from its first write on (``BEGIN IMMEDIATE``, ``models.make_engine``);
    PostgreSQL assigns a transaction id at the first write or row lock."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        return bool(connection.connection.dbapi_connection.in_transaction)  # type: ignore[union-attr]
    return connection.exec_driver_sql("SELECT txid_current_if_assigned()").scalar() is not None
