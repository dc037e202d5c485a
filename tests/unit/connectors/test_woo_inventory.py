"""WooCommerce stock sync: the pure mapping, then ``WooStore.read_stock``/``write_stock`` against
the WooSandbox (exact SKUs, variations, batches of 100, manage_stock, a number that moved)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.ratelimit import LocalLimiter
from connectors.woocommerce import inventory_mapping as im
from connectors.woocommerce.client import WooSettings, WooStore
from connectors.woocommerce.sandbox import WooSandbox
from worker.domain import StockChange, StockLevel
from worker.errors import TransientError


def test_products_and_variations_become_levels_and_problems() -> None:
    listed = [{"id": 11, "sku": "TEE", "type": "simple", "parent_id": 0, "manage_stock": True,
               "stock_quantity": 4},
              {"id": 13, "sku": "CAP-S", "type": "variation", "parent_id": 12, "manage_stock": True,
               "stock_quantity": 2},
              {"id": 14, "sku": "OFF", "type": "simple", "parent_id": 0, "manage_stock": False,
               "stock_quantity": None},
              {"id": 15, "sku": "DUP", "type": "simple"}, {"id": 16, "sku": "DUP", "type": "simple"},
              {"id": 17, "sku": "TEE-XL", "type": "simple"}]
    levels, problems = im.stock_read(["TEE", "CAP-S", "OFF", "DUP", "GONE"], listed)
    assert levels == [StockLevel("TEE", 4, "11"), StockLevel("CAP-S", 2, "12/13"),
                      StockLevel("OFF", 0, "14", managed=False)]
    assert [p.sku for p in problems] == ["DUP", "GONE"]
    assert "on 2 WooCommerce products (15, 16)" in problems[0].message and "no product" in problems[1].message


def test_batches_group_variations_by_parent_and_hold_at_most_100() -> None:
    changes = [StockChange(f"P{i}", str(100 + i), 1, 2) for i in range(150)]
    changes += [StockChange("V1", "7/8", 0, 3, manage=True), StockChange("V2", "7/9", 1, 0)]
    routes = [(route, len(group)) for route, group in im.batches(changes)]
    assert routes == [("products/batch", 100), ("products/batch", 50), ("products/7/variations/batch", 2)]
    assert im.batch_body(changes[-2:]) == {"update": [{"id": 8, "stock_quantity": 3, "manage_stock": True},
                                                      {"id": 9, "stock_quantity": 0}]}


def test_a_batch_answer_says_which_were_written() -> None:
    changes = [StockChange("A", "1", 0, 3), StockChange("B", "2", 0, 4), StockChange("C", "3", 0, 5)]
    answer = {"update": [{"id": 1, "stock_quantity": 3},
                         {"id": 2, "error": {"code": "woocommerce_rest_product_invalid_id",
                                             "message": "Invalid ID."}}]}
    done, refused = im.batch_outcome(changes, answer)
    assert done == ["A"] and [p.sku for p in refused] == ["B", "C"]
    assert "Invalid ID" in refused[0].message and "does not mention" in refused[1].message


@pytest.fixture
def woo() -> Iterator[WooSandbox]:
    with WooSandbox() as sandbox:
        yield sandbox


def store(woo: WooSandbox) -> WooStore:
    return WooStore("bolt", WooSettings(woo.url, "ck_sandbox", "cs_sandbox"), LocalLimiter())


def test_read_finds_products_and_variations_by_exact_sku(woo: WooSandbox) -> None:
    tee = woo.add_product("TEE", 5)
    woo.add_product("TEE-XL", 9)
    parent = woo.add_variable_product("CAP", {"CAP-S": 3, "CAP-M": None})
    woo.add_product("A,B", 2)  # a SKU with a comma is asked alone
    read = store(woo).read_stock(["TEE", "CAP-S", "CAP-M", "A,B", "GONE"])
    assert {lv.sku: (lv.quantity, lv.managed) for lv in read.levels} == {
        "TEE": (5, True), "CAP-S": (3, True), "CAP-M": (0, False), "A,B": (2, True)}
    assert next(lv.ref for lv in read.levels if lv.sku == "TEE") == str(tee)
    assert next(lv.ref for lv in read.levels if lv.sku == "CAP-S").startswith(f"{parent}/")
    assert [p.sku for p in read.problems] == ["GONE"]


def test_write_turns_stock_management_on_and_leaves_a_moved_number_alone(woo: WooSandbox) -> None:
    woo.add_product("TEE", 5)
    woo.add_product("OFF")
    woo.add_variable_product("CAP", {"CAP-S": 3})
    client = store(woo)
    now = {lv.sku: lv for lv in client.read_stock(["TEE", "OFF", "CAP-S"]).levels}
    woo.sell("TEE")  # after the caller read 5
    result = client.write_stock([StockChange(s, now[s].ref, now[s].quantity, 9, manage=not now[s].managed)
                                 for s in ("TEE", "OFF", "CAP-S")], "ignored")
    assert set(result.written) == {"OFF", "CAP-S"} and result.stale == ("TEE",)
    assert (woo.stock("TEE"), woo.stock("OFF"), woo.stock("CAP-S")) == (4, 9, 9)
    assert woo.product("OFF")["manage_stock"] is True


def test_a_write_that_fails_is_not_retried_blindly(woo: WooSandbox) -> None:
    woo.add_product("TEE", 5)
    client = store(woo)
    level = client.read_stock(["TEE"]).levels[0]
    woo.fail_next("POST /products/batch", 502)
    with pytest.raises(TransientError, match="502"):
        client.write_stock([StockChange("TEE", level.ref, 5, 1)], "ignored")
    assert woo.stock("TEE") == 5 and woo.calls.count("POST /products/batch") == 1
