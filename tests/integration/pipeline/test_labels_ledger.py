"""Self-ship labels on a real ledger (SQLite and PostgreSQL) with a fake label seller: one label
per shipment, also across an unknown outcome or a dead worker."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.fakes import FakeLabels, make_order
from tests.ledger_support import Env, drain, make_env
from worker.domain import Address, CustomsInfo, CustomsItem, Line, Order
from worker.errors import AmbiguousOutcome, PermanentError
from worker.ledger import state
from worker.ledger.models import EventRow, ShipmentRow
from worker.pipeline import fulfill, intake, release
from worker.pipeline.labels import label_request
from worker.service import sweeper

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
    intake.ingest_and_publish(app, "acme", order, source="webhook")
    drain(app, published)
    ships = shipments(app)
    assert ships["fba"].state == "submitted" and ships["self_ship"].state == "pushed"
    label = ships["self_ship"].label
    assert label["cost"] == "6.95" and label["carrier"] == "USPS"  # cheapest
    path = Path(label["path"])
    assert path == app.config.data_dir / "labels" / "acme" / "ACME-6001-2.pdf"
    assert path.read_bytes().startswith(b"%PDF")
    assert labels.buys == 1 and len(labels.bought) == 1
    request = labels.quotes["shp_1"]
    assert request.reference == "ACME-6001-2" and request.customs is None  # domestic: no declaration
    assert request.parcel.weight_oz == 2 * 14 + 16  # two mugs plus the default box for the poster
    assert [p.tracking[0].number for p in store.pushed] == [ships["self_ship"].tracking[0]["number"]]
    assert store.pushed[0].lines == (("60011", 2), ("60012", 1))


def test_lost_answer_to_a_purchase_is_looked_up_not_bought_again(env: Env, labels: FakeLabels) -> None:
    app, store, amazon, published, clock = env
    store.orders["6002"] = make_order("6002", lines=(("POSTER", 1),))
    labels.fail_buy.append(AmbiguousOutcome("read timeout"))
    intake.ingest_and_publish(app, "acme", store.orders["6002"], source="webhook")
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
    intake.ingest_and_publish(app, "acme", store.orders["6003"], source="webhook")
    _, args = published.pop(0)
    release.release(app, *args)
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
    intake.ingest_and_publish(app, "acme", store.orders["6004"], source="webhook")
    drain(app, published)
    row = shipments(app)["self_ship"]
    assert row.state == "attention" and row.reason.startswith("no label bought: address:")
    assert labels.bought == {}


def test_show_and_orders_print_the_label_file_and_cost(env: Env) -> None:
    from worker.service.views import find_order, orders_table, timeline

    app, store, amazon, published, _ = env
    store.orders["6005"] = make_order("6005", lines=(("POSTER", 1),))
    intake.ingest_and_publish(app, "acme", store.orders["6005"], source="webhook")
    drain(app, published)
    path = str(app.config.data_dir / "labels" / "acme" / "ACME-6005-1.pdf")
    with app.sessions() as s:
        row = find_order(s, "acme", "6005")
        assert row is not None
        shown = timeline(s, row)
        table = orders_table(s, "acme", None)
    assert f"label USPS:GroundAdvantage 6.95 USD at {path}" in shown
    assert f"6.95 USD {path}" in table


def test_first_scan_holds_the_tracking_until_the_carrier_has_the_parcel(db_url: str, tmp_path: Path) -> None:
    from worker.pipeline.labels import scan_sweep

    labels = FakeLabels()
    for app, store, _amazon, published, _ in make_env(db_url, tmp_path, labels=labels,
                                                    labels_extra={"push_tracking": "first_scan"}):
        store.orders["6006"] = make_order("6006", lines=(("POSTER", 1),))
        intake.ingest_and_publish(app, "acme", store.orders["6006"], source="webhook")
        drain(app, published)
        assert shipments(app)["self_ship"].state == "label_bought" and store.pushed == []
        assert scan_sweep(app, "main") == 0 and sweeper.redrive_due(app) == 0  # still on the shelf
        labels.scanned.add("shp_1")
        assert scan_sweep(app, "main") == 1
        drain(app, published)
        assert shipments(app)["self_ship"].state == "pushed" and len(store.pushed) == 1
        assert scan_sweep(app, "main") == 0


def test_the_scan_sweep_holds_a_batch_in_memory_and_sends_its_pushes_batch_by_batch(
        db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Thousands of labels waiting for their first scan after a sale: the sweep read them all into
    one session and sent every push when it ended. It reads, looks up and writes a batch at a time,
    and a batch's pushes go before the next batch is looked up."""
    import gc

    from worker.pipeline import labels as labels_step
    from worker.pipeline import names

    fake = FakeLabels()
    monkeypatch.setattr(labels_step, "SCAN_BATCH", 2)
    for app, store, _amazon, published, _ in make_env(db_url, tmp_path, labels=fake,
                                                    labels_extra={"push_tracking": "first_scan"}):
        for oid in ("6101", "6102", "6103"):
            store.orders[oid] = make_order(oid, lines=(("POSTER", 1),))
            intake.ingest_and_publish(app, "acme", store.orders[oid], source="webhook")
        drain(app, published)
        fake.scanned.update({"shp_1", "shp_2", "shp_3"})
        seen: list[tuple[int, int]] = []  # (shipment rows alive, pushes sent) at each look-up
        lookup = fake.lookup

        def looking_up(shipment_id: str, seen: list[tuple[int, int]] = seen, published: Any = published,
                       lookup: Any = lookup) -> Any:
            gc.collect()
            seen.append((sum(isinstance(o, ShipmentRow) for o in gc.get_objects()),
                         sum(name == names.PUSH for name, _ in published)))
            return lookup(shipment_id)

        fake.lookup = looking_up  # type: ignore[method-assign]
        assert labels_step.scan_sweep(app, "main") == 3
        assert [alive <= 2 for alive, _ in seen] == [True] * 3, seen
        assert [pushes for _, pushes in seen] == [0, 0, 2], seen


