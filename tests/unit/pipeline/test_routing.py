from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fakes import make_order
from worker.config import StoreConfig
from worker.domain import Address, Route
from worker.pipeline.routing import NO_SELF_SHIP, eligible, features_for, plan


def store(**routing: object) -> StoreConfig:
    return StoreConfig.model_validate({
        "platform": "shopify", "shop_url": "https://a.example", "access_token": "t", "order_prefix": "A",
        "amazon": "us", "routing": {"sku_map": {"TEE": "AMZ-TEE", "MUG": "AMZ-MUG"},
                                    "speeds": {"Express": "Expedited"}, **routing}})


def test_mapped_lines_go_to_fba_with_the_mapped_speed() -> None:
    order = make_order("1", lines=(("TEE", 2), ("MUG", 1)), shipping_title="Express")
    result = plan(order, store())
    assert [s.route for s in result.shipments] == [Route.FBA]
    fba = result.shipments[0]
    assert fba.speed == "Expedited"
    assert [(pl.line.sku, pl.seller_sku, pl.line.quantity) for pl in fba.lines] == [
        ("TEE", "AMZ-TEE", 2), ("MUG", "AMZ-MUG", 1)]
    assert any("maps to MCF speed Expedited" in r for r in result.reasons)


def test_unknown_shipping_title_falls_back_to_standard() -> None:
    result = plan(make_order("1", lines=(("TEE", 1),), shipping_title="Pigeon"), store())
    assert result.shipments[0].speed == "Standard"


def test_unmapped_lines_are_parked_until_labels_exist() -> None:
    result = plan(make_order("1", lines=(("TEE", 1), ("POSTER", 1), ("", 1))), store())
    routes = [(s.route, s.parked_reason, [pl.line.sku for pl in s.lines]) for s in result.shipments]
    assert routes == [(Route.FBA, "", ["TEE"]), (Route.SELF_SHIP, NO_SELF_SHIP, ["POSTER", ""])]
    assert any("SKU POSTER is not in sku_map" in r for r in result.reasons)
    assert any("line has no SKU" in r for r in result.reasons)


def test_destination_outside_fba_countries_is_not_sent_to_amazon() -> None:
    order = make_order("1", lines=(("TEE", 1),),
                       address=Address(name="A", address1="1 Rue", city="Paris", country="FR"))
    result = plan(order, store())
    assert [s.route for s in result.shipments] == [Route.SELF_SHIP]
    assert any("country FR is not in fba_countries" in r for r in result.reasons)


def test_split_false_parks_a_mixed_order_whole() -> None:
    result = plan(make_order("1", lines=(("TEE", 1), ("POSTER", 1))), store(split=False))
    assert len(result.shipments) == 1 and result.shipments[0].route == Route.HOLD
    assert len(result.shipments[0].lines) == 2


def test_eligibility_follows_ship_when() -> None:
    cfg = store()
    assert eligible(make_order("1"), cfg)[0]
    assert not eligible(make_order("1", financial_status="PENDING"), cfg)[0]
    assert not eligible(make_order("1", cancelled=True), cfg)[0]
    assert not eligible(make_order("1", fulfilled=True), cfg)[0]
    authorized = cfg.model_copy(update={"ship_when": ["paid", "authorized"]})
    assert eligible(make_order("1", financial_status="AUTHORIZED"), authorized)[0]


@given(st.lists(st.tuples(st.sampled_from(["TEE", "MUG", "POSTER", "HAT", ""]), st.integers(0, 5)),
                min_size=1, max_size=8))
def test_every_line_with_quantity_is_planned_exactly_once(lines: list[tuple[str, int]]) -> None:
    order = make_order("9", lines=tuple(lines))
    result = plan(order, store())
    planned = [pl.line.line_id for s in result.shipments for pl in s.lines]
    assert sorted(planned) == sorted(ln.line_id for ln in order.lines if ln.quantity > 0)
    assert len(planned) == len(set(planned))


def test_plan_is_pure(tmp_path: Path) -> None:
    order = make_order("1", lines=(("TEE", 1), ("POSTER", 1)))
    assert plan(order, store()) == plan(replace(order), store())


def test_with_labels_unmapped_lines_self_ship_in_one_shipment() -> None:
    cfg = store().model_copy(update={"labels": "main"})
    result = plan(make_order("1", lines=(("TEE", 1), ("POSTER", 1), ("HAT", 2))), cfg)
    assert [(s.route, s.parked_reason, [pl.line.sku for pl in s.lines]) for s in result.shipments] == [
        (Route.FBA, "", ["TEE"]), (Route.SELF_SHIP, "", ["POSTER", "HAT"])]
    assert any("self-ship (label from [labels.main])" in r for r in result.reasons)


D = Decimal
US = Address(name="A", address1="1 Main", city="Austin", region="TX", country="US")
CA = Address(name="A", address1="1 Rue", city="Montreal", region="QC", country="CA")

