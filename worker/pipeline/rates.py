"""Pure self-ship decisions: which parcel a shipment is, what it declares to customs, and
which rate to buy."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from typing import Any

from worker.config import AddressConfig, Config, CustomsConfig, CustomsItemConfig, ParcelConfig
from worker.domain import Address, CustomsInfo, CustomsItem, LabelRequest, Line, Order, Parcel, Rate
from worker.errors import PermanentError

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


def needs_customs(origin: Address, destination: Address) -> bool:
    """A label to another country than the from_address's carries a customs declaration."""
    frm, to = origin.country.strip().upper(), destination.country.strip().upper()
    return bool(frm and to and frm != to)


def shipment_customs(lines: Iterable[Line], by_sku: Mapping[str, ParcelConfig], default: ParcelConfig,
                     items: Mapping[str, CustomsItemConfig], settings: CustomsConfig, *,
                     origin_country: str, currency: str) -> CustomsInfo:
    """One customs item per shipment line (``lines`` carry the shipment's quantities and the
    order's titles and unit prices): value = unit price × quantity; weight = the SKU parcel's
    weight × quantity, or for SKUs without a parcel their share of the default parcel's weight
    (split evenly over those units, as they ride in it together). A SKU without a customs entry
    is described by its title, with no HS code, made in ``origin_country``."""
    shipped = [ln for ln in lines if ln.quantity > 0]
    loose = sum(ln.quantity for ln in shipped if ln.sku not in by_sku)
    share = default.weight_oz / loose if loose else Decimal(0)
    out: list[CustomsItem] = []
    for ln in shipped:
        entry = items.get(ln.sku) or CustomsItemConfig()
        per_unit = by_sku[ln.sku].weight_oz if ln.sku in by_sku else share
        out.append(CustomsItem(description=entry.description or ln.title.strip() or ln.sku,
                               quantity=ln.quantity, value=ln.unit_price * ln.quantity,
                               currency=currency.upper(), weight_oz=per_unit * ln.quantity,
                               hs_tariff_number=entry.hs_tariff_number,
                               origin_country=entry.origin_country or origin_country.upper(), code=ln.sku))
    return CustomsInfo(contents_type=settings.contents_type, eel_pfc=settings.eel_pfc,
                       signer=settings.signer.strip(), non_delivery_option=settings.non_delivery_option,
                       restriction_type=settings.restriction_type, items=tuple(out),
                       contents_explanation=settings.contents_explanation.strip(),
                       restriction_comments=settings.restriction_comments.strip())


NOEEI_30_37_A = "NOEEI 30.37(a)"
NOEEI_LIMIT_USD = Decimal(2500)  # 15 CFR 30.37(a): per Schedule B number


def customs_problem(customs: CustomsInfo, origin_country: str) -> str:
    """Why this declaration cannot be bought as it is ("" when it can): a line without a value
    (customs need one above 0), or a US export claiming NOEEI 30.37(a) although the goods of one
    Schedule B / HS number are worth over $2,500 (an EEI filing is needed; items without an HS
    code count per SKU). Values in another currency than USD are not compared."""
    free = [f"{i.code or i.description} x{i.quantity}" for i in customs.items if i.value <= 0]
    if free:
        return (f"customs: no value (price 0) for {', '.join(free)}; a customs declaration needs each "
                "line's worth above 0, so ship this one by hand with its value declared")
    claims_noeei = customs.eel_pfc.strip().upper().startswith(NOEEI_30_37_A.upper())
    if origin_country.strip().upper() != "US" or not claims_noeei:
        return ""
    totals: dict[str, Decimal] = {}
    for item in customs.items:
        if item.currency.upper() == "USD":
            hs = item.hs_tariff_number.replace(".", "")
            key = f"HS {hs}" if hs else f"{item.code or item.description} (no HS code)"
            totals[key] = totals.get(key, Decimal(0)) + item.value
    over = sorted(k for k, v in totals.items() if v > NOEEI_LIMIT_USD)
    if not over:
        return ""
    what = ", ".join(over)
    return (f"customs: {what} is worth over $2,500, so {NOEEI_30_37_A} does not apply and this export "
            "needs an EEI filing (AES) that autofulfill does not make; file it and ship by hand")


def label_request(config: Config, store: str, account: str, order: Order,
                  lines: Sequence[tuple[str, str, int]], reference: str) -> LabelRequest:
    """What the label provider is asked to rate for ``lines`` ((line id, SKU, quantity)) of
    ``order``: the stacked parcel, and a customs declaration when it goes to another country
    (one item per line, from the order's titles and prices).

    Raises PermanentError when it cannot be labelled as configured: no address, or an
    international one without ``labels.<name>.customs.signer``, with a line worth 0, or needing
    an EEI filing. A dry-run store buys nothing, so it is not refused for those."""
    labels = config.labels[account]
    if order.address is None:
        raise PermanentError("order has no shipping address")
    parcels = config.parcels(store)
    parcel = shipment_parcel([(sku, qty) for _, sku, qty in lines], parcels, labels.default_parcel)
    sender = from_address(labels.from_address)
    customs = None
    if needs_customs(sender, order.address):
        ordered = {ln.line_id: ln for ln in order.lines}
        shipped = [replace(ordered.get(line_id) or Line(line_id, sku, 0), sku=sku, quantity=qty)
                   for line_id, sku, qty in lines]
        customs = shipment_customs(shipped, parcels, labels.default_parcel, config.customs_items(store),
                                   labels.customs, origin_country=sender.country,
                                   currency=order.currency or "USD")
        if not config.store(store).dry_run:
            if not customs.signer:
                route = f"{sender.country.upper()} → {order.address.country.upper()}"
                raise PermanentError(f"labels.{account}.customs.signer is not set: an international "
                                     f"label ({route}) needs the name of the person certifying its customs "
                                     "declaration")
            problem = customs_problem(customs, sender.country)
            if problem:
                raise PermanentError(problem)
    return LabelRequest(reference=reference, to_address=order.address, parcel=parcel,
                        email=order.email, from_address=sender, customs=customs)


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
