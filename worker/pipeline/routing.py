"""Routing: a pure function from an order and the store's rules to a plan of shipments.

Every decision carries its reason; the pipeline records them on the order's timeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase

from worker.config import StoreConfig
from worker.domain import Line, Order, Route

NO_SELF_SHIP = "no self-ship route configured"  # no [labels] block for this store


@dataclass(frozen=True)
class PlannedLine:
    line: Line
    seller_sku: str = ""


@dataclass(frozen=True)
class PlannedShipment:
    route: Route
    lines: tuple[PlannedLine, ...]
    speed: str = ""
    parked_reason: str = ""  # non-empty: these lines wait for a person (shipment state attention)


@dataclass(frozen=True)
class Plan:
    shipments: tuple[PlannedShipment, ...]
    reasons: tuple[str, ...]


def eligible(order: Order, store: StoreConfig) -> tuple[bool, str]:
    """Whether the order ships now, and why (not)."""
    if order.cancelled:
        return False, "order is cancelled"
    if order.fulfilled:
        return False, "order is already fulfilled in the store"
    wanted = store.ship_statuses
    if order.financial_status.upper() not in wanted:
        return False, f"status {order.financial_status} is not in ship_when {wanted}"
    if not any(line.quantity > 0 for line in order.lines):
        return False, "order has no lines left to ship"
    return True, f"status {order.financial_status} ships"


def speed_for(order: Order, store: StoreConfig) -> tuple[str, str]:
    speeds = store.routing.speeds
    if order.shipping_title in speeds:
        speed = speeds[order.shipping_title]
        return speed, f"shipping method {order.shipping_title!r} maps to MCF speed {speed}"
    return "Standard", f"shipping method {order.shipping_title!r} is not in speeds: Standard"


MCF_FEATURES = ("BLOCK_AMZL", "BLANK_BOX")


def _tagged(order: Order, tags: list[str]) -> str:
    wanted = {t.strip().lower() for t in tags}
    return next((t for t in order.tags if t.strip().lower() in wanted), "")


def features_for(order: Order, store: StoreConfig) -> tuple[str, ...]:
    """MCF featureConstraints: the store's, plus BLOCK_AMZL / BLANK_BOX given as order tags."""
    tagged = [f for f in MCF_FEATURES if _tagged(order, [f])]
    return tuple(dict.fromkeys([*store.routing.features, *tagged]))


def excluded_by(sku: str, store: StoreConfig) -> str:
    """The ``exclude_skus`` entry that matches ``sku`` (an exact SKU or a glob such as
    ``GIFT-*``, matched case-sensitively as SKUs are), or ""."""
    if not sku:
        return ""
    return next((p for p in (x.strip() for x in store.routing.exclude_skus) if fnmatchcase(sku, p)), "")


def _whole_order_hold(order: Order, store: StoreConfig) -> str:
    rules = store.routing
    if tag := _tagged(order, rules.hold_tags):
        return f"order tag {tag!r} holds the order for a person"
    units = sum(line.quantity for line in order.lines if line.quantity > 0)
    if rules.max_order_quantity is not None and units > rules.max_order_quantity:
        return f"{units} units is above max_order_quantity {rules.max_order_quantity}: review the order"
    if rules.max_order_value is not None and order.total > rules.max_order_value:
        return (f"order total {order.total} {order.currency} is above max_order_value "
                f"{rules.max_order_value}: review the order")
    return ""