def test_lines_amazon_cannot_fulfil_fall_back_to_a_label(env: Env, labels: FakeLabels) -> None:
    app, store, amazon, published, _ = env
    amazon.out_of_stock.add("AMZ-TEE")
    order = make_order("6007", lines=(("TEE-RED-M", 2), ("POSTER", 1)))
    store.orders["6007"] = order
    intake.ingest_and_publish(app, "acme", order, source="webhook")
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
        intake.ingest_and_publish(app, "acme", order, source="webhook")
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
        intake.ingest_and_publish(app, "acme", order, source="webhook")
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


LONDON = Address(name="Jo Bloggs", address1="10 Downing St", city="London", postal_code="SW1A 2AA",
                 country="GB", phone="+442079250918")
SIGNED = {"customs": {"signer": "Jane Smith"}}
MUG_CUSTOMS = {"MUG": {"description": "Ceramic mug", "hs_tariff_number": "691200", "origin_country": "CN"}}


def abroad(order_id: str, *lines: tuple[str, int, str, str]) -> Order:
    """An order to London with (sku, quantity, title, unit price) lines."""
    return replace(make_order(order_id), address=LONDON,
                   lines=tuple(Line(f"{order_id}{i}", sku, qty, title, Decimal(price))
                               for i, (sku, qty, title, price) in enumerate(lines)))


def test_an_international_label_declares_each_line_to_customs(db_url: str, tmp_path: Path) -> None:
    labels = FakeLabels()
    extra = {"parcels": {"MUG": MUG}, "customs_items": MUG_CUSTOMS}
    for app, store, _amazon, published, _ in make_env(db_url, tmp_path, labels=labels, store_extra=extra,
                                                    labels_extra=SIGNED):
        order = abroad("7001", ("MUG", 2, "Black mug", "12.00"), ("POSTER", 1, "A2 poster", "9.50"),
                       ("STICKER", 3, "Sticker pack", "1.25"))
        store.orders["7001"] = order
        intake.ingest_and_publish(app, "acme", order, source="webhook")
        drain(app, published)
        assert shipments(app)["self_ship"].state == "pushed"
        request = labels.quotes["shp_1"]
        assert request.customs == CustomsInfo(
            contents_type="merchandise", eel_pfc="NOEEI 30.37(a)", signer="Jane Smith",
            non_delivery_option="return", restriction_type="none", items=(
                # the SKU's entry; value and weight are the line's totals (2 x 12.00, 2 x 14 oz)
                CustomsItem("Ceramic mug", 2, Decimal("24.00"), "USD", Decimal(28), "691200", "CN", "MUG"),
                # no entry: the title, no HS code, made where it ships from; the four units without a
                # parcel share the default parcel's 16 oz
                CustomsItem("A2 poster", 1, Decimal("9.50"), "USD", Decimal(4), "", "US", "POSTER"),
                CustomsItem("Sticker pack", 3, Decimal("3.75"), "USD", Decimal(12), "", "US", "STICKER")))
        assert sum(i.weight_oz for i in request.customs.items) == request.parcel.weight_oz == 44


