"""The sandbox's fulfillment operations: reading fulfillment orders and fulfillments, and
``fulfillmentCreate`` (the order operations are in ``sandbox_state.py``).

Paging works as Shopify's does: connections take ``first`` (at most 250) and ``after``, answer
``pageInfo { hasNextPage endCursor }`` and their cursors are opaque (here: the last node's id, so
a page stays right when nodes are added meanwhile). ``Order.fulfillments`` and
``Fulfillment.trackingInfo`` are plain lists cut at ``first``. Requested costs follow the
formulas in ``queries.py``; the actual cost counts what was returned.
"""

from __future__ import annotations

import time
from typing import Any

from connectors.shopify.sandbox_state import (
    CostFn,
    Handler,
    SandboxError,
    SandboxState,
    _cursor,
    _gid,
    _now,
    _rest_time,
    _uncursor,
)

MAX_PAGE = 250  # Shopify's largest ``first`` on a connection


def _page(items: list[dict[str, Any]], first: int, after: str | None,
          reverse: bool = False) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One page of ``items`` (oldest first, by ascending id) and its ``pageInfo``."""
    if not 0 <= first <= MAX_PAGE:
        raise SandboxError(f"The first argument must be between 0 and {MAX_PAGE} (got {first}).")
    ordered = sorted(items, key=lambda it: int(it["id"]), reverse=reverse)
    if after:
        mark = int(_uncursor(after)["id"])
        ordered = [it for it in ordered if (int(it["id"]) < mark if reverse else int(it["id"]) > mark)]
    page = ordered[:first]
    return page, {"hasNextPage": len(ordered) > first,
                  "endCursor": _cursor({"id": page[-1]["id"]}) if page else None}


def _visible_fos(state: SandboxState, oid: int) -> list[dict[str, Any]]:
    now = time.monotonic()
    return [fo for fo in state.fos[oid] if fo["visible_at"] <= now]


def _fo_lines(fo: dict[str, Any], first: int, after: str | None) -> dict[str, Any]:
    page, info = _page(fo["lines"], first, after)
    return {"pageInfo": info,
            "nodes": [{"id": _gid("FulfillmentOrderLineItem", fl["id"]), "remainingQuantity": fl["remaining"],
                       "lineItem": {"id": _gid("LineItem", fl["line"]["id"]), "sku": fl["line"]["sku"]}}
                      for fl in page]}


def _fo_page(state: SandboxState, oid: int, v: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """``order.fulfillmentOrders(first:, after:, reverse: true)``, each with a page of lines."""
    page, info = _page(_visible_fos(state, oid), int(v["fulfillmentOrders"]), v.get("after"), reverse=True)
    nodes = [{"id": _gid("FulfillmentOrder", fo["id"]), "status": fo["status"],
              "lineItems": _fo_lines(fo, int(v["foLines"]), None)} for fo in page]
    return {"pageInfo": info, "nodes": nodes}, 2 + sum(3 + 2 * len(n["lineItems"]["nodes"]) for n in nodes)


def _fulfillment_node(ful: dict[str, Any], tracking: int) -> dict[str, Any]:
    if tracking < 0:
        raise SandboxError(f"first must not be negative (got {tracking})")
    urls = ful["tracking_urls"]
    return {"id": _gid("Fulfillment", ful["id"]), "status": "SUCCESS",
            "trackingInfo": [{"number": n, "company": ful["tracking_company"],
                              "url": urls[i] if i < len(urls) else None}
                             for i, n in enumerate(ful["tracking_numbers"][:tracking])]}


def _find_fo(state: SandboxState, gid: Any) -> dict[str, Any] | None:
    fo_id = state._oid(gid, "FulfillmentOrder")
    now = time.monotonic()
    return next((fo for fos in state.fos.values() for fo in fos
                 if fo["id"] == fo_id and fo["visible_at"] <= now), None)


# --- handlers ----------------------------------------------------------------------------------

def _fulfillment_state(state: SandboxState, v: dict[str, Any]) -> tuple[dict[str, Any], float]:
    oid = state._oid(v.get("id"))
    if oid not in state.orders:
        return {"order": None}, 1
    fos, fos_cost = _fo_page(state, oid, v)
    listed = state.fuls[oid][:max(0, int(v["fulfillments"]))]  # a list cut at first, oldest first
    fuls = [_fulfillment_node(f, int(v["tracking"])) for f in listed]
    actual = 1 + fos_cost + sum(1 + len(f["trackingInfo"]) for f in fuls)
    return {"order": {"id": _gid("Order", oid), "fulfillmentOrders": fos, "fulfillments": fuls}}, actual


def _fulfillment_orders_page(state: SandboxState, v: dict[str, Any]) -> tuple[dict[str, Any], float]:
    oid = state._oid(v.get("id"))
    if oid not in state.orders:
        return {"order": None}, 1
    fos, fos_cost = _fo_page(state, oid, v)
    return {"order": {"id": _gid("Order", oid), "fulfillmentOrders": fos}}, 1 + fos_cost


def _fulfillment_order_lines(state: SandboxState, v: dict[str, Any]) -> tuple[dict[str, Any], float]:
    fo = _find_fo(state, v.get("id"))
    if fo is None:
        return {"fulfillmentOrder": None}, 1
    lines = _fo_lines(fo, int(v["lines"]), v.get("after"))
    return {"fulfillmentOrder": {"id": _gid("FulfillmentOrder", fo["id"]), "lineItems": lines}}, (
        3 + 2 * len(lines["nodes"]))


def _fulfillment_order_fulfillments(state: SandboxState,
                                    v: dict[str, Any]) -> tuple[dict[str, Any], float]:
    fo = _find_fo(state, v.get("id"))
    if fo is None:
        return {"fulfillmentOrder": None}, 1
    mine = [f for fuls in state.fuls.values() for f in fuls if f["id"] in fo["fulfillments"]]
    page, info = _page(mine, int(v["first"]), v.get("after"))
    nodes = [_fulfillment_node(f, int(v["tracking"])) for f in page]
    return {"fulfillmentOrder": {"id": _gid("FulfillmentOrder", fo["id"]),
                                 "fulfillments": {"pageInfo": info, "nodes": nodes}}}, (
        3 + sum(1 + len(n["trackingInfo"]) for n in nodes))


def _fulfillment_tracking(state: SandboxState, v: dict[str, Any]) -> tuple[dict[str, Any], float]:
    ful_id = state._oid(v.get("id"), "Fulfillment")
    ful = next((f for fuls in state.fuls.values() for f in fuls if f["id"] == ful_id), None)
    if ful is None:
        return {"fulfillment": None}, 1
    node = _fulfillment_node(ful, int(v["tracking"]))
    return {"fulfillment": node}, 1 + len(node["trackingInfo"])


def _user_error(message: str) -> tuple[dict[str, Any], float]:
    return {"fulfillmentCreate": {"fulfillment": None,
                                  "userErrors": [{"field": ["fulfillment"], "message": message}]}}, 10


def _create_fulfillment(state: SandboxState, v: dict[str, Any]) -> tuple[dict[str, Any], float]:
    inp = v.get("fulfillment") or {}
    groups = inp.get("lineItemsByFulfillmentOrder") or []
    if not groups:
        return _user_error("lineItemsByFulfillmentOrder can't be blank")
    by_id = {fo["id"]: (oid, fo) for oid, fos in state.fos.items() for fo in fos}
    plan: list[tuple[dict[str, Any], dict[str, Any], int]] = []  # (fo, fo line, quantity)
    orders = set()
    for group in groups:
        fo_id = state._oid(group.get("fulfillmentOrderId"), "FulfillmentOrder")
        if fo_id not in by_id:
            return _user_error(f"Fulfillment order {fo_id} does not exist.")
        oid, fo = by_id[fo_id]
        orders.add(oid)
        if fo["status"] not in ("OPEN", "IN_PROGRESS"):
            return _user_error(f"Fulfillment order {fo_id} has an unfulfillable status= "
                               f"{fo['status'].lower()}.")
        wanted = group.get("fulfillmentOrderLineItems")
        if wanted is None:
            plan += [(fo, fl, fl["remaining"]) for fl in fo["lines"] if fl["remaining"] > 0]
            continue
        lines = {fl["id"]: fl for fl in fo["lines"]}
        for item in wanted:
            fl = lines.get(state._oid(item.get("id"), "FulfillmentOrderLineItem"))
            qty = int(item.get("quantity") or 0)
            if fl is None:
                return _user_error("Fulfillment order line item does not belong to the fulfillment order.")
            if qty <= 0 or qty > fl["remaining"]:
                return _user_error("Invalid fulfillment order line item quantity requested.")
            plan.append((fo, fl, qty))
    if len(orders) != 1:
        return _user_error("All fulfillment orders must belong to the same order.")
    track = inp.get("trackingInfo") or {}
    numbers = list(track.get("numbers") or ([track["number"]] if track.get("number") else []))
    urls = list(track.get("urls") or ([track["url"]] if track.get("url") else []))
    for _fo, fl, qty in plan:
        fl["remaining"] -= qty
    touched = list({id(fo): fo for fo, _, _ in plan}.values())
    oid = orders.pop()
    ful_id = state._id()
    for fo in touched:
        fo["status"] = "CLOSED" if all(fl["remaining"] == 0 for fl in fo["lines"]) else "IN_PROGRESS"
        fo["fulfillments"].append(ful_id)
    ful: dict[str, Any] = {
           "id": ful_id, "tracking_company": track.get("company"), "tracking_numbers": numbers,
           "tracking_urls": urls, "notify_customer": bool(inp.get("notifyCustomer", False)),
           "message": v.get("message"), "created_at": _rest_time(_now()),
           "line_items": [{"line_item_id": str(fl["line"]["id"]), "sku": fl["line"]["sku"], "quantity": q}
                          for _, fl, q in plan]}
    state.fuls[oid].append(ful)
    state.orders[oid]["updated_at"] = _now()
    info = [{"number": n, "company": ful["tracking_company"], "url": urls[i] if i < len(urls) else None}
            for i, n in enumerate(numbers[:3])]
    return {"fulfillmentCreate": {"fulfillment": {"id": _gid("Fulfillment", ful_id), "status": "SUCCESS",
                                                  "trackingInfo": info},
                                  "userErrors": []}}, 10


def _int(v: dict[str, Any], key: str) -> int:
    return int(v.get(key) or 0)


HANDLERS: dict[str, tuple[CostFn, Handler]] = {
    "FulfillmentState": (lambda v: 1 + 2 + _int(v, "fulfillmentOrders") * (3 + 2 * _int(v, "foLines"))
                         + _int(v, "fulfillments") * (1 + _int(v, "tracking")), _fulfillment_state),
    "FulfillmentOrdersPage": (lambda v: 1 + 2 + _int(v, "fulfillmentOrders") * (3 + 2 * _int(v, "foLines")),
                              _fulfillment_orders_page),
    "FulfillmentOrderLines": (lambda v: 1 + 2 + 2 * _int(v, "lines"), _fulfillment_order_lines),
    "FulfillmentOrderFulfillments": (lambda v: 1 + 2 + _int(v, "first") * (1 + _int(v, "tracking")),
                                     _fulfillment_order_fulfillments),
    "FulfillmentTracking": (lambda v: 1 + _int(v, "tracking"), _fulfillment_tracking),
    "CreateFulfillment": (lambda v: 10, _create_fulfillment),
}
