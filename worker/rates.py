"""Pure self-ship decisions: which parcel a shipment is, and which rate to buy."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from connectors.errors import PermanentError
from worker.config import ParcelConfig
from worker.domain import Parcel, Rate


def _parcel(p: ParcelConfig) -> Parcel:
    return Parcel(p.length_in, p.width_in, p.height_in, p.weight_oz)


def stack(parcels: Iterable[Parcel]) -> Parcel:
    """Parcels packed together: weights add, boxes stack (heights add, the largest footprint)."""
    items = list(parcels)
    return Parcel(length_in=max(p.length_in for p in items), width_in=max(p.width_in for p in items),
                  height_in=sum((p.height_in for p in items), Decimal(0)),
                  weight_oz=sum((p.weight_oz for p in items), Decimal(0)))


def shipment_parcel(lines: Iterable[tuple[str, int]], by_sku: Mapping[str, ParcelConfig],
                    default: ParcelConfig) -> Parcel:
    """Every unit with a SKU parcel counts (× quantity); units without one ride in the default
    parcel, counted once."""
    parts: list[Parcel] = []
    needs_default = False
    for sku, quantity in lines:
        if sku in by_sku:
            parts += [_parcel(by_sku[sku])] * quantity
        else:
            needs_default = True
    if needs_default or not parts:
        parts.append(_parcel(default))
    return stack(parts)


def choose_rate(rates: Iterable[Rate], rule: str | list[str]) -> Rate:
    """``cheapest`` (ties: fewer delivery days, then carrier), ``fastest`` (ties: cheaper, then
    carrier), or the first offered "Carrier:Service" of a list. PermanentError when none fits."""
    offered = list(rates)
    if not offered:
        raise PermanentError("no carrier offered a rate for this shipment")
    never = 10**6
    if rule == "cheapest":
        return min(offered, key=lambda r: (r.amount, r.delivery_days or never, r.carrier, r.service))
    if rule == "fastest":
        return min(offered, key=lambda r: (r.delivery_days or never, r.amount, r.carrier, r.service))
    wanted = [pair.lower() for pair in rule]
    for pair in wanted:
        for rate in offered:
            if f"{rate.carrier}:{rate.service}".lower() == pair:
                return rate
    names = ", ".join(sorted(f"{r.carrier}:{r.service}" for r in offered))
    raise PermanentError(f"none of the allowed services {list(rule)} was offered (offered: {names})")
