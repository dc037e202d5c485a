"""What every connector sandbox runs on: a threaded HTTP server on 127.0.0.1 in a daemon thread,
and the request-handler plumbing they share (read the request, write a reply, no access log).

Tests force an interleaving with ``intercept``: an action runs in the handler thread when a
matching request arrives (``before``) or when its answer is ready but not yet sent (``after``),
while the caller is still waiting for its reply — e.g. the store cancels the order while the
worker waits for Amazon's preview, or a barrier holds the call open.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

Match = Callable[[str, str, bytes], bool]  # (method, path with query, body)


@dataclass
class _Hook:
    match: Match
    action: Callable[[], None]
    before: bool
    times: int  # < 0: every time


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that went away mid-request (a process killed by a test) is not news; the
        rest is printed as usual."""
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class SandboxHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive, quiet. Subclasses route ``self.command`` / ``self.path``."""

    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        super().setup()
        # Headers and body are two writes: with Nagle the body would wait for the ACK of the
        # headers, which the client delays (~40 ms a call).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def read_request(self) -> tuple[dict[str, str], bytes]:
        """The headers (lower-case names) and the body."""
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self._request = (self.command, self.path, body)
        owner = getattr(self.server, "loopback", None)
        if isinstance(owner, LoopbackServer):
            owner.run_hooks(self.command, self.path, body, before=True)
        return {k.lower(): v for k, v in self.headers.items()}, body

    def reply(self, status: int, data: bytes, content_type: str,
              headers: dict[str, str] | None = None) -> None:
        owner = getattr(self.server, "loopback", None)
        request = getattr(self, "_request", None)
        if isinstance(owner, LoopbackServer) and request is not None:
            owner.run_hooks(*request, before=False)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass  # quiet: tests assert on behaviour, not on access logs


class LoopbackServer:
    """Subclasses give ``_handler()``; ``start()`` binds a free port, ``url`` is where it listens."""

    thread_name = "sandbox"

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._hooks: list[_Hook] = []
        self._hooks_lock = threading.Lock()

    def intercept(self, match: Match, action: Callable[[], None], *, before: bool = True,
                  times: int = 1) -> None:
        """Run ``action`` in the handler thread for the next ``times`` requests that ``match``
        (-1: every one): ``before`` the sandbox handles the request, or after, just before its
        answer is sent. The caller waits for its reply meanwhile."""
        with self._hooks_lock:
            self._hooks.append(_Hook(match, action, before, times))

    def run_hooks(self, method: str, path: str, body: bytes, *, before: bool) -> None:
        due: list[_Hook] = []
        with self._hooks_lock:
            for hook in list(self._hooks):
                if hook.before == before and hook.times != 0 and hook.match(method, path, body):
                    due.append(hook)
                    hook.times -= 1 if hook.times > 0 else 0
                    if hook.times == 0:
                        self._hooks.remove(hook)
        for hook in due:  # outside the lock: an action may block (a barrier) or call the sandbox
            hook.action()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self) -> Self:
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), self._handler())
        server.loopback = self  # type: ignore[attr-defined]  # the handlers find the hooks here
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("sandbox not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"
