"""The transactional outbox: tasks are written in the same transaction as the state that needs
them, then published to the broker after commit (at once, and by the relay for anything missed).

Publishing twice is harmless (every task re-checks state under a lease); publishing never is
what the outbox prevents.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.orm import Session, sessionmaker

from worker.app import App, utcnow
from worker.ledger.models import OutboxRow, WebhookReceiptRow, insert_new
from worker.logs import log
from worker.ports import PublishedMarks, Publisher


class Outgoing(int):
    """An outbox row's id that also carries what to publish, as ``enqueue`` wrote it: publishing
    it needs no read (an id alone, as the relay has, is read first)."""

    task: str
    args: list[Any]
    key: str

    def __new__(cls, row_id: int, task: str, args: list[Any], key: str) -> Outgoing:
        self = super().__new__(cls, row_id)
        self.task, self.args, self.key = task, args, key
        return self


def enqueue(session: Session, task: str, args: list[Any], dedupe_key: str) -> Outgoing | None:
    """Add a task to the outbox inside the caller's transaction; None when the key exists."""
    row_id = insert_new(session, OutboxRow, task=task, args=args, dedupe_key=dedupe_key)
    return None if row_id is None else Outgoing(row_id, task, args, dedupe_key)


def publish(sessions: sessionmaker[Session], publisher: Publisher, ids: Iterable[int], *,
            now: datetime, marks: PublishedMarks | None = None) -> int:
    """Publish these outbox rows now (best effort: the relay retries whatever fails), then mark
    them published in one write — or hand them to ``marks``, which writes the marks of many
    publishes at once. A crash between the two publishes them again: harmless (so is a row the
    relay published meanwhile, published again)."""
    ids = list(ids)
    rows: list[tuple[int, str, list[Any], str]] = [(i, i.task, i.args, i.key) for i in ids
                                                   if isinstance(i, Outgoing)]
    unknown = [i for i in ids if not isinstance(i, Outgoing)]
    if unknown:
        with sessions() as session:
            rows += [(r.id, r.task, r.args, r.dedupe_key) for r in session.execute(
                select(OutboxRow.id, OutboxRow.task, OutboxRow.args, OutboxRow.dedupe_key)
                .where(OutboxRow.id.in_(unknown), OutboxRow.published_at.is_(None)))]
    rows.sort(key=lambda r: int(r[0]))
    sent: list[tuple[int, str]] = []
    for row_id, task, args, key in rows:
        try:
            publisher(task, list(args), key)
        except Exception as exc:  # the broker is down: the relay will try again
            log("outbox.publish_failed", task=task, key=key, error=str(exc)[:200])
            break
        sent.append((int(row_id), key))
    if sent and marks is not None:
        marks.add(sent)
    elif sent:
        _mark(sessions, sent, now=now)
    return len(sent)


def publish_for(app: App, ids: Iterable[int], *, now: datetime) -> int:
    """``publish`` what a step of ``app`` enqueued, through its marks when it has them (a worker)."""
    return publish(app.sessions, app.publisher, ids, now=now, marks=app.marks)


def _mark(sessions: sessionmaker[Session], sent: list[tuple[int, str]], *, now: datetime) -> None:
    """One write; by id and key: SQLite may give a rolled-back row's id to the next row."""
    with sessions() as session:
        session.execute(update(OutboxRow).where(tuple_(OutboxRow.id, OutboxRow.dedupe_key).in_(sent))
                        .values(published_at=now))
        session.commit()


def _running(thread: threading.Thread | None, target: Callable[[], None], name: str) -> threading.Thread:
    """``thread`` while it is alive, else a new daemon thread running ``target``: started on first
    use, so that it runs in the process that uses it (after a pre-forking parent has forked)."""
    if thread is not None and thread.is_alive():
        return thread
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread


class Marks:
    """A worker's ``PublishedMarks``: marks the rows its steps published from a thread of its own,
    every ``every_s``, in one write — instead of a transaction after every publish (two of an
    order's twelve). A row published and not marked when the process dies is published again by
    the relay once it is ``RELAY_GRACE_S`` old: harmless, like every second publish."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime], *,
                 every_s: float = 0.25) -> None:
        self._sessions = sessions
        self._clock = clock
        self._every_s = every_s
        self._pending: list[tuple[int, str]] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, sent: list[tuple[int, str]]) -> None:
        with self._lock:
            self._pending.extend(sent)
            self._thread = _running(self._thread, self._run, "outbox-marks")

    def _run(self) -> None:
        while True:
            time.sleep(self._every_s)
            self.flush()

    def flush(self) -> int:
        """Write the marks handed over so far; returns how many (0 when the ledger is away: the
        relay publishes those rows again)."""
        with self._lock:
            sent, self._pending = self._pending, []
        if not sent:
            return 0
        try:
            _mark(self._sessions, sent, now=self._clock())
        except Exception as exc:
            log("outbox.mark_failed", level=30, rows=len(sent), error=f"{type(exc).__name__}: {exc}"[:200])
            return 0
        return len(sent)


class Courier:
    """Publishes outbox rows from a thread of its own, a batch at a time, so that answering a
    webhook never waits for the broker. What it has not published when its process dies is still
    in the outbox, and the scheduler's relay publishes it."""

    def __init__(self, sessions: sessionmaker[Session], publisher: Publisher,
                 clock: Callable[[], datetime], *, batch: int = 500) -> None:
        self._sessions = sessions
        self._publisher = publisher
        self._clock = clock
        self._batch = batch
        self._queue: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0  # rows handed over and not yet tried
        self._thread: threading.Thread | None = None

    def send(self, ids: Iterable[int]) -> None:
        ids = list(ids)
        with self._lock:
            self._pending += len(ids)
            for row_id in ids:
                self._queue.put(row_id)
            self._thread = _running(self._thread, self._run, "outbox-courier")

    def _run(self) -> None:
        while True:
            ids = [self._queue.get()]
            while len(ids) < self._batch:
                try:
                    ids.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                publish(self._sessions, self._publisher, ids, now=self._clock())
            except Exception as exc:  # the database is away: the relay publishes them later
                log("outbox.courier_failed", level=30, rows=len(ids),
                    error=f"{type(exc).__name__}: {exc}"[:200])
            with self._idle:
                self._pending -= len(ids)
                self._idle.notify_all()

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every row handed over has been tried; False when ``timeout`` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)


RELAY_GRACE_S = 5.0  # a row younger than this is its writer's to publish (and to mark)


def relay(sessions: sessionmaker[Session], publisher: Publisher, *, now: datetime,
          batch: int = 500, exclude: tuple[str, ...] = (), grace_s: float = RELAY_GRACE_S) -> int:
    """Publish every unpublished row at least ``grace_s`` old, oldest first: a younger one is
    being published by the step that wrote it, or its mark is on its way (``Marks``). Rows of the
    ``exclude`` tasks are delivered by someone else (the alert sender). The age is by the wall
    clock, as ``created_at`` is written."""
    written_before = utcnow() - timedelta(seconds=grace_s)
    with sessions() as session:
        ids = list(session.scalars(select(OutboxRow.id).where(OutboxRow.published_at.is_(None),
                                                              OutboxRow.created_at <= written_before,
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