def plan(order: Order, store: StoreConfig, *, unavailable: frozenset[str] = frozenset(),
         label_is_cheaper: str = "") -> Plan:
    """Split the order's lines into shipments, each rule's decision recorded as a reason.

    ``unavailable``: seller SKUs Amazon said it cannot fulfil (from a preview); those lines take
    the ``fallback`` route. ``label_is_cheaper``: the cost comparison's verdict (``prefer =
    "cheapest"``) that sends the FBA lines to a label instead; "" keeps them with Amazon."""
    rules = store.routing
    reasons: list[str] = []
    live = [line for line in order.lines if line.quantity > 0]
    if held := _whole_order_hold(order, store):
        return Plan((PlannedShipment(Route.HOLD, tuple(PlannedLine(ln) for ln in live),
                                     parked_reason=held),), (held,))
    # Why mapped lines may still not go to FBA (order-wide rules), or "" when they may.
    country = order.address.country if order.address else ""
    not_fba, not_fba_route = "", "self_ship"
    if tag := _tagged(order, rules.no_fba_tags):
        not_fba = f"order tag {tag!r} says no FBA"
    elif country.upper() not in {c.upper() for c in rules.fba_countries}:
        not_fba = f"destination country {country or '?'} is not in fba_countries {rules.fba_countries}"
        not_fba_route = rules.outside_fba_countries
    elif rules.unmapped_method == "self_ship" and order.shipping_title not in rules.speeds:
        not_fba = f"shipping method {order.shipping_title!r} is not in speeds (unmapped_method = self_ship)"
    elif label_is_cheaper and store.labels is not None:
        not_fba = label_is_cheaper

    fba: list[PlannedLine] = []
    self_ship: list[PlannedLine] = []
    parked: dict[str, list[PlannedLine]] = {}

    def place(line: Line, why: str, route: str) -> None:
        name = f"line {line.sku or '(no sku)'} x{line.quantity}"
        if route == "hold":
            reason = f"{why}; the rule says hold"
        elif route == "fba":
            reason = f"{why}; routing default fba needs a mapped seller SKU"
        elif store.labels is None:
            reason = NO_SELF_SHIP
        else:
            self_ship.append(PlannedLine(line))
            reasons.append(f"{name}: {why} -> self-ship (label from [labels.{store.labels}])")
            return
        parked.setdefault(reason, []).append(PlannedLine(line))
        reasons.append(f"{name}: {why} -> parked ({reason})")

    for line in live:
        seller_sku = rules.sku_map.get(line.sku)
        if pattern := excluded_by(line.sku, store):
            why = f"SKU {line.sku} matches exclude_skus {pattern!r} (never auto-fulfilled)"
            parked.setdefault(why, []).append(PlannedLine(line))
            reasons.append(f"line {line.sku} x{line.quantity}: {why} -> parked")
        elif seller_sku and not_fba:
            place(line, not_fba, not_fba_route)
        elif seller_sku and seller_sku in unavailable:
            place(line, f"Amazon cannot fulfil {seller_sku} now (preview)", rules.fallback)
        elif seller_sku:
            fba.append(PlannedLine(line, seller_sku))
            reasons.append(f"line {line.sku} x{line.quantity}: sku_map -> FBA as {seller_sku}")
        else:
            place(line, "line has no SKU" if not line.sku else f"SKU {line.sku} is not in sku_map",
                  rules.default)

    if fba and (parked or self_ship) and not rules.split:
        return _mixed(store, fba, self_ship, parked, reasons)
    shipments: list[PlannedShipment] = []
    if fba:
        speed, why = speed_for(order, store)
        reasons.append(why)
        shipments.append(PlannedShipment(Route.FBA, tuple(fba), speed))
    if self_ship:
        shipments.append(PlannedShipment(Route.SELF_SHIP, tuple(self_ship)))
    for reason, lines in parked.items():
        shipments.append(PlannedShipment(Route.SELF_SHIP, tuple(lines), parked_reason=reason))
    return Plan(tuple(shipments), tuple(reasons))


def _mixed(store: StoreConfig, fba: list[PlannedLine], self_ship: list[PlannedLine],
           parked: dict[str, list[PlannedLine]], reasons: list[str]) -> Plan:
    """split = false and the lines disagree: the whole order goes one way (``mixed``).

    ``self_ship`` and ``fba_if_all_available`` both send a mixed order with one label (an order
    whose every line can go to FBA is not mixed, so it goes to FBA); ``hold`` parks it. A line
    that must wait for a person (an exclusion, a ``hold`` rule) holds the whole order: with
    split = false the order ships as one or not at all."""
    rules = store.routing
    leftovers = [x for group in parked.values() for x in group]
    everything = tuple(PlannedLine(pl.line) for pl in [*fba, *self_ship, *leftovers])
    if rules.mixed == "hold":
        why = "mixed order and split = false"
    elif store.labels is None:
        why = f"split = false, mixed = {rules.mixed}, but no labels are configured"
    elif any(excluded_by(pl.line.sku, store) for pl in everything):
        why = "split = false and a line is excluded"
    elif parked:
        why = f"split = false and a line must wait ({next(iter(parked))})"
    else:
        reasons.append(f"split = false, mixed = {rules.mixed}: not every line can go to FBA, so the "
                       "whole order ships with one label")
        return Plan((PlannedShipment(Route.SELF_SHIP, everything),), tuple(reasons))
    reasons.append(f"{why}: the whole order is parked")
    return Plan((PlannedShipment(Route.HOLD, everything, parked_reason=why),), tuple(reasons))
