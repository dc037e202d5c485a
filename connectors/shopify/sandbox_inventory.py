"""The sandbox's inventory operations (see ``queries.py``, "inventory"): locations, inventory items
by SKU search or by id with their ``available`` at a location, and ``inventorySetQuantities``
(``sandbox_stock.StockBook``). Like Shopify's search, ``sku:X`` also matches longer SKUs that
start with X, so the client must keep exact matches only.
"""

from __future__ import annotations

import re
from typing import Any

from connectors.shopify.sandbox_state import CostFn, Handler, SandboxError, SandboxState, _cursor, _uncursor
from connectors.shopify.sandbox_stock import gid, gid_number

_SKU_TERM = re.compile(r'sku:(?:"((?:[^"\\]|\\.)*)"|([^\s"]+))')


def _searched(query: str) -> list[str]:
    return [re.sub(r"\\(.)", r"\1", quoted) if quoted or not bare else bare
            for quoted, bare in _SKU_TERM.findall(query)]


def _item_node(state: SandboxState, iid: int, location: Any) -> dict[str, Any]:
    item = state.stock.items[iid]
    lid = gid_number(location, "Location")
    if lid is None or lid not in state.stock.locations:
        raise SandboxError(f"Invalid global id '{location}'")
    level = item["levels"].get(lid)
    return {"id": gid("InventoryItem", iid), "sku": item["sku"], "tracked": item["tracked"],
            "duplicateSkuCount": len(state.stock.with_sku(item["sku"])) - 1,
            "inventoryLevel": None if level is None else {
                "quantities": [{"name": "available", "quantity": level["available"]}]}}


def _locations(state: SandboxState, v: dict[str, Any]) -> tuple[dict[str, Any], float]:
    active = sorted(((loc["name"], lid) for lid, loc in state.stock.locations.items() if loc["active"]))
    start = int(_uncursor(v["after"])["i"]) if v.get("after") else 0
    first = int(v["first"])
    page = active[start:start + first]
    return {"locations": {
        "pageInfo": {"hasNextPage": start + first < len(active),
                     "endCursor": _cursor({"i": start + len(page)}) if page else None},
        "nodes": [{"id": gid("Location", lid), "name": name, "isActive": True} for name, lid in page]}
    }, 2 + len(page)


def _items_by_sku(state: SandboxState, v: dict[str, Any]) -> tuple[dict[str, Any], float]:
    wanted = _searched(str(v["query"]))
    found = sorted(iid for iid, item in state.stock.items.items()
                   if any(item["sku"].startswith(w) for w in wanted if w))
    start = int(_uncursor(v["after"])["i"]) if v.get("after") else 0
    first = int(v["first"])
    page = found[start:start + first]
    nodes = [_item_node(state, iid, v["location"]) for iid in page]
    return {"inventoryItems": {
        "pageInfo": {"hasNextPage": start + first < len(found),
                     "endCursor": _cursor({"i": start + len(page)}) if page else None},
        "nodes": nodes}}, 2 + 3 * len(nodes)


def _levels(state: SandboxState, v: dict[str, Any]) -> tuple[dict[str, Any], float]:
    nodes: list[dict[str, Any] | None] = []
    for raw in v["ids"]:
        iid = gid_number(raw, "InventoryItem")
        if iid is None:
            raise SandboxError(f"Invalid global id '{raw}'")
        nodes.append(_item_node(state, iid, v["location"]) if iid in state.stock.items else None)
    return {"nodes": nodes}, max(1, 3 * len(nodes))


def _set(state: SandboxState, v: dict[str, Any]) -> tuple[dict[str, Any], float]:
    return {"inventorySetQuantities": state.stock.set_quantities(v["input"], v.get("key"))}, 10


HANDLERS: dict[str, tuple[CostFn, Handler]] = {
    "InventoryLocations": (lambda v: 2 + int(v.get("first") or 0), _locations),
    "InventoryItemsBySku": (lambda v: 2 + 3 * int(v.get("first") or 0), _items_by_sku),
    "InventoryLevels": (lambda v: 3 * len(v.get("ids") or ()), _levels),
    "SetInventory": (lambda v: 10, _set),
}
