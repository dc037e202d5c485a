"""Two worker processes (each a prefork pool) against one Redis and one PostgreSQL: every order
processed exactly once, and Amazon's per-operation quota shared, not doubled."""

from __future__ import annotations

from pathlib import Path

from tests.integration.support import make_stack, stop
from worker.sandbox.stack import wait_for

ORDERS = 45


def test_two_workers_process_each_order_once_within_one_quota(tmp_path: Path, redis_db: str,
                                                              pg_fresh: str) -> None:
    stack = make_stack(tmp_path, redis_db, pg_fresh, poll_interval_s=3600, ship_after_s=3600)
    try:
        stack.start("web", "worker", "worker#2", "scheduler")
        ids = []
        for i in range(ORDERS):
            order = stack.shop.add_order([("TEE-RED-M", 1 + i % 2)])
            ids.append(str(order["id"]))
        for oid in ids:
            assert stack.shop.deliver(stack.webhook_url, "orders/paid", oid) == 200
        wait_for(lambda: sum(1 for _, s in stack.shipments() if s.state == "submitted") == ORDERS, 120,
                 "every order submitted")
        assert sorted(stack.amazon.orders) == sorted(f"DEMO-{oid}-1" for oid in ids)
        assert stack.amazon.create_calls == ORDERS  # nothing created twice
        # Two processes with a bucket each would send 60 creates into Amazon's burst of 30 and
        # collect ~15 429s; the one bucket in Redis keeps them to Amazon's pace instead.
        throttled = stack.amazon.calls.count("createFulfillmentOrder") - stack.amazon.create_calls
        assert throttled <= 3, throttled
        log = stack.output.getvalue()  # type: ignore[union-attr]
        for part in ("worker    |", "worker#2  |"):  # both processes did part of the work
            assert any(part in line and '"event": "submitted"' in line for line in log.splitlines()), part
    finally:
        stop(stack)
