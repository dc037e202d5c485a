"""The receiver's request deadlines: one watchdog per process, however many first requests race."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from gunicorn.workers.gthread import ThreadWorker

from worker.service import serve


def test_first_requests_at_once_share_one_watchdog(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[object] = []
    real_init = serve.Watchdog.__init__

    def slow_init(self: serve.Watchdog) -> None:  # widen the window in which a second one is made
        time.sleep(0.05)
        made.append(self)
        real_init(self)

    monkeypatch.setattr(serve.Watchdog, "__init__", slow_init)
    monkeypatch.setattr(ThreadWorker, "handle", lambda self, conn: time.sleep(0.1))  # a request
    worker = object.__new__(serve.deadline_worker(3.0))  # gunicorn's setup is not needed here
    start = threading.Barrier(8)

    def first_request() -> None:
        conn: Any = type("Conn", (), {"sock": None})()
        start.wait()
        worker.handle(conn)

    threads = [threading.Thread(target=first_request) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Two watchdogs would each number tickets from 0, and a `done` on the other one would drop a
    # live connection's ticket there: that connection would never be cut.
    assert len(made) == 1
