"""Alerts: one per problem (parked order, failing store API, disabled webhook, daily digest),
queued through the outbox on a real ledger, delivered to a webhook and by SMTP."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from sqlalchemy import select

from tests.fakes import make_order
from tests.ledger_support import Env, drain, make_env
from worker.errors import PermanentError, TransientError
from worker.ledger.models import OutboxRow
from worker.pipeline import intake, names
from worker.service import alerts, sweeper

HOOK = "https://hooks.example/services/T000/B000/XXXX"


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    yield from make_env(db_url, tmp_path, alerts={"webhook_url": HOOK, "api_failing_minutes": 10,
                                                  "digest_hour_utc": 12})


def alert_texts(app: Any) -> list[str]:
    """What the alert sender has queued, one row per alert and channel (only the hook here)."""
    with app.sessions() as s:
        return [row.args[0] for row in s.scalars(select(OutboxRow).where(OutboxRow.task == names.ALERT)
                                                 .order_by(OutboxRow.id))]


def test_a_parked_order_is_announced_once(env: Env) -> None:
    app, store, amazon, published, clock = env
    amazon.fail_submit.append(PermanentError("InvalidInput: unknown seller SKU"))
    store.orders["9001"] = make_order("9001")
    intake.ingest_and_publish(app, "acme", store.orders["9001"], source="webhook")
    drain(app, published)
    assert alerts.scan_parked(app) == 1
    clock.advance(30)
    assert alerts.scan_parked(app) == 0  # seen again in the overlap: not sent twice
    (text,) = alert_texts(app)
    assert "acme order 9001" in text and "unknown seller SKU" in text
    assert "autofulfill retry acme 9001" in text
    assert "Analytical" not in text  # no street address in alerts
    assert alerts.digest(app)  # 12:00 UTC: the daily digest lists it
    assert not alerts.digest(app)  # once a day
    assert "1 order(s) still parked: acme 9001" in alert_texts(app)[-1]


def test_a_store_api_failing_long_enough_is_announced_once(env: Env) -> None:
    app, store, _, published, clock = env
    alerts.store_failed(app, "acme", TransientError("HTTP 503"))
    clock.advance(5 * 60)
    alerts.store_failed(app, "acme", TransientError("HTTP 503"))
    assert alert_texts(app) == []  # five minutes: not yet
    clock.advance(6 * 60)
    alerts.store_failed(app, "acme", TransientError("HTTP 503"))
    alerts.store_failed(app, "acme", TransientError("HTTP 503"))
    (text,) = alert_texts(app)
    assert "failed for 11 minutes" in text and "HTTP 503" in text
    alerts.store_recovered(app, "acme")
    alerts.store_failed(app, "acme", TransientError("HTTP 503"))  # a new outage starts counting anew
    assert len(alert_texts(app)) == 1


def test_a_disabled_webhook_seen_by_every_poll_is_announced_once(env: Env) -> None:
    app, store, _, published, clock = env
    store.webhook_warnings.append("webhook 7 'Order updated' (order.updated) is disabled")
    sweeper.poll_store(app, "acme")
    clock.advance(300)
    sweeper.poll_store(app, "acme")
    assert alert_texts(app) == ["autofulfill: store acme: webhook 7 'Order updated' "
                                      "(order.updated) is disabled"]


@responses.activate
def test_send_posts_slack_compatible_json(env: Env) -> None:
    app = env[0]
    responses.post(HOOK, json={"ok": True})
    alerts.send(app, "autofulfill: hello")
    assert responses.calls[0].request.body == b'{"text": "autofulfill: hello"}'


class _SMTP(socketserver.StreamRequestHandler):
    """Just enough SMTP to receive one message (the test's stand-in mail server)."""

    received: list[bytes] = []

    def handle(self) -> None:
        self.wfile.write(b"220 test ESMTP\r\n")
        data = False
        body: list[bytes] = []
        for line in self.rfile:
            if data:
                if line == b".\r\n":
                    data = False
                    _SMTP.received.append(b"".join(body))
                    self.wfile.write(b"250 queued\r\n")
                else:
                    body.append(line)
                continue
            verb = line[:4].upper()
            if verb == b"DATA":
                data = True
                self.wfile.write(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            elif verb == b"EHLO":
                self.wfile.write(b"250 test\r\n")
            else:
                self.wfile.write(b"250 ok\r\n")


def test_send_mails_through_smtp(db_url: str, tmp_path: Path) -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTP)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        cfg = {"email_to": ["ops@example.com"], "smtp_host": "127.0.0.1",
               "smtp_port": server.server_address[1], "smtp_starttls": False}
        for app, *_ in make_env(db_url, tmp_path, alerts=cfg):
            alerts.send(app, "autofulfill: acme order 9001 parked")
        assert any(b"acme order 9001 parked" in m and b"ops@example.com" in m for m in _SMTP.received)
    finally:
        server.shutdown()
        server.server_close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _due_now(tries: dict[int, tuple[int, float]]) -> None:
    for oid, (n, _) in list(tries.items()):
        tries[oid] = (n, 0.0)


@responses.activate
def test_each_channel_gets_each_alert_once_on_its_own(db_url: str, tmp_path: Path) -> None:
    """Issue 13 item 11: mail failing does not send Slack the message again; mail gets it later."""
    port = _free_port()  # nothing listens there yet: the mail server is down
    responses.post(HOOK, json={"ok": True})
    cfg = {"webhook_url": HOOK, "email_to": ["ops@example.com"], "smtp_host": "127.0.0.1", "smtp_port": port,
           "smtp_starttls": False, "timeout_s": 2}
    for app, *_ in make_env(db_url, tmp_path, alerts=cfg):
        assert alerts.queue_now(app, "parked:1", "autofulfill: acme order 9001 parked")
        assert not alerts.queue_now(app, "parked:1", "autofulfill: acme order 9001 parked")
        tries: dict[int, tuple[int, float]] = {}
        assert alerts.deliver_due(app, tries) == 1  # the hook; mail refused, to be tried later
        for _ in range(3):
            _due_now(tries)
            assert alerts.deliver_due(app, tries) == 0
        assert len(responses.calls) == 1 and list(tries.values())[0][0] == 4
        server = socketserver.ThreadingTCPServer(("127.0.0.1", port), _SMTP)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            _SMTP.received.clear()
            _due_now(tries)
            assert alerts.deliver_due(app, tries) == 1
            assert alerts.deliver_due(app, tries) == 0
        finally:
            server.shutdown()
            server.server_close()
        assert len(responses.calls) == 1 and len(_SMTP.received) == 1 and tries == {}


def test_alerts_never_take_a_worker_slot(db_url: str, tmp_path: Path) -> None:
    """Queued alerts are not published to the task queue (the scheduler's sender delivers them),
    and a hook that never answers holds the sender for the short timeout only."""
    import socket
    import time

    from worker.service import scheduler

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts, never answers
    hook = f"http://127.0.0.1:{silent.getsockname()[1]}/hook"
    try:
        for app, store, _, published, _ in make_env(db_url, tmp_path, alerts={"webhook_url": hook,
                                                                             "timeout_s": 1}):
            store.webhook_warnings.append("webhook 7 is disabled")
            sweeper.poll_store(app, "acme")
            scheduler.tick(app, {}, time.monotonic())
            assert [name for name, _ in published if name == names.ALERT] == []
            began = time.monotonic()
            assert alerts.deliver_due(app, {}) == 0
            assert time.monotonic() - began < 3
    finally:
        silent.close()
