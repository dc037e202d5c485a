"""`autofulfill status` on a real ledger: OK when all is well, a person is needed otherwise."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.fakes import make_order
from tests.ledger_support import Env, drain, make_env
from worker.errors import PermanentError
from worker.pipeline import intake, tracking
from worker.service import sweeper
from worker.service.status import health


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
    intake.ingest_and_publish(app, "acme", store.orders["8002"], source="webhook")
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


def test_an_order_step_the_scheduler_never_ran_is_overdue(env: Env) -> None:
    app, store, amazon, published, clock = env
    order = make_order("8003", lines=(("TEE-RED-M", 2),))
    store.orders["8003"] = order
    intake.ingest_and_publish(app, "acme", order, source="webhook")
    drain(app, published)
    refunded = store.orders["8003"] = replace(order, lines=(replace(order.lines[0], quantity=1),), refunds=1)
    intake.ingest_and_publish(app, "acme", refunded, source="webhook orders/updated")
    published.clear()  # the adjust message is lost and no scheduler runs
    assert "overdue steps: 0" in health(app, queue_depth=lambda: 0, workers=lambda: 1).text()
    clock.advance(3600)
    late = health(app, queue_depth=lambda: 0, workers=lambda: 1)
    # the adjustment, and the look-up of the submitted MCF order (its back-stop is 30 minutes)
    assert "overdue steps: 2" in late.text() and "is the scheduler running?" in late.text()
    sweeper.redrive_due(app)  # the scheduler's back-stop sends it again
    drain(app, published)
    assert "overdue steps: 0" in health(app, queue_depth=lambda: 0, workers=lambda: 1).text()
    assert list(amazon.created) == ["ACME-8003-1", "ACME-8003-2"]
