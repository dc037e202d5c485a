"""EasyPostLabels (real SDK) against the real EasyPostSandbox over loopback HTTP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
import requests

from connectors.easypost import sandbox_model as model
from connectors.easypost.client import EasyPostLabels, EasyPostSettings
from connectors.easypost.errors import EasyPostAddressError, EasyPostAuthError
from connectors.easypost.sandbox import EasyPostSandbox
from worker.domain import Address, CustomsInfo, CustomsItem, LabelRequest, Parcel
from worker.errors import AmbiguousOutcome, NotFound, PermanentError
from worker.pipeline.rates import choose_rate

FROM = Address(name="Acme", address1="1 Main St", city="Austin", region="TX", postal_code="78701",
               country="US", phone="5125550100")
HOME = Address(name="Jo Buyer", address1="179 N Harbor Dr", city="Redondo Beach", region="CA",
               postal_code="90277", country="US")


def make(sandbox: EasyPostSandbox, key: str | None = None, **over: Any) -> EasyPostLabels:
    cfg: dict[str, Any] = {"api_key": key or sandbox.api_key, "endpoint": sandbox.endpoint, "timeout_s": 5}
    cfg.update(over)
    return EasyPostLabels("main", EasyPostSettings(**cfg))


def request(to: Address = HOME, reference: str = "ACME-1001-1", weight: str = "16") -> LabelRequest:
    return LabelRequest(reference=reference, to_address=to, from_address=FROM,
                        parcel=Parcel(Decimal(10), Decimal(8), Decimal(4), Decimal(weight)))


@pytest.fixture
def sandbox() -> Iterator[EasyPostSandbox]:
    with EasyPostSandbox() as sb:
        yield sb


def test_quote_buy_lookup_file_refund(sandbox: EasyPostSandbox) -> None:
    labels = make(sandbox)
    assert "test key" in labels.check()
    quote = labels.quote(request())
    assert {r.carrier for r in quote.rates} == {"USPS", "UPS", "FedEx"}
    assert sandbox.shipment(quote.shipment_id)["reference"] == "ACME-1001-1"  # type: ignore[index]
    rate = choose_rate(quote.rates, "cheapest")
    assert (rate.carrier, rate.service, rate.amount) == ("USPS", "GroundAdvantage", Decimal("5.93"))
    label = labels.buy(quote.shipment_id, rate)
    assert label.tracking.number.startswith("94001") and len(label.tracking.number) == 22
    assert labels.lookup(quote.shipment_id) == label
    assert labels.lookup("ACME-1001-1") == label  # the reference works in place of the id
    pdf = labels.label_file(label)
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert labels.refund(quote.shipment_id) == "submitted"
    assert labels.refund(quote.shipment_id) == "submitted"  # a repeat asks nothing new
    assert sandbox.refunds == [quote.shipment_id] and sandbox.bought == 1


def test_rules_on_sandbox_rates(sandbox: EasyPostSandbox) -> None:
    quote = make(sandbox).quote(request(weight="40"))  # 3 lb
    assert choose_rate(quote.rates, "fastest").service == "NextDayAir"
    assert choose_rate(quote.rates, ["DHL:Express", "fedex:fedex_ground"]).carrier == "FedEx"
    with EasyPostSandbox(carriers=("UPS", "FedEx")) as sb:
        tie = make(sb).quote(request())
        assert choose_rate(tie.rates, "cheapest").carrier == "FedEx"  # same price and days: by name


def test_second_buy_is_refused_and_buy_returns_the_existing_label(sandbox: EasyPostSandbox) -> None:
    labels = make(sandbox)
    quote = labels.quote(request())
    first = labels.buy(quote.shipment_id, quote.rates[0])
    again = labels.buy(quote.shipment_id, quote.rates[3])
    assert again == first and sandbox.bought == 1 and sandbox.buy_calls == 2
    assert sandbox.bought_for("ACME-1001-1") == 1


def test_lost_answer_is_ambiguous_and_lookup_finds_the_label(sandbox: EasyPostSandbox) -> None:
    labels = make(sandbox)
    quote = labels.quote(request())
    sandbox.fail_next("/buy", 0, after=True)  # bought, then the connection drops
    with pytest.raises(AmbiguousOutcome):
        labels.buy(quote.shipment_id, quote.rates[0])
    found = labels.lookup(quote.shipment_id)
    assert found is not None and sandbox.bought == 1
    sandbox.fail_next("/buy", 503)
    with pytest.raises(AmbiguousOutcome):
        labels.buy(quote.shipment_id, quote.rates[0])


def test_buy_delay_records_the_purchase_first() -> None:
    with EasyPostSandbox(buy_delay_s=1.0) as sb:
        labels = make(sb, timeout_s=0.3)
        quote = labels.quote(request())
        with pytest.raises(AmbiguousOutcome):
            labels.buy(quote.shipment_id, quote.rates[0])
        assert sb.bought == 1
        sb.buy_delay_s = 0
        assert labels.buy(quote.shipment_id, quote.rates[1]).rate.rate_id == quote.rates[0].rate_id


def test_concurrent_buys_buy_once(sandbox: EasyPostSandbox) -> None:
    labels = make(sandbox)
    quote = labels.quote(request())
    results: list[str] = []

    def buy() -> None:
        results.append(labels.buy(quote.shipment_id, quote.rates[0]).tracking.number)

    threads = [threading.Thread(target=buy) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and len(results) == 5 and sandbox.bought == 1


def test_po_box_rates_usps_only(sandbox: EasyPostSandbox) -> None:
    po = Address(name="Jo", address1="PO Box 1234", city="Austin", region="TX", postal_code="78701",
                 country="US")
    quote = make(sandbox).quote(request(po))
    assert {r.carrier for r in quote.rates} == {"USPS"}
    assert {m.split(":")[0] for m in quote.messages} == {"UPS", "FedEx"}
    with pytest.raises(PermanentError, match="PO Box"):
        choose_rate(quote.rates, ["UPS:Ground"], quote.messages)
    with EasyPostSandbox(carriers=("UPS", "FedEx")) as sb, pytest.raises(EasyPostAddressError) as exc:
        make(sb).quote(request(po))
    assert "PO box" in str(exc.value) and "1234" not in str(exc.value)


def test_international_needs_a_phone(sandbox: EasyPostSandbox) -> None:
    abroad = Address(name="Jo", address1="10 Downing St", city="London", postal_code="SW1A 2AA", country="GB")
    with pytest.raises(EasyPostAddressError, match="phone") as exc:
        make(sandbox).quote(request(abroad))
    assert "Downing" not in str(exc.value)
    quote = make(sandbox).quote(request(Address(**{**abroad.__dict__, "phone": "+442079250918"})))
    assert "PriorityMailInternational" in {r.service for r in quote.rates}


def test_invalid_address_and_wrong_key(sandbox: EasyPostSandbox) -> None:
    with pytest.raises(EasyPostAddressError, match="to_address.zip"):
        make(sandbox).quote(request(Address(name="Jo", address1="1 Elm St", city="Austin", country="US")))
    with pytest.raises(EasyPostAuthError) as exc:
        make(sandbox, key="EZAKwrongkey123").check()
    assert "EZAKwrongkey123" not in str(exc.value)
    with pytest.raises(NotFound):
        make(sandbox).lookup("shp_00000000000000000000000000000000")


def test_basic_auth_and_rejected_refund() -> None:
    with EasyPostSandbox(refund_outcome="rejected") as sb:
        assert requests.get(sb.endpoint + "/users", auth=(sb.api_key, ""), timeout=5).status_code == 200
        assert requests.get(sb.endpoint + "/users", auth=("nope", ""), timeout=5).status_code == 401
        labels = make(sb)
        quote = labels.quote(request())
        with pytest.raises(PermanentError, match="refund"):
            labels.refund(quote.shipment_id)  # nothing bought
        labels.buy(quote.shipment_id, quote.rates[0])
        with pytest.raises(PermanentError, match="rejected"):
            labels.refund(quote.shipment_id)


def test_tracker_turns_in_transit_after_the_first_scan() -> None:
    with EasyPostSandbox(scan_after_s=0.3) as sb:
        client = make(sb)
        quote = client.quote(request(Address(name="Jo", address1="5 Elm St", city="Denver", region="CO",
                                             postal_code="80202", country="US")))
        label = client.buy(quote.shipment_id, choose_rate(quote.rates, "cheapest"))
        assert label.carrier_status == "pre_transit"
        time.sleep(0.35)
        found = client.lookup(quote.shipment_id)
        assert found is not None and found.carrier_status == "in_transit"


LONDON = Address(name="Jo", address1="10 Downing St", city="London", postal_code="SW1A 2AA", country="GB",
                 phone="+442079250918")


def customs(*items: CustomsItem, signer: str = "Ada Merchant") -> CustomsInfo:
    return CustomsInfo(contents_type="merchandise", eel_pfc="NOEEI 30.37(a)", signer=signer,
                       non_delivery_option="return", restriction_type="none", items=items)


TEE = CustomsItem(description="Cotton T-shirt", quantity=2, value=Decimal("38.00"), currency="USD",
                  weight_oz=Decimal("12"), hs_tariff_number="610910", origin_country="US", code="TEE")


def test_international_label_with_customs_is_bought(sandbox: EasyPostSandbox) -> None:
    labels = make(sandbox)
    quote = labels.quote(replace(request(LONDON), customs=customs(TEE)))
    label = labels.buy(quote.shipment_id, choose_rate(quote.rates, "cheapest"))
    assert label.rate.service == "PriorityMailInternational" and sandbox.bought == 1
    declared = sandbox.shipment(quote.shipment_id)["customs_info"]  # type: ignore[index]
    assert declared["id"].startswith("cstinfo_") and declared["customs_signer"] == "Ada Merchant"
    assert declared["customs_certify"] is True and declared["eel_pfc"] == "NOEEI 30.37(a)"
    [item] = declared["customs_items"]
    fields = ("description", "quantity", "value", "weight", "hs_tariff_number", "origin_country", "code")
    assert [item[f] for f in fields] == ["Cotton T-shirt", 2, "38.0", 12.0, "610910", "US", "TEE"]


def test_international_purchase_without_customs_is_refused(sandbox: EasyPostSandbox) -> None:
    labels = make(sandbox)
    quote = labels.quote(request(LONDON))  # rated, as EasyPost rates it without customs
    assert "PriorityMailInternational" in {r.service for r in quote.rates}
    with pytest.raises(EasyPostAddressError) as exc:
        labels.buy(quote.shipment_id, quote.rates[0])
    assert exc.value.code == "SHIPMENT.CUSTOMS_INFO.REQUIRED" and exc.value.status == 422
    assert "'customs_info' is required for international shipments" in str(exc.value)
    assert "fix the customs declaration ([labels.main] customs" in str(exc.value)
    assert sandbox.bought == 0 and sandbox.buy_calls == 1
    # the same shipment home needs none
    home = labels.quote(request())
    assert labels.buy(home.shipment_id, home.rates[0]).tracking.number


def test_customs_items_are_validated_like_easypost(sandbox: EasyPostSandbox) -> None:
    bad = CustomsItem(description=" ", quantity=0, value=Decimal(0), currency="USD", weight_oz=Decimal(1),
                      origin_country="USA")
    with pytest.raises(EasyPostAddressError) as exc:
        make(sandbox).quote(replace(request(LONDON), customs=customs(TEE, bad, signer="")))
    text = str(exc.value)
    assert "SHIPMENT.INVALID_PARAMS" in text and "customs declaration" in text
    for field in ("customs_info.customs_signer", "customs_info.customs_items.1.description",
                  "customs_info.customs_items.1.quantity", "customs_info.customs_items.1.value"):
        assert field in text
    assert sandbox.shipments == {}
    # the rest of the field errors (the client shows five)
    raw = {"customs_certify": False, "contents_type": "junk", "customs_items": [
        {"description": "x", "quantity": 1, "value": 1, "weight": 0, "origin_country": "USA"}]}
    fields = {p["field"] for p in model.customs_problems(raw)}
    assert fields == {"customs_info.contents_type", "customs_info.customs_items.0.weight",
                      "customs_info.customs_items.0.origin_country"}
    assert model.customs_problems({}) == [] and model.customs_problems(None) == []
