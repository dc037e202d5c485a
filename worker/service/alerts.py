"""Alerts: one message per problem, to a Slack-compatible webhook and/or by email.

Problems come from the ledger, not from the hot path: the scheduler scans new "parked" events on
the timeline; the poller reports a failing store API (after ``api_failing_minutes``) and webhook
warnings; a daily digest lists what is still parked. Each alert goes through the outbox with a
dedupe key naming the problem, so a problem is announced once however often it is seen.

Delivery: one outbox row per alert *and channel*, so each channel gets each alert once and on its
own (mail failing never sends Slack the message again). The rows are not published to the task
queue: the scheduler process delivers them itself, in a thread of its own (``Sender``), one try at
a time with short timeouts and a growing pause between tries. A slow or dead mail server or hook
therefore never holds a pipeline worker slot, and an undelivered alert stays in the ledger (a
restart loses none). A row is claimed before its send, so two schedulers never send it twice.
"""

from __future__ import annotations

import hashlib
import smtplib
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage

import requests
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from worker.app import App
from worker.errors import TransientError, redact
from worker.ledger import cursors
from worker.ledger.models import CursorRow, EventRow, OrderRow, OutboxRow, ShipmentRow
from worker.ledger.outbox import enqueue
from worker.logs import log
from worker.pipeline import names
from worker.pipeline.inventory import PassResult
from worker.pipeline.inventory_ledger import failing_since
from worker.pipeline.tracking import EARLIEST_LATE, late_since

EVENTS_CURSOR = "alerts:events"
OVERLAP = timedelta(minutes=2)
OWN_DELIVERY = (names.ALERT,)  # outbox tasks the relay leaves to the Sender
MAX_TRIES = 12  # about a day of tries (the pause doubles up to an hour), then the alert is dropped


def channels(app: App) -> list[str]:
    alerts = app.config.alerts
    if alerts is None:
        return []
    return (["webhook"] if alerts.webhook_url is not None else []) + (["email"] if alerts.email_to else [])


def queue(app: App, session: Session, key: str, text: str) -> int | None:
    """Queue one alert for problem ``key`` in the caller's transaction, one outbox row per channel.
    Returns one of the row ids (None: already queued, or no [alerts] configured)."""
    ids = [enqueue(session, names.ALERT, [text, channel], f"alert:{key}:{channel}")
           for channel in channels(app)]
    return next((i for i in ids if i), None)


def queue_now(app: App, key: str, text: str) -> bool:
    """Queue one alert now (the Sender delivers it); False when this problem was announced before."""
    with app.sessions() as session:
        oid = queue(app, session, key, text)
        session.commit()
    return oid is not None


def scan_parked(app: App) -> int:
    """Queue an alert for every "parked" event since the last scan (one per event)."""
    if app.config.alerts is None:
        return 0

    def one_pass(last: datetime | None, started: datetime) -> int:
        since = (last - OVERLAP) if last else started - timedelta(hours=1)
        ids: list[int] = []
        with app.sessions() as session:
            events = session.execute(
                select(EventRow, OrderRow).join(OrderRow, EventRow.order_id == OrderRow.id)
                .where(EventRow.kind == "parked", EventRow.at >= since).order_by(EventRow.id))
            for event, order in events:
                what = f"shipment {event.detail.get('shipment')}" if event.shipment_id else "order"
                text = (f"autofulfill: {order.store} order {order.number} — {what} parked: "
                        f"{event.detail.get('reason', '')}. See `autofulfill show {order.store} "
                        f"{order.number}`, fix, then `autofulfill retry {order.store} {order.number}`.")
                oid = queue(app, session, f"parked:{event.id}", text)
                ids += [oid] if oid else []
            session.commit()
        return len(ids)

    return cursors.run_pass(app, EVENTS_CURSOR, one_pass) or 0


def scan_late(app: App) -> int:
    """Queue one alert per submitted MCF order still without tracking beyond its speed's promise."""
    if app.config.alerts is None:
        return 0
    now = app.clock()
    ids: list[int] = []
    with app.sessions() as session:
        rows = session.execute(select(ShipmentRow, OrderRow).join(OrderRow).where(
            ShipmentRow.state == "submitted", ShipmentRow.sent_at < now - EARLIEST_LATE))
        for shipment, order in rows:
            assert shipment.sent_at is not None
            if now - shipment.sent_at <= late_since(shipment.speed):
                continue
            days = (now - shipment.sent_at).days
            text = (f"autofulfill: {order.store} order {order.number} — MCF order {shipment.external_id} "
                    f"({shipment.speed}) was sent {days} days ago and has no tracking yet. Look it up in "
                    "Seller Central; `autofulfill show` has its timeline.")
            oid = queue(app, session, f"late:{shipment.id}", text)
            ids += [oid] if oid else []
        session.commit()
    return len(ids)


