"""Text logs and the CLI's tables and timelines escape control characters (issue 13, item 12): a
newline in an order name cannot forge a log line or a table row, an escape sequence never reaches
the terminal. The JSON log format escapes by itself."""

from __future__ import annotations

import io
import re
from datetime import UTC, datetime
from pathlib import Path

from worker import logs
from worker.ledger.migrate import ensure_schema
from worker.ledger.models import EventRow, OrderRow, make_engine, make_sessions
from worker.service.views import orders_table, timeline

HOSTILE = "10\n01 12:00:00 info    webhook.accepted forged=1\x1b[2J\x07\u202e"
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f\u202e]")  # every control character but the newline


def test_a_text_log_line_stays_one_line() -> None:
    stream = io.StringIO()
    logs.setup("text", "INFO", stream)
    try:
        with logs.bind(order=HOSTILE):
            logs.log("webhook.accepted", reason=HOSTILE, **{"odd\nkey": "v"})
    finally:
        logs.setup("json", "INFO")
    out = stream.getvalue()
    assert out.count("\n") == 1 and not RAW.search(out)
    assert "order=10\\n01 12:00:00" in out and "\\x1b[2J\\x07\\u202e" in out


def test_orders_and_show_escape_what_the_store_sent(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'l.db'}")
    ensure_schema(engine)
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    with make_sessions(engine)() as session:
        order = OrderRow(store="acme", platform_order_id="1", number=HOSTILE, status="attention",
                         reason=HOSTILE, payload={"address": {"city": "Austin\x1b]0;pwned\x07"}},
                         created_at=now, updated_at=now)
        session.add(order)
        session.flush()
        session.add(EventRow(order_id=order.id, kind="parked", at=now, detail={"reason": HOSTILE}))
        session.commit()
        table = orders_table(session, None, None)
        shown = timeline(session, order)
    engine.dispose()
    assert table.count("\n") == 2 and not RAW.search(table)  # header, rule, one row
    assert not RAW.search(shown) and "10\\n01 12:00:00" in shown and "\\x1b]0;pwned\\x07" in shown
    assert all(not line.startswith("01 12:00:00") for line in shown.splitlines())