# (case, routing rules, labels?, order changes, expected [(route, skus, parked reason start)])
CASES: list[tuple[str, dict[str, object], bool, dict[str, object], list[tuple[Route, list[str], str]]]] = [
    ("mapped -> FBA, unmapped -> label", {}, True, {},
     [(Route.FBA, ["TEE"], ""), (Route.SELF_SHIP, ["POSTER"], "")]),
    ("no labels: unmapped parked", {}, False, {},
     [(Route.FBA, ["TEE"], ""), (Route.SELF_SHIP, ["POSTER"], NO_SELF_SHIP)]),
    ("default hold parks unmapped", {"default": "hold"}, True, {},
     [(Route.FBA, ["TEE"], ""),
      (Route.SELF_SHIP, ["POSTER"], "SKU POSTER is not in sku_map; the rule says hold")]),
    ("no-fba tag", {}, True, {"tags": ("no-fba",)}, [(Route.SELF_SHIP, ["TEE", "POSTER"], "")]),
    ("hold tag parks the order", {}, True, {"tags": ("VIP", "hold")},
     [(Route.HOLD, ["TEE", "POSTER"], "order tag 'hold' holds the order")]),
    ("outside fba_countries self-ships", {}, True, {"address": CA},
     [(Route.SELF_SHIP, ["TEE", "POSTER"], "")]),
    ("outside fba_countries held", {"outside_fba_countries": "hold"}, True, {"address": CA},
     [(Route.SELF_SHIP, ["POSTER"], ""), (Route.SELF_SHIP, ["TEE"], "destination country CA")]),
    ("unmapped method self-ships", {"unmapped_method": "self_ship"}, True, {"shipping_title": "Pigeon"},
     [(Route.SELF_SHIP, ["TEE", "POSTER"], "")]),
    ("mapped method still FBA", {"unmapped_method": "self_ship"}, True, {"shipping_title": "Express"},
     [(Route.FBA, ["TEE"], ""), (Route.SELF_SHIP, ["POSTER"], "")]),
    ("excluded SKU parked", {"exclude_skus": ["POSTER"]}, True, {},
     [(Route.FBA, ["TEE"], ""), (Route.SELF_SHIP, ["POSTER"], "SKU POSTER matches exclude_skus 'POSTER'")]),
    ("excluded by a glob", {"exclude_skus": ["POST*"]}, True, {},
     [(Route.FBA, ["TEE"], ""), (Route.SELF_SHIP, ["POSTER"], "SKU POSTER matches exclude_skus 'POST*'")]),
    ("a glob matches whole SKUs only", {"exclude_skus": ["POST"]}, True, {},
     [(Route.FBA, ["TEE"], ""), (Route.SELF_SHIP, ["POSTER"], "")]),
    ("excluded mapped SKU never reaches FBA", {"exclude_skus": ["T?E"]}, True, {},
     [(Route.SELF_SHIP, ["POSTER"], ""), (Route.SELF_SHIP, ["TEE"], "SKU TEE matches exclude_skus 'T?E'")]),
    ("above max_order_value", {"max_order_value": 100}, True, {"total": D("250.00"), "currency": "USD"},
     [(Route.HOLD, ["TEE", "POSTER"], "order total 250.00 USD is above max_order_value")]),
    ("above max_order_quantity", {"max_order_quantity": 2}, True, {},
     [(Route.HOLD, ["TEE", "POSTER"], "3 units is above max_order_quantity 2")]),
    ("split false, mixed hold", {"split": False}, True, {},
     [(Route.HOLD, ["TEE", "POSTER"], "mixed order and split = false")]),
    ("split false, mixed self_ship", {"split": False, "mixed": "self_ship"}, True, {},
     [(Route.SELF_SHIP, ["TEE", "POSTER"], "")]),
    ("split false, fba_if_all_available", {"split": False, "mixed": "fba_if_all_available"}, True, {},
     [(Route.SELF_SHIP, ["TEE", "POSTER"], "")]),
    ("split false, mixed self_ship, no labels", {"split": False, "mixed": "self_ship"}, False, {},
     [(Route.HOLD, ["TEE", "POSTER"], "split = false, mixed = self_ship, but no labels")]),
]


@pytest.mark.parametrize(("case", "rules", "labels", "changes", "expected"), CASES, ids=[c[0] for c in CASES])
def test_routing_table(case: str, rules: dict[str, object], labels: bool, changes: dict[str, object],
                       expected: list[tuple[Route, list[str], str]]) -> None:
    cfg = store(**rules).model_copy(update={"labels": "main" if labels else None})
    order = replace(make_order("1", lines=(("TEE", 2), ("POSTER", 1)), address=US), **changes)
    result = plan(order, cfg)
    got = [(s.route, [pl.line.sku for pl in s.lines], s.parked_reason) for s in result.shipments]
    assert [(r, skus) for r, skus, _ in got] == [(r, skus) for r, skus, _ in expected], result.reasons
    for (_, _, reason), (_, _, want) in zip(got, expected, strict=True):
        assert reason.startswith(want), (reason, want)
    assert result.reasons  # every plan says why


