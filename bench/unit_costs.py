"""What the two building blocks of every step cost in CPU on this machine: one HTTP call through
the clients' session (``requests``, to a server on loopback) and one small ledger transaction
(SQLAlchemy's ORM; the claim's ``UPDATE … RETURNING`` with its commit, then one event with its
commit). An order takes about eight HTTP calls and twelve transactions from webhook to push
(``bench/throughput.py`` counts the transactions): these figures bound how low its CPU can go.

    .venv/bin/python bench/unit_costs.py [--database-url URL] [--calls 1000] [--claims 500]

The ledger part runs in a schema of its own (``unit_costs``), dropped afterwards; the default URL
is the local PostgreSQL's ``test`` database. CPU is this thread's (``time.thread_time``): the
loopback server's share is not in it. Prints the figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import http.server
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import text  # noqa: E402

from connectors.http import ClientSession  # noqa: E402
from worker.ledger import state  # noqa: E402
from worker.ledger.models import Base, OrderRow, make_engine, make_sessions  # noqa: E402

SCHEMA = "unit_costs"


class _Answer(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the clients use it

    def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
        body = b'{"payload": {"fulfillmentOrder": {"status": "Complete"}}}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def http_call_ms(calls: int) -> float:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/orders/1"
    session = ClientSession()
    try:
        for _ in range(50):  # warm: the connection, the proxy look-up
            session.get(url, timeout=5).json()
        started = time.thread_time()
        for _ in range(calls):
            session.get(url, timeout=5).json()
        return 1000 * (time.thread_time() - started) / calls
    finally:
        server.shutdown()
        server.server_close()


def transaction_ms(database_url: str, claims: int) -> float:
    admin = make_engine(database_url)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {SCHEMA}"))
    sep = "&" if "?" in database_url else "?"
    engine = make_engine(f"{database_url}{sep}options=-csearch_path%3D{SCHEMA}")
    try:
        Base.metadata.create_all(engine)
        sessions = make_sessions(engine)
        with sessions() as session:
            order = OrderRow(store="bench", platform_order_id="1", number="#1", status="held", payload={})
            session.add(order)
            session.commit()
        started = time.thread_time()
        for i in range(claims):
            with sessions() as session:  # lease_s tiny: each claim finds the last one lapsed
                state.claim_order(session, order.id, "held", now=datetime.now(UTC), lease_s=1e-6)
                state.event(session, order.id, "bench", at=datetime.now(UTC), i=i)
                session.commit()
        return 1000 * (time.thread_time() - started) / (2 * claims)
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--claims", type=int, default=500)
    args = parser.parse_args()
    call = http_call_ms(args.calls)
    tx = transaction_ms(args.database_url, args.claims)
    print(f"one HTTP call through requests (GET + JSON, loopback)   {call:.2f} ms CPU")
    print(f"one small ledger transaction (ORM, PostgreSQL)          {tx:.2f} ms CPU")
    print(f"8 calls + 12 transactions, an order's floor on this stack {8 * call + 12 * tx:.1f} ms CPU")


if __name__ == "__main__":
    main()