@pytest.mark.parametrize(("lines", "labels_extra", "reason"), [
    ((("POSTER", 1, "A2 poster", "9.50"),), {},
     "labels.main.customs.signer is not set: an international label (US → GB) needs the name of the person"),
    ((("POSTER", 1, "A2 poster", "9.50"), ("FREEBIE", 1, "Sticker", "0")), SIGNED,
     "customs: no value (price 0) for FREEBIE x1"),
    ((("BIKE", 1, "Carbon bike", "2600.00"),), SIGNED,
     "customs: BIKE (no HS code) is worth over $2,500, so NOEEI 30.37(a) does not apply"),
    # one HS code over two SKUs: 300 mugs at 9.00 (each line alone is under $2,500)
    ((("MUG", 150, "Black mug", "9.00"), ("MUG-2", 150, "Blue mug", "9.00")), SIGNED,
     "customs: HS 691200 is worth over $2,500"),
])
def test_an_international_label_that_cannot_be_declared_parks_before_any_rating(
        db_url: str, tmp_path: Path, lines: tuple[tuple[str, int, str, str], ...],
        labels_extra: dict[str, Any], reason: str) -> None:
    labels = FakeLabels()
    items = {**MUG_CUSTOMS, "MUG-2": MUG_CUSTOMS["MUG"]}
    for app, store, _amazon, published, _ in make_env(db_url, tmp_path, labels=labels,
                                                    labels_extra=labels_extra,
                                                    store_extra={"customs_items": items}):
        order = abroad("7002", *lines)
        store.orders["7002"] = order
        intake.ingest_and_publish(app, "acme", order, source="webhook")
        drain(app, published)
        row = shipments(app)["self_ship"]
        assert row.state == "attention" and row.reason.startswith(f"no label bought: {reason}")
        assert labels.quotes == {} and labels.bought == {}


def test_a_dry_run_abroad_declares_without_a_signer(db_url: str, tmp_path: Path) -> None:
    labels = FakeLabels()
    for app, store, _amazon, published, _ in make_env(db_url, tmp_path, labels=labels,
                                                    store_extra={"dry_run": True}):
        order = abroad("7003", ("POSTER", 1, "A2 poster", "9.50"))
        store.orders["7003"] = order
        intake.ingest_and_publish(app, "acme", order, source="webhook")
        drain(app, published)
        assert [r.state for r in shipments(app).values()] == ["cancelled"] and labels.quotes == {}
        with app.sessions() as s:
            row = s.scalars(select(ShipmentRow)).one()
            customs = label_request(app, row).customs
        assert customs is not None and customs.signer == "" and customs.items[0].description == "A2 poster"


def test_prefer_cheapest_abroad_quotes_with_customs_so_the_reused_quote_can_be_bought(
        db_url: str, tmp_path: Path) -> None:
    labels = FakeLabels()
    extra = {"routing": {"sku_map": {"TEE-RED-M": "AMZ-TEE"}, "prefer": "cheapest",
                         "fba_countries": ["US", "GB"]}}
    for app, store, amazon, published, _ in make_env(db_url, tmp_path, labels=labels, store_extra=extra,
                                                    labels_extra=SIGNED):
        order = abroad("7003", ("TEE-RED-M", 3, "Red tee", "15.00"))
        store.orders["7003"] = order
        intake.ingest_and_publish(app, "acme", order, source="webhook")
        drain(app, published)
        assert list(labels.quotes) == ["shp_1"] and list(labels.bought) == ["shp_1"]  # compared, then bought
        customs = labels.quotes["shp_1"].customs
        assert customs is not None and [(i.code, i.quantity, i.value) for i in customs.items] == [
            ("TEE-RED-M", 3, Decimal("45.00"))]
        assert amazon.created == {}