def digest(app: App) -> bool:
    """Once a day (at ``digest_hour_utc``): the orders still parked, if any. True when queued."""
    alerts = app.config.alerts
    now = app.clock()
    if alerts is None or now.hour != alerts.digest_hour_utc:
        return False
    with app.sessions() as session:
        rows = session.execute(
            select(OrderRow.store, OrderRow.number, func.min(ShipmentRow.updated_at))
            .join(ShipmentRow, isouter=True)
            .where((ShipmentRow.state == "attention") | (OrderRow.status == "attention"))
            .group_by(OrderRow.store, OrderRow.number).order_by(OrderRow.store, OrderRow.number)).all()
    if not rows:
        return False
    listed = "; ".join(f"{store} {number}" for store, number, _ in rows[:50])
    more = f" and {len(rows) - 50} more" if len(rows) > 50 else ""
    return queue_now(app, f"digest:{now:%Y-%m-%d}",
                     f"autofulfill daily digest: {len(rows)} order(s) still parked: {listed}{more}. "
                     "`autofulfill orders --status attention` lists them.")


def store_failed(app: App, store: str, error: Exception) -> None:
    """Remember when a store's API started failing; alert once the outage is long enough."""
    alerts = app.config.alerts
    now = app.clock()
    name = f"store:{store}:failing_since"
    with app.sessions() as session:
        row = session.get(CursorRow, name)
        if row is None:
            session.add(CursorRow(name=name, value=now))
            session.commit()
            return
        since = row.value or now
        if alerts is not None and now - since >= timedelta(minutes=alerts.api_failing_minutes):
            minutes = int((now - since).total_seconds() // 60)
            queue(app, session, f"api:{store}:{since.isoformat()}",
                  f"autofulfill: the {store} store's API has failed for {minutes} minutes "
                  f"(last error: {str(error)[:200]}). Orders are kept and retried; check the "
                  "store's credentials and status.")
            session.commit()


def store_recovered(app: App, store: str) -> None:
    with app.sessions() as session:
        row = session.get(CursorRow, f"store:{store}:failing_since")
        if row is not None:
            session.delete(row)
            session.commit()


def store_warning(app: App, store: str, warning: str) -> None:
    digest_key = hashlib.sha1(warning.encode()).hexdigest()[:16]
    queue_now(app, f"warning:{store}:{digest_key}", f"autofulfill: store {store}: {warning}")


def send(app: App, text: str, channel: str | None = None) -> None:
    """Deliver one alert to ``channel`` (None: every configured one, each once), one try each with
    the configured timeout; TransientError naming the channels that failed."""
    failed = []
    for name in [channel] if channel else channels(app):
        try:
            _deliver(app, name, text)
        except (requests.RequestException, OSError, smtplib.SMTPException, TransientError) as exc:
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
        else:
            log("alert.sent", channel=name)
    if failed:
        raise TransientError(f"alert not delivered ({'; '.join(failed)})")


def _deliver(app: App, channel: str, text: str) -> None:
    alerts = app.config.alerts
    if alerts is None:
        return
    text = redact(text)  # made from redacted reasons already; a last look before it leaves
    if channel == "webhook" and alerts.webhook_url is not None:
        resp = requests.post(alerts.webhook_url.get_secret_value(), json={"text": text},
                             timeout=(min(3.0, alerts.timeout_s), alerts.timeout_s))
        if resp.status_code >= 300:
            raise TransientError(f"alert webhook answered HTTP {resp.status_code}")
    elif channel == "email" and alerts.email_to:
        _email(app, text)


def deliver_due(app: App, tries: dict[int, tuple[int, float]], *, limit: int = 20) -> int:
    """One pass of the Sender: deliver queued alert rows whose pause is over, each to its channel,
    once. ``tries`` (row id -> tries so far, monotonic time of the next) lives in the Sender.
    Returns how many were delivered."""
    now_mono = time.monotonic()
    with app.sessions() as session:
        due = [(row.id, list(row.args)) for row in session.scalars(
            select(OutboxRow).where(OutboxRow.task == names.ALERT, OutboxRow.published_at.is_(None))
            .order_by(OutboxRow.id).limit(limit * 5)) if tries.get(row.id, (0, 0.0))[1] <= now_mono][:limit]
    sent = 0
    for oid, args in due:
        with app.sessions() as session:  # claimed before the send: another scheduler skips it
            claimed = session.execute(update(OutboxRow).values(published_at=app.clock()).where(
                OutboxRow.id == oid, OutboxRow.published_at.is_(None)))
            session.commit()
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            continue
        text, channel = str(args[0]), (str(args[1]) if len(args) > 1 else None)
        try:
            send(app, text, channel)
        except TransientError as exc:
            n = tries.get(oid, (0, 0.0))[0] + 1
            if n >= MAX_TRIES:
                log("alert.dropped", level=40, channel=channel, tries=n, error=str(exc)[:300])
                tries.pop(oid, None)
                continue
            tries[oid] = (n, time.monotonic() + min(3600.0, 30.0 * 2 ** (n - 1)))
            log("alert.retry_later", level=30, channel=channel, tries=n, error=str(exc)[:300])
            with app.sessions() as session:
                session.execute(update(OutboxRow).where(OutboxRow.id == oid).values(published_at=None))
                session.commit()
        else:
            tries.pop(oid, None)
            sent += 1
    return sent


class Sender:
    """The scheduler process's alert thread: ``deliver_due`` every ``interval_s`` until stopped.
    ``current`` hands it the App in use (a SIGHUP reload replaces it)."""

    def __init__(self, current: Callable[[], App], *, interval_s: float = 2.0) -> None:
        self.current = current
        self.interval_s = interval_s
        self.stop = threading.Event()
        self.tries: dict[int, tuple[int, float]] = {}

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, name="alert-sender", daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                app = self.current()
                if app.config.alerts is not None:
                    deliver_due(app, self.tries)
            except Exception as exc:  # the database is away: try again on the next pass
                log("alert.sender_failed", level=40, error=f"{type(exc).__name__}: {str(exc)[:300]}")
            self.stop.wait(self.interval_s)


def _email(app: App, text: str) -> None:
    alerts = app.config.alerts
    assert alerts is not None
    msg = EmailMessage()
    msg["Subject"] = text[:120]
    msg["From"] = alerts.smtp_from
    msg["To"] = ", ".join(alerts.email_to)
    msg.set_content(text)
    with smtplib.SMTP(alerts.smtp_host, alerts.smtp_port, timeout=alerts.timeout_s) as smtp:
        if alerts.smtp_starttls:
            smtp.starttls()
        if alerts.smtp_user is not None and alerts.smtp_password is not None:
            smtp.login(alerts.smtp_user.get_secret_value(), alerts.smtp_password.get_secret_value())
        smtp.send_message(msg)


def inventory_pass(app: App, result: PassResult) -> int:
    """After an inventory pass, one alert per kind of news: the SKUs whose problem is new (each
    line names the SKU and the fix; a problem already announced is not announced again), the SKUs
    that went to 0, a pass refused for a reason a person must fix (an unknown location, a refused
    login; once per reason), and a sync failing for ``api_failing_minutes`` (once per outage)."""
    store, queued, cap = result.store, 0, 20
    pass_key = f"{store}:{result.pass_id}"
    if result.new_problems:
        listed = [f"- {ln.problem}" for ln in result.new_problems[:cap]]
        more = len(result.new_problems) - cap
        queued += queue_now(app, f"inventory-problems:{pass_key}", "\n".join(
            [f"autofulfill: store {store}: inventory sync: {len(result.new_problems)} SKU(s) cannot be "
             "synced:",
             *listed, *([f"- and {more} more"] if more > 0 else []),
             f"`autofulfill inventory --store {store}` lists them."]))
    if result.went_to_zero:
        zero = result.went_to_zero
        queued += queue_now(app, f"inventory-zero:{pass_key}", "\n".join(
            [f"autofulfill: store {store}: {', '.join(ln.sku for ln in zero[:cap])}"
             f"{f' and {len(zero) - cap} more' if len(zero) > cap else ''} "
             f"{'would go (dry run)' if result.dry_run else 'went'} to 0 for sale. Send stock to FBA, or "
             "lower the buffer.",
             *[f"- {ln.sku}: Amazon can ship {ln.fulfillable} of {ln.seller_sku}, {ln.not_sent} sold and "
               f"not yet sent, buffer {ln.buffer}" for ln in zero[:cap]]]))
    alerts = app.config.alerts
    if result.status != "failed" or alerts is None:
        return queued
    if not result.retrying:
        digest = hashlib.sha1(result.error.encode()).hexdigest()[:16]
        return queued + queue_now(app, f"inventory-refused:{store}:{digest}",
                                  f"autofulfill: store {store}: inventory sync cannot run: {result.error}")
    with app.sessions() as session:
        since = failing_since(session, store)
    if since is not None and app.clock() - since >= timedelta(minutes=alerts.api_failing_minutes):
        minutes = int((app.clock() - since).total_seconds() // 60)
        queued += queue_now(app, f"inventory-failing:{store}:{since.isoformat()}",
                            f"autofulfill: store {store}: the inventory sync has failed for {minutes} "
                            f"minutes (last error: {result.error[:200]}); the store's numbers are not being "
                            "updated. It keeps retrying; check Amazon's and the store's status.")
    return queued
