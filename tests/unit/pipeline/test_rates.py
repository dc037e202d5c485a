from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from worker.config import ParcelConfig
from worker.domain import Parcel, Rate
from worker.errors import PermanentError
from worker.pipeline.rates import choose_rate, shipment_parcel, stack

D = Decimal
RATES = (Rate("r1", "USPS", "GroundAdvantage", D("7.10"), delivery_days=5),
         Rate("r2", "UPS", "Ground", D("7.10"), delivery_days=3),
         Rate("r3", "FedEx", "FEDEX_2_DAY", D("15.00"), delivery_days=2),
         Rate("r4", "USPS", "Priority", D("9.40"), delivery_days=2))


def test_cheapest_breaks_ties_by_delivery_days_then_carrier() -> None:
    assert choose_rate(RATES, "cheapest").rate_id == "r2"
    tie = RATES + (Rate("r5", "DHL", "Ground", D("7.10"), delivery_days=3),)
    assert choose_rate(tie, "cheapest").rate_id == "r5"  # DHL < UPS


def test_fastest_breaks_ties_by_price() -> None:
    assert choose_rate(RATES, "fastest").rate_id == "r4"


def test_list_takes_the_first_offered_pair() -> None:
    assert choose_rate(RATES, ["DHL:Express", "usps:priority", "UPS:Ground"]).rate_id == "r4"
    with pytest.raises(PermanentError, match=r"no rate fits choose = \[DHL:Express\]"):
        choose_rate(RATES, ["DHL:Express"])
    with pytest.raises(PermanentError, match="offered: no rates"):
        choose_rate((), "cheapest")


@given(st.lists(st.builds(Rate, st.text(min_size=1, max_size=4), st.sampled_from(["USPS", "UPS", "FedEx"]),
                          st.sampled_from(["A", "B"]), st.decimals(1, 100, places=2),
                          delivery_days=st.none() | st.integers(1, 7)), min_size=1, max_size=6))
def test_cheapest_is_never_beaten_on_price(rates: list[Rate]) -> None:
    assert choose_rate(rates, "cheapest").amount == min(r.amount for r in rates)


def test_parcels_sum_per_unit_and_default_rides_once() -> None:
    mug = ParcelConfig(length_in=D(6), width_in=D(6), height_in=D(5), weight_oz=D(14))
    box = ParcelConfig(length_in=D(10), width_in=D(8), height_in=D(4), weight_oz=D(16))
    p = shipment_parcel([("MUG", 2), ("POSTER", 3)], {"MUG": mug}, box)
    assert (p.length_in, p.width_in, p.height_in, p.weight_oz) == (D(10), D(8), D(14), D(44))
    only_default = shipment_parcel([("POSTER", 3)], {"MUG": mug}, box)
    assert only_default.weight_oz == D(16)


def rate(carrier: str, service: str, amount: str, days: int | None, rid: str = "") -> Rate:
    return Rate(rate_id=rid or f"rate_{carrier}_{service}", carrier=carrier, service=service,
                amount=D(amount), delivery_days=days)


def test_cheapest_breaks_ties_by_days_then_carrier_name() -> None:
    rates = [rate("UPS", "Ground", "9.85", 3), rate("FedEx", "FEDEX_GROUND", "9.85", 3),
             rate("USPS", "Priority", "9.85", 2), rate("DHL", "Slow", "9.85", None),
             rate("USPS", "Express", "31.25", 1)]
    assert choose_rate(rates, "cheapest").service == "Priority"  # same price, fewer days
    assert choose_rate(rates[:2], "cheapest").carrier == "FedEx"  # same price and days: by name
    assert choose_rate([rates[3], rates[0]], "cheapest").carrier == "UPS"  # unknown days last
    cheaper = rates + [rate("USPS", "GroundAdvantage", "5.93", 3)]
    assert choose_rate(cheaper, "cheapest").amount == D("5.93")




def test_fastest_breaks_ties_by_amount_then_carrier() -> None:
    rates = [rate("UPS", "NextDayAir", "38.50", 1), rate("FedEx", "STANDARD_OVERNIGHT", "41.20", 1),
             rate("USPS", "GroundAdvantage", "5.93", 3), rate("X", "Unknown", "1.00", None)]
    assert choose_rate(rates, "fastest").service == "NextDayAir"
    tie = [rate("UPS", "NextDayAir", "38.50", 1), rate("FedEx", "PRIORITY_OVERNIGHT", "38.50", 1)]
    assert choose_rate(tie, "fastest").carrier == "FedEx"
    assert choose_rate([rates[3], rates[2]], "fastest").service == "GroundAdvantage"




def test_list_rule_takes_the_first_offered_entry_case_insensitively() -> None:
    rates = [rate("USPS", "GroundAdvantage", "5.93", 3), rate("UPS", "Ground", "9.85", 3),
             rate("UPS", "Ground", "9.10", 3, rid="rate_second_account")]
    chosen = choose_rate(rates, ["FedEx:FEDEX_GROUND", "ups:ground", "USPS:GroundAdvantage"])
    assert chosen.rate_id == "rate_second_account"  # first entry offered; cheapest of its accounts
    assert choose_rate(rates, ["usps:groundadvantage", "UPS:Ground"]).carrier == "USPS"




def test_nothing_allowed_names_the_rule_and_the_offer() -> None:
    rates = [rate("USPS", "GroundAdvantage", "5.93", 3)]
    with pytest.raises(PermanentError) as exc:
        choose_rate(rates, ["UPS:Ground", "FedEx:FEDEX_GROUND"], ["UPS: cannot deliver to PO Boxes"])
    text = str(exc.value)
    assert "[UPS:Ground, FedEx:FEDEX_GROUND]" in text and "USPS:GroundAdvantage 5.93 USD" in text
    assert "PO Boxes" in text
    with pytest.raises(PermanentError, match="cheapest.*no rates"):
        choose_rate([], "cheapest")
    with pytest.raises(ValueError):
        choose_rate(rates, "random")




def test_sum_parcels_stacks_items() -> None:
    a = Parcel(D("10"), D("8"), D("4"), D("16"))
    b = Parcel(D("12"), D("6"), D("2.5"), D("9.5"))
    assert stack([a, b, b]) == Parcel(D("12"), D("8"), D("9.0"), D("35.0"))
    assert stack([a]) == a
    with pytest.raises(ValueError):
        stack([])


