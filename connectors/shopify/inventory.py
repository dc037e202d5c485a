"""``ShopifyInventory``: the FBA location's ``available`` quantities, read and set with
compare-and-swap (the ``StoreStock`` half of ``ShopifyStore``).

The location is found once by name or gid; each SKU is resolved to its inventory item once (a
search by SKU, the exact match kept) and cached for an hour, then read by id. ``available`` is
the number written: Shopify keeps orders it has taken but not fulfilled in ``committed``, outside
``available``, and autofulfill's formula already subtracts those orders' units — writing
``on_hand`` would subtract them a second time.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from connectors.shopify import inventory_mapping as im
from connectors.shopify import queries
from connectors.shopify.errors import ShopifyUnknownLocation, ShopifyUserError
from connectors.shopify.queries import Operation
from worker.domain import SkuProblem, StockChange, StockLevel, StockRead, StockWriteResult
from worker.errors import TransientError

Call = Callable[[Operation, dict[str, Any]], dict[str, Any]]
RESOLVE_TTL_S = 3600.0  # a SKU's inventory item is looked up again after this long
MAX_SET_ROUNDS = 3  # a call refused for some quantities is sent again without them


class ShopifyInventory:
    """Thread-safe; ``call`` is the store client's GraphQL transport (cost bucket, retries)."""

    def __init__(self, store: str, location: str, call: Call,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._wanted = location
        self._call = call
        self._clock = clock
        self._lock = threading.Lock()
        self._location: tuple[str, str] | None = None  # (gid, name)
        self._items: dict[str, tuple[str, float]] = {}  # SKU -> (inventory item gid, resolved at)

    def location(self) -> tuple[str, str]:
        """(gid, name) of the configured location; ShopifyUnknownLocation when the shop has none."""
        with self._lock:
            if self._location is not None:
                return self._location
        nodes: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            conn = self._call(queries.INVENTORY_LOCATIONS, {"first": queries.LOCATIONS_PAGE,
                                                            "after": after}).get("locations") or {}
            nodes += [n for n in conn.get("nodes") or () if isinstance(n, dict)]
            page = conn.get("pageInfo") or {}
            if not page.get("hasNextPage"):
                break
            after = page.get("endCursor")
        found = im.find_location(nodes, self._wanted)
        if found is None:
            names = ", ".join(repr(str(n.get("name"))) for n in nodes[:20]) or "none"
            raise ShopifyUnknownLocation(
                f"shopify: no active location {self._wanted!r} in the shop (its locations: {names}); set "
                f"[stores.{self._store}.inventory] location to the name or gid of the one holding FBA stock")
        with self._lock:
            self._location = found
        return found

    def read(self, skus: Sequence[str]) -> StockRead:
        gid, name = self.location()
        wanted = list(dict.fromkeys(s for s in skus if s))
        now = self._clock()
        with self._lock:
            cached = {s: self._items[s][0] for s in wanted
                      if s in self._items and now - self._items[s][1] < RESOLVE_TTL_S}
        found: dict[str, list[im.Item]] = {}
        ids = list(cached.values())
        for start in range(0, len(ids), queries.LEVELS_PAGE):
            data = self._call(queries.INVENTORY_LEVELS, {"ids": ids[start:start + queries.LEVELS_PAGE],
                                                         "location": gid})
            for node in data.get("nodes") or ():
                item = im.item_from_node(node)
                if item is not None and cached.get(item.sku) == item.gid:
                    found[item.sku] = [item]
        # Not cached, expired, deleted or renamed since: search by SKU.
        search = [s for s in wanted if s not in found]
        for start in range(0, len(search), queries.SKUS_PER_SEARCH):
            chunk = search[start:start + queries.SKUS_PER_SEARCH]
            for item in self._search(chunk, gid):
                if item.sku in chunk:  # the search also matches other SKUs: keep exact ones
                    found.setdefault(item.sku, []).append(item)
        levels: list[StockLevel] = []
        problems: list[SkuProblem] = []
        with self._lock:
            for sku in wanted:
                items = found.get(sku, [])
                result = im.level_or_problem(sku, items, name)
                if isinstance(result, StockLevel):
                    levels.append(result)
                    if sku not in cached:
                        self._items[sku] = (result.ref, now)
                else:
                    problems.append(result)
                    self._items.pop(sku, None)
        return StockRead(tuple(levels), tuple(problems))

    def _search(self, skus: list[str], location: str) -> list[im.Item]:
        out: list[im.Item] = []
        after: str | None = None
        query = im.search_query(skus)
        while True:
            conn = self._call(queries.INVENTORY_ITEMS_BY_SKU, {
                "first": queries.ITEMS_PAGE, "after": after, "query": query, "location": location,
            }).get("inventoryItems") or {}
            out += [i for i in map(im.item_from_node, conn.get("nodes") or ()) if i is not None]
            page = conn.get("pageInfo") or {}
            if not page.get("hasNextPage"):
                return out
            after = page.get("endCursor")

    def write(self, changes: Sequence[StockChange], reference: str) -> StockWriteResult:
        gid, _ = self.location()
        written: list[str] = []
        stale: list[str] = []
        problems: list[SkuProblem] = []
        for start in range(0, len(changes), queries.SET_QUANTITIES):
            batch = list(changes[start:start + queries.SET_QUANTITIES])
            for _ in range(MAX_SET_ROUNDS):
                if not batch:
                    break
                data = self._call(queries.SET_INVENTORY, {"input": im.set_input(batch, gid, reference),
                                                          "key": str(uuid.uuid4())})
                result = data.get("inventorySetQuantities") or {}
                outcome = im.set_outcome(result.get("userErrors") or (), len(batch))
                if outcome.whole:
                    why = "; ".join(outcome.whole)
                    raise ShopifyUserError(f"shopify inventorySetQuantities refused: {why}")
                if outcome.retry:
                    raise TransientError("shopify inventorySetQuantities: Shopify asks to try again")
                if not outcome.stale and not outcome.refused:
                    written += [c.sku for c in batch]
                    batch = []
                    break
                # A refused call changes nothing: send the rest again without the refused quantities.
                stale += [batch[i].sku for i in sorted(outcome.stale)]
                problems += [SkuProblem(batch[i].sku, f"Shopify refused {batch[i].sku!r}: {why}")
                             for i, why in sorted(outcome.refused.items())]
                batch = [c for i, c in enumerate(batch)
                         if i not in outcome.stale and i not in outcome.refused]
            stale += [c.sku for c in batch]  # still refused after the last round: read again later
        return StockWriteResult(tuple(written), tuple(stale), tuple(problems))
