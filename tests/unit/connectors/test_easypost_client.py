"""EasyPostLabels through the real ``easypost`` SDK, with ``responses`` at the transport; payloads
shaped like EasyPost's v2 answers (EasyPost/easypost-python's recorded cassettes)."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
import requests
import responses

from connectors.easypost.client import EasyPostLabels, EasyPostSettings
from connectors.easypost.errors import EasyPostAddressError, EasyPostAuthError, EasyPostThrottled, NoRateFits
from worker.domain import Address, CustomsInfo, CustomsItem, LabelRequest, Parcel, Rate
from worker.errors import AmbiguousOutcome, NotFound, PermanentError, TransientError

API = "https://api.easypost.com/v2"
KEY = "EZTKsecretkey0123456789"
SID = "shp_9af92e0bdd6a428f8aba267686ab9cae"


def config(**over: Any) -> EasyPostSettings:
    return EasyPostSettings(**{"api_key": KEY, "timeout_s": 5, **over})


def request(reference: str = "ACME-1001-1") -> LabelRequest:
    return LabelRequest(
        reference=reference,
        to_address=Address(name="Elizabeth Swan", address1="179 N Harbor Dr", city="Redondo Beach",
                           region="CA", postal_code="90277", country="US"),
        from_address=Address(name="Acme", address1="1 Main St", city="Austin", region="TX",
                             postal_code="78701", country="US", phone="5125550100"),
        parcel=Parcel(Decimal(10), Decimal(8), Decimal(4), Decimal("15.4")))


def rate_json(rid: str, carrier: str, service: str, amount: str, days: int | None) -> dict[str, Any]:
    return {"id": rid, "object": "Rate", "mode": "test", "service": service, "carrier": carrier,
            "rate": amount, "currency": "USD", "retail_rate": amount, "retail_currency": "USD",
            "list_rate": amount, "list_currency": "USD", "billing_type": "easypost", "delivery_days": days,
            "delivery_date": None, "delivery_date_guaranteed": False, "est_delivery_days": days,
            "shipment_id": SID, "carrier_account_id": "ca_b25657e9896e4d63ac8151ac346ac41e"}


RATES = [rate_json("rate_05676ca6d03141dd94a067b45335a41d", "USPS", "Express", "31.25", None),
         rate_json("rate_7eb8606e070a4df19b70de813f9bea9d", "USPS", "Priority", "6.95", 2),
         rate_json("rate_b936eae682e543b1a6550ea120e81a3e", "USPS", "GroundAdvantage", "5.93", 3),
         rate_json("rate_1111111111111111111111111111111a", "UPS", "Ground", "5.93", 3)]


def shipment(reference: str = "ACME-1001-1", bought: bool = False, refund_status: str | None = None,
             rates: list[dict[str, Any]] | None = None, messages: list[Any] | None = None) -> dict[str, Any]:
    addr = {"id": "adr_b691befe8e3a11ee92c2ac1f6bc539ae", "object": "Address", "name": "Elizabeth Swan",
            "street1": "179 N Harbor Dr", "city": "Redondo Beach", "state": "CA", "zip": "90277",
            "country": "US", "mode": "test", "verifications": {}}
    body: dict[str, Any] = {
        "id": SID, "object": "Shipment", "created_at": "2023-11-28T22:08:51Z", "is_return": False,
        "messages": messages or [], "mode": "test", "reference": reference, "status": "unknown",
        "options": {"label_format": "PDF", "currency": "USD", "payment": {"type": "SENDER"},
                    "date_advance": 0},
        "tracking_code": None, "to_address": addr, "from_address": dict(addr, name="Acme"),
        "parcel": {"id": "prcl_ae833112b5d74b3297d87aae96793a7e", "object": "Parcel", "length": 10.0,
                   "width": 8.0, "height": 4.0, "weight": 15.4, "mode": "test"},
        "postage_label": None, "rates": RATES if rates is None else rates, "refund_status": refund_status,
        "selected_rate": None, "tracker": None, "forms": [], "fees": []}
    if bought:
        code = "9400100105442285876350"
        body.update({
            "tracking_code": code, "selected_rate": RATES[2],
            "postage_label": {"object": "PostageLabel", "id": "pl_6ba46db52970487f941269647927a63c",
                              "label_file_type": "application/pdf", "label_size": "4x6",
                              "label_url": "https://easypost-files.s3.us-west-2.amazonaws.com/files/l.pdf",
                              "label_pdf_url": "https://easypost-files.s3.us-west-2.amazonaws.com/files/l.pdf",
                              "label_zpl_url": None, "label_epl2_url": None},
            "tracker": {"id": "trk_1ddd9a69b5d0487ebfc3941639b11b18", "object": "Tracker",
                        "tracking_code": code, "carrier": "USPS", "status": "unknown", "public_url":
                        "https://track.easypost.com/djE6dHJrXzFkZGQ5YTY5YjVkMDQ4N2ViZmMzOTQxNjM5YjExYjE4"}})
    return body


def error(status: int, code: str, message: str, errors: list[Any] | None = None) -> dict[str, Any]:
    return {"status": status, "json": {"error": {"code": code, "message": message, "errors": errors or []}}}


@pytest.fixture
def labels() -> EasyPostLabels:
    return EasyPostLabels("main", config())


@pytest.fixture
def mock() -> Any:
    with responses.RequestsMock() as rsps:
        yield rsps


def test_quote_sends_reference_parcel_and_format_and_returns_rates(labels: EasyPostLabels, mock: Any) -> None:
    msg = {"carrier": "DhlEcs", "carrier_account_id": "ca_b1", "type": "rate_error",
           "message": "field required"}
    mock.post(API + "/shipments", json=shipment(messages=[msg]), status=201,
              headers={"x-ep-request-uuid": "88ad7b8d656664f3e78a9c6f003f5eb1"})
    quote = labels.quote(request())
    sent = json.loads(mock.calls[0].request.body)["shipment"]
    assert sent["reference"] == "ACME-1001-1" and sent["options"] == {"label_format": "PDF"}
    assert sent["parcel"] == {"length": 10.0, "width": 8.0, "height": 4.0, "weight": 15.4}
    assert sent["to_address"]["street1"] == "179 N Harbor Dr"
    assert sent["from_address"]["phone"] == "5125550100"
    assert mock.calls[0].request.headers["Authorization"] == f"Bearer {KEY}"
    assert quote.shipment_id == SID and len(quote.rates) == 4
    assert quote.messages == ("DhlEcs: field required",)
    assert labels.last_request_id == "88ad7b8d656664f3e78a9c6f003f5eb1"


def test_reference_round_trip_lookup_by_reference(labels: EasyPostLabels, mock: Any) -> None:
    mock.get(API + "/shipments/ACME-1001-1", json=shipment(bought=True))
    label = labels.lookup("ACME-1001-1")
    assert label is not None and label.shipment_id == SID


def test_quote_without_rates_is_permanent_with_carrier_messages(labels: EasyPostLabels, mock: Any) -> None:
    msg = {"carrier": "UPS", "type": "rate_error", "message": "Invalid Access License number"}
    mock.post(API + "/shipments", json=shipment(rates=[], messages=[msg]), status=201)
    with pytest.raises(NoRateFits, match="UPS: Invalid Access License number"):
        labels.quote(request())


def test_422_address_problem_is_an_address_error(labels: EasyPostLabels, mock: Any) -> None:
    mock.post(API + "/shipments", **error(422, "ADDRESS.VERIFY.FAILURE", "Address not found",
                                          [{"field": "street1", "message": "House number is missing",
                                            "suggestion": None}]))
    with pytest.raises(EasyPostAddressError) as exc:
        labels.quote(request())
    assert "ADDRESS.VERIFY.FAILURE: Address not found" in str(exc.value)
    assert "street1: House number is missing" in str(exc.value) and exc.value.status == 422


def test_401_names_the_fix_but_not_the_key(labels: EasyPostLabels, mock: Any) -> None:
    mock.post(API + "/shipments", **error(401, "APIKEY.INACTIVE", f"key {KEY} is not active"))
    with pytest.raises(EasyPostAuthError) as exc:
        labels.quote(request())
    text = str(exc.value)
    assert "check api_key (test keys start with EZTK, production EZAK)" in text
    assert KEY not in text and KEY not in repr(exc.value.args)


def test_buy_returns_the_label(labels: EasyPostLabels, mock: Any) -> None:
    mock.post(f"{API}/shipments/{SID}/buy", json=shipment(bought=True))
    chosen = Rate("rate_b936eae682e543b1a6550ea120e81a3e", "USPS", "GroundAdvantage", Decimal("5.93"))
    label = labels.buy(SID, chosen)
    assert json.loads(mock.calls[0].request.body) == {"rate": {"id": chosen.rate_id}}
    assert label.tracking.number == "9400100105442285876350" and label.tracking.carrier == "USPS"
    assert label.tracking.url.startswith("https://track.easypost.com/")
    assert label.label_format == "PDF" and label.rate.amount == Decimal("5.93")


def test_buy_of_a_bought_shipment_returns_the_existing_label(labels: EasyPostLabels, mock: Any) -> None:
    mock.post(f"{API}/shipments/{SID}/buy",
              **error(422, "SHIPMENT.POSTAGE.EXISTS", "Postage already exists for this shipment."))
    mock.get(f"{API}/shipments/{SID}", json=shipment(bought=True))
    label = labels.buy(SID, Rate("rate_other", "UPS", "Ground", Decimal("5.93")))
    assert label.rate.service == "GroundAdvantage"  # what was really bought, not what was asked


@pytest.mark.parametrize("answer", [
    {"body": requests.exceptions.ReadTimeout("read timed out")},
    {"body": requests.exceptions.ConnectionError("Connection reset by peer")},
    error(500, "INTERNAL_SERVER_ERROR", "We're sorry, something went wrong."),
    error(503, "SERVICE_UNAVAILABLE", "unavailable"),
    {"status": 502, "body": "<html>Bad Gateway</html>"},
    error(422, "SHIPMENT.PURCHASE.IN_PROGRESS", "A purchase is already in progress."),
])
def test_buy_without_a_clear_answer_is_ambiguous(labels: EasyPostLabels, mock: Any,
                                                  answer: dict[str, Any]) -> None:
    mock.post(f"{API}/shipments/{SID}/buy", **answer)
    with pytest.raises(AmbiguousOutcome, match="look it up"):
        labels.buy(SID, Rate("rate_x", "USPS", "GroundAdvantage", Decimal("5.93")))


def test_buy_429_is_transient_not_ambiguous(labels: EasyPostLabels, mock: Any) -> None:
    mock.post(f"{API}/shipments/{SID}/buy", **error(429, "RATE_LIMITED", "Too many requests"))
    with pytest.raises(EasyPostThrottled):
        labels.buy(SID, Rate("rate_x", "USPS", "GroundAdvantage", Decimal("5.93")))


def test_reads_failing_are_transient_and_404_is_not_found(labels: EasyPostLabels, mock: Any) -> None:
    mock.get(f"{API}/shipments/{SID}", body=requests.exceptions.ReadTimeout("timeout"))
    with pytest.raises(TransientError):
        labels.lookup(SID)
    mock.get(f"{API}/shipments/shp_missing", **error(404, "NOT_FOUND", "The resource could not be found."))
    with pytest.raises(NotFound):
        labels.lookup("shp_missing")
    mock.get(f"{API}/shipments/shp_new", json=shipment())
    assert labels.lookup("shp_new") is None


def test_refund_submitted_repeat_and_rejected(labels: EasyPostLabels, mock: Any) -> None:
    mock.post(f"{API}/shipments/{SID}/refund", json=shipment(bought=True, refund_status="submitted"))
    assert labels.refund(SID) == "submitted"
    mock.replace(responses.POST, f"{API}/shipments/{SID}/refund",
                 **error(422, "SHIPMENT.REFUND.UNAVAILABLE", "Refund already requested"))
    mock.get(f"{API}/shipments/{SID}", json=shipment(bought=True, refund_status="submitted"))
    assert labels.refund(SID) == "submitted"
    mock.replace(responses.POST, f"{API}/shipments/{SID}/refund",
                 json=shipment(bought=True, refund_status="rejected"))
    with pytest.raises(PermanentError, match="rejected"):
        labels.refund(SID)


def test_label_file_and_check(labels: EasyPostLabels, mock: Any) -> None:
    mock.get(f"{API}/shipments/{SID}", json=shipment(bought=True))
    mock.get("https://easypost-files.s3.us-west-2.amazonaws.com/files/l.pdf", body=b"%PDF-1.4\n...%%EOF")
    label = labels.lookup(SID)
    assert label is not None and labels.label_file(label).startswith(b"%PDF")
    assert "Authorization" not in mock.calls[-1].request.headers  # the key never goes to the file host
    mock.replace(responses.GET, "https://easypost-files.s3.us-west-2.amazonaws.com/files/l.pdf", status=503)
    with pytest.raises(TransientError):
        labels.label_file(label)
    mock.get(f"{API}/users", json={"id": "user_060ab38db3c04ffaa60f262e5781a9be", "object": "User"})
    assert "test key of user user_060ab38db3c04ffaa60f262e5781a9be" in labels.check()


def test_endpoint_override_is_used(mock: Any) -> None:
    mock.get("https://proxy.test/v2/users", json={"id": "user_1", "object": "User"})
    assert "user_1" in EasyPostLabels("main", config(endpoint="https://proxy.test/v2/")).check()


def test_quote_sends_the_customs_declaration_of_an_international_shipment(labels: EasyPostLabels,
                                                                           mock: Any) -> None:
    mock.post(API + "/shipments", json=shipment(), status=201)
    item = CustomsItem(description="Sweet shirts", quantity=2, value=Decimal("23.25"), currency="USD",
                       weight_oz=Decimal(11), hs_tariff_number="654321", origin_country="US", code="TEE")
    london = Address(name="Jo", address1="10 Downing St", city="London", postal_code="SW1A 2AA", country="GB",
                     phone="+442079250918")
    declared = CustomsInfo(contents_type="merchandise", eel_pfc="NOEEI 30.37(a)", signer="Steve Brule",
                           non_delivery_option="return", restriction_type="none", items=(item,))
    abroad = replace(request(), to_address=london, customs=declared)
    labels.quote(abroad)
    sent = json.loads(mock.calls[0].request.body)["shipment"]["customs_info"]
    # the shape of EasyPost's own fixture (client-library-fixtures.json, shipments.full.customs_info)
    assert sent == {"customs_certify": True, "customs_signer": "Steve Brule", "contents_type": "merchandise",
                    "eel_pfc": "NOEEI 30.37(a)", "non_delivery_option": "return", "restriction_type": "none",
                    "customs_items": [{"description": "Sweet shirts", "quantity": 2, "value": 23.25,
                                       "currency": "USD", "weight": 11.0, "hs_tariff_number": "654321",
                                       "origin_country": "US", "code": "TEE"}]}


@pytest.mark.parametrize("answer", [
    error(422, "SHIPMENT.CUSTOMS_INFO.REQUIRED", "Unable to proceed, 'customs_info' is required for "
          "international shipments, shipments bound for US military bases, or US territories."),
    error(422, "SHIPMENT.POSTAGE.FAILURE", "Customs info error: missing required field for non-document "
          "shipment: customs_items.hs_tariff_number"),
])
def test_a_refused_customs_declaration_is_for_a_person_to_fix(labels: EasyPostLabels, mock: Any,
                                                              answer: dict[str, Any]) -> None:
    mock.post(f"{API}/shipments/{SID}/buy", **answer)
    with pytest.raises(EasyPostAddressError) as exc:
        labels.buy(SID, Rate("rate_x", "USPS", "PriorityMailInternational", Decimal("44.50")))
    assert "fix the customs declaration ([labels.main] customs, the store's customs_items)" in str(exc.value)
    assert not mock.calls[1:]  # nothing looked up: it is not an unknown outcome
