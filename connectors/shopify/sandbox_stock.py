"""The Shopify sandbox's inventory: locations, inventory items and their levels (``available``,
``committed``, ``on_hand``), and ``inventorySetQuantities`` with compare-and-swap. Used by
``sandbox_state.SandboxState`` (which holds one ``StockBook``) and ``sandbox_inventory.py``.

As in Shopify: an order takes units from ``available`` into ``committed``; setting ``available``
moves ``on_hand`` with it (``on_hand = available + committed``); a set whose ``changeFromQuantity``
no longer matches, or that has any other error, changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

# Shopify's reasons for a quantity change (the "possible reasons" the API reference links to).
REASONS = frozenset({
    "correction", "cycle_count_available", "damaged", "movement_canceled", "movement_created",
    "movement_received", "movement_updated", "other", "promotion", "quality_control", "received",
    "reservation_created", "reservation_deleted", "reservation_updated", "restock", "safety_stock",
    "shrinkage"})
NAMES = ("available", "on_hand")
MAX_QUANTITIES = 250


def gid(kind: str, n: int) -> str:
    return f"gid://shopify/{kind}/{n}"


def gid_number(value: Any, kind: str) -> int | None:
    prefix = f"gid://shopify/{kind}/"
    text = str(value)
    return int(text[len(prefix):]) if text.startswith(prefix) and text[len(prefix):].isdigit() else None


@dataclass
class StockBook:
    new_id: Callable[[], int]
    locations: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> {"name", "active"}
    # id -> {"sku", "tracked", "levels": {location id -> {"available", "committed"}}}
    items: dict[int, dict[str, Any]] = field(default_factory=dict)
    keys: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)  # idempotency key -> answer
    set_calls: list[dict[str, Any]] = field(default_factory=list)  # every inventorySetQuantities input
    history: list[dict[str, Any]] = field(default_factory=list)  # every quantity that changed

    def add_location(self, name: str, active: bool = True) -> int:
        lid = self.new_id()
        self.locations[lid] = {"name": name, "active": active}
        return lid

    def location_id(self, location: str | int | None) -> int:
        """A location by id, gid or name; None: the first one."""
        if location is None:
            return int(next(iter(self.locations)))
        if isinstance(location, int):
            return location
        by_gid = gid_number(location, "Location")
        if by_gid is not None:
            return by_gid
        return next(int(lid) for lid, loc in self.locations.items() if loc["name"] == location)

    def add_item(self, sku: str, levels: dict[int, int], tracked: bool = True) -> int:
        iid = self.new_id()
        self.items[iid] = {"sku": sku, "tracked": tracked,
                           "levels": {lid: {"available": q, "committed": 0} for lid, q in levels.items()}}
        return iid

    def with_sku(self, sku: str) -> list[int]:
        return [iid for iid, item in self.items.items() if item["sku"] == sku]

    def level(self, sku: str, location: int) -> dict[str, int] | None:
        found = self.with_sku(sku)
        return self.items[found[0]]["levels"].get(location) if found else None

    def take(self, sku: str, quantity: int, location: int | None = None) -> None:
        """A sale: ``quantity`` units move from available to committed (at ``location``, else the
        first location stocking the SKU's item). Nothing happens for a SKU without an item."""
        for iid in self.with_sku(sku)[:1]:
            levels = self.items[iid]["levels"]
            where = location if location is not None else next(iter(levels), None)
            if where in levels:
                levels[where]["available"] -= quantity
                levels[where]["committed"] += quantity
                self.history.append({"item": iid, "location": where, "name": "available",
                                     "delta": -quantity, "reason": "order"})

    def set_quantities(self, given: Any, key: str | None) -> dict[str, Any]:
        """``inventorySetQuantities(input:)``: all or nothing; the payload (``userErrors`` ...)."""
        params = json.dumps(given, sort_keys=True)
        if key:
            seen = self.keys.get(key)
            if seen is not None:
                if seen[0] != params:
                    return _refused([(None, "IDEMPOTENCY_KEY_PARAMETER_MISMATCH", "The same idempotency "
                                      "key cannot be used with different operation parameters.")])
                return seen[1]
        self.set_calls.append(json.loads(params))
        errors = self._check(given)
        if errors:
            answer = _refused(errors)
        else:
            name = given["name"]
            for q in given["quantities"]:
                level = self.items[gid_number(q["inventoryItemId"], "InventoryItem") or 0]["levels"][
                    gid_number(q["locationId"], "Location") or 0]
                now = level["available"] + (level["committed"] if name == "on_hand" else 0)
                level["available"] += q["quantity"] - now
                self.history.append({"item": q["inventoryItemId"], "location": q["locationId"], "name": name,
                                     "delta": q["quantity"] - now, "reason": given["reason"],
                                     "reference": given.get("referenceDocumentUri")})
            answer = {"inventoryAdjustmentGroup": {"id": gid("InventoryAdjustmentGroup", self.new_id())},
                      "userErrors": []}
        if key:
            self.keys[key] = (params, answer)
        return answer

    def _check(self, given: Any) -> list[tuple[list[str] | None, str, str]]:
        if not isinstance(given, dict) or not isinstance(given.get("quantities"), list):
            return [(["input"], "INVALID_NAME", "Input is missing quantities.")]
        errors: list[tuple[list[str] | None, str, str]] = []
        if given.get("name") not in NAMES:
            errors.append((["input", "name"], "INVALID_NAME",
                           "The quantity name must be either 'available' or 'on_hand'."))
        if given.get("reason") not in REASONS:
            errors.append((["input", "reason"], "INVALID_REASON", "The specified reason is invalid."))
        uri = given.get("referenceDocumentUri")
        if uri is not None and not (urlsplit(str(uri)).scheme and len(str(uri).split(":", 1)[1].strip("/"))):
            errors.append((["input", "referenceDocumentUri"], "INVALID_REFERENCE_DOCUMENT",
                           "The specified reference document is invalid."))
        if len(given["quantities"]) > MAX_QUANTITIES:
            errors.append((["input", "quantities"], "INVALID_QUANTITY_TOO_HIGH",
                           f"Too many quantities (at most {MAX_QUANTITIES})."))
        seen: set[tuple[Any, Any]] = set()
        for i, q in enumerate(given["quantities"]):
            where = ["input", "quantities", str(i)]
            item = self.items.get(gid_number(q.get("inventoryItemId"), "InventoryItem") or 0)
            lid = gid_number(q.get("locationId"), "Location")
            pair = (q.get("inventoryItemId"), q.get("locationId"))
            if item is None:
                errors.append((where + ["inventoryItemId"], "INVALID_INVENTORY_ITEM",
                               "The specified inventory item could not be found."))
            elif lid not in self.locations:
                errors.append((where + ["locationId"], "INVALID_LOCATION",
                               "The specified location could not be found."))
            elif lid not in item["levels"]:
                errors.append((where + ["locationId"], "ITEM_NOT_STOCKED_AT_LOCATION",
                               "The specified inventory item is not stocked at the location."))
            elif pair in seen:
                errors.append((where, "NO_DUPLICATE_INVENTORY_ITEM_ID_GROUP_ID_PAIR",
                               "The combination of inventoryItemId and locationId must be unique."))
            elif not isinstance(q.get("quantity"), int) or q["quantity"] < 0:
                errors.append((where + ["quantity"], "INVALID_QUANTITY_NEGATIVE",
                               "The quantity can't be negative."))
            elif "changeFromQuantity" not in q:
                errors.append((where + ["changeFromQuantity"], "COMPARE_QUANTITY_REQUIRED",
                               "The changeFromQuantity argument must be given to each quantity."))
            elif q["changeFromQuantity"] is not None:
                level = item["levels"][lid]
                now = level["available"] + (level["committed"] if given.get("name") == "on_hand" else 0)
                if q["changeFromQuantity"] != now:
                    errors.append((where + ["changeFromQuantity"], "CHANGE_FROM_QUANTITY_STALE",
                                   "The changeFromQuantity argument no longer matches the persisted "
                                   "quantity."))
            seen.add(pair)
        return errors


def _refused(errors: list[tuple[list[str] | None, str, str]]) -> dict[str, Any]:
    return {"inventoryAdjustmentGroup": None,
            "userErrors": [{"field": f, "code": c, "message": m} for f, c, m in errors]}
