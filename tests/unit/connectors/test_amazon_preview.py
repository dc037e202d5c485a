"""getFulfillmentPreview: mapping (official fixture and model), client over ``responses``, sandbox."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
import responses
from responses import matchers

from connectors.amazon_mcf import mapping
from connectors.amazon_mcf.client import AmazonMCF, AmazonSettings
from connectors.amazon_mcf.errors import AmazonRejected
from connectors.amazon_mcf.sandbox import AmazonSandbox
from connectors.amazon_mcf.sandbox_model import InvalidInput, unit_fee, validate_preview
from connectors.ratelimit import LocalLimiter
from worker.domain import Address, Preview, PreviewItem
from worker.errors import PermanentError, TransientError

BASE = "https://sp.test"
TOKEN_URL = "https://lwa.test/auth/o2/token"
API = BASE + "/fba/outbound/2020-07-01"
PREVIEW_URL = API + "/fulfillmentOrders/preview"
MARKETPLACE = "ATVPDKIKX0DER"
ADDRESS = Address(name="Jo Doe", address1="1 Secret Lane", city="Austin", region="TX",
                  postal_code="78701", country="us", phone="+1 512 555 0100")
ITEMS = (PreviewItem("AMZ-TEE", "111", 2), PreviewItem("AMZ-MUG", "112", 1))

pytestmark = pytest.mark.usefixtures("fresh_amazon_tokens")


@pytest.fixture(scope="module")
def model(specs_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (specs_dir / "amazon" / "fulfillmentOutbound_2020-07-01.json").read_text())
    return data


@pytest.fixture(scope="module")
def fixture(specs_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        (specs_dir / "amazon" / "fixtures" / "mcf-v1-getFulfillmentPreview.json").read_text())
    return data


def _validator(model: dict[str, Any], name: str) -> jsonschema.Draft4Validator:
    # Swagger 2.0: refs are "#/definitions/X", so wrap the definitions in one schema document.
    schema = {"definitions": model["definitions"], "$ref": f"#/definitions/{name}"}
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())


def _errors_of(model: dict[str, Any], name: str, body: object) -> list[str]:
    return sorted(e.message for e in _validator(model, name).iter_errors(body))


class KeyLimiter(LocalLimiter):
    def __init__(self) -> None:
        super().__init__()
        self.keys: list[str] = []

    def acquire(self, key: str, *, rate: float, burst: float, cost: float = 1.0) -> None:
        self.keys.append(key)
        super().acquire(key, rate=rate, burst=burst, cost=cost)


# -- mapping -----------------------------------------------------------------------------------------

def test_official_fixture_parses(fixture: dict[str, Any], model: dict[str, Any]) -> None:
    assert not _errors_of(model, "GetFulfillmentPreviewResponse", fixture)
    (preview,) = mapping.previews_from_payload(fixture)
    assert preview == Preview(
        speed="Standard", fulfillable=True, unfulfillable=(),
        fees=Decimal("6.17") + Decimal("1.01") + Decimal("8.06"), currency="USD",
        earliest_arrival=datetime(2026, 4, 3, 17, 45, 10, tzinfo=UTC),
        latest_arrival=datetime(2026, 4, 4, 17, 45, 10, tzinfo=UTC))
    assert preview.fees == Decimal("15.24")
    assert mapping.previews_from_payload(fixture["payload"]) == (preview,)  # unwrapped too


def test_unfulfillable_items_reasons_and_several_shipments() -> None:
    payload = {"payload": {"fulfillmentPreviews": [
        {"shippingSpeedCategory": "Expedited", "isFulfillable": False, "isCODCapable": False,
         "marketplaceId": MARKETPLACE, "somethingNew": {"x": 1},
         "estimatedFees": [{"name": "FBAPerUnitFulfillmentFee",
                            "amount": {"currencyCode": "USD", "value": "7.5"}}],
         "unfulfillablePreviewItems": [
             {"sellerSku": "A", "sellerFulfillmentOrderItemId": "1", "quantity": 1,
              "itemUnfulfillableReasons": ["InventoryUnavailable", "NoInventory"]},
             {"sellerSku": "B", "sellerFulfillmentOrderItemId": "2", "quantity": 1}],
         "fulfillmentPreviewShipments": [
             {"earliestArrivalDate": "2026-04-05T00:00:00Z", "latestArrivalDate": "2026-04-06T00:00:00Z",
              "fulfillmentPreviewItems": []},
             {"earliestArrivalDate": "2026-04-04T00:00:00Z", "latestArrivalDate": "2026-04-08T00:00:00Z",
              "fulfillmentPreviewItems": []}]},
        {"shippingSpeedCategory": "ScheduledDelivery", "isFulfillable": False, "isCODCapable": False,
         "marketplaceId": MARKETPLACE, "orderUnfulfillableReasons": ["DeliverySLAUnavailable"]},
    ]}}
    expedited, scheduled = mapping.previews_from_payload(payload)
    assert not expedited.fulfillable
    assert expedited.unfulfillable == (("A", "InventoryUnavailable, NoInventory"), ("B", "Unfulfillable"))
    assert (expedited.fees, expedited.currency) == (Decimal("7.5"), "USD")
    assert expedited.earliest_arrival == datetime(2026, 4, 4, tzinfo=UTC)
    assert expedited.latest_arrival == datetime(2026, 4, 8, tzinfo=UTC)
    assert scheduled == Preview("ScheduledDelivery", False, (), Decimal("0"), "", None, None,
                                reasons=("DeliverySLAUnavailable",))
    assert mapping.previews_from_payload({}) == ()


@pytest.mark.parametrize("fees", [
    [{"name": "FBAPerUnitFulfillmentFee", "amount": {"currencyCode": "USD", "value": "abc"}}],
    [{"name": "FBAPerUnitFulfillmentFee", "amount": {"currencyCode": "USD", "value": "1"}},
     {"name": "FBATransportationFee", "amount": {"currencyCode": "CAD", "value": "1"}}],
])
def test_fees_that_cannot_be_summed_are_refused(fees: list[dict[str, Any]]) -> None:
    payload = {"fulfillmentPreviews": [{"shippingSpeedCategory": "Standard", "isFulfillable": True,
                                        "estimatedFees": fees}]}
    with pytest.raises(PermanentError, match="Standard"):
        mapping.previews_from_payload(payload)


BODIES = [
    mapping.preview_request_body(ADDRESS, ITEMS, MARKETPLACE, ["Standard", "Expedited", "Priority"], ()),
    mapping.preview_request_body(Address(name="Sam", address1="2 High St", postal_code="SW1A 1AA",
                                         country="GB"),
                                 ITEMS[:1], "A1F83G8C2ARO7P", ["Standard"], ["BLOCK_AMZL", "BLANK_BOX"]),
    mapping.preview_request_body(ADDRESS, ITEMS, MARKETPLACE, [], ()),
]


@pytest.mark.parametrize("body", BODIES, ids=["three-speeds", "gb-features", "all-speeds"])
def test_request_body_matches_the_model(model: dict[str, Any], body: dict[str, Any]) -> None:
    assert not _errors_of(model, "GetFulfillmentPreviewRequest", body)
    props = model["definitions"]["GetFulfillmentPreviewRequest"]["properties"]
    assert set(body) <= set(props)
    assert set(body["address"]) <= set(model["definitions"]["Address"]["properties"])
    for item in body["items"]:
        assert set(item) <= set(model["definitions"]["GetFulfillmentPreviewItem"]["properties"])
    assert body["includeCODFulfillmentPreview"] is False and body["includeDeliveryWindows"] is False
    validate_preview(body)  # the sandbox agrees


def test_request_body_content() -> None:
    body = BODIES[0]
    assert body["marketplaceId"] == MARKETPLACE
    assert body["address"]["countryCode"] == "US"
    assert body["items"] == [
        {"sellerSku": "AMZ-TEE", "sellerFulfillmentOrderItemId": "111", "quantity": 2},
        {"sellerSku": "AMZ-MUG", "sellerFulfillmentOrderItemId": "112", "quantity": 1}]
    assert body["shippingSpeedCategories"] == ["Standard", "Expedited", "Priority"]
    assert "featureConstraints" not in body
    assert BODIES[1]["featureConstraints"] == [
        {"featureName": "BLOCK_AMZL", "featureFulfillmentPolicy": "Required"},
        {"featureName": "BLANK_BOX", "featureFulfillmentPolicy": "Required"}]
    assert "shippingSpeedCategories" not in BODIES[2]  # Amazon answers every speed


def test_sandbox_validation_agrees_with_the_model(model: dict[str, Any]) -> None:
    body = BODIES[0]
    defs = model["definitions"]
    for field in defs["GetFulfillmentPreviewRequest"]["required"]:
        broken = copy.deepcopy(body)
        del broken[field]
        assert _errors_of(model, "GetFulfillmentPreviewRequest", broken)
        with pytest.raises(InvalidInput, match=field):
            validate_preview(broken)
    for field in defs["Address"]["required"]:
        broken = copy.deepcopy(body)
        del broken["address"][field]
        assert _errors_of(model, "GetFulfillmentPreviewRequest", broken)
        with pytest.raises(InvalidInput, match=field):
            validate_preview(broken)
    for field in defs["GetFulfillmentPreviewItem"]["required"]:
        broken = copy.deepcopy(body)
        del broken["items"][0][field]
        assert _errors_of(model, "GetFulfillmentPreviewRequest", broken)
        with pytest.raises(InvalidInput, match=field):
            validate_preview(broken)
    for key, value in (("shippingSpeedCategories", ["Overnight"]), ("includeDeliveryWindows", "no")):
        broken = copy.deepcopy(body)
        broken[key] = value
        assert _errors_of(model, "GetFulfillmentPreviewRequest", broken)
        with pytest.raises(InvalidInput, match=key):
            validate_preview(broken)
    broken = copy.deepcopy(body)
    broken["items"][0]["quantity"] = 251
    with pytest.raises(InvalidInput, match="items"):
        validate_preview(broken)


# -- client over responses ---------------------------------------------------------------------------

def _config(endpoint: str = BASE, token_url: str = TOKEN_URL, **kw: Any) -> AmazonSettings:
    base: dict[str, Any] = dict(marketplace_id=MARKETPLACE, client_id="cid-123", client_secret="cs-456",
                                refresh_token="rt-789", base_url=endpoint, token_url=token_url)
    base.update(kw)
    return AmazonSettings(**base)


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.add(responses.POST, TOKEN_URL, json={"access_token": "Atza|one", "expires_in": 3600})
        yield rsps


def test_client_preview_posts_the_body_and_parses(mocked: responses.RequestsMock, session: requests.Session,
                                                  fixture: dict[str, Any]) -> None:
    expected = mapping.preview_request_body(ADDRESS, ITEMS, MARKETPLACE, ["Standard"], ["BLANK_BOX"])
    mocked.add(responses.POST, PREVIEW_URL, json=fixture, headers={"x-amzn-RequestId": "rid-p"},
               match=[matchers.json_params_matcher(expected)])
    limiter = KeyLimiter()
    client = AmazonMCF("us", _config(), limiter, session)
    (preview,) = client.preview(ADDRESS, ITEMS, ["Standard"], ["BLANK_BOX"])
    assert preview.fulfillable and preview.fees == Decimal("15.24") and preview.currency == "USD"
    assert limiter.keys == ["amazon:us:getFulfillmentPreview"]
    assert client.last_request_id == "rid-p"
    sent = [c for c in mocked.calls if c.request.url == PREVIEW_URL]
    assert sent[0].request.headers["x-amz-access-token"] == "Atza|one"


def test_client_preview_400_is_rejected(mocked: responses.RequestsMock, session: requests.Session) -> None:
    mocked.add(responses.POST, PREVIEW_URL, status=400, headers={"x-amzn-RequestId": "rid-400"},
               json={"errors": [{"code": "InvalidInput", "message": "Invalid destination address."}]})
    with pytest.raises(AmazonRejected) as info:
        AmazonMCF("us", _config(), LocalLimiter(), session).preview(ADDRESS, ITEMS, ["Standard"])
    assert info.value.code == "InvalidInput" and info.value.request_id == "rid-400"
    assert "1 Secret Lane" not in str(info.value)


@pytest.mark.parametrize("failure", [{"body": requests.ReadTimeout("read timed out")},
                                     {"status": 503, "json": {"errors": []}}])
def test_client_preview_timeout_or_5xx_is_transient_not_ambiguous(
        mocked: responses.RequestsMock, session: requests.Session, failure: dict[str, Any]) -> None:
    mocked.add(responses.POST, PREVIEW_URL, **failure)
    with pytest.raises(TransientError):
        AmazonMCF("us", _config(), LocalLimiter(), session).preview(ADDRESS, ITEMS, ["Standard"])


# -- the real sandbox over loopback ------------------------------------------------------------------

def _sandbox_client(sb: AmazonSandbox, session: requests.Session,
                    limiter: LocalLimiter | None = None) -> AmazonMCF:
    cfg = _config(endpoint=sb.url, token_url=sb.token_url, client_id=sb.client_id,
                  client_secret=sb.client_secret, refresh_token=sb.refresh_token)
    return AmazonMCF("sandbox", cfg, limiter or LocalLimiter(), session)


def test_sandbox_in_stock_is_fulfillable_with_fees_per_speed(session: requests.Session,
                                                             model: dict[str, Any]) -> None:
    now = datetime(2026, 4, 1, 12, tzinfo=UTC).timestamp()
    with AmazonSandbox(clock=lambda: now) as sb:
        limiter = KeyLimiter()
        client = _sandbox_client(sb, session, limiter)
        previews = client.preview(ADDRESS, ITEMS, ["Standard", "Expedited", "Priority"])
        assert [p.speed for p in previews] == ["Standard", "Expedited", "Priority"]
        for p in previews:
            assert p.fulfillable and p.unfulfillable == () and p.currency == "USD"
            assert p.fees == unit_fee(p.speed, "AMZ-TEE") * 2 + unit_fee(p.speed, "AMZ-MUG")
            assert p.earliest_arrival is not None and p.latest_arrival is not None
            assert datetime.fromtimestamp(now, UTC) < p.earliest_arrival <= p.latest_arrival
        standard, expedited, priority = previews
        assert Decimal("10") < standard.fees < expedited.fees < priority.fees
        assert priority.latest_arrival < standard.latest_arrival  # type: ignore[operator]
        assert client.preview(ADDRESS, ITEMS, ["Standard", "Expedited", "Priority"]) == previews
        assert sb.calls.count("getFulfillmentPreview") == 2
        assert set(limiter.keys) == {"amazon:sandbox:getFulfillmentPreview"}

        # The raw answer has the official shape.
        token = session.post(sb.token_url, data={
            "grant_type": "refresh_token", "refresh_token": sb.refresh_token,
            "client_id": sb.client_id, "client_secret": sb.client_secret}).json()["access_token"]
        raw = session.post(sb.url + "/fba/outbound/2020-07-01/fulfillmentOrders/preview",
                           json=BODIES[1], headers={"x-amz-access-token": token}).json()
        assert not _errors_of(model, "GetFulfillmentPreviewResponse", raw)
        assert raw["payload"]["fulfillmentPreviews"][0]["estimatedFees"][0]["amount"]["currencyCode"] == "GBP"
        sb.set_stock("AMZ-TEE", False)
        raw = session.post(sb.url + "/fba/outbound/2020-07-01/fulfillmentOrders/preview",
                           json=BODIES[2], headers={"x-amz-access-token": token}).json()
        assert not _errors_of(model, "GetFulfillmentPreviewResponse", raw)


def test_sandbox_out_of_stock_and_unknown_skus(session: requests.Session) -> None:
    with AmazonSandbox(out_of_stock=("AMZ-TEE",), known_skus=("AMZ-TEE", "AMZ-MUG")) as sb:
        client = _sandbox_client(sb, session)
        (standard,) = client.preview(ADDRESS, ITEMS, ["Standard"])
        assert not standard.fulfillable
        assert standard.unfulfillable == (("AMZ-TEE", "InventoryUnavailable"),)
        assert standard.fees == unit_fee("Standard", "AMZ-MUG")  # what could ship

        sb.set_stock("AMZ-TEE", True)
        (standard,) = client.preview(ADDRESS, ITEMS, ["Standard"])
        assert standard.fulfillable and standard.unfulfillable == ()
        sb.set_stock("AMZ-MUG", False)
        (standard,) = client.preview(ADDRESS, ITEMS, ["Standard"])
        assert standard.unfulfillable == (("AMZ-MUG", "InventoryUnavailable"),)

        (expedited,) = client.preview(ADDRESS, (PreviewItem("NOPE", "1", 1),), ["Expedited"])
        assert not expedited.fulfillable and expedited.unfulfillable == (("NOPE", "InvalidSKU"),)
        assert expedited.fees == 0 and expedited.earliest_arrival is None

        (scheduled,) = client.preview(ADDRESS, ITEMS[1:], ["ScheduledDelivery"])
        assert not scheduled.fulfillable and scheduled.reasons == ("DeliverySLAUnavailable",)

        assert [p.speed for p in client.preview(ADDRESS, ITEMS[:1], [])] == [
            "Standard", "Expedited", "Priority"]


def test_sandbox_refuses_an_invalid_preview(session: requests.Session) -> None:
    with AmazonSandbox() as sb:
        client = _sandbox_client(sb, session)
        with pytest.raises(AmazonRejected, match="postalCode"):
            client.preview(Address(name="Jo", address1="1 Main St", country="US"), ITEMS, ["Standard"])
        with pytest.raises(AmazonRejected, match="items"):
            client.preview(ADDRESS, (), ["Standard"])
        sb.fail_next("getFulfillmentPreview", 500)
        with pytest.raises(TransientError):
            client.preview(ADDRESS, ITEMS, ["Standard"])
        assert client.preview(ADDRESS, ITEMS, ["Standard"])[0].fulfillable
