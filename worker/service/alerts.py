"""Alerts: one message per problem, to a Slack-compatible webhook and/or by email.

Problems come from the ledger, not from the hot path: the scheduler scans new "parked" events on
the timeline; the poller reports a failing store API (after ``api_failing_minutes``) and webhook
warnings; a daily digest lists what is still parked. Each alert goes through the outbox with a
dedupe key naming the problem, so a problem is announced once however often it is seen.
"""

from __future__ import annotations

import hashlib
import smtplib
import time
from datetime import datetime, timedelta
from email.message import EmailMessage

import requests
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker.app import App
from worker.errors import TransientError
from worker.ledger import cursors
from worker.ledger.models import CursorRow, EventRow, OrderRow, ShipmentRow
from worker.ledger.outbox import enqueue, publish
from worker.logs import log
from worker.pipeline import names
from worker.pipeline.inventory import PassResult
from worker.pipeline.inventory_ledger import failing_since

EVENTS_CURSOR = "alerts:events"
OVERLAP = timedelta(minutes=2)


def queue(app: App, session: Session, key: str, text: str) -> int | None:
    """Queue one alert for problem ``key`` in the caller's transaction (None: already sent, or
    no [alerts] configured)."""
    if app.config.alerts is None:
        return None
    return enqueue(session, names.ALERT, [text], f"alert:{key}")


def queue_now(app: App, key: str, text: str) -> bool:
    """Queue and publish one alert now; False when this problem was announced before."""
    with app.sessions() as session:
        oid = queue(app, session, key, text)
        session.commit()
    if oid:
        publish(app.sessions, app.publisher, [oid], now=app.clock())
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
        publish(app.sessions, app.publisher, ids, now=app.clock())
        return len(ids)

    return cursors.run_pass(app, EVENTS_CURSOR, one_pass) or 0


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
            oid = queue(app, session, f"api:{store}:{since.isoformat()}",
                        f"autofulfill: the {store} store's API has failed for {minutes} minutes "
                        f"(last error: {str(error)[:200]}). Orders are kept and retried; check the "
                        "store's credentials and status.")
            session.commit()
            if oid:
                publish(app.sessions, app.publisher, [oid], now=now)


def store_recovered(app: App, store: str) -> None:
    with app.sessions() as session:
        row = session.get(CursorRow, f"store:{store}:failing_since")
        if row is not None:
            session.delete(row)
            session.commit()


def store_warning(app: App, store: str, warning: str) -> None:
    digest_key = hashlib.sha1(warning.encode()).hexdigest()[:16]
    queue_now(app, f"warning:{store}:{digest_key}", f"autofulfill: store {store}: {warning}")


def send(app: App, text: str) -> None:
    """Deliver one alert to every configured channel; a few tries, then TransientError."""
    alerts = app.config.alerts
    if alerts is None:
        return
    last: Exception | None = None
    for attempt in range(3):
        try:
            if alerts.webhook_url is not None:
                resp = requests.post(alerts.webhook_url.get_secret_value(), json={"text": text},
                                     timeout=alerts.timeout_s)
                if resp.status_code >= 300:
                    raise TransientError(f"alert webhook answered HTTP {resp.status_code}")
            if alerts.email_to:
                _email(app, text)
            log("alert.sent", channels=("webhook " if alerts.webhook_url else "")
                + ("email" if alerts.email_to else ""))
            return
        except (requests.RequestException, OSError, smtplib.SMTPException, TransientError) as exc:
            last = exc
            time.sleep(2 ** attempt)
    raise TransientError(f"alert not delivered: {type(last).__name__}: {last}")


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
