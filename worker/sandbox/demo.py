"""`autofulfill demo`: the real service against the local sandboxes, with a handful of orders
that show the guarantees and the rules: webhooks, a duplicate delivery, a lost webhook found by
the poller, a split order (FBA + a label), a cost-aware choice (prefer = cheapest), a hold
window with an order cancelled during it, an unroutable SKU parked with an alert, a Shopify and
a WooCommerce store; and the stock sync: both stores show what Amazon can ship, and a SKU that
sells out at Amazon goes to 0 in both before the next customer can order it.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from worker.ledger.models import InventoryPassRow, OrderRow, ShipmentRow
from worker.sandbox.stack import SKU_MAP, Stack, wait_for
from worker.service.views import table, timeline

Stories = dict[tuple[str, str], str]  # (store, platform order id) -> what the order shows


def _sample_orders(stack: Stack, count: int, out: TextIO) -> tuple[Stories, int]:
    """Create sample orders and deliver their webhooks as the platforms would. Returns the
    stories and how many shipments should end with their tracking in the store."""
    stories: Stories = {}
    skus = list(SKU_MAP)
    speeds = ["Standard", "Express", "Overnight"]
    for i in range(max(1, count - 3)):
        order = stack.shop.add_order([(skus[i % 3], 1)], shipping_title=speeds[i % 3])
        stack.shop.deliver(stack.webhook_url, "orders/paid", order["id"])
        stories["demo", str(order["id"])] = "webhook"
    mixed = stack.shop.add_order([("MUG-BLK", 1), ("POSTER-A2", 1)])
    stack.shop.deliver(stack.webhook_url, "orders/paid", mixed["id"])
    stories["demo", str(mixed["id"])] = "split: FBA + a self-ship label"
    label_only = stack.shop.add_order([("POSTER-A2", 2), ("NOTEBOOK", 1)], shipping_title="Express")
    stack.shop.deliver(stack.webhook_url, "orders/paid", label_only["id"])
    stories["demo", str(label_only["id"])] = "self-ship only: cheapest label"
    bulk = stack.shop.add_order([("MUG-BLK", 4)])
    stack.shop.deliver(stack.webhook_url, "orders/paid", bulk["id"])
    stories["demo", str(bulk["id"])] = COST_AWARE
    thrice = stack.shop.add_order([("CAP-NAVY", 1)], shipping_title="Express")
    for _ in range(3):
        stack.shop.deliver(stack.webhook_url, "orders/paid", thrice["id"], event_id="demo-duplicate-event")
    stories["demo", str(thrice["id"])] = "same webhook delivered 3 times"
    lost = stack.shop.add_order([("TEE-RED-M", 1)])
    stories["demo", str(lost["id"])] = "webhook lost: found by the poller"
    woo = stack.woo.add_order([("MUG-BLK", 1), ("TEE-RED-M", 1)], customer_name="Zoë Ångström")
    for _ in range(3):  # WooCommerce: one order.created, delivered three times
        stack.woo.deliver(stack.woo_webhook_url, "order.created", woo["id"])
    stories["bolt", str(woo["id"])] = "WooCommerce webhook x3, held 15 s"
    woo_lost = stack.woo.add_order([("CAP-NAVY", 1)], shipping_title="Express")
    stories["bolt", str(woo_lost["id"])] = "WooCommerce, found by the poller"
    woo_parked = stack.woo.add_order([("GIFT-CARD", 1)])
    stack.woo.deliver(stack.woo_webhook_url, "order.created", woo_parked["id"])
    stories["bolt", str(woo_parked["id"])] = "no route for the SKU: parked, alert sent"
    woo_cancelled = stack.woo.add_order([("TEE-RED-M", 1)])
    stack.woo.deliver(stack.woo_webhook_url, "order.created", woo_cancelled["id"])
    stack.woo.set_status(woo_cancelled["id"], "cancelled")  # the customer changed their mind
    stack.woo.deliver(stack.woo_webhook_url, "order.updated", woo_cancelled["id"])
    stories["bolt", str(woo_cancelled["id"])] = HELD_CANCELLED
    out.write(f"demo: {len(stories)} orders placed in the Shopify and WooCommerce sandboxes\n")
    # Every order ships once, the split one twice; the parked and the cancelled ones not at all.
    return stories, len(stories) + 1 - 2


COST_AWARE = "prefer = cheapest: one label beats 4 FBA fees"
HELD_CANCELLED = "held, then cancelled in the store: nothing sent"
# The demo store compares FBA fees with a label (+ $5 packing); the WooCommerce store holds
# orders 15 s so a customer can still cancel.
DEMO_RULES = {"demo": "self_ship_cost_per_order = 5.00\n"
                      'inventory = { enabled = true, location = "Amazon FBA", interval_s = 10, buffer = 1 }',
              "demo_routing": 'prefer = "cheapest"',
              "bolt": "hold_minutes = 0.25\ninventory = { enabled = true, interval_s = 10 }"}
# What Amazon holds of the mapped SKUs when the demo starts; CAP-NAVY is about to sell out.
FBA_STOCK = {"AMZ-TEE-RED-M": 40, "AMZ-MUG-BLK": 25, "AMZ-CAP-NAVY": 6}
SELLS_OUT = "CAP-NAVY"


def run_demo(workdir: str | None, count: int = 5, out: TextIO = sys.stdout) -> int:
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="autofulfill-demo-"))
    stack = Stack(base.resolve(), poll_interval_s=8, output=out, extra=DEMO_RULES)
    out.write(f"demo: files in {base}\n")
    try:
        stack.start_sandboxes()
        stock_the_shelves(stack)
        out.write(f"demo: Shopify sandbox {stack.shop.url}, Amazon sandbox {stack.amazon.url}\n")
        stack.start("run")
        out.write(f"demo: service running, webhooks at {stack.webhook_url}\n")
        stories, expected = _sample_orders(stack, count, out)
        ok = _wait_for_tracking(stack, expected, out)
        wait_for(lambda: bool(stack.alerts.received), 30, "the parked order's alert")
        stock_story, stock_ok = _sell_out(stack, out)
        ok = ok and stock_ok
        report = _report(stack, stories) + stock_story
    except Exception as exc:
        out.write(f"demo: failed: {type(exc).__name__}: {exc}\n")
        return 1
    finally:
        stack.stop()
    cli = os.path.relpath(sys.argv[0]) if sys.argv[0].endswith("autofulfill") else "autofulfill"
    out.write(report)
    out.write(f"\ndemo: {'OK' if ok else 'INCOMPLETE'} — the files stay in {base}; try\n"
              f"  {cli} orders --config {stack.config_path}\n"
              f"  {cli} show demo 1001 --config {stack.config_path}\n")
    return 0 if ok else 1


def _wait_for_tracking(stack: Stack, expected: int, out: TextIO, timeout_s: float = 120) -> bool:
    def pushed() -> int:
        return sum(1 for _, s in stack.shipments() if s.state == "pushed")

    last = -1
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and (n := pushed()) < expected:
        if n != last:
            out.write(f"demo: progress {n}/{expected} shipments tracked in their store\n")
            last = n
        time.sleep(1)
    return pushed() == expected


def _report(stack: Stack, stories: Stories) -> str:
    """The final table, the call counts and one order's timeline, read from the ledger."""
    rows: list[tuple[tuple[int, int], tuple[str, ...]]] = []  # ((order id, n), columns)
    shipments = stack.shipments()
    for order in stack.orders():  # an order without shipments (cancelled during its hold) too
        if not any(o.id == order.id for o, _ in shipments):
            rows.append(((order.id, 0), (order.store, order.number, stories.get(
                (order.store, order.platform_order_id), ""), "-", order.status, "nothing sent", "-",
                order.reason or "no", "-")))
    for order, s in shipments:
        tracking = ", ".join(f"{t['carrier']} {t['number']}" for t in s.tracking) or "-"
        label = f"label {s.label.get('carrier')}:{s.label.get('service')} ${s.label.get('cost')}"
        sent_as = s.external_id if s.route == "fba" else (label if s.label.get("cost") else "-")
        rows.append(((order.id, s.n), (order.store, order.number, stories.get(
            (order.store, order.platform_order_id), ""), s.route, s.state, sent_as, tracking,
            "yes" if s.state == "pushed" else (s.reason or "no"), _in_store(stack, order, s))))
    text = "\n" + table(("store", "order", "story", "route", "state", "sent as", "tracking", "pushed",
                         "in the store"), [columns for _, columns in sorted(rows)]) + "\n"
    text += (f"\nAmazon create calls: {stack.amazon.create_calls}; labels bought: {stack.easypost.bought}; "
             f"Shopify fulfillmentCreate calls: {stack.shop.calls.count('CreateFulfillment')}; "
             f"WooCommerce orders completed: {_woo_completed(stack)}\n")
    text += "".join(f"alert received: {a}\n" for a in stack.alerts.received)
    files = sorted(p.name for p in (stack.workdir / "var" / "labels").rglob("*.pdf"))
    text += f"label files in {stack.workdir / 'var' / 'labels'}: {', '.join(files) or 'none'}\n"
    for story in ("split", COST_AWARE, HELD_CANCELLED):
        found = next((o for o in stack.orders()
                      if stories.get((o.store, o.platform_order_id), "").startswith(story)), None)
        if found is None or stack.app is None:
            continue
        with stack.app.sessions() as session:
            row = session.get(OrderRow, found.id)
            assert row is not None
            text += (f"\n{stories[row.store, row.platform_order_id]} — the timeline of order {row.number} "
                     f"(`autofulfill show {row.store} {row.number}`):\n")
            text += timeline(session, row) + "\n"
    return text


