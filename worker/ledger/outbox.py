"""The transactional outbox: tasks are written in the same transaction as the state that needs
them, then published to the broker after commit (at once, and by the relay for anything missed).

Publishing twice is harmless (every task re-checks state under a lease); publishing never is
what the outbox prevents.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from worker.ledger.models import OutboxRow, WebhookReceiptRow
from worker.logs import log
from worker.ports import Publisher


def enqueue(session: Session, task: str, args: list[Any], dedupe_key: str) -> int | None:
    """Add a task to the outbox inside the caller's transaction; None when the key exists."""
    exists = session.scalar(select(OutboxRow.id).where(OutboxRow.dedupe_key == dedupe_key))
    if exists is not None:
        return None
    row = OutboxRow(task=task, args=args, dedupe_key=dedupe_key)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        return None
    return row.id


def publish(sessions: sessionmaker[Session], publisher: Publisher, ids: Iterable[int], *,
            now: datetime) -> int:
    """Publish these outbox rows now (best effort: the relay retries whatever fails)."""
    sent = 0
    with sessions() as session:
        for row in session.scalars(select(OutboxRow).where(OutboxRow.id.in_(list(ids)),
                                                           OutboxRow.published_at.is_(None))):
            try:
                publisher(row.task, list(row.args), row.dedupe_key)
            except Exception as exc:  # the broker is down: the relay will try again
                log("outbox.publish_failed", task=row.task, key=row.dedupe_key, error=str(exc)[:200])
                break
            session.execute(update(OutboxRow).where(OutboxRow.id == row.id)
                            .values(published_at=now))
            session.commit()
            sent += 1
    return sent


def relay(sessions: sessionmaker[Session], publisher: Publisher, *, now: datetime,
          batch: int = 500, exclude: tuple[str, ...] = ()) -> int:
    """Publish every unpublished row, oldest first; rows of the ``exclude`` tasks are delivered
    by someone else (the alert sender)."""
    with sessions() as session:
        ids = list(session.scalars(select(OutboxRow.id).where(OutboxRow.published_at.is_(None),
                                                              OutboxRow.task.not_in(exclude))
                                   .order_by(OutboxRow.id).limit(batch)))
    return publish(sessions, publisher, ids, now=now) if ids else 0


def prune(sessions: sessionmaker[Session], *, now: datetime, outbox_days: float = 7,
          receipts_days: float = 30) -> tuple[int, int]:
    """Forget published outbox rows and old webhook receipts (platforms stop retrying after
    48 hours). Every dedupe key still in use is younger than these ages."""
    with sessions() as session:
        rows = session.execute(delete(OutboxRow).where(
            OutboxRow.published_at < now - timedelta(days=outbox_days)))
        receipts = session.execute(delete(WebhookReceiptRow).where(
            WebhookReceiptRow.received_at < now - timedelta(days=receipts_days)))
        session.commit()
    return rows.rowcount, receipts.rowcount  # type: ignore[attr-defined]
