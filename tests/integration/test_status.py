"""`autofulfill status` on a real ledger: OK when all is well, a person is needed otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.errors import PermanentError
from tests.fakes import make_order
from tests.ledger_support import Env, drain, make_env
from worker import pipeline, sweeper, tracking
from worker.status import health


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    yield from make_env(db_url, tmp_path)


def test_status_is_ok_then_names_what_needs_a_person(env: Env) -> None:
    app, store, amazon, published, clock = env
    store.orders["8001"] = make_order("8001")
    sweeper.poll_store(app, "acme")
    drain(app, published)
    tracking.sweep(app, "us")
    ok = health(app, queue_depth=lambda: 0, workers=lambda: 2)
    assert not ok.needs_person, ok.text()
    assert "status: OK" in ok.text() and "held" not in ok.text() and "routed 1" in ok.text()

    amazon.fail_submit.append(PermanentError("InvalidInput: unknown seller SKU"))
    store.orders["8002"] = make_order("8002")
    pipeline.ingest_and_publish(app, "acme", store.orders["8002"], source="webhook")
    drain(app, published)
    clock.advance(3 * 3600)  # polls and sweeps are now overdue too
    bad = health(app, queue_depth=lambda: 12, workers=lambda: 0,
                 webhook_warnings=lambda store: ["webhook 7 (order.updated) is disabled"])
    text = bad.text()
    assert bad.needs_person
    assert "store acme: 1 parked" in text
    assert "store acme: no successful poll 3h ago" in text
    assert "no worker answers" in text
    assert "queue: 12 waiting" in text
    assert "store acme: webhook 7 (order.updated) is disabled" in text and "1 problem(s)" in text
    unknown = health(app, queue_depth=lambda: 0, workers=lambda: 1, webhook_warnings=lambda store: None)
    assert "unknown" in unknown.text()
