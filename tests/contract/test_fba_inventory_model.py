"""Every getInventorySummaries request the Amazon client builds, checked against the official FBA
Inventory v1 model; the answers it reads (and the sandbox serves) validate against the model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import jsonschema
import pytest
import requests
import responses

from connectors.amazon_mcf import inventory_mapping
from connectors.amazon_mcf.client import AmazonMCF, AmazonSettings
from connectors.amazon_mcf.sandbox_inventory import summary
from connectors.ratelimit import LocalLimiter

BASE = "https://sp.test"
TOKEN_URL = "https://lwa.test/auth/o2/token"
SUMMARIES = BASE + inventory_mapping.PATH


@pytest.fixture(scope="module")
def model(specs_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((specs_dir / "amazon" / "fbaInventory.json").read_text())
    return data


def _validator(model: dict[str, Any], name: str) -> jsonschema.Draft4Validator:
    schema = {"definitions": model["definitions"], "$ref": f"#/definitions/{name}"}
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())


def _page(skus: list[str], token: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"payload": {
        "granularity": {"granularityType": "Marketplace", "granularityId": "ATVPDKIKX0DER"},
        "inventorySummaries": [summary(s, 3, 1, 0, 1_772_000_000, True) for s in skus]}}
    if token:
        body["pagination"] = {"nextToken": token}
    return body


@responses.activate
def test_query_parameters_match_the_model(model: dict[str, Any]) -> None:
    AmazonMCF.clear_token_cache()
    responses.add(responses.POST, TOKEN_URL, json={"access_token": "Atza|t", "expires_in": 3600})
    skus = [f"AMZ-{i:03d}" for i in range(60)] + ["PACK,2"]
    responses.add(responses.GET, SUMMARIES, json=_page(["PACK,2"], None))
    responses.add(responses.GET, SUMMARIES, json=_page(skus[:30], "tok=/+1"))
    responses.add(responses.GET, SUMMARIES, json=_page(skus[30:50], None))
    responses.add(responses.GET, SUMMARIES, json=_page(skus[50:60], None))
    cfg = AmazonSettings(marketplace_id="ATVPDKIKX0DER", client_id="c", client_secret="s",
                         refresh_token="r", base_url=BASE, token_url=TOKEN_URL)
    with requests.Session() as session:
        stock = AmazonMCF("us", cfg, LocalLimiter(), session).fba_stock(skus)
    assert set(stock) == set(skus) and stock["AMZ-007"].fulfillable == 3

    op = model["paths"][inventory_mapping.PATH]["get"]
    params = {p["name"]: p for p in op["parameters"] if p["in"] == "query"}
    required = {n for n, p in params.items() if p.get("required")}
    sent = [parse_qs(urlsplit(c.request.url or "").query) for c in responses.calls
            if c.request.method == "GET"]
    assert len(sent) == 4
    for query in sent:
        assert set(query) <= set(params) and required <= set(query)
        assert query["granularityType"] == ["Marketplace"] == params["granularityType"]["enum"]
        assert query["granularityId"] == query["marketplaceIds"] == ["ATVPDKIKX0DER"]
        assert len(query["marketplaceIds"][0].split(",")) <= params["marketplaceIds"]["maxItems"]
        assert query["details"] == ["true"] and params["details"]["type"] == "boolean"
    lone, first, following, last = sent
    assert lone["sellerSku"] == ["PACK,2"] and "sellerSkus" not in lone  # a comma cannot share the list
    assert len(first["sellerSkus"][0].split(",")) == 50 == params["sellerSkus"]["maxItems"]
    assert following["nextToken"] == ["tok=/+1"] and following["sellerSkus"] == first["sellerSkus"]
    assert last["sellerSkus"][0].split(",") == skus[50:60]


def test_the_answers_read_and_served_are_the_models_shape(model: dict[str, Any]) -> None:
    answer = _page(["AMZ-TEE", "AMZ-MUG"], "next")
    errors = sorted(_validator(model, "GetInventorySummariesResponse").iter_errors(answer), key=str)
    assert not errors, [e.message for e in errors]
    props = model["definitions"]
    assert set(answer["payload"]["inventorySummaries"][0]) <= set(props["InventorySummary"]["properties"])
    details = answer["payload"]["inventorySummaries"][0]["inventoryDetails"]
    assert set(details) <= set(props["InventoryDetails"]["properties"])
    # The fields the mapping reads are the model's.
    for name in ("fulfillableQuantity", "inboundWorkingQuantity", "inboundShippedQuantity",
                 "inboundReceivingQuantity", "reservedQuantity", "researchingQuantity",
                 "unfulfillableQuantity"):
        assert name in props["InventoryDetails"]["properties"]
    assert "totalReservedQuantity" in props["ReservedQuantity"]["properties"]
    assert "nextToken" in props["Pagination"]["properties"]
    assert "pagination" in props["GetInventorySummariesResponse"]["properties"]
    stocks, token = inventory_mapping.summaries_from_payload(answer)
    assert [s.fulfillable for s in stocks] == [3, 3] and token == "next"