def _in_store(stack: Stack, order: OrderRow, shipment: ShipmentRow) -> str:
    """Where the shipment's tracking shows in the store: Shopify fulfillments or Woo notes/items."""
    numbers = {t["number"] for t in shipment.tracking}
    if not numbers:
        return "-"
    if order.store == "demo":
        found = sum(1 for f in stack.shop.fulfillments(order.platform_order_id)
                    if numbers & set(f["tracking_numbers"]))
        return f"{found} fulfillment(s)"
    notes = sum(1 for n in stack.woo.notes(order.platform_order_id)
                if any(num in n["note"] for num in numbers))
    status = stack.woo.order(order.platform_order_id)["status"]
    return f"{notes} note(s), {status}"


def _woo_completed(stack: Stack) -> int:
    return sum(1 for o in stack.orders() if o.store == "bolt"
               and stack.woo.order(o.platform_order_id)["status"] == "completed")


def stock_the_shelves(stack: Stack) -> None:
    """Amazon's units of the mapped SKUs; the Shopify store's "Amazon FBA" location (empty until
    the first sync) beside its shop floor; the WooCommerce products (CAP-NAVY without stock
    management, which the first sync turns on)."""
    for seller_sku, units in FBA_STOCK.items():
        stack.amazon.set_stock(seller_sku, units)
    stack.shop.add_location("Amazon FBA")
    stack.shop.add_location("Shop floor")
    for sku in SKU_MAP:
        stack.shop.add_inventory_item(sku, {"Amazon FBA": 0, "Shop floor": 3})
    stack.woo.add_product("TEE-RED-M", 0)
    stack.woo.add_variable_product("MUG", {"MUG-BLK": 0})
    stack.woo.add_product("CAP-NAVY")


