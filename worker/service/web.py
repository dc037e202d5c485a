"""The webhook receiver (Flask): verify, dedupe, ingest, answer — no store API call on this path.

Checks in this order: unknown store 404, body over 1 MiB 413, bad signature 401, unparseable
body 400; success 200. Never a 500 for bad input; 503 when our own database is down (the
platform retries, and the poller catches up anyway).

Only the body is signed. What a delivery means (which order, which event, cancelled or not) is
decided by the store's connector from the body and the store's own settings; a header that does
not match the store (Shopify's shop domain, WooCommerce's source) is refused. And on purpose the
webhook stays a notification: ``release`` reads the order again from the store's API before
anything ships, so whatever a header could still steer cannot ship an order the store does not
have as it says.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from flask import Flask, Response, g, jsonify, request
from sqlalchemy import text

from worker.app import App
from worker.errors import PermanentError
from worker.ledger.models import WebhookReceiptRow, insert_new
from worker.ledger.outbox import Courier
from worker.logs import bind, log
from worker.pipeline import intake
from worker.service.metrics import Metrics

MAX_BODY = 1024 * 1024
INGEST_TOPICS = {
    "orders/create", "orders/paid", "orders/updated", "orders/cancelled",  # Shopify
    "order.created", "order.updated",  # WooCommerce: the body is the order at delivery time
}


def create_app(app: App, broker_check: Any = None) -> Flask:
    web = Flask("autofulfill")
    # One byte over our limit: a chunked body (no Content-Length) is read up to it, so one that is
    # too large is seen as too large (413), not cut to the limit and failing its signature (401).
    web.config["MAX_CONTENT_LENGTH"] = MAX_BODY + 1
    metrics = Metrics(app)
    courier = Courier(app.sessions, app.publisher, app.clock)  # the broker is never on the answer's path
    web.extensions["autofulfill"] = app
    web.extensions["autofulfill.courier"] = courier

    @web.before_request
    def _started() -> None:
        g.started = time.perf_counter()

    def answer(platform: str, code: int, **body: Any) -> tuple[Response, int]:
        metrics.webhook_answered(platform, code, time.perf_counter() - g.get("started", time.perf_counter()))
        return jsonify({"status": code, **body}), code

    @web.post("/webhooks/<platform>/<store_name>")
    def webhook(platform: str, store_name: str) -> tuple[Response, int]:
        cfg = app.config.stores.get(store_name)
        if cfg is None or cfg.platform != platform:
            return answer(platform, 404, error="unknown store")
        if (request.content_length or 0) > MAX_BODY:
            return answer(platform, 413, error="body over 1 MiB")
        try:
            body = request.stream.read(MAX_BODY + 1)
        except Exception:  # the client went away, or sent a body shorter than it announced
            return answer(platform, 400, error="body could not be read")
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
                received = _receive(app, courier, store_name, event)
            except Exception as exc:  # our database is away: 503 lets the platform retry
                log("webhook.failed", level=40, error=f"{type(exc).__name__}: {str(exc)[:200]}")
                return answer(platform, 503, error="temporarily unavailable")
            metrics.webhook_accepted(store_name, received["outcome"])
            return answer(platform, 200, **received)

    @web.get("/healthz")
    def healthz() -> tuple[Response, int]:
        checks = {"db": _check(lambda: _db_ok(app)), "broker": _check(broker_check or (lambda: None))}
        ok = all(v == "ok" for v in checks.values())
        return jsonify({"status": "ok" if ok else "degraded", **checks}), 200 if ok else 503

    @web.get("/metrics")
    def exposition() -> Response:
        data, content_type = metrics.exposition()
        return Response(data, content_type=content_type)

    @web.errorhandler(413)
    def too_large(_exc: Exception) -> tuple[Response, int]:
        return answer("unknown", 413, error="body over 1 MiB")

    return web


def _receive(app: App, courier: Courier, store_name: str, event: Any) -> dict[str, Any]:
    # What a platform sends is only as long as it likes: keys and topics are made to fit the receipt.
    key = event.event_id if len(event.event_id) <= 200 else (
        "sha256:" + hashlib.sha256(event.event_id.encode("utf-8", "replace")).hexdigest())
    with app.sessions() as session:
        result = None
        if event.topic in INGEST_TOPICS and event.order is not None:
            result = intake.ingest(app, session, store_name, event.order, source=f"webhook {event.topic}")
        # The receipt last, with its outcome: one statement, and a delivery seen before rolls back
        # whatever its ingest wrote (nothing, for the same body: ingest changes nothing twice).
        outcome = result.status if result is not None else "ignored"
        if insert_new(session, WebhookReceiptRow, store=store_name, dedupe_key=key, topic=event.topic[:64],
                      platform_order_id=event.order_id[:64], outcome=outcome) is None:
            session.rollback()
            log("webhook.duplicate", topic=event.topic, event_id=event.event_id, order=event.order_id)
            return {"outcome": "duplicate"}
        session.commit()
    if result is None:
        log("webhook.ignored", topic=event.topic, order=event.order_id)
        return {"outcome": "ignored"}
    if result.outbox_ids:  # committed: a 200 now means the order and its next step are in the ledger
        courier.send(result.outbox_ids)
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
