"""The receiver as it is run (`autofulfill web`: gunicorn, gthread) survives slow clients (issue 13,
item 6): /healthz keeps answering while a dozen clients trickle their headers or bodies, and each
trickler is cut off once ``request_timeout_s`` has passed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

pytestmark = pytest.mark.integration

SLOW_CLIENTS = 12
TIMEOUT_S = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[int]:
    port = _free_port()
    config = tmp_path / "autofulfill.toml"
    config.write_text(f"""
[service]
database_url = "sqlite:///var/ledger.db"
listen = "127.0.0.1:{port}"
request_timeout_s = {TIMEOUT_S}
log_format = "text"

[stores.acme]
platform = "shopify"
shop_url = "https://acme.example"
access_token = "t"
webhook_secret = "whsec"
order_prefix = "ACME"
""")
    env = {k: v for k, v in os.environ.items() if k != "AUTOFULFILL_CONFIG"}
    proc = subprocess.Popen([sys.executable, "-m", "worker", "web", "--config", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, "the receiver did not start"
            time.sleep(0.2)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _trickle(port: int, head: bytes, stop: threading.Event, cut: list[float]) -> None:
    """Send one byte every 0.2 s; note when the server closed the connection."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        data = head + b"x" * 10_000
        for byte in data:
            if stop.is_set():
                return
            try:
                s.sendall(bytes([byte]))
            except OSError:
                cut.append(time.monotonic() - started)
                return
            s.settimeout(0.2)
            try:
                if s.recv(1024) == b"":
                    cut.append(time.monotonic() - started)
                    return
            except TimeoutError:
                pass
            except OSError:
                cut.append(time.monotonic() - started)
                return


def test_healthz_answers_while_slow_clients_trickle(receiver: int) -> None:
    port = receiver
    heads = [b"POST /webhooks/shopify/acme HTTP/1.1\r\nHost: x\r\nX-Slow: ",  # headers that never end
             b"POST /webhooks/shopify/acme HTTP/1.1\r\nHost: x\r\nContent-Length: 9000\r\n\r\n"]  # a body
    stop, cut = threading.Event(), list[float]()
    slow = [threading.Thread(target=_trickle, args=(port, heads[n % 2], stop, cut), daemon=True)
            for n in range(SLOW_CLIENTS)]
    for t in slow:
        t.start()
    try:
        time.sleep(1)  # every slow client is connected and sending
        answered = []
        for _ in range(8):
            began = time.monotonic()
            r = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            answered.append((r.status_code, time.monotonic() - began))
            time.sleep(0.2)
        assert all(code == 200 and took < 2 for code, took in answered), answered
        for t in slow:
            t.join(timeout=TIMEOUT_S + 10)
        assert len(cut) == SLOW_CLIENTS, "every trickler is cut off"
        assert all(TIMEOUT_S - 1 <= when <= TIMEOUT_S + 6 for when in cut), cut
    finally:
        stop.set()
