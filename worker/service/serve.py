"""Serving the webhook receiver with gunicorn (``autofulfill web``, also inside ``autofulfill run``).

gunicorn's ``gthread`` worker gives each connection a thread once its first bytes arrive, and that
thread then reads the headers and the body as slowly as the client sends them: eight clients
trickling one byte a second would hold eight threads for as long as they like. So every request
here has a deadline (``[service] request_timeout_s``): headers, body and answer within it, or a
watchdog cuts the connection and the thread is free again. Together with more threads than a
handful of slow clients, ``/healthz`` and real webhooks keep being answered; a reverse proxy in
front (README, "Deployment") buffers whole requests and takes the rest.

Several processes (``--workers N``) use ``prometheus_client``'s multiprocess mode, set up here
before the app (and so ``prometheus_client``) is imported.
"""

from __future__ import annotations

import heapq
import itertools
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

# Read by prometheus_client when it is first imported, so it must be set before: this module does
# not import it (worker.service.metrics does, and imports this name from here).
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


class Watchdog:
    """Cuts connections whose deadline passed (one thread for all of them)."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Any]] = []
        self._live: set[int] = set()
        self._ids = itertools.count()
        self._lock = threading.Condition()
        threading.Thread(target=self._run, name="request-deadlines", daemon=True).start()

    def watch(self, conn: Any, seconds: float) -> int:
        ticket = next(self._ids)
        with self._lock:
            self._live.add(ticket)
            heapq.heappush(self._due, (time.monotonic() + seconds, ticket, conn))
            self._lock.notify()
        return ticket

    def done(self, ticket: int) -> None:
        with self._lock:
            self._live.discard(ticket)

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._due and self._due[0][1] not in self._live:
                    heapq.heappop(self._due)  # finished in time
                wait = (self._due[0][0] - time.monotonic()) if self._due else 1.0
                if wait > 0:
                    self._lock.wait(min(wait, 1.0))
                    continue
                _, ticket, conn = heapq.heappop(self._due)
                self._live.discard(ticket)
            try:  # a blocked read returns at once; the thread answers nothing and is free again
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def deadline_worker(request_timeout_s: float) -> type[ThreadWorker]:
    """gunicorn's gthread worker with a deadline on every request."""

    class DeadlineWorker(ThreadWorker):  # type: ignore[misc]
        watchdog: Watchdog | None = None
        _made = threading.Lock()

        @classmethod
        def deadlines(cls) -> Watchdog:
            """The process's one watchdog, made by the first request (after the fork). Made under
            a lock: two made at once by the first requests would each number their tickets from
            0, and a connection's ``done`` on the other one would drop a live ticket there — a
            trickler that is never cut."""
            with cls._made:
                if cls.watchdog is None:
                    cls.watchdog = Watchdog()
                return cls.watchdog

        def handle(self, conn: Any) -> Any:
            watchdog = self.deadlines()
            ticket = watchdog.watch(conn, request_timeout_s)
            try:
                return super().handle(conn)
            finally:
                watchdog.done(ticket)

    return DeadlineWorker


def multiprocess_dir(data_dir: Path) -> None:
    """Set up ``PROMETHEUS_MULTIPROC_DIR`` (``data_dir/metrics`` unless the environment names one)
    and empty it of a previous run's files. Call before ``prometheus_client`` is imported."""
    folder = Path(os.environ.get(MULTIPROC_ENV) or data_dir / "metrics")
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.db"):
        old.unlink()
    os.environ[MULTIPROC_ENV] = str(folder)


def serve(listen: str, build: Callable[[], Any], *, workers: int, threads: int,
          request_timeout_s: float) -> None:
    """Run gunicorn on ``listen`` until stopped; each worker process calls ``build()`` for its app."""
    from worker.service.metrics import child_exit

    class Server(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", listen)
            self.cfg.set("workers", workers)
            self.cfg.set("worker_class", deadline_worker(request_timeout_s))
            self.cfg.set("threads", threads)
            self.cfg.set("timeout", 30)
            # An idle keep-alive connection is closed after this. gunicorn's 2 s loses a race under
            # load: a platform's next request on the connection can arrive as it is being closed,
            # and the platform sees a dropped connection (a failed delivery) instead of an answer.
            self.cfg.set("keepalive", 10)
            self.cfg.set("accesslog", None)
            self.cfg.set("loglevel", "warning")
            self.cfg.set("child_exit", child_exit)

        def load(self) -> Any:
            return build()

    Server().run()
