"""Self-ship labels through the whole service: real web receiver, worker and scheduler processes
on Redis and PostgreSQL, the Shopify and EasyPost sandboxes over loopback."""

from __future__ import annotations

from pathlib import Path

from tests.integration.support import make_stack, stop
from worker.sandbox.stack import Stack, wait_for


def self_ship(stack: Stack, state: str) -> int:
    return sum(1 for _, s in stack.shipments() if s.route == "self_ship" and s.state == state)


def test_unmapped_order_gets_one_label_file_and_its_tracking_once(tmp_path: Path, redis_db: str,
                                                                  pg_fresh: str) -> None:
    stack = make_stack(tmp_path, redis_db, pg_fresh, poll_interval_s=2)
    try:
        stack.start("web", "worker", "scheduler")
        order = stack.shop.add_order([("POSTER-A2", 2), ("NOTEBOOK", 1)])
        oid = str(order["id"])
        for _ in range(3):
            assert stack.shop.deliver(stack.webhook_url, "orders/paid", oid, event_id="evt-label") == 200
        wait_for(lambda: self_ship(stack, "pushed") == 1, 90, "the label's tracking in Shopify")
        wait_for(lambda: stack.amazon.calls.count("listAllFulfillmentOrders") >= 2, 30, "more polls")
        assert stack.easypost.bought == 1 and stack.easypost.bought_for(f"DEMO-{oid}-1") == 1
        (_, row), = stack.shipments()
        path = Path(row.label["path"])
        assert path.name == f"DEMO-{oid}-1.pdf" and path.read_bytes().startswith(b"%PDF")
        fulfillments = stack.shop.fulfillments(oid)
        assert len(fulfillments) == 1
        assert fulfillments[0]["tracking_numbers"] == [row.tracking[0]["number"]]
        assert stack.amazon.create_calls == 0
    finally:
        stop(stack)


def test_kill_9_between_purchase_and_commit_leaves_one_label(tmp_path: Path, redis_db: str,
                                                             pg_fresh: str) -> None:
    stack = make_stack(tmp_path, redis_db, pg_fresh, poll_interval_s=3600, buy_delay_s=6,
                       task_time_limit_s=4)
    try:
        stack.start("web", "worker", "scheduler")
        order = stack.shop.add_order([("POSTER-A2", 1)])
        assert stack.shop.deliver(stack.webhook_url, "orders/paid", order["id"]) == 200
        wait_for(lambda: stack.easypost.bought == 1, 60, "EasyPost to record the purchase")
        stack.kill("worker")
        assert self_ship(stack, "submitting") == 1  # the label never reached the ledger
        stack.start("worker")
        wait_for(lambda: self_ship(stack, "pushed") == 1, 120, "recovery and tracking")
        assert stack.easypost.bought == 1 and stack.easypost.buy_calls == 1
        assert len(stack.shop.fulfillments(order["id"])) == 1
    finally:
        stop(stack)


def test_cancelled_order_gets_its_label_refunded(tmp_path: Path, redis_db: str) -> None:
    stack = make_stack(tmp_path, redis_db, "sqlite:///var/ledger.db", poll_interval_s=3600)
    try:
        stack.start("web", "worker", "scheduler")
        order = stack.shop.add_order([("POSTER-A2", 1)])
        assert stack.shop.deliver(stack.webhook_url, "orders/paid", order["id"]) == 200
        wait_for(lambda: self_ship(stack, "pushed") == 1, 60, "the label")
        stack.shop.cancel_order(order["id"])
        assert stack.shop.deliver(stack.webhook_url, "orders/cancelled", order["id"]) == 200
        wait_for(lambda: self_ship(stack, "cancelled") == 1, 60, "the cancellation")
        assert len(stack.easypost.refunds) == 1
        (order_row, row), = stack.shipments()
        assert order_row.status == "cancelled" and row.label["refund"] == "submitted"
    finally:
        stop(stack)