def _shelves(stack: Stack) -> list[tuple[str, str, str, str]]:
    return [(sku, str(stack.amazon.fulfillable(seller)), str(stack.shop.available(sku, "Amazon FBA")),
             str(stack.woo.stock(sku))) for sku, seller in SKU_MAP.items()]


def _sell_out(stack: Stack, out: TextIO, timeout_s: float = 60) -> tuple[str, bool]:
    """Wait for a sync pass in each store, then sell the last units of one SKU on amazon.com and
    wait until both stores show 0 for it."""
    assert stack.app is not None
    app = stack.app

    def synced(since: int) -> bool:
        with app.sessions() as session:
            stores = {p.store for p in session.query(InventoryPassRow).filter(
                InventoryPassRow.id > since, InventoryPassRow.status == "ok")}
        return {"demo", "bolt"} <= stores

    wait_for(lambda: synced(0), timeout_s, "a stock sync pass in both stores")
    before = _shelves(stack)
    seller = SKU_MAP[SELLS_OUT]
    out.write(f"demo: Amazon sells the last {stack.amazon.fulfillable(seller)} of {seller} on amazon.com\n")
    stack.amazon.set_stock(seller, 0)
    started = time.monotonic()
    try:
        wait_for(lambda: stack.shop.available(SELLS_OUT, "Amazon FBA") == 0 == stack.woo.stock(SELLS_OUT),
                 timeout_s, f"{SELLS_OUT} at 0 in both stores")
        took, ok = f"{time.monotonic() - started:.0f} s", True
        wait_for(lambda: sum(f"{SELLS_OUT} went to 0" in a for a in stack.alerts.received) == 2, 20,
                 f"the alerts that {SELLS_OUT} went to 0")
    except TimeoutError:
        took, ok = "not within a minute", False
    after = _shelves(stack)
    headers = ("sku", "Amazon fulfillable", "demo: Shopify 'Amazon FBA' available", "bolt: WooCommerce stock")
    text = ("\nFBA stock -> store stock (a pass every 10 s per store; each store may sell Amazon's "
            "fulfillable units minus the units sold and not yet sent, minus its buffer: demo 1, bolt 0):\n"
            + table(headers, before)
            + f"\n\nAmazon sold out of {seller}: {took} later, the next customer finds {SELLS_OUT} sold out "
            "in both stores:\n" + table(headers, after) + "\n")
    return text, ok
