"""Leases that mean something: short, renewed while their holder lives, let go at its deadline.

A step takes a lease on what it works on (``state.claim_shipment`` / ``claim_order``, a cursor
for a periodic pass) for ``service.lease_s`` (30 s by default). While the task that took it runs,
a ``Heartbeat`` renews it every ``lease_s / 3`` — until the task's time limit
(``task_time_limit_s``), after which the holder is presumed stuck and renewals stop. A worker
killed mid-step therefore stops renewing at once: its leases lapse within ``lease_s``, and the
scheduler re-drives lapsed work on its next tick (``sweeper.redrive_due``), whatever pool or
broker runs the tasks. A holder that lost its lease (stuck past its deadline, then woken up)
cannot write: every write after an external call is a compare-and-set on its lease token.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Self

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from worker.logs import log


@dataclass(frozen=True)
class _Held:
    model: Any  # a mapped class with lease_token / lease_until
    key: Any  # its primary key value
    token: str


_current: ContextVar[Heartbeat | None] = ContextVar("autofulfill_heartbeat", default=None)


def watch(model: Any, key: Any, token: str) -> None:
    """Renew this lease for as long as the running task's heartbeat beats (nothing outside a task)."""
    beat = _current.get()
    if beat is not None:
        beat.hold(_Held(model, key, token))


class Heartbeat:
    """Renews the leases the current task takes, from a thread of its own, until ``deadline_s``."""

    def __init__(self, sessions: sessionmaker[Session], clock: Callable[[], datetime], lease_s: float,
                 deadline_s: float) -> None:
        self._sessions = sessions
        self._clock = clock
        self._lease_s = lease_s
        self._deadline_s = deadline_s
        self._held: list[_Held] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._token: Token[Heartbeat | None] | None = None

    def hold(self, held: _Held) -> None:
        with self._lock:
            self._held.append(held)

    def __enter__(self) -> Self:
        self._token = _current.set(self)
        self._thread = threading.Thread(target=self._run, name="lease-heartbeat", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._token is not None:
            _current.reset(self._token)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        started = self._clock()
        every = self._lease_s / 3
        while not self._stop.wait(every):
            if self._clock() - started > timedelta(seconds=self._deadline_s):
                log("lease.deadline", level=30, reason="the task ran past task_time_limit_s: its leases "
                    "are no longer renewed and another worker may take its work over")
                return
            with self._lock:
                held = list(self._held)
            try:
                self._renew(held)
            except Exception as exc:  # the database is away: the leases lapse, others take over
                log("lease.renew_failed", level=30, error=f"{type(exc).__name__}: {str(exc)[:200]}")

    def _renew(self, held: list[_Held]) -> None:
        until = self._clock() + timedelta(seconds=self._lease_s)
        with self._sessions() as session:
            for h in held:
                pk = h.model.__mapper__.primary_key[0]
                session.execute(update(h.model).where(pk == h.key, h.model.lease_token == h.token)
                                .values(lease_until=until).execution_options(synchronize_session=False))
            session.commit()
