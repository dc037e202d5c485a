"""``calls.end_reads`` — what runs before every adapter call: a read transaction is ended (its
connection goes back to the pool, what it loaded stays), a transaction with writes is refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from worker.app import Calling
from worker.ledger import calls, state
from worker.ledger.migrate import ensure_schema
from worker.ledger.models import OrderRow, make_engine, make_sessions

NOW = datetime(2026, 12, 7, tzinfo=UTC)


@pytest.fixture
def sessions(db_url: str) -> Iterator[Any]:
    engine = make_engine(db_url)
    ensure_schema(engine)
    with engine.begin() as conn:
        conn.execute(insert(OrderRow), [{
            "store": "acme", "platform_order_id": "1", "number": "#1", "status": "held", "reason": "",
            "payload": {}, "lease_token": "", "attempts": 0, "changes": 0, "created_at": NOW,
            "updated_at": NOW}])
    yield make_sessions(engine)
    engine.dispose()


def test_a_read_is_ended_and_what_it_loaded_stays(sessions: Any) -> None:
    engine = sessions.kw["bind"]
    with sessions() as session:
        row = session.scalars(select(OrderRow)).one()
        assert session.in_transaction() and engine.pool.checkedout() == 1
        calls.end_reads()
        assert not session.in_transaction() and engine.pool.checkedout() == 0
        assert row.status == "held" and not session.in_transaction()  # no reload


@pytest.mark.parametrize("how", ["flushed", "statement", "pending", "event"])
def test_a_transaction_that_wrote_is_refused(sessions: Any, how: str,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    with sessions() as session:
        row = session.scalars(select(OrderRow)).one()
        if how == "flushed":
            row.reason = "x"
            session.flush()
        elif how == "statement":
            session.execute(update(OrderRow).values(reason="x"))
        elif how == "pending":
            row.reason = "x"
        else:
            state.event(session, row.id, "noted", at=NOW)
        with pytest.raises(calls.WriteAcrossCall):
            calls.end_reads()
        assert session.in_transaction()  # left as it was: nothing committed on its behalf
        monkeypatch.setattr(calls, "STRICT", False)
        calls.end_reads()  # logged, not raised, outside the tests
        assert session.in_transaction()
        session.rollback()
    with sessions() as session:
        assert session.scalars(select(OrderRow.reason)).one() == ""


def test_a_committed_write_is_forgotten(sessions: Any) -> None:
    with sessions() as session:
        session.execute(update(OrderRow).values(reason="x"))
        session.commit()
        session.scalars(select(OrderRow)).one()  # a new transaction, a read
        calls.end_reads()
        assert not session.in_transaction()


def test_every_method_and_every_step_of_a_listing_runs_before(sessions: Any) -> None:
    seen: list[str] = []

    class Port:
        name = "port"

        def fetch(self, x: int) -> int:
            seen.append("fetch")
            return x + 1

        def pages(self) -> Iterator[int]:
            for i in range(2):
                seen.append(f"page {i}")
                yield i

    port = Calling(Port(), lambda: seen.append("before"))
    assert port.name == "port" and port.fetch(1) == 2
    assert list(port.pages()) == [0, 1]
    assert seen == ["before", "fetch", "before", "before", "page 0", "before", "page 1", "before"]
