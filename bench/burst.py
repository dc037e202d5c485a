"""Benchmark: a Black-Friday burst of paid orders through the real service.

Starts the Shopify and Amazon sandboxes (Amazon's default quota: 2 req/s, burst 30 per operation),
the web receiver, N workers and the scheduler on Redis, fires ORDERS signed webhooks as fast as
one client can, and reports webhook latency, time until every order is submitted to MCF, the
achieved createFulfillmentOrder rate against the quota, and how many calls Amazon throttled.

    .venv/bin/python bench/burst.py [--orders 150] [--workers 2] [--db sqlite|postgresql]

Not part of the test suite: it prints figures, it asserts nothing about speed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis
import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.sandbox.stack import Stack  # noqa: E402

PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=150)
    parser.add_argument("--workers", type=int, default=2, help="worker concurrency (prefork)")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/11")
    args = parser.parse_args()

    redis.Redis.from_url(args.redis).flushdb()
    work = Path(tempfile.mkdtemp(prefix="autofulfill-bench-"))
    db = "sqlite:///var/ledger.db" if args.db == "sqlite" else PG
    if args.db == "postgresql":
        from sqlalchemy import create_engine, text

        engine = create_engine(PG)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
    stack = Stack(work, broker_url=args.redis, database_url=db, ship_after_s=3600,
                  poll_interval_s=3600, tracking_interval_s=3600, worker_concurrency=args.workers)
    try:
        stack.start_sandboxes()
        stack.start("web", "worker", "scheduler")
        bodies = []
        for i in range(args.orders):
            order = stack.shop.add_order([("TEE-RED-M", 1 + i % 3)])
            bodies.append(stack.shop.signed_webhook("orders/paid", order["id"]))
        session = requests.Session()
        latencies = []
        t0 = time.monotonic()
        for body, headers in bodies:
            start = time.monotonic()
            code = session.post(stack.webhook_url, data=body, headers=headers, timeout=10).status_code
            latencies.append(time.monotonic() - start)
            assert code == 200, code
        fired = time.monotonic() - t0

        def submitted() -> int:
            return sum(1 for _, s in stack.shipments() if s.state == "submitted")

        last, next_report = -1, time.monotonic()
        while (n := submitted()) < args.orders:
            if time.monotonic() >= next_report and n != last:
                print(f"progress: {n}/{args.orders} submitted after {time.monotonic() - t0:.1f}s", flush=True)
                last, next_report = n, time.monotonic() + 5
            time.sleep(0.5)
            if time.monotonic() - t0 > 600:
                print("gave up after 600 s")
                return 1
        total = time.monotonic() - t0
        creates = stack.amazon.create_calls
        attempted = stack.amazon.calls.count("createFulfillmentOrder")
        ideal = max(0.0, (args.orders - stack.amazon.burst) / stack.amazon.rate)
        lat = sorted(latencies)
        print(f"orders:                  {args.orders} (workers: {args.workers}, ledger: {args.db})")
        print(f"webhooks:                {args.orders / fired:.0f}/s from one client; latency p50 "
              f"{statistics.median(lat) * 1000:.1f} ms, p99 {lat[int(len(lat) * 0.99) - 1] * 1000:.1f} ms")
        print(f"all submitted to MCF in: {total:.1f} s "
              f"(quota floor {ideal:.1f} s = (orders - burst 30) / 2 per s)")
        print(f"create calls:            {creates} accepted, {attempted - creates} throttled (429)")
        print(f"achieved create rate:    {creates / total:.2f}/s against a sustained limit of "
              f"{stack.amazon.rate:.0f}/s after a burst of {stack.amazon.burst:.0f}")
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    raise SystemExit(main())
