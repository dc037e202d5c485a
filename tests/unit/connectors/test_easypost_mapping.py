"""EasyPost mapping: pure functions over payloads shaped like EasyPost's v2 JSON."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

from connectors.easypost import mapping
from connectors.easypost.errors import EasyPostAddressError, NoRateFits
from worker.config import AddressConfig
from worker.domain import Address, CustomsInfo, CustomsItem, LabelRequest, Parcel, Rate
from worker.pipeline.rates import from_address

D = Decimal


def rate(carrier: str, service: str, amount: str, days: int | None, rid: str = "") -> Rate:
    return Rate(rate_id=rid or f"rate_{carrier}_{service}", carrier=carrier, service=service,
                amount=D(amount), delivery_days=days)


def test_parcel_dict_is_inches_and_ounces_rounded_up_to_a_tenth() -> None:
    parcel = Parcel(D("10"), D("8.04"), D("4"), D("15.41"))
    assert mapping.parcel_dict(parcel) == {"length": 10.0, "width": 8.1, "height": 4.0, "weight": 15.5}


def test_config_addresses_and_parcels() -> None:
    cfg = AddressConfig(name="Acme", street1="1 Main St", city="Austin", state="TX", zip="78701",
                        phone="5125550100")
    addr = from_address(cfg)
    assert (addr.address1, addr.region, addr.postal_code, addr.country) == ("1 Main St", "TX", "78701", "US")
    assert mapping.to_easypost_address(addr) == {"name": "Acme", "street1": "1 Main St", "city": "Austin",
                                                 "state": "TX", "zip": "78701", "country": "US",
                                                 "phone": "5125550100"}


def _request(to: Address, reference: str = "ACME-1001-1") -> LabelRequest:
    frm = Address(name="Acme", address1="1 Main St", city="Austin", region="TX", postal_code="78701",
                  country="US")
    return LabelRequest(reference=reference, to_address=to, from_address=frm,
                        parcel=Parcel(D(10), D(8), D(4), D(16)), email="jo@example.com")


def test_shipment_params_carry_reference_and_label_format() -> None:
    to = Address(name="Jo", address1="179 N Harbor Dr", city="Redondo Beach", region="CA",
                 postal_code="90277", country="us")
    params = mapping.shipment_params(_request(to), "PDF")
    assert params["reference"] == "ACME-1001-1"
    assert params["options"] == {"label_format": "PDF"}
    assert params["to_address"]["country"] == "US" and params["to_address"]["email"] == "jo@example.com"
    assert params["parcel"]["weight"] == 16.0


LONDON = Address(name="Jo", address1="10 Downing St", city="London", postal_code="SW1A 2AA", country="GB",
                phone="+442079250918")
CUSTOMS = CustomsInfo(
    contents_type="merchandise", eel_pfc="NOEEI 30.37(a)", signer="Ada Merchant",
    non_delivery_option="return", restriction_type="none",
    items=(CustomsItem(description="Cotton T-shirt", quantity=2, value=D("38.005"), currency="usd",
                       weight_oz=D("10.6667"), hs_tariff_number="6109.10.0012", origin_country="us",
                       code="TEE"),
           CustomsItem(description="Poster", quantity=1, value=D("9.5"), currency="USD",
                       weight_oz=D("0.0001"))))


def test_international_shipment_params_carry_customs_info_in_easypost_terms() -> None:
    request = replace(_request(LONDON), customs=CUSTOMS)
    params = mapping.shipment_params(request, "PDF")
    assert params["customs_info"] == {
        "customs_certify": True, "customs_signer": "Ada Merchant", "contents_type": "merchandise",
        "eel_pfc": "NOEEI 30.37(a)", "non_delivery_option": "return", "restriction_type": "none",
        "customs_items": [
            # value and weight are the line's totals; value to the cent, weight down to 0.001 oz
            {"description": "Cotton T-shirt", "quantity": 2, "value": 38.01, "currency": "USD",
             "weight": 10.666, "origin_country": "US", "hs_tariff_number": "6109.10.0012", "code": "TEE"},
            # no HS code and no SKU: left out; a weight never goes to 0
            {"description": "Poster", "quantity": 1, "value": 9.5, "currency": "USD", "weight": 0.001,
             "origin_country": ""}]}


def test_customs_explanations_are_sent_only_when_given() -> None:
    other = replace(CUSTOMS, contents_type="other", contents_explanation="Seeds",
                    restriction_type="quarantine", restriction_comments="Dry seeds, no soil")
    body = mapping.customs_info_dict(other)
    assert (body["contents_explanation"], body["restriction_comments"]) == ("Seeds", "Dry seeds, no soil")
    assert "contents_explanation" not in mapping.customs_info_dict(CUSTOMS)


def test_domestic_shipment_params_have_no_customs_info() -> None:
    home = Address(name="Jo", address1="1 Elm St", city="Austin", region="TX", postal_code="78701",
                   country="US")
    assert "customs_info" not in mapping.shipment_params(_request(home), "PDF")


SHIPMENT: dict[str, Any] = {
    "id": "shp_9af92e0bdd6a428f8aba267686ab9cae", "object": "Shipment", "reference": "ACME-1001-1",
    "messages": [{"carrier": "DhlEcs", "carrier_account_id": "ca_b1", "type": "rate_error",
                  "message": "shipment.customs_info.customs_items.0.code:\n field required"}],
    "rates": [{"id": "rate_b936", "object": "Rate", "service": "GroundAdvantage", "carrier": "USPS",
               "rate": "5.93", "currency": "USD", "delivery_days": 3, "est_delivery_days": 3},
              {"id": "rate_05676", "object": "Rate", "service": "Express", "carrier": "USPS", "rate": "31.25",
               "currency": "USD", "delivery_days": None, "est_delivery_days": None}],
    "postage_label": None, "selected_rate": None, "tracker": None, "tracking_code": None,
    "options": {"label_format": "PDF"},
}


def test_rates_and_messages_from_shipment() -> None:
    rates = mapping.rates_from_shipment(SHIPMENT)
    assert rates[0] == Rate("rate_b936", "USPS", "GroundAdvantage", D("5.93"), "USD", 3)
    assert rates[1].delivery_days is None
    assert mapping.messages_from_shipment(SHIPMENT) == (
        "DhlEcs: shipment.customs_info.customs_items.0.code: field required",)
    assert mapping.label_from_shipment(SHIPMENT) is None


def test_label_from_bought_shipment() -> None:
    bought = dict(SHIPMENT, tracking_code="9400100105442285876350", selected_rate=SHIPMENT["rates"][0],
                  postage_label={"object": "PostageLabel", "label_file_type": "application/pdf",
                                 "label_url": "https://files.example/l.pdf", "label_pdf_url": "https://files.example/l.pdf"},
                  tracker={"id": "trk_1", "tracking_code": "9400100105442285876350", "carrier": "USPS",
                           "public_url": "https://track.easypost.com/djE6dHJr"})
    label = mapping.label_from_shipment(bought)
    assert label is not None
    assert (label.tracking.carrier, label.tracking.number) == ("USPS", "9400100105442285876350")
    assert label.tracking.url == "https://track.easypost.com/djE6dHJr"
    assert (label.label_url, label.label_format) == ("https://files.example/l.pdf", "PDF")
    assert label.rate.amount == D("5.93")
    png = dict(bought, postage_label={"label_file_type": "image/png", "label_url": "https://f/l.png",
                                      "label_pdf_url": None})
    assert mapping.label_from_shipment(png) is not None
    assert mapping.label_from_shipment(png).label_format == "PNG"  # type: ignore[union-attr]


def test_no_rates_errors_say_what_to_fix_without_the_address() -> None:
    intl = Address(name="Jo", address1="10 Downing St", city="London", postal_code="SW1A 2AA", country="GB")
    err = mapping.no_rates_error(_request(intl), ["UPS: Recipient phone number is required"])
    assert isinstance(err, EasyPostAddressError) and "phone" in str(err) and "Downing" not in str(err)
    po = Address(name="Jo", address1="PO Box 123", city="Austin", region="TX", postal_code="78701",
                 country="US")
    err = mapping.no_rates_error(_request(po), ["UPS: no PO boxes"])
    assert isinstance(err, EasyPostAddressError) and "PO box" in str(err)
    plain = Address(name="Jo", address1="1 Elm St", city="Austin", region="TX", postal_code="78701",
                    country="US")
    assert type(mapping.no_rates_error(_request(plain), [])) is NoRateFits
    assert mapping.is_po_box(Address(name="x", address1="P.O. Box 9")) and \
        not mapping.is_po_box(Address(name="x", address1="12 Boxwood Rd"))