def test_unavailable_at_amazon_takes_the_fallback() -> None:
    cfg = store().model_copy(update={"labels": "main"})
    order = make_order("1", lines=(("TEE", 1), ("MUG", 1)))
    result = plan(order, cfg, unavailable=frozenset({"AMZ-MUG"}))
    assert [(s.route, [pl.line.sku for pl in s.lines]) for s in result.shipments] == [
        (Route.FBA, ["TEE"]), (Route.SELF_SHIP, ["MUG"])]
    hold = cfg.model_copy(update={"routing": cfg.routing.model_copy(update={"fallback": "hold"})})
    held = plan(order, hold, unavailable=frozenset({"AMZ-MUG"}))
    assert held.shipments[1].parked_reason.startswith("Amazon cannot fulfil AMZ-MUG now")


def test_feature_tags_join_the_store_features() -> None:
    cfg = store(features=["BLANK_BOX"])
    assert features_for(make_order("1", tags=("block_amzl",)), cfg) == ("BLANK_BOX", "BLOCK_AMZL")
    assert features_for(make_order("1"), cfg) == ("BLANK_BOX",)


# Every combination of split / mixed / fallback for one order: TEE (mapped, Amazon has it), MUG
# (mapped, the preview says Amazon cannot fulfil it) and, with `unmapped`, POSTER (no sku_map entry:
# the default route, a label). Expected: [(route, skus, parked reason start)].
_FB_SELF = [(Route.FBA, ["TEE"], ""), (Route.SELF_SHIP, ["MUG"], "")]
_FB_HOLD = [(Route.FBA, ["TEE"], ""), (Route.SELF_SHIP, ["MUG"], "Amazon cannot fulfil AMZ-MUG now")]
_ALL_LABEL = [(Route.SELF_SHIP, ["TEE", "MUG"], "")]
_ALL_HELD = [(Route.HOLD, ["TEE", "MUG"], "mixed order and split = false")]
_WAIT = [(Route.HOLD, ["TEE", "MUG"], "split = false and a line must wait (Amazon cannot fulfil")]
COMBINATIONS: list[tuple[bool, str, str, list[tuple[Route, list[str], str]]]] = [
    (True, "hold", "self_ship", _FB_SELF),
    (True, "self_ship", "self_ship", _FB_SELF),
    (True, "fba_if_all_available", "self_ship", _FB_SELF),
    (True, "hold", "hold", _FB_HOLD),
    (True, "self_ship", "hold", _FB_HOLD),
    (True, "fba_if_all_available", "hold", _FB_HOLD),
    (False, "hold", "self_ship", _ALL_HELD),
    (False, "self_ship", "self_ship", _ALL_LABEL),
    (False, "fba_if_all_available", "self_ship", _ALL_LABEL),
    (False, "hold", "hold", _ALL_HELD),
    (False, "self_ship", "hold", _WAIT),
    (False, "fba_if_all_available", "hold", _WAIT),
]


@pytest.mark.parametrize(("split", "mixed", "fallback", "expected"), COMBINATIONS,
                         ids=[f"split={c[0]}-mixed={c[1]}-fallback={c[2]}" for c in COMBINATIONS])
def test_split_mixed_fallback_combinations(split: bool, mixed: str, fallback: str,
                                           expected: list[tuple[Route, list[str], str]]) -> None:
    cfg = store(split=split, mixed=mixed, fallback=fallback).model_copy(update={"labels": "main"})
    order = make_order("1", lines=(("TEE", 1), ("MUG", 1)), address=US)
    result = plan(order, cfg, unavailable=frozenset({"AMZ-MUG"}))
    got = [(s.route, [pl.line.sku for pl in s.lines], s.parked_reason) for s in result.shipments]
    assert [(r, skus) for r, skus, _ in got] == [(r, skus) for r, skus, _ in expected], result.reasons
    for (_, _, reason), (_, _, want) in zip(got, expected, strict=True):
        assert reason.startswith(want) if want else reason == "", (reason, want)
    # Without the unavailable line the order is not mixed: FBA whatever split/mixed/fallback say.
    whole = plan(order, cfg)
    assert [(s.route, [pl.line.sku for pl in s.lines]) for s in whole.shipments] == [
        (Route.FBA, ["TEE", "MUG"])]


def test_cost_verdict_moves_only_fba_lines_and_needs_labels() -> None:
    cfg = store().model_copy(update={"labels": "main"})
    order = make_order("1", lines=(("TEE", 1), ("POSTER", 1)), address=US)
    cheaper = plan(order, cfg, label_is_cheaper="prefer = cheapest: a label costs less")
    assert [(s.route, [pl.line.sku for pl in s.lines]) for s in cheaper.shipments] == [
        (Route.SELF_SHIP, ["TEE", "POSTER"])]
    assert any("prefer = cheapest" in r for r in cheaper.reasons)
    no_labels = plan(order, store(), label_is_cheaper="prefer = cheapest: a label costs less")
    assert no_labels.shipments[0].route == Route.FBA  # no label route: the verdict cannot apply
