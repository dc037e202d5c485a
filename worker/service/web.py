"""The webhook receiver (Flask): verify, dedupe, ingest, answer — no store API call on this path.

Checks in this order: unknown store 404, body over 1 MiB 413, bad signature 401, unparseable
body 400; success 200. Never a 500 for bad input; 503 when our own database is down (the
platform retries, and the poller catches up anyway).
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from flask import Flask, Response, jsonify, request
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

from worker.app import App
from worker.errors import PermanentError
from worker.ledger.models import OrderRow, ShipmentRow, WebhookReceiptRow
from worker.ledger.outbox import publish
from worker.logs import bind, log
from worker.pipeline import intake

MAX_BODY = 1024 * 1024
INGEST_TOPICS = {
    "orders/create", "orders/paid", "orders/updated", "orders/cancelled",  # Shopify
    "order.created", "order.updated",  # WooCommerce: the body is the order at delivery time
}


def create_app(app: App, broker_check: Any = None) -> Flask:
    web = Flask("autofulfill")
    web.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    requests_total: Counter[tuple[str, int]] = Counter()
    lock = threading.Lock()

    def answer(platform: str, code: int, **body: Any) -> tuple[Response, int]:
        with lock:
            requests_total[(platform, code)] += 1
        return jsonify({"status": code, **body}), code

    @web.post("/webhooks/<platform>/<store_name>")
    def webhook(platform: str, store_name: str) -> tuple[Response, int]:
        cfg = app.config.stores.get(store_name)
        if cfg is None or cfg.platform != platform:
            return answer(platform, 404, error="unknown store")
        if (request.content_length or 0) > MAX_BODY:
            return answer(platform, 413, error="body over 1 MiB")
        body = request.stream.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            return answer(platform, 413, error="body over 1 MiB")
        store = app.store(store_name)
        headers = {k.lower(): v for k, v in request.headers.items()}
        with bind(store=store_name):
            if store.is_ping(body, headers):  # WooCommerce's unsigned hello when a webhook is made
                log("webhook.ping")
                return answer(platform, 200, outcome="ping")
            try:
                verified = store.verify_webhook(body, headers)
            except Exception:  # a malformed signature header must not become a 500
                verified = False
            if not verified:
                topic = headers.get("x-shopify-topic") or headers.get("x-wc-webhook-topic", "")
                log("webhook.rejected", reason="bad signature", topic=topic)
                return answer(platform, 401, error="bad signature")
            try:
                event = store.parse_webhook(body, headers)
            except Exception as exc:  # PermanentError, or a body shaped like nothing we know
                reason = str(exc)[:200] if isinstance(exc, PermanentError) else (
                    f"body could not be understood ({type(exc).__name__})")
                log("webhook.unparseable", reason=reason)
                return answer(platform, 400, error=reason)
            try:
                return answer(platform, 200, **_receive(app, store_name, event))
            except Exception as exc:  # our database is away: 503 lets the platform retry
                log("webhook.failed", level=40, error=f"{type(exc).__name__}: {str(exc)[:200]}")
                return answer(platform, 503, error="temporarily unavailable")

    @web.get("/healthz")
    def healthz() -> tuple[Response, int]:
        checks = {"db": _check(lambda: _db_ok(app)), "broker": _check(broker_check or (lambda: None))}
        ok = all(v == "ok" for v in checks.values())
        return jsonify({"status": "ok" if ok else "degraded", **checks}), 200 if ok else 503

    @web.get("/metrics")
    def metrics() -> Response:
        lines = _ledger_metrics(app)
        lines.append("# TYPE autofulfill_webhook_requests_total counter")
        with lock:
            for (platform, code), count in sorted(requests_total.items()):
                lines.append(f'autofulfill_webhook_requests_total{{platform="{platform}",code="{code}"}} '
                             f"{count}")
        return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")

    @web.errorhandler(413)
    def too_large(_exc: Exception) -> tuple[Response, int]:
        return answer("unknown", 413, error="body over 1 MiB")

    return web


def _receive(app: App, store_name: str, event: Any) -> dict[str, Any]:
    with app.sessions() as session:
        receipt = WebhookReceiptRow(store=store_name, dedupe_key=event.event_id, topic=event.topic,
                                    platform_order_id=event.order_id)
        try:
            with session.begin_nested():
                session.add(receipt)
        except IntegrityError:
            log("webhook.duplicate", topic=event.topic, event_id=event.event_id, order=event.order_id)
            return {"outcome": "duplicate"}
        if event.topic not in INGEST_TOPICS or event.order is None:
            receipt.outcome = "ignored"
            session.commit()
            log("webhook.ignored", topic=event.topic, order=event.order_id)
            return {"outcome": "ignored"}
        result = intake.ingest(app, session, store_name, event.order, source=f"webhook {event.topic}")
        receipt.outcome = result.status
        session.commit()
    if result.outbox_ids:
        publish(app.sessions, app.publisher, result.outbox_ids, now=app.clock())
    log("webhook.accepted", topic=event.topic, order=event.order_id, outcome=result.status)
    return {"outcome": result.status}


def _check(fn: Any) -> str:
    try:
        fn()
    except Exception as exc:
        return f"down: {type(exc).__name__}"
    return "ok"


def _db_ok(app: App) -> None:
    with app.sessions() as session:
        session.execute(text("SELECT 1"))


def _ledger_metrics(app: App) -> list[str]:
    out = ["# TYPE autofulfill_orders_ingested_total counter"]
    with app.sessions() as session:
        for store, n in session.execute(select(OrderRow.store, func.count()).group_by(OrderRow.store)):
            out.append(f'autofulfill_orders_ingested_total{{store="{store}"}} {n}')
        out.append("# TYPE autofulfill_shipments_submitted_total counter")
        submitted = session.execute(select(ShipmentRow.route, func.count()).where(
            ShipmentRow.state.in_(["submitted", "label_bought", "shipped", "pushed"]))
            .group_by(ShipmentRow.route))
        for route, n in submitted:
            out.append(f'autofulfill_shipments_submitted_total{{route="{route}"}} {n}')
        out.append("# TYPE autofulfill_tracking_pushed_total counter")
        pushed = session.execute(select(OrderRow.store, func.count()).join(ShipmentRow)
                                 .where(ShipmentRow.state == "pushed").group_by(OrderRow.store))
        for store, n in pushed:
            out.append(f'autofulfill_tracking_pushed_total{{store="{store}"}} {n}')
        out.append("# TYPE autofulfill_orders_parked gauge")
        parked = session.execute(select(OrderRow.store, func.count(func.distinct(OrderRow.id)))
                                 .join(ShipmentRow, isouter=True)
                                 .where((OrderRow.status == "attention") | (ShipmentRow.state == "attention"))
                                 .group_by(OrderRow.store))
        for store, n in parked:
            out.append(f'autofulfill_orders_parked{{store="{store}"}} {n}')
    return out
