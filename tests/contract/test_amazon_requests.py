"""Every request the Amazon client builds, checked against the official v2020-07-01 model."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
import requests
import responses

from connectors.amazon_mcf import mapping
from connectors.amazon_mcf.client import AmazonMCF, AmazonSettings
from connectors.amazon_mcf.sandbox_model import InvalidInput, validate_create
from connectors.ratelimit import LocalLimiter
from worker.domain import Address, FulfillmentItem, FulfillmentRequest

BASE = "https://sp.test"
TOKEN_URL = "https://lwa.test/auth/o2/token"
API = BASE + "/fba/outbound/2020-07-01"


@pytest.fixture(scope="module")
def model(specs_dir: Path) -> dict[str, Any]:
    path = specs_dir / "amazon" / "fulfillmentOutbound_2020-07-01.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker()

    @checker.checks("date-time")
    def _date_time(value: object) -> bool:
        if not isinstance(value, str):
            return True  # formats only constrain strings
        # RFC 3339: a date, "T", a time and an explicit offset (we always send "Z").
        return "T" in value and mapping.parse_time(value) is not None and (
            value.endswith("Z") or "+" in value[10:] or "-" in value[10:])

    @checker.checks("int32")
    def _int32(value: object) -> bool:
        return not isinstance(value, int) or -(2**31) <= value < 2**31

    return checker


def _validator(model: dict[str, Any], name: str) -> jsonschema.Draft4Validator:
    # Swagger 2.0: refs are "#/definitions/X", so wrap the definitions in one schema document.
    schema = {"definitions": model["definitions"], "$ref": f"#/definitions/{name}"}
    return jsonschema.Draft4Validator(schema, format_checker=_format_checker())


def _address(**kw: str) -> Address:
    base = dict(name="Jo Doe", address1="1 Main St", city="Austin", region="TX", postal_code="78701",
                country="US")
    base.update(kw)
    return Address(**base)


def _requests() -> Iterator[FulfillmentRequest]:
    when = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)
    one = (FulfillmentItem("AMZ-TEE-RED-M", "14000001", 1),)
    many = tuple(FulfillmentItem(f"AMZ-SKU-{i}", f"1400000{i}", i) for i in range(1, 5))
    yield FulfillmentRequest("ACME-5001-1", "1001", when, "Thank you for your order", "Standard",
                             _address(), one)
    yield FulfillmentRequest("ACME-5002-1", "1002", when, "Thanks", "Expedited",
                             _address(address2="Apt 4", phone="+1 512 555 0100"), many,
                             features=("BLOCK_AMZL",), notification_emails=("jo@example.com",))
    yield FulfillmentRequest("BOLT-77-2", "77", when, "x" * 250, "Priority",
                             _address(city="", region="", address2="c/o Sam"), many[:2],
                             features=("BLOCK_AMZL", "BLANK_BOX"))
    yield FulfillmentRequest("BOLT-" + "9" * 30 + "-1", "9" * 30, when, "", "ScheduledDelivery",
                             _address(country="gb", region="", postal_code="SW1A 1AA"), one)


BODIES = [mapping.create_request_body(r, "ATVPDKIKX0DER") for r in _requests()]


@pytest.mark.parametrize("body", BODIES, ids=[b["sellerFulfillmentOrderId"] for b in BODIES])
def test_create_body_matches_the_model(model: dict[str, Any], body: dict[str, Any]) -> None:
    errors = sorted(_validator(model, "CreateFulfillmentOrderRequest").iter_errors(body), key=str)
    assert not errors, [e.message for e in errors]
    # Only keys the model knows, at every level we fill.
    props = model["definitions"]["CreateFulfillmentOrderRequest"]["properties"]
    assert set(body) <= set(props)
    assert set(body["destinationAddress"]) <= set(model["definitions"]["Address"]["properties"])


@pytest.mark.parametrize("body", BODIES, ids=[b["sellerFulfillmentOrderId"] for b in BODIES])
def test_sandbox_validation_agrees_with_the_model(model: dict[str, Any], body: dict[str, Any]) -> None:
    comment_empty = body["displayableOrderComment"] == ""
    if comment_empty:
        # The model only says "required"; the sandbox, like Amazon, wants some text.
        with pytest.raises(InvalidInput, match="displayableOrderComment"):
            validate_create(body)
        return
    validate_create(body)
    required = model["definitions"]["CreateFulfillmentOrderRequest"]["required"]
    for field in required:
        broken = copy.deepcopy(body)
        del broken[field]
        assert list(_validator(model, "CreateFulfillmentOrderRequest").iter_errors(broken))
        with pytest.raises(InvalidInput, match=field):
            validate_create(broken)
    for field in model["definitions"]["Address"]["required"]:
        broken = copy.deepcopy(body)
        del broken["destinationAddress"][field]
        with pytest.raises(InvalidInput, match=field):
            validate_create(broken)
    for field in model["definitions"]["CreateFulfillmentOrderItem"]["required"]:
        broken = copy.deepcopy(body)
        del broken["items"][0][field]
        with pytest.raises(InvalidInput, match=field):
            validate_create(broken)


def _params(model: dict[str, Any], path: str, method: str) -> dict[str, dict[str, Any]]:
    op = model["paths"][path][method]
    return {p["name"]: p for p in op.get("parameters", []) if p.get("in") == "query"}


@responses.activate
def test_query_parameters_match_the_model(model: dict[str, Any]) -> None:
    AmazonMCF.clear_token_cache()
    responses.add(responses.POST, TOKEN_URL, json={"access_token": "Atza|t", "expires_in": 3600})
    responses.add(responses.GET, API + "/fulfillmentOrders",
                  json={"payload": {"fulfillmentOrders": [{"sellerFulfillmentOrderId": "A-1-1"}],
                                    "nextToken": "tok=/+1"}})
    responses.add(responses.GET, API + "/fulfillmentOrders",
                  json={"payload": {"fulfillmentOrders": [{"sellerFulfillmentOrderId": "A-2-1"}]}})
    responses.add(responses.GET, API + "/tracking", json={"payload": {"packageNumber": 7}})
    cfg = AmazonSettings(marketplace_id="ATVPDKIKX0DER", client_id="c", client_secret="s",
                         refresh_token="r", base_url=BASE, token_url=TOKEN_URL)
    with requests.Session() as session:
        client = AmazonMCF("us", cfg, LocalLimiter(), session)
        since = datetime(2026, 3, 1, 8, 30, 15, 999, tzinfo=UTC)
        assert list(client.changed_since(since)) == ["A-1-1", "A-2-1"]
        client.tracking_link(7)

    list_params = _params(model, "/fba/outbound/2020-07-01/fulfillmentOrders", "get")
    track_params = _params(model, "/fba/outbound/2020-07-01/tracking", "get")
    sent = [(urlsplit(c.request.url or "").path, parse_qs(urlsplit(c.request.url or "").query))
            for c in responses.calls if c.request.method == "GET"]
    first, second, tracking = sent
    assert set(first[1]) <= set(list_params) and set(second[1]) <= set(list_params)
    assert first[1] == {"queryStartDate": ["2026-03-01T08:30:15Z"]}
    assert list_params["queryStartDate"]["format"] == "date-time"
    assert second[1] == {"nextToken": ["tok=/+1"]}  # the token goes back exactly as received
    assert set(tracking[1]) == {"packageNumber"} == {n for n, p in track_params.items() if p["required"]}
    assert track_params["packageNumber"]["type"] == "integer"
    assert int(tracking[1]["packageNumber"][0]) == 7
    assert _format_checker().conforms(int(tracking[1]["packageNumber"][0]), "int32")
