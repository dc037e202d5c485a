"""A store cancels an order after it was routed: MCF cancel, label refund, or a clear reason why
not — on a real ledger (SQLite and PostgreSQL) with fake connectors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.fakes import FakeLabels, make_order
from tests.ledger_support import Env, drain, make_env
from worker.domain import Order
from worker.errors import TransientError
from worker.ledger.models import EventRow, OrderRow, ShipmentRow
from worker.pipeline import intake, tracking
from worker.service import sweeper


@pytest.fixture
def labels() -> FakeLabels:
    return FakeLabels()


@pytest.fixture
def env(db_url: str, tmp_path: Path, labels: FakeLabels) -> Iterator[Env]:
    yield from make_env(db_url, tmp_path, labels=labels)


def state_of(env: Env) -> tuple[str, dict[str, tuple[str, str]]]:
    app = env[0]
    with app.sessions() as s:
        order = s.scalar(select(OrderRow))
        assert order is not None
        return order.status, {r.route: (r.state, r.reason) for r in s.scalars(select(ShipmentRow))}


def ship_and_cancel(env: Env, order_id: str, lines: tuple[tuple[str, int], ...]) -> None:
    app, store, amazon, published, _ = env
    order = make_order(order_id, lines=lines)
    store.orders[order_id] = order
    intake.ingest_and_publish(app, "acme", order, source="webhook")
    drain(app, published)


def cancel(env: Env, order_id: str) -> None:
    app, store, _, published, _ = env
    cancelled = replace(store.orders[order_id], cancelled=True)
    for _ in range(2):  # the webhook and the poller both see it
        intake.ingest_and_publish(app, "acme", cancelled, source="webhook orders/cancelled")
    drain(app, published)


def test_submitted_mcf_order_is_cancelled_at_amazon_and_label_refunded(env: Env, labels: FakeLabels) -> None:
    ship_and_cancel(env, "7001", (("TEE-RED-M", 1), ("POSTER", 1)))
    cancel(env, "7001")
    status, ships = state_of(env)
    assert status == "cancelled"
    assert ships == {"fba": ("cancelled", ""), "self_ship": ("cancelled", "")}
    assert env[2].cancelled == ["ACME-7001-1"]
    assert labels.refunded == ["shp_1"]


def test_too_late_at_amazon_is_parked_for_a_person(env: Env) -> None:
    app, store, amazon, published, _ = env
    ship_and_cancel(env, "7002", (("TEE-RED-M", 1),))
    amazon.picking.add("ACME-7002-1")
    cancel(env, "7002")
    status, ships = state_of(env)
    assert status == "attention"
    assert ships["fba"][0] == "attention"
    assert ships["fba"][1].startswith("cancel too late, intercept manually")


def test_already_shipped_is_parked_not_cancelled(env: Env) -> None:
    app, store, amazon, published, clock = env
    ship_and_cancel(env, "7003", (("TEE-RED-M", 1),))
    amazon.shipped.add("ACME-7003-1")
    clock.advance(60)
    tracking.sweep(app, "us")
    drain(app, published)
    cancel(env, "7003")
    status, ships = state_of(env)
    assert status == "attention" and ships["fba"][0] == "attention"
    assert ships["fba"][1].startswith("shipped although cancelled in the store: intercept the package or "
                                      "expect a return (tracking ")
    assert amazon.cancelled == []


def refund(env: Env, order_id: str, **quantities: int) -> None:
    """The store refunds lines (sku -> quantity left); a webhook tells us, the poller too."""
    app, store, _, published, _ = env
    order = store.orders[order_id]
    lines = tuple(replace(ln, quantity=quantities.get(ln.sku.replace("-", "_"), ln.quantity))
                  for ln in order.lines)
    store.orders[order_id] = replace(order, lines=tuple(ln for ln in lines if ln.quantity > 0),
                                     refunds=order.refunds + 1, financial_status="PARTIALLY_REFUNDED")
    for _ in range(2):
        intake.ingest_and_publish(app, "acme", store.orders[order_id], source="webhook orders/updated")
    drain(app, published)


def after_next_read(env: Env, meanwhile: Callable[[], object]) -> None:
    """The store's next order read answers as the store is, then ``meanwhile`` happens in the
    store: something that lands while the step that read it is still at work."""
    store = env[1]
    reads = store.fetch_order

    def read(order_id: str) -> Order | None:
        store.fetch_order = reads  # type: ignore[method-assign]
        seen = reads(order_id)
        meanwhile()
        return seen

    store.fetch_order = read  # type: ignore[method-assign]


def shipments_of(env: Env) -> list[tuple[int, str, str, list[tuple[str, int]]]]:
    with env[0].sessions() as s:
        return [(r.n, r.route, r.state, [(ln.sku, ln.quantity) for ln in r.lines])
                for r in s.scalars(select(ShipmentRow).order_by(ShipmentRow.n))]


def test_partial_refund_of_a_submitted_mcf_line_resubmits_what_is_left(env: Env) -> None:
    app, store, amazon, published, _ = env
    ship_and_cancel(env, "7010", (("TEE-RED-M", 3),))
    refund(env, "7010", TEE_RED_M=1)
    assert amazon.cancelled == ["ACME-7010-1"]
    assert shipments_of(env) == [(1, "fba", "cancelled", [("TEE-RED-M", 3)]),
                                 (2, "fba", "submitted", [("TEE-RED-M", 1)])]
    assert [(i.seller_sku, i.quantity) for i in amazon.created["ACME-7010-2"].items] == [("AMZ-TEE", 1)]
    assert state_of(env)[0] == "routed"
    with app.sessions() as s:
        order = s.scalar(select(OrderRow))
        assert order is not None and [(ln.sku, ln.quantity) for ln in order.lines] == [("TEE-RED-M", 1)]
    refund(env, "7010", TEE_RED_M=1)  # the same refund seen again (no new refund): nothing moves
    assert len(amazon.created) == 2 and amazon.cancelled == ["ACME-7010-1"]


def test_refunding_the_self_ship_line_refunds_its_label_and_leaves_fba_alone(
        env: Env, labels: FakeLabels) -> None:
    app, store, amazon, published, _ = env
    ship_and_cancel(env, "7011", (("TEE-RED-M", 1), ("POSTER", 1)))
    refund(env, "7011", POSTER=0)
    ships = shipments_of(env)
    assert ships[0] == (1, "fba", "submitted", [("TEE-RED-M", 1)])
    assert amazon.cancelled == []
    # The label was bought and its tracking pushed at purchase: it has left, nothing to undo.
    assert ships[1][2] == "pushed" and labels.refunded == []


def test_refund_too_late_at_amazon_is_parked_and_nothing_is_sent_again(env: Env) -> None:
    app, store, amazon, published, _ = env
    ship_and_cancel(env, "7012", (("TEE-RED-M", 2),))
    amazon.picking.add("ACME-7012-1")
    refund(env, "7012", TEE_RED_M=1)
    status, ships = state_of(env)
    assert status == "attention"
    assert ships["fba"][1].startswith("cancel too late, intercept manually")
    assert list(amazon.created) == ["ACME-7012-1"]


def test_refund_of_every_line_cancels_everything_unshipped(env: Env) -> None:
    app, store, amazon, published, _ = env
    ship_and_cancel(env, "7013", (("TEE-RED-M", 2),))
    refund(env, "7013", TEE_RED_M=0)
    assert state_of(env) == ("cancelled", {"fba": ("cancelled", "")})
    assert amazon.cancelled == ["ACME-7013-1"]


def test_refund_after_amazon_shipped_changes_nothing(env: Env) -> None:
    app, store, amazon, published, clock = env
    ship_and_cancel(env, "7014", (("TEE-RED-M", 2),))
    amazon.shipped.add("ACME-7014-1")
    clock.advance(60)
    tracking.sweep(app, "us")
    drain(app, published)
    refund(env, "7014", TEE_RED_M=1)
    assert state_of(env)[0] == "done"
    assert shipments_of(env) == [(1, "fba", "pushed", [("TEE-RED-M", 2)])]
    assert amazon.cancelled == []


def test_refunded_line_whose_label_waits_for_its_first_scan_gets_the_label_refunded(
        db_url: str, tmp_path: Path) -> None:
    labels = FakeLabels()
    for env in make_env(db_url, tmp_path, labels=labels, labels_extra={"push_tracking": "first_scan"}):
        ship_and_cancel(env, "7015", (("POSTER", 1), ("MUG", 2)))
        assert shipments_of(env) == [(1, "self_ship", "label_bought", [("POSTER", 1), ("MUG", 2)])]
        refund(env, "7015", MUG=1)
        assert labels.refunded == ["shp_1"]
        assert shipments_of(env) == [(1, "self_ship", "cancelled", [("POSTER", 1), ("MUG", 2)]),
                                     (2, "self_ship", "label_bought", [("POSTER", 1), ("MUG", 1)])]
        with env[0].sessions() as s:
            kinds = [e.kind for e in s.scalars(select(EventRow).order_by(EventRow.id))]
        assert kinds.count("refunded_in_store") == 1 and "refund_adjusted" in kinds


def test_cancellation_arriving_while_a_refund_is_adjusted_wins(env: Env) -> None:
    app, store, amazon, published, _ = env
    ship_and_cancel(env, "7016", (("TEE-RED-M", 3),))

    def cancel() -> None:  # the customer cancels before the adjustment finishes
        store.orders["7016"] = replace(store.orders["7016"], cancelled=True)
        intake.ingest_and_publish(app, "acme", store.orders["7016"], source="webhook orders/cancelled")

    after_next_read(env, cancel)
    refund(env, "7016", TEE_RED_M=2)
    status, ships = state_of(env)
    assert status == "cancelled", ships
    assert amazon.cancelled == ["ACME-7016-1"]
    assert list(amazon.created) == ["ACME-7016-1"]  # the adjust's new, smaller order was never sent
    with app.sessions() as s:
        order = s.scalar(select(OrderRow))
        assert order is not None and order.lease_token == ""


def test_refund_adjustment_previews_the_rest_and_retries_when_amazon_cannot_answer(env: Env) -> None:
    app, store, amazon, published, clock = env
    ship_and_cancel(env, "7017", (("TEE-RED-M", 3),))
    amazon.fail_preview.append(TransientError("HTTP 503 from getFulfillmentPreview"))
    refund(env, "7017", TEE_RED_M=2)
    assert amazon.cancelled == ["ACME-7017-1"]  # undone; the rest waits for Amazon to answer
    assert state_of(env)[0] == "adjusting" and list(amazon.created) == ["ACME-7017-1"]
    clock.advance(120)
    sweeper.redrive_due(app)
    drain(app, published)
    assert state_of(env)[0] == "routed"
    assert [(i.seller_sku, i.quantity) for i in amazon.created["ACME-7017-2"].items] == [("AMZ-TEE", 2)]
    amazon.out_of_stock.add("AMZ-TEE")  # the next refund's rest: Amazon has none left -> fallback
    refund(env, "7017", TEE_RED_M=1)
    assert shipments_of(env)[-1] == (3, "self_ship", "pushed", [("TEE-RED-M", 1)])
    assert sorted(amazon.created) == ["ACME-7017-1", "ACME-7017-2"]


def test_a_second_refund_during_an_adjustment_is_not_lost(env: Env) -> None:
    app, store, amazon, published, _ = env
    ship_and_cancel(env, "7018", (("TEE-RED-M", 4),))
    # The adjust reads the order after refund 1; refund 2 lands (ingested, drained) before it finishes.
    after_next_read(env, lambda: refund(env, "7018", TEE_RED_M=1))
    refund(env, "7018", TEE_RED_M=3)
    # The first run's result is dropped (it read before refund 2); the order is still due, and
    # the scheduler's back-stop runs the adjustment again from the store's order.
    assert state_of(env)[0] == "adjusting"
    sweeper.redrive_due(app)
    drain(app, published)
    assert state_of(env)[0] == "routed"
    live = [s for s in shipments_of(env) if s[2] != "cancelled"]
    assert [lines for *_, lines in live] == [[("TEE-RED-M", 1)]]  # both refunds counted
    assert [(i.seller_sku, i.quantity) for i in amazon.created[f"ACME-7018-{live[0][0]}"].items] == [
        ("AMZ-TEE", 1)]


def test_an_order_cancelled_during_its_hold_shows_its_lines(db_url: str, tmp_path: Path) -> None:
    from worker.service.views import timeline

    for app, _, _, published, _ in make_env(db_url, tmp_path, store_extra={"hold_minutes": 10}):
        order = make_order("7100", lines=(("TEE-RED-M", 2), ("POSTER", 1)))
        intake.ingest_and_publish(app, "acme", order, source="webhook")
        intake.ingest_and_publish(app, "acme", replace(order, cancelled=True), source="webhook")
        drain(app, published)
        with app.sessions() as s:
            row = s.scalar(select(OrderRow))
            assert row is not None and row.status == "cancelled" and not row.lines
            assert "  lines: TEE-RED-M x2, POSTER x1" in timeline(s, row).splitlines()
