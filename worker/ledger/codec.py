"""Order <-> JSON for the ledger's payload column (Decimal as string, times as ISO-8601)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from typing import Any

from worker.domain import Address, Line, Order


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def order_to_json(order: Order) -> dict[str, Any]:
    return dict(_plain(asdict(order)))


def order_from_json(data: dict[str, Any]) -> Order:
    address = data.get("address")
    updated = data.get("updated_at")
    return Order(
        platform_order_id=data["platform_order_id"],
        number=data["number"],
        created_at=datetime.fromisoformat(data["created_at"]),
        financial_status=data["financial_status"],
        lines=tuple(Line(line_id=ln["line_id"], sku=ln["sku"], quantity=int(ln["quantity"]),
                         title=ln.get("title", ""), unit_price=Decimal(ln.get("unit_price", "0")))
                    for ln in data["lines"]),
        address=Address(**address) if address else None,
        cancelled=bool(data.get("cancelled")),
        fulfilled=bool(data.get("fulfilled")),
        shipping_title=data.get("shipping_title", ""),
        email=data.get("email", ""),
        tags=tuple(data.get("tags", ())),
        currency=data.get("currency", ""),
        total=Decimal(data.get("total", "0")),
        updated_at=datetime.fromisoformat(updated) if updated else None,
        refunds=int(data.get("refunds", 0)),
    )
