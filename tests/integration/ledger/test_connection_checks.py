"""A pooled PostgreSQL connection is checked only when it sat idle: one the server dropped
meanwhile is replaced before use, one in steady use costs no extra round trip."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, event, text

from worker.ledger import models
from worker.ledger.models import make_engine


def _backend_pid(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _statements(engine: Any) -> list[str]:
    seen: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda _c, _cur, stmt, *_: seen.append(stmt))
    return seen


def test_an_idle_connection_the_server_dropped_is_replaced(pg_url: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(pg_url, pool_size=1)
    first = _backend_pid(engine)
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:  # a database restart, a proxy's idle timeout
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    admin.dispose()
    monkeypatch.setattr(models, "PING_AFTER_IDLE_S", 0.0)  # idle long enough to be checked
    assert _backend_pid(engine) != first  # no error: the dead connection was found and replaced
    engine.dispose()


def test_a_connection_in_steady_use_is_not_pinged(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(pg_url, pool_size=1)
    _backend_pid(engine)
    statements = _statements(engine)
    for _ in range(5):
        _backend_pid(engine)
    assert statements == ["SELECT pg_backend_pid()"] * 5  # no check between the uses
    monkeypatch.setattr(models, "PING_AFTER_IDLE_S", 0.0)
    pings: list[Any] = []
    monkeypatch.setattr(engine.dialect, "do_ping", lambda conn: pings.append(conn) or True)
    _backend_pid(engine)
    assert len(pings) == 1  # idle: checked once before use
    engine.dispose()
