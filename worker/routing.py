"""Routing: a pure function from an order and the store's rules to a plan of shipments.

Every decision carries its reason; the pipeline records them on the order's timeline.
"""

from __future__ import annotations

from dataclasses import dataclass

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


def plan(order: Order, store: StoreConfig) -> Plan:
    """Split the order's lines into shipments: FBA for mapped SKUs, the default route for the rest."""
    rules = store.routing
    reasons: list[str] = []
    fba: list[PlannedLine] = []
    self_ship: list[PlannedLine] = []
    parked: dict[str, list[PlannedLine]] = {}
    country = order.address.country if order.address else ""
    fba_ok_country = country.upper() in {c.upper() for c in rules.fba_countries}

    for line in order.lines:
        if line.quantity <= 0:
            continue
        seller_sku = rules.sku_map.get(line.sku)
        if seller_sku and fba_ok_country:
            fba.append(PlannedLine(line, seller_sku))
            reasons.append(f"line {line.sku} x{line.quantity}: sku_map -> FBA as {seller_sku}")
            continue
        if seller_sku:
            why = f"destination country {country or '?'} is not in fba_countries {rules.fba_countries}"
        elif not line.sku:
            why = "line has no SKU"
        else:
            why = f"SKU {line.sku} is not in sku_map"
        route = rules.default
        if route == "hold":
            reason = f"{why}; routing default is hold"
        elif route == "fba":
            reason = f"{why}; routing default fba needs a mapped seller SKU"
        elif store.labels is None:
            reason = NO_SELF_SHIP
        else:
            self_ship.append(PlannedLine(line))
            reasons.append(f"line {line.sku or '(no sku)'} x{line.quantity}: {why} -> self-ship "
                           f"(label from [labels.{store.labels}])")
            continue
        parked.setdefault(reason, []).append(PlannedLine(line))
        reasons.append(f"line {line.sku or '(no sku)'} x{line.quantity}: {why} -> parked ({reason})")

    shipments: list[PlannedShipment] = []
    if fba and (parked or self_ship) and not rules.split:
        reasons.append("split = false and some lines cannot go to FBA: the whole order is parked")
        everything = tuple(fba) + tuple(self_ship) + tuple(pl for group in parked.values() for pl in group)
        return Plan((PlannedShipment(Route.HOLD, everything,
                                     parked_reason="mixed order and split = false"),), tuple(reasons))
    if fba:
        speed, why = speed_for(order, store)
        reasons.append(why)
        shipments.append(PlannedShipment(Route.FBA, tuple(fba), speed))
    if self_ship:
        shipments.append(PlannedShipment(Route.SELF_SHIP, tuple(self_ship)))
    for reason, lines in parked.items():
        shipments.append(PlannedShipment(Route.SELF_SHIP, tuple(lines), parked_reason=reason))
    return Plan(tuple(shipments), tuple(reasons))
