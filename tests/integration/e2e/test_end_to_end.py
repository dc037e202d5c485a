"""The whole service as processes (web receiver, Celery worker, scheduler) on a real Redis broker
and a real ledger, talking HTTP to the Shopify and Amazon sandboxes on loopback."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from tests.integration.support import fba_shipments, make_stack, stop
from worker.sandbox.stack import wait_for

pytestmark = pytest.mark.integration


def test_webhook_to_mcf_to_tracking_exactly_once(tmp_path: Path, redis_db: str, pg_fresh: str) -> None:
    """Webhook three times, another topic for the same order, and the poller: one MCF order,
    one Shopify fulfillment with Amazon's tracking number, the customer notified."""
    stack = make_stack(tmp_path, redis_db, pg_fresh, poll_interval_s=2, ship_after_s=3)
    try:
        stack.start("web", "worker", "scheduler")
        order = stack.shop.add_order([("TEE-RED-M", 2), ("MUG-BLK", 1)], shipping_title="Express")
        oid = str(order["id"])
        for _ in range(3):
            assert stack.shop.deliver(stack.webhook_url, "orders/paid", oid, event_id="evt-1") == 200
        assert stack.shop.deliver(stack.webhook_url, "orders/create", oid) == 200
        wait_for(lambda: fba_shipments(stack, "pushed") == 1, 90, "tracking pushed to Shopify")
        wait_for(lambda: stack.amazon.calls.count("listAllFulfillmentOrders") >= 2, 30, "more sweeps")
        # The poller has seen the order by now, too (poll every 2 s).
        assert len(stack.amazon.orders) == 1
        mcf_id = f"DEMO-{oid}-1"
        request = stack.amazon.orders[mcf_id].request
        assert request["shippingSpeedCategory"] == "Expedited"
        assert sorted((i["sellerSku"], i["quantity"]) for i in request["items"]) == [
            ("AMZ-MUG-BLK", 1), ("AMZ-TEE-RED-M", 2)]
        amazon_numbers = {stack.amazon.orders[mcf_id].tracking}
        fulfillments = stack.shop.fulfillments(oid)
        assert len(fulfillments) == 1
        assert set(fulfillments[0]["tracking_numbers"]) == amazon_numbers
        assert fulfillments[0]["tracking_company"] == {"UPS": "UPS", "USPS": "USPS", "AMZN_US": "Amazon"}[
            stack.amazon.orders[mcf_id].carrier]
        assert fulfillments[0]["notify_customer"] is True
        assert stack.shop.calls.count("CreateFulfillment") == 1
        assert len(stack.orders()) == 1
    finally:
        stop(stack)


def test_forged_webhook_is_refused_and_nothing_happens(tmp_path: Path, redis_db: str) -> None:
    stack = make_stack(tmp_path, redis_db, "sqlite:///var/ledger.db", poll_interval_s=3600)
    try:
        stack.start("web", "worker", "scheduler")
        # Not paid in the store, so the poller (which runs at start) leaves it alone too.
        order = stack.shop.add_order([("TEE-RED-M", 1)], financial_status="pending")
        body, headers = stack.shop.signed_webhook("orders/paid", order["id"])
        forged = body.replace(b"TEE-RED-M", b"CAP-NAVY")
        r = requests.post(stack.webhook_url, data=forged, headers=headers, timeout=5)
        assert r.status_code == 401
        headers_no_sig = {k: v for k, v in headers.items() if k != "X-Shopify-Hmac-Sha256"}
        r = requests.post(stack.webhook_url, data=body, headers=headers_no_sig, timeout=5)
        assert r.status_code == 401
        assert requests.post(stack.webhook_url.replace("/demo", "/nope"), data=body, headers=headers,
                             timeout=5).status_code == 404
        big = b"{" + b" " * (1024 * 1024 + 10) + b"}"
        assert requests.post(stack.webhook_url, data=big, headers=headers, timeout=5).status_code == 413
        garbage = b"not json"
        sig_headers = dict(stack.shop.signed_webhook("orders/paid", order["id"])[1])
        from connectors.shopify.webhooks import sign

        sig_headers["X-Shopify-Hmac-Sha256"] = sign(garbage, "sandbox-secret")
        r = requests.post(stack.webhook_url, data=garbage, headers=sig_headers, timeout=5)
        assert r.status_code == 400
        wait_for(lambda: stack.amazon.calls.count("listAllFulfillmentOrders") >= 2, 30, "two sweeps")
        assert stack.orders() == []
        assert stack.amazon.create_calls == 0
        metrics = requests.get(f"http://127.0.0.1:{stack.port}/metrics", timeout=5).text
        assert 'autofulfill_webhook_requests_total{code="401",platform="shopify"} 2.0' in metrics
    finally:
        stop(stack)


def test_missed_webhook_is_found_by_the_poller(tmp_path: Path, redis_db: str) -> None:
    stack = make_stack(tmp_path, redis_db, "sqlite:///var/ledger.db", poll_interval_s=2, ship_after_s=1)
    try:
        stack.start("worker", "scheduler")
        order = stack.shop.add_order([("CAP-NAVY", 1)])
        wait_for(lambda: fba_shipments(stack, "pushed") == 1, 90, "the polled order to be tracked")
        assert len(stack.shop.fulfillments(order["id"])) == 1
    finally:
        stop(stack)


def test_kill_9_between_mcf_create_and_commit(tmp_path: Path, redis_db: str, pg_fresh: str) -> None:
    """The worker dies while Amazon is answering the create: after a restart there is still
    exactly one MCF order (looked up, not created again) and one fulfillment."""
    stack = make_stack(tmp_path, redis_db, pg_fresh, poll_interval_s=3600, ship_after_s=1,
                       create_delay_s=6, task_time_limit_s=4)
    try:
        stack.start("web", "worker", "scheduler")
        order = stack.shop.add_order([("MUG-BLK", 1)])
        assert stack.shop.deliver(stack.webhook_url, "orders/paid", order["id"]) == 200
        wait_for(lambda: len(stack.amazon.orders) == 1, 60, "Amazon to record the create")
        stack.kill("worker")
        assert fba_shipments(stack, "submitting") == 1  # the outcome never reached the ledger
        stack.start("worker")
        wait_for(lambda: fba_shipments(stack, "pushed") == 1, 120, "recovery and tracking")
        assert stack.amazon.create_calls == 1
        assert len(stack.amazon.orders) == 1
        assert len(stack.shop.fulfillments(order["id"])) == 1
        assert stack.shop.calls.count("CreateFulfillment") == 1
    finally:
        stop(stack)
