"""The Amazon sandbox's FBA stock: units per seller SKU and ``getInventorySummaries`` answers.

Used by ``sandbox.AmazonSandbox`` only (under its lock). A SKU is *counted* once the sandbox is
told its units (``set_stock(sku, n)`` or ``stock=``); a counted SKU's fulfillable units move to
reserved when an order for it is accepted, leave when that order ships, and come back when it is
cancelled, and a preview asking for more than are fulfillable says ``InventoryUnavailable``. A
SKU never counted shows ``default_stock`` fulfillable units and never runs out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connectors.amazon_mcf.sandbox_model import InvalidInput, iso

TOKEN_TTL_S = 30.0  # Amazon: "The string token will expire 30 seconds after being created."
MAX_SKUS = 50


@dataclass
class SandboxStock:
    default_stock: int = 100
    counted: dict[str, int] = field(default_factory=dict)  # seller SKU -> fulfillable units
    inbound: dict[str, int] = field(default_factory=dict)
    out_of_stock: set[str] = field(default_factory=set)  # 0 fulfillable, whatever the count

    def fulfillable(self, sku: str) -> int:
        if sku in self.out_of_stock:
            return 0
        return max(0, self.counted.get(sku, self.default_stock))

    def enough(self, sku: str, quantity: int) -> bool:
        return sku not in self.out_of_stock and (sku not in self.counted or self.counted[sku] >= quantity)

    def reserve(self, items: Iterable[Mapping[str, Any]]) -> None:
        """An order was accepted: its units of counted SKUs leave the fulfillable ones."""
        for item in items:
            sku = str(item["sellerSku"])
            if sku in self.counted:
                self.counted[sku] = max(0, self.counted[sku] - int(item["quantity"]))

    def release(self, items: Iterable[Mapping[str, Any]]) -> None:
        """An order was cancelled before it shipped: its units are fulfillable again."""
        for item in items:
            sku = str(item["sellerSku"])
            if sku in self.counted:
                self.counted[sku] += int(item["quantity"])


def parse_query(query: Mapping[str, list[str]]) -> tuple[list[str] | None, str]:
    """(the seller SKUs asked, or None for all; the nextToken or "") of a getInventorySummaries
    query, checked as Amazon checks it. Raises InvalidInput naming the parameter."""
    def one(name: str) -> str:
        values = query.get(name) or [""]
        return values[0]

    if one("granularityType") != "Marketplace":
        raise InvalidInput("Value for parameter granularityType is invalid. Reason: must be Marketplace.")
    if not one("granularityId"):
        raise InvalidInput("Value for parameter granularityId is invalid. Reason: Missing.")
    markets = [m for v in query.get("marketplaceIds") or () for m in v.split(",") if m]
    if len(markets) != 1:
        raise InvalidInput("Value for parameter marketplaceIds is invalid. Reason: exactly one is allowed.")
    if one("details") not in ("", "true", "false"):
        raise InvalidInput("Value for parameter details is invalid. Reason: not a boolean.")
    token = one("nextToken")
    if "sellerSkus" in query:
        skus = [s for s in one("sellerSkus").split(",") if s]
        if not skus or len(skus) > MAX_SKUS:
            raise InvalidInput(f"Value for parameter sellerSkus is invalid. Reason: 1 to {MAX_SKUS} SKUs.")
        return skus, token
    if one("sellerSku"):
        return [one("sellerSku")], token
    return None, token


def summary(sku: str, fulfillable: int, reserved: int, inbound: int, now: float,
            details: bool) -> dict[str, Any]:
    """One InventorySummary as Amazon shapes it."""
    digest = hashlib.sha256(sku.encode()).hexdigest().upper()
    out: dict[str, Any] = {
        "asin": "B0" + digest[:8], "fnSku": "X00" + digest[8:15], "sellerSku": sku, "condition": "NewItem",
        "lastUpdatedTime": iso(now), "productName": f"Sandbox product {sku}",
        "totalQuantity": fulfillable + reserved + inbound, "stores": []}
    if details:
        out["inventoryDetails"] = {
            "fulfillableQuantity": fulfillable, "inboundWorkingQuantity": 0,
            "inboundShippedQuantity": inbound, "inboundReceivingQuantity": 0,
            "reservedQuantity": {"totalReservedQuantity": reserved, "pendingCustomerOrderQuantity": reserved,
                                 "pendingTransshipmentQuantity": 0, "fcProcessingQuantity": 0},
            "researchingQuantity": {"totalResearchingQuantity": 0, "researchingQuantityBreakdown": []},
            "unfulfillableQuantity": {"totalUnfulfillableQuantity": 0, "customerDamagedQuantity": 0,
                                      "warehouseDamagedQuantity": 0, "distributorDamagedQuantity": 0,
                                      "carrierDamagedQuantity": 0, "defectiveQuantity": 0,
                                      "expiredQuantity": 0}}
    return out
