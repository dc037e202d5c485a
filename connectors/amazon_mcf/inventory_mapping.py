"""Pure translation for the FBA Inventory API v1 ``getInventorySummaries``.

No I/O and no clock. The query asks for one marketplace's summaries with details, for at most
50 seller SKUs at a time (``sellerSkus``, one comma-separated value); the answer's
``pagination.nextToken`` (top level, beside ``payload``) asks for the next page.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from worker.domain import FbaStock

PATH = "/fba/inventory/v1/summaries"
MAX_SKUS = 50  # sellerSkus maxItems


def summaries_params(marketplace_id: str, seller_skus: Sequence[str],
                     next_token: str | None = None) -> dict[str, str]:
    """Query parameters of one call. A SKU holding a comma cannot share the comma-separated
    ``sellerSkus``: it is asked alone with ``sellerSku`` (see ``chunks``)."""
    if not 0 < len(seller_skus) <= MAX_SKUS:
        raise ValueError(f"getInventorySummaries takes 1 to {MAX_SKUS} seller SKUs, got {len(seller_skus)}")
    params = {"details": "true", "granularityType": "Marketplace", "granularityId": marketplace_id,
              "marketplaceIds": marketplace_id}
    if len(seller_skus) == 1 and "," in seller_skus[0]:
        params["sellerSku"] = seller_skus[0]
    else:
        params["sellerSkus"] = ",".join(seller_skus)
    if next_token:
        params["nextToken"] = next_token
    return params


def chunks(seller_skus: Sequence[str]) -> Iterator[list[str]]:
    """The SKUs (duplicates and blanks dropped) in calls of at most 50; one holding a comma alone."""
    plain: list[str] = []
    for sku in dict.fromkeys(s for s in seller_skus if s):
        if "," in sku:
            yield [sku]
        else:
            plain.append(sku)
    for start in range(0, len(plain), MAX_SKUS):
        yield plain[start:start + MAX_SKUS]


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _total(block: object, key: str) -> int:
    return _count(block.get(key)) if isinstance(block, Mapping) else 0


def stock_from_summary(summary: Mapping[str, Any]) -> FbaStock:
    """``FbaStock`` of one ``InventorySummary``; ``fulfillable`` None when it has no details."""
    details = summary.get("inventoryDetails")
    fulfillable: int | None = None
    if isinstance(details, Mapping):
        raw = details.get("fulfillableQuantity")
        if isinstance(raw, int) and not isinstance(raw, bool):
            fulfillable = max(0, raw)
    else:
        details = {}
    return FbaStock(
        seller_sku=str(summary.get("sellerSku", "")),
        fulfillable=fulfillable,
        reserved=_total(details.get("reservedQuantity"), "totalReservedQuantity"),
        inbound=sum(_count(details.get(k)) for k in (
            "inboundWorkingQuantity", "inboundShippedQuantity", "inboundReceivingQuantity")),
        researching=_total(details.get("researchingQuantity"), "totalResearchingQuantity"),
        unfulfillable=_total(details.get("unfulfillableQuantity"), "totalUnfulfillableQuantity"),
    )


def summaries_from_payload(body: Mapping[str, Any]) -> tuple[list[FbaStock], str | None]:
    """The page's stock per seller SKU and the next page's token (None on the last page)."""
    payload = body.get("payload")
    payload = payload if isinstance(payload, Mapping) else body
    out = [stock_from_summary(s) for s in payload.get("inventorySummaries") or ()
           if isinstance(s, Mapping) and s.get("sellerSku")]
    token = None
    for holder in (body.get("pagination"), payload.get("pagination")):
        if isinstance(holder, Mapping) and holder.get("nextToken"):
            token = str(holder["nextToken"])
    return out, token
