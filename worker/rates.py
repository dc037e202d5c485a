"""Pure self-ship decisions: which parcel a shipment is, and which rate to buy."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from connectors.errors import PermanentError
from worker.config import AddressConfig, ParcelConfig
from worker.domain import Address, Parcel, Rate

CHEAPEST = "cheapest"
FASTEST = "fastest"
Rule = str | Sequence[str]  # "cheapest" | "fastest" | ["Carrier:Service", ...]


def _parcel(p: ParcelConfig) -> Parcel:
    return Parcel(p.length_in, p.width_in, p.height_in, p.weight_oz)


def stack(parcels: Iterable[Parcel]) -> Parcel:
    """One box for several items (one Parcel per unit): as long as the longest, as wide as the
    widest, as tall as all of them together; the weights add up. It over-estimates rather than
    under-estimates (carriers re-bill an under-declared parcel)."""
    items = list(parcels)
    if not items:
        raise ValueError("stack needs at least one parcel")
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


def _name(value: str) -> str:
    return value.strip().casefold()


def _by_cheapest(rate: Rate) -> tuple[Any, ...]:
    days = rate.delivery_days
    return (rate.amount, days is None, days or 0, _name(rate.carrier), _name(rate.service), rate.rate_id)


def _by_fastest(rate: Rate) -> tuple[Any, ...]:
    days = rate.delivery_days
    return (days is None, days or 0, rate.amount, _name(rate.carrier), _name(rate.service), rate.rate_id)


def describe_rates(rates: Iterable[Rate]) -> str:
    return ", ".join(f"{r.carrier}:{r.service} {r.amount} {r.currency}" for r in rates) or "no rates"


def describe_rule(rule: Rule) -> str:
    return rule if isinstance(rule, str) else "[" + ", ".join(rule) + "]"


def choose_rate(rates: Sequence[Rate], rule: Rule, messages: Sequence[str] = ()) -> Rate:
    """Pick the rate to buy.

    ``cheapest``: lowest amount; ties by fewer delivery days (unknown last), then carrier name.
    ``fastest``: fewest delivery days (unknown last); ties by amount, then carrier name.
    A list of "Carrier:Service": the first entry that is offered (case-insensitive); when one
    entry matches several rates (several accounts of one carrier) the cheapest of them.
    Raises NoRateFits (a PermanentError) naming the rule, what was offered and the carriers'
    messages when nothing fits."""
    if isinstance(rule, str):
        key = {CHEAPEST: _by_cheapest, FASTEST: _by_fastest}.get(rule.strip().lower())
        if key is None:
            raise ValueError(f"unknown rate rule {rule!r}: use cheapest, fastest or a list")
        if rates:
            return min(rates, key=key)
    else:
        for entry in rule:
            carrier, _, service = entry.partition(":")
            want = (_name(carrier), _name(service))
            fits = [r for r in rates if (_name(r.carrier), _name(r.service)) == want]
            if fits:
                return min(fits, key=_by_cheapest)
    text = f"no rate fits choose = {describe_rule(rule)}; offered: {describe_rates(rates)}"
    if messages:
        text += "; carriers said: " + "; ".join(messages)
    raise PermanentError(text)


def from_address(config: AddressConfig) -> Address:
    """The configured ship-from address as a domain Address."""
    return Address(name=config.name, address1=config.street1, address2=config.street2,
                   city=config.city, region=config.state, postal_code=config.zip,
                   country=config.country, phone=config.phone, company=config.company)
