"""Shopify inventory payloads <-> domain records, for the FBA stock sync. Pure: no I/O, no clock.

The number kept in step is ``available`` at one location (the one holding the FBA stock):
``inventorySetQuantities`` with ``name = "available"``, ``reason = "correction"`` and, per
quantity, ``changeFromQuantity`` = the quantity just read (compare-and-swap).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from worker.domain import SkuProblem, StockChange, StockLevel

LOCATION_GID = "gid://shopify/Location/"
STALE = "CHANGE_FROM_QUANTITY_STALE"
# userErrors that concern the whole call rather than one quantity.
WHOLE_CALL = frozenset({"INVALID_LOCATION", "INVALID_REASON", "INVALID_REFERENCE_DOCUMENT", "INVALID_NAME",
                        "IDEMPOTENCY_KEY_PARAMETER_MISMATCH"})
RETRY = frozenset({"IDEMPOTENCY_CONCURRENT_REQUEST", "SERVICE_UNAVAILABLE", "SET_ON_HAND_QUANTITIES_FAILED"})


@dataclass(frozen=True)
class Item:
    """One inventory item as the inventory queries return it."""

    gid: str
    sku: str
    tracked: bool
    duplicates: int  # other items with the same SKU (duplicateSkuCount)
    available: int | None  # at the location; None when the item is not stocked there


def search_query(skus: Iterable[str]) -> str:
    """``sku:"A" OR sku:"B"``: each SKU quoted, ``\\`` and ``"`` escaped (Shopify search syntax)."""
    def quoted(sku: str) -> str:
        return '"' + sku.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return " OR ".join(f"sku:{quoted(s)}" for s in skus)


def item_from_node(node: Mapping[str, Any]) -> Item | None:
    """An ``InventoryItem`` node (with its ``inventoryLevel`` at the location); None for anything
    else (``nodes(ids:)`` answers null for an id that no longer exists)."""
    if not isinstance(node, Mapping) or not node.get("id"):
        return None
    level = node.get("inventoryLevel")
    available: int | None = None
    if isinstance(level, Mapping):
        available = 0
        for q in level.get("quantities") or ():
            if isinstance(q, Mapping) and q.get("name") == "available" and isinstance(q.get("quantity"), int):
                available = int(q["quantity"])
    dup = node.get("duplicateSkuCount")
    return Item(gid=str(node["id"]), sku=str(node.get("sku") or ""), tracked=node.get("tracked") is True,
                duplicates=dup if isinstance(dup, int) and dup > 0 else 0, available=available)


def find_location(nodes: Iterable[Mapping[str, Any]], wanted: str) -> tuple[str, str] | None:
    """(gid, name) of the location ``wanted`` names: its gid, its exact name, else its name in
    any case when only one location has it; None when no location matches."""
    locations = [(str(n.get("id", "")), str(n.get("name", ""))) for n in nodes if isinstance(n, Mapping)]
    wanted = wanted.strip()
    for matches in ([loc for loc in locations if loc[0] == wanted or loc[1] == wanted],
                    [loc for loc in locations if loc[1].casefold() == wanted.casefold()]):
        if len(matches) == 1:
            return matches[0]
    return None


def level_or_problem(sku: str, items: Sequence[Item], location: str) -> StockLevel | SkuProblem:
    """What the store shows for ``sku`` (its items found by exact SKU), or why it cannot be synced."""
    if not items:
        return SkuProblem(sku, f"Shopify has no variant with SKU {sku!r}: set that SKU on the variant, "
                               "or remove it from sku_map")
    if len(items) > 1 or items[0].duplicates:
        count = max(len(items), items[0].duplicates + 1)
        return SkuProblem(sku, f"SKU {sku!r} is on {count} Shopify variants: give each variant its own "
                               "SKU (the sync cannot tell which one FBA stocks)")
    item = items[0]
    if not item.tracked:
        return SkuProblem(sku, f"SKU {sku!r} does not track inventory in Shopify: turn on 'Track "
                               "quantity' for the variant")
    if item.available is None:
        return SkuProblem(sku, f"SKU {sku!r} is not stocked at location {location!r}: add that "
                               "location to the variant's inventory in the Shopify admin")
    return StockLevel(sku=sku, quantity=item.available, ref=item.gid)


def set_input(changes: Sequence[StockChange], location_gid: str, reference: str) -> dict[str, Any]:
    """``InventorySetQuantitiesInput``: ``available`` at the location, compare-and-swap on each."""
    return {"name": "available", "reason": "correction", "referenceDocumentUri": reference,
            "quantities": [{"inventoryItemId": c.ref, "locationId": location_gid, "quantity": c.quantity,
                            "changeFromQuantity": c.expected} for c in changes]}


@dataclass(frozen=True)
class SetOutcome:
    stale: frozenset[int]  # indexes whose changeFromQuantity no longer matched
    refused: dict[int, str]  # index -> Shopify's message
    whole: tuple[str, ...]  # errors that name no quantity: the call as a whole was refused
    retry: bool  # Shopify said try again (concurrent request, service unavailable)


def set_outcome(user_errors: Iterable[Mapping[str, Any]], count: int) -> SetOutcome:
    """Sort ``userErrors`` by the quantity they name (``field`` = input, quantities, index, ...)."""
    stale: set[int] = set()
    refused: dict[int, str] = {}
    whole: list[str] = []
    retry = False
    for err in user_errors:
        code, message = str(err.get("code") or ""), str(err.get("message") or "")
        path = [str(p) for p in err.get("field") or ()]
        named = path[2:3] if path[1:2] == ["quantities"] else []
        index = int(named[0]) if named and named[0].isdigit() else None
        if code in RETRY:
            retry = True
        elif code == STALE and index is None:  # which one is not said: read them all again
            stale.update(range(count))
        elif index is None or index >= count or code in WHOLE_CALL:
            whole.append(f"{code}: {message}".lstrip(": "))
        elif code == STALE:
            stale.add(index)
        else:
            refused[index] = f"{code}: {message}".lstrip(": ")
    return SetOutcome(frozenset(stale), refused, tuple(whole), retry)
