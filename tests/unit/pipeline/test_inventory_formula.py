"""The inventory sync's formula, table-driven: what a store may sell of one SKU."""

from __future__ import annotations

from decimal import Decimal

import pytest

from worker.config import InventoryConfig
from worker.domain import FbaStock
from worker.pipeline.inventory_formula import (
    OpenUnits,
    SkuLine,
    after_a_sale,
    buffer_for,
    not_sent,
    sellable,
)

# (case, fulfillable, units of paid orders not yet at Amazon per store, buffer, what the store may sell)
POOL = [
    ("nothing sold, no buffer", 10, {}, 0, 10),
    ("held orders of this store", 10, {"acme": 3}, 0, 7),
    ("held orders of every store on the account", 10, {"acme": 3, "bolt": 2}, 0, 5),
    ("and the buffer", 10, {"acme": 3, "bolt": 2}, 2, 3),
    ("buffer alone", 10, {}, 4, 6),
    ("sold out at Amazon", 0, {}, 0, 0),
    ("more sold than Amazon has: never below 0", 2, {"acme": 3}, 0, 0),
    ("buffer larger than the rest: never below 0", 5, {"bolt": 1}, 9, 0),
    ("the last unit beyond the buffer", 3, {"acme": 1}, 1, 1),
    ("the other store sold the last unit", 3, {"acme": 1, "bolt": 1}, 1, 0),
]


@pytest.mark.parametrize(("fulfillable", "units", "buffer", "expected"), [p[1:] for p in POOL],
                         ids=[p[0] for p in POOL])
def test_sellable(fulfillable: int, units: dict[str, int], buffer: int, expected: int) -> None:
    snapshot = [OpenUnits(order_id=n, line_id="1", seller_sku="AMZ-TEE", quantity=q)
                for n, q in enumerate(units.values())]
    pool_units = not_sent(snapshot).get("AMZ-TEE", 0)
    assert pool_units == sum(units.values())
    assert sellable(fulfillable, pool_units, buffer) == expected


# (case, buffer, buffer_percent, buffers, fulfillable, expected buffer of TEE)
BUFFERS = [
    ("none", 0, "0", {}, 40, 0),
    ("units", 3, "0", {}, 40, 3),
    ("percent of Amazon's fulfillable, rounded up", 0, "10", {}, 41, 5),
    ("percent of nothing", 0, "10", {}, 0, 0),
    ("the larger of units and percent: units", 5, "10", {}, 20, 5),
    ("the larger of units and percent: percent", 1, "10", {}, 40, 4),
    ("per-SKU entry wins over both", 5, "50", {"TEE": 1}, 40, 1),
    ("per-SKU 0 means none held back", 5, "50", {"TEE": 0}, 40, 0),
    ("another SKU's entry does not apply", 2, "0", {"MUG": 9}, 40, 2),
    ("fractional percent", 0, "2.5", {}, 100, 3),
]


@pytest.mark.parametrize(("units", "percent", "per_sku", "fulfillable", "expected"), [b[1:] for b in BUFFERS],
                         ids=[b[0] for b in BUFFERS])
def test_buffer(units: int, percent: str, per_sku: dict[str, int], fulfillable: int, expected: int) -> None:
    inv = InventoryConfig(buffer=units, buffer_percent=Decimal(percent), buffers=per_sku)
    assert buffer_for("TEE", fulfillable, inv) == expected


def test_not_sent_counts_a_line_once_across_snapshots_with_its_largest_quantity() -> None:
    before = [OpenUnits(1, "a", "AMZ-TEE", 2), OpenUnits(2, "b", "AMZ-TEE", 1),
              OpenUnits(3, "c", "AMZ-MUG", 4)]
    # Between the snapshots: order 2 reached Amazon, order 4 arrived, order 3 was lowered by a refund.
    after = [OpenUnits(1, "a", "AMZ-TEE", 2), OpenUnits(3, "c", "AMZ-MUG", 3),
             OpenUnits(4, "d", "AMZ-TEE", 5)]
    assert not_sent(before, after) == {"AMZ-TEE": 2 + 1 + 5, "AMZ-MUG": 4}
    # One line split over two shipments was summed by the ledger read: the same key, once.
    assert not_sent([OpenUnits(1, "a", "AMZ-TEE", 3)], [OpenUnits(1, "a", "AMZ-TEE", 3)]) == {"AMZ-TEE": 3}
    assert not_sent([OpenUnits(1, "a", "AMZ-TEE", 0)]) == {}


# (case, target, what the store showed when read, what it shows now, what to write now)
MOVED = [
    ("one sale meanwhile", 9, 50, 49, 8),
    ("three sales", 9, 50, 47, 6),
    ("more sold than the target", 2, 50, 45, 0),
    ("a rise is not trusted", 9, 50, 52, 9),
    ("unchanged", 9, 50, 50, 9),
]


@pytest.mark.parametrize(("target", "read", "now", "expected"), [m[1:] for m in MOVED],
                         ids=[m[0] for m in MOVED])
def test_after_a_sale(target: int, read: int, now: int, expected: int) -> None:
    assert after_a_sale(target, read, now) == expected


def test_a_line_wants_a_write_only_when_the_store_differs_or_does_not_manage_stock() -> None:
    base = SkuLine("TEE", "AMZ-TEE", FbaStock("AMZ-TEE", 10), store_qty=9, target=9)
    assert not base.wants_write
    assert SkuLine("TEE", "AMZ-TEE", store_qty=8, target=9).wants_write
    assert SkuLine("TEE", "AMZ-TEE", store_qty=9, target=9, managed=False).wants_write
    assert not SkuLine("TEE", "AMZ-TEE", store_qty=8, target=9, problem="twice in the store").wants_write
    assert not SkuLine("TEE", "AMZ-TEE", store_qty=None, target=9).wants_write
