from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.errors import PermanentError
from worker.config import ParcelConfig
from worker.domain import Rate
from worker.rates import choose_rate, shipment_parcel

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
    with pytest.raises(PermanentError, match="none of the allowed services"):
        choose_rate(RATES, ["DHL:Express"])
    with pytest.raises(PermanentError, match="no carrier offered"):
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
