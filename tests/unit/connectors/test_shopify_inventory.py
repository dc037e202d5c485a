"""Shopify stock sync: the pure mapping, then ``ShopifyStore.read_stock``/``write_stock`` against
the ShopifySandbox (location by name or gid, SKU -> item resolved once, compare-and-swap)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.ratelimit import LocalLimiter
from connectors.shopify import inventory_mapping as im
from connectors.shopify.client import ShopifySettings, ShopifyStore
from connectors.shopify.errors import ShopifyUnknownLocation
from connectors.shopify.sandbox import ShopifySandbox
from worker.domain import SkuProblem, StockChange, StockLevel

REF = "gid://autofulfill/InventorySyncPass/7"


def test_search_query_quotes_and_escapes_each_sku() -> None:
    assert im.search_query(["TEE-RED-M", 'A "B"', "C\\D"]) == \
        'sku:"TEE-RED-M" OR sku:"A \\"B\\"" OR sku:"C\\\\D"'


def test_location_by_gid_name_or_unique_name_in_any_case() -> None:
    nodes = [{"id": "gid://shopify/Location/1", "name": "Warehouse"},
             {"id": "gid://shopify/Location/2", "name": "Amazon FBA"},
             {"id": "gid://shopify/Location/3", "name": "amazon fba"}]
    assert im.find_location(nodes, "gid://shopify/Location/1") == ("gid://shopify/Location/1", "Warehouse")
    assert im.find_location(nodes, "Amazon FBA") == ("gid://shopify/Location/2", "Amazon FBA")
    assert im.find_location(nodes, "warehouse") == ("gid://shopify/Location/1", "Warehouse")
    assert im.find_location(nodes, "AMAZON FBA") is None  # two locations match in another case
    assert im.find_location(nodes, "Nowhere") is None


def test_each_items_problem_is_named_with_its_fix() -> None:
    item = im.Item("gid://shopify/InventoryItem/9", "TEE", tracked=True, duplicates=0, available=4)
    assert im.level_or_problem("TEE", [item], "Amazon FBA") == StockLevel("TEE", 4, item.gid)
    cases = {
        "no variant": [],
        "on 2 Shopify variants": [item, item],
        "on 3 Shopify variants": [im.Item(item.gid, "TEE", True, 2, 4)],
        "Track quantity": [im.Item(item.gid, "TEE", False, 0, 4)],
        "not stocked at location 'Amazon FBA'": [im.Item(item.gid, "TEE", True, 0, None)],
    }
    for words, items in cases.items():
        found = im.level_or_problem("TEE", items, "Amazon FBA")
        assert isinstance(found, SkuProblem) and words in found.message and "TEE" in found.message


def test_user_errors_are_sorted_by_the_quantity_they_name() -> None:
    errors = [{"field": ["input", "quantities", "1", "changeFromQuantity"],
               "code": "CHANGE_FROM_QUANTITY_STALE", "message": "stale"},
              {"field": ["input", "quantities", "2", "locationId"], "code": "ITEM_NOT_STOCKED_AT_LOCATION",
               "message": "not stocked"}]
    outcome = im.set_outcome(errors, 3)
    assert outcome.stale == {1} and outcome.refused == {2: "ITEM_NOT_STOCKED_AT_LOCATION: not stocked"}
    assert not outcome.whole and not outcome.retry
    assert im.set_outcome([{"field": ["input", "reason"], "code": "INVALID_REASON", "message": "x"}], 3).whole
    assert im.set_outcome([{"code": "CHANGE_FROM_QUANTITY_STALE", "message": "x"}], 3).stale == {0, 1, 2}
    assert im.set_outcome([{"code": "IDEMPOTENCY_CONCURRENT_REQUEST", "message": "x"}], 3).retry


def test_the_input_sets_available_as_a_correction_compared_to_what_was_read() -> None:
    change = StockChange("TEE", "gid://shopify/InventoryItem/9", expected=50, quantity=9)
    assert im.set_input([change], "gid://shopify/Location/2", REF) == {
        "name": "available", "reason": "correction", "referenceDocumentUri": REF,
        "quantities": [{"inventoryItemId": "gid://shopify/InventoryItem/9", "locationId": "gid://shopify/Location/2",
                        "quantity": 9, "changeFromQuantity": 50}]}


@pytest.fixture
def shop() -> Iterator[ShopifySandbox]:
    with ShopifySandbox() as sandbox:
        sandbox.add_location("Warehouse")
        sandbox.add_location("Amazon FBA")
        yield sandbox


def store(shop: ShopifySandbox, location: str = "Amazon FBA") -> ShopifyStore:
    return ShopifyStore("acme", ShopifySettings(shop.url, access_token="sandbox-token",
                                                inventory_location=location), LocalLimiter())


def test_read_resolves_each_sku_once_and_reads_by_id_after(shop: ShopifySandbox) -> None:
    tee = shop.add_inventory_item("TEE", {"Amazon FBA": 5, "Warehouse": 2})
    shop.add_inventory_item("TEE-XL", {"Amazon FBA": 1})  # the search also matches it: not ours
    client = store(shop)
    first = client.read_stock(["TEE", "NOPE"])
    assert first.levels == (StockLevel("TEE", 5, tee),)
    assert [p.sku for p in first.problems] == ["NOPE"]
    shop.sell("TEE", 2, "Amazon FBA")
    assert client.read_stock(["TEE"]).levels == (StockLevel("TEE", 3, tee),)
    assert shop.calls == ["InventoryLocations", "InventoryItemsBySku", "InventoryLevels"]
    shop.add_inventory_item("TEE", {"Amazon FBA": 1})  # a second variant with the SKU, after caching
    assert "on 2 Shopify variants" in client.read_stock(["TEE"]).problems[0].message


def test_the_location_by_gid_and_an_unknown_one_refused_with_the_fix(shop: ShopifySandbox) -> None:
    gid = shop.add_location("FBA (gid)")
    shop.add_inventory_item("TEE", {gid: 4})
    assert store(shop, gid).read_stock(["TEE"]).levels[0].quantity == 4
    fix = r"'Amazon FBA US'.*'Warehouse'.*\[stores.acme.inventory\] location"
    with pytest.raises(ShopifyUnknownLocation, match=fix):
        store(shop, "Amazon FBA US").read_stock(["TEE"])


def test_a_write_compares_and_swaps_and_a_refused_call_changes_nothing(shop: ShopifySandbox) -> None:
    tee = shop.add_inventory_item("TEE", {"Amazon FBA": 5})
    mug = shop.add_inventory_item("MUG", {"Amazon FBA": 8})
    client = store(shop)
    shop.sell("TEE", 1, "Amazon FBA")  # after our read of 5
    result = client.write_stock([StockChange("TEE", tee, 5, 2), StockChange("MUG", mug, 8, 6)], REF)
    assert (result.written, result.stale, result.problems) == (("MUG",), ("TEE",), ())
    assert shop.available("TEE", "Amazon FBA") == 4 and shop.available("MUG", "Amazon FBA") == 6
    assert [len(c["quantities"]) for c in shop.inventory_sets] == [2, 1]  # refused whole, MUG again alone
    assert all(q["changeFromQuantity"] is not None for c in shop.inventory_sets for q in c["quantities"])


def test_a_quantity_refused_for_its_own_reason_is_that_skus_problem(shop: ShopifySandbox) -> None:
    tee = shop.add_inventory_item("TEE", {"Amazon FBA": 5})
    elsewhere = shop.add_inventory_item("MUG", {"Warehouse": 8})  # not stocked at the FBA location
    changes = [StockChange("TEE", tee, 5, 3), StockChange("MUG", elsewhere, 0, 6)]
    result = store(shop).write_stock(changes, REF)
    assert result.written == ("TEE",) and result.problems[0].sku == "MUG"
    assert "ITEM_NOT_STOCKED_AT_LOCATION" in result.problems[0].message


def test_writes_go_250_a_call(shop: ShopifySandbox) -> None:
    items = [shop.add_inventory_item(f"S{i:03d}", {"Amazon FBA": 1}) for i in range(260)]
    shop.state.bucket_max = 100_000  # a big shop's bucket; this test is about the batching
    changes = [StockChange(f"S{i:03d}", gid, 1, 2) for i, gid in enumerate(items)]
    result = store(shop).write_stock(changes, REF)
    assert len(result.written) == 260 and [len(c["quantities"]) for c in shop.inventory_sets] == [250, 10]


def test_the_sandbox_keeps_one_answer_per_idempotency_key(shop: ShopifySandbox) -> None:
    tee = shop.add_inventory_item("TEE", {"Amazon FBA": 5})
    loc = f"gid://shopify/Location/{shop.state.stock.location_id('Amazon FBA')}"
    given = im.set_input([StockChange("TEE", tee, 5, 3)], loc, REF)
    first = shop.state.stock.set_quantities(given, "k-1")
    assert first["userErrors"] == [] and shop.state.stock.set_quantities(given, "k-1") == first  # sent again
    assert shop.available("TEE", "Amazon FBA") == 3
    other = im.set_input([StockChange("TEE", tee, 3, 1)], loc, REF)
    assert shop.state.stock.set_quantities(other, "k-1")["userErrors"][0]["code"] == \
        "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"
    bare = {k: v for k, v in other["quantities"][0].items() if k != "changeFromQuantity"}
    null = {**other, "quantities": [bare]}
    assert shop.state.stock.set_quantities(null, None)["userErrors"][0]["code"] == "COMPARE_QUANTITY_REQUIRED"
