"""Self-ship labels on a real ledger (SQLite and PostgreSQL) with a fake label seller: one label
per shipment, also across an unknown outcome or a dead worker."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connectors.errors import AmbiguousOutcome, PermanentError
from tests.fakes import FakeLabels, make_order
from tests.ledger_support import Env, drain, make_env
from worker import fulfill, pipeline, state, sweeper
from worker.ledger import EventRow, ShipmentRow

MUG = {"length_in": 6, "width_in": 6, "height_in": 5, "weight_oz": 14}


@pytest.fixture
def labels() -> FakeLabels:
    return FakeLabels()


@pytest.fixture
def env(db_url: str, tmp_path: Path, labels: FakeLabels) -> Iterator[Env]:
    yield from make_env(db_url, tmp_path, labels=labels, store_extra={"parcels": {"MUG": MUG}})


def shipments(app: Any) -> dict[str, ShipmentRow]:
    with app.sessions() as s:
        return {r.route: r for r in s.scalars(select(ShipmentRow))}


def test_unmapped_lines_get_one_label_stored_and_pushed_at_purchase(env: Env, labels: FakeLabels) -> None:
    app, store, amazon, published, _ = env
    order = make_order("6001", lines=(("TEE-RED-M", 1), ("MUG", 2), ("POSTER", 1)))
    store.orders["6001"] = order
    pipeline.ingest_and_publish(app, "acme", order, source="webhook")
    drain(app, published)
    ships = shipments(app)
    assert ships["fba"].state == "submitted" and ships["self_ship"].state == "pushed"
    label = ships["self_ship"].label
    assert label["cost"] == "6.95" and label["carrier"] == "USPS"  # cheapest
    path = Path(label["path"])
    assert path == app.config.data_dir / "labels" / "acme" / "6001-2.pdf"
    assert path.read_bytes().startswith(b"%PDF")
    assert labels.buys == 1 and len(labels.bought) == 1
    request = labels.quotes["shp_1"]
    assert request.reference == "ACME-6001-2"
    assert request.parcel.weight_oz == 2 * 14 + 16  # two mugs plus the default box for the poster
    assert [p.tracking[0].number for p in store.pushed] == [ships["self_ship"].tracking[0]["number"]]
    assert store.pushed[0].lines == (("60011", 2), ("60012", 1))


def test_lost_answer_to_a_purchase_is_looked_up_not_bought_again(env: Env, labels: FakeLabels) -> None:
    app, store, amazon, published, clock = env
    store.orders["6002"] = make_order("6002", lines=(("POSTER", 1),))
    labels.fail_buy.append(AmbiguousOutcome("read timeout"))
    pipeline.ingest_and_publish(app, "acme", store.orders["6002"], source="webhook")
    drain(app, published)
    assert shipments(app)["self_ship"].state == "submitting"
    clock.advance(3600)
    sweeper.redrive_due(app)
    drain(app, published)
    assert shipments(app)["self_ship"].state == "pushed"
    assert len(labels.bought) == 1 and labels.buys == 1 and len(labels.quotes) == 1


def test_dead_worker_after_purchase_recovers_the_same_label(env: Env, labels: FakeLabels) -> None:
    app, store, amazon, published, clock = env
    store.orders["6003"] = make_order("6003", lines=(("POSTER", 1),))
    pipeline.ingest_and_publish(app, "acme", store.orders["6003"], source="webhook")
    _, args = published.pop(0)
    pipeline.release(app, *args)
    _, (pk,) = published.pop(0)
    # The worker records the quote, buys, and dies before recording the label.
    with app.sessions() as s:
        claim = state.claim_shipment(s, pk, ("pending",), now=clock.now, lease_s=app.lease_s)
        assert isinstance(claim, state.Claim)
        row = claim.row
        row.state = "submitting"
        quote = labels.quote(fulfill.labels.label_request(app, row))
        row.label = {"shipment_id": quote.shipment_id, "rate": {
            "rate_id": "rate_a", "carrier": "USPS", "service": "GroundAdvantage", "amount": "6.95",
            "currency": "USD", "delivery_days": 4}}
        s.commit()
        labels.buy(quote.shipment_id, quote.rates[0])
    assert fulfill.submit(app, pk) == "submitting"  # the dead worker's lease is still live
    clock.advance(app.lease_s + 1)
    assert fulfill.submit(app, pk) == "label_bought"
    drain(app, published)
    assert len(labels.bought) == 1 and labels.buys == 1
    with app.sessions() as s:
        bought = s.scalars(select(EventRow).where(EventRow.kind == "label_bought"))
        kinds = [e.detail.get("how") for e in bought]
    assert kinds == ["found after an unknown outcome"]


def test_address_problem_parks_with_the_providers_reason(env: Env, labels: FakeLabels) -> None:
    app, store, amazon, published, _ = env
    store.orders["6004"] = make_order("6004", lines=(("POSTER", 1),))
    labels.fail_quote.append(PermanentError("address: the street could not be found (E.ADDRESS.NOT_FOUND)"))
    pipeline.ingest_and_publish(app, "acme", store.orders["6004"], source="webhook")
    drain(app, published)
    row = shipments(app)["self_ship"]
    assert row.state == "attention" and row.reason.startswith("no label bought: address:")
    assert labels.bought == {}


def test_show_and_orders_print_the_label_file_and_cost(env: Env) -> None:
    from worker.views import find_order, orders_table, timeline

    app, store, amazon, published, _ = env
    store.orders["6005"] = make_order("6005", lines=(("POSTER", 1),))
    pipeline.ingest_and_publish(app, "acme", store.orders["6005"], source="webhook")
    drain(app, published)
    path = str(app.config.data_dir / "labels" / "acme" / "6005-1.pdf")
    with app.sessions() as s:
        row = find_order(s, "acme", "6005")
        assert row is not None
        shown = timeline(s, row)
        table = orders_table(s, "acme", None)
    assert f"label USPS:GroundAdvantage 6.95 USD at {path}" in shown
    assert f"6.95 USD {path}" in table


def test_first_scan_holds_the_tracking_until_the_carrier_has_the_parcel(db_url: str, tmp_path: Path) -> None:
    from worker.labels import scan_sweep

    labels = FakeLabels()
    for app, store, _amazon, published, _ in make_env(db_url, tmp_path, labels=labels,
                                                    labels_extra={"push_tracking": "first_scan"}):
        store.orders["6006"] = make_order("6006", lines=(("POSTER", 1),))
        pipeline.ingest_and_publish(app, "acme", store.orders["6006"], source="webhook")
        drain(app, published)
        assert shipments(app)["self_ship"].state == "label_bought" and store.pushed == []
        assert scan_sweep(app, "main") == 0 and sweeper.redrive_due(app) == 0  # still on the shelf
        labels.scanned.add("shp_1")
        assert scan_sweep(app, "main") == 1
        drain(app, published)
        assert shipments(app)["self_ship"].state == "pushed" and len(store.pushed) == 1
        assert scan_sweep(app, "main") == 0


def test_lines_amazon_cannot_fulfil_fall_back_to_a_label(env: Env, labels: FakeLabels) -> None:
    app, store, amazon, published, _ = env
    amazon.out_of_stock.add("AMZ-TEE")
    order = make_order("6007", lines=(("TEE-RED-M", 2), ("POSTER", 1)))
    store.orders["6007"] = order
    pipeline.ingest_and_publish(app, "acme", order, source="webhook")
    drain(app, published)
    assert amazon.previews == 1 and amazon.created == {}  # no blind create
    ships = shipments(app)
    assert list(ships) == ["self_ship"] and ships["self_ship"].state == "pushed"
    with app.sessions() as s:
        events = {e.kind: e.detail for e in s.scalars(select(EventRow))}
    assert events["previewed"]["unfulfillable"] == ["AMZ-TEE: InventoryUnavailable"]
    assert any("Amazon cannot fulfil AMZ-TEE now (preview)" in r for r in events["routed"]["reasons"])


def test_dry_run_records_what_it_would_send_and_sends_nothing(db_url: str, tmp_path: Path) -> None:
    labels = FakeLabels()
    for app, store, amazon, published, _ in make_env(db_url, tmp_path, labels=labels,
                                                    store_extra={"dry_run": True}):
        order = make_order("6008", lines=(("TEE-RED-M", 1), ("POSTER", 2)))
        store.orders["6008"] = order
        pipeline.ingest_and_publish(app, "acme", order, source="webhook")
        drain(app, published)
        assert amazon.created == {} and labels.quotes == {} and labels.bought == {}
        assert store.pushed == []
        with app.sessions() as s:
            would = [e.detail["would"] for e in s.scalars(select(EventRow).where(EventRow.kind == "dry_run"))]
            rows = list(s.scalars(select(ShipmentRow)))
        assert would[0].startswith("create MCF order ACME-6008-1 (Standard; AMZ-TEE x1; to Austin, TX, US")
        assert would[1].startswith("buy a label (cheapest) for POSTER x2")
        assert "Analytical" not in " ".join(would)
        assert {r.state for r in rows} == {"cancelled"}


@pytest.mark.parametrize(("units", "packing", "expected"), [
    (1, "0", "fba"),  # FBA 5.40 < label 6.95
    (2, "0", "label"),  # FBA 10.80 > label 6.95
    (2, "5", "fba"),  # FBA 10.80 < label 6.95 + 5 packing
    (2, "3.85", "fba"),  # a tie (10.80 both ways) keeps FBA: the rules' choice stands
])
def test_prefer_cheapest_compares_fba_fees_with_the_best_label(db_url: str, tmp_path: Path, units: int,
                                                               packing: str, expected: str) -> None:
    labels = FakeLabels()
    extra = {"self_ship_cost_per_order": packing, "routing": {"sku_map": {"TEE-RED-M": "AMZ-TEE"},
                                                               "prefer": "cheapest"}}
    for app, store, amazon, published, _ in make_env(db_url, tmp_path, labels=labels, store_extra=extra):
        order = make_order("6009", lines=(("TEE-RED-M", units),))
        store.orders["6009"] = order
        pipeline.ingest_and_publish(app, "acme", order, source="webhook")
        drain(app, published)
        assert [r.route for r in shipments(app).values()] == ["fba" if expected == "fba" else "self_ship"]
        assert len(labels.bought) == (1 if expected == "label" else 0)
        assert len(amazon.created) == (1 if expected == "fba" else 0)
        # One rating only: when the label wins, the compared quote is the one bought, and it
        # carries the label shipment's reference.
        assert list(labels.quotes) == ["shp_1"]
        assert labels.quotes["shp_1"].reference == "ACME-6009-1"
        if expected == "label":
            assert list(labels.bought) == ["shp_1"]
        with app.sessions() as s:
            compared = s.scalar(select(EventRow).where(EventRow.kind == "cost_compared"))
        assert compared is not None and compared.detail["choice"] == expected
        assert compared.detail["fba"] == f"{Decimal('5.40') * units} USD"
        assert compared.detail["label"].startswith(f"USPS:GroundAdvantage 6.95 + {Decimal(packing):.2f} USD")
