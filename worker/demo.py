"""`autofulfill demo`: the real service against the local sandboxes, with a handful of orders
that show the guarantees: webhooks, a duplicate delivery, a lost webhook found by the poller, a
mixed order whose unmapped line is parked, a Shopify and a WooCommerce store.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from worker.ledger import OrderRow, ShipmentRow
from worker.stack import SKU_MAP, Stack, wait_for
from worker.views import table, timeline

Stories = dict[tuple[str, str], str]  # (store, platform order id) -> what the order shows


def _sample_orders(stack: Stack, count: int, out: TextIO) -> Stories:
    """Create sample orders and deliver their webhooks as the platforms would."""
    stories: Stories = {}
    skus = list(SKU_MAP)
    speeds = ["Standard", "Express", "Overnight"]
    for i in range(max(1, count - 3)):
        order = stack.shop.add_order([(skus[i % 3], 1 + i % 2)], shipping_title=speeds[i % 3])
        stack.shop.deliver(stack.webhook_url, "orders/paid", order["id"])
        stories["demo", str(order["id"])] = "webhook"
    mixed = stack.shop.add_order([("MUG-BLK", 1), ("POSTER-A2", 1)])
    stack.shop.deliver(stack.webhook_url, "orders/paid", mixed["id"])
    stories["demo", str(mixed["id"])] = "mixed: FBA + a self-ship label"
    label_only = stack.shop.add_order([("POSTER-A2", 2), ("NOTEBOOK", 1)], shipping_title="Express")
    stack.shop.deliver(stack.webhook_url, "orders/paid", label_only["id"])
    stories["demo", str(label_only["id"])] = "self-ship only: cheapest label"
    thrice = stack.shop.add_order([("CAP-NAVY", 2)], shipping_title="Express")
    for _ in range(3):
        stack.shop.deliver(stack.webhook_url, "orders/paid", thrice["id"], event_id="demo-duplicate-event")
    stories["demo", str(thrice["id"])] = "same webhook delivered 3 times"
    lost = stack.shop.add_order([("TEE-RED-M", 1)])
    stories["demo", str(lost["id"])] = "webhook lost: found by the poller"
    woo = stack.woo.add_order([("MUG-BLK", 1), ("TEE-RED-M", 1)], customer_name="Zoë Ångström")
    for _ in range(3):  # WooCommerce: one order.created, delivered three times
        stack.woo.deliver(stack.woo_webhook_url, "order.created", woo["id"])
    stories["bolt", str(woo["id"])] = "WooCommerce webhook x3"
    woo_lost = stack.woo.add_order([("CAP-NAVY", 1)], shipping_title="Express")
    stories["bolt", str(woo_lost["id"])] = "WooCommerce, found by the poller"
    woo_parked = stack.woo.add_order([("GIFT-CARD", 1)])
    stack.woo.deliver(stack.woo_webhook_url, "order.created", woo_parked["id"])
    stories["bolt", str(woo_parked["id"])] = "no route for the SKU: parked, alert sent"
    out.write(f"demo: {len(stories)} orders placed in the Shopify and WooCommerce sandboxes\n")
    return stories


def run_demo(workdir: str | None, count: int = 5, out: TextIO = sys.stdout) -> int:
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="autofulfill-demo-"))
    stack = Stack(base.resolve(), poll_interval_s=8, output=out)
    out.write(f"demo: files in {base}\n")
    try:
        stack.start_sandboxes()
        out.write(f"demo: Shopify sandbox {stack.shop.url}, Amazon sandbox {stack.amazon.url}\n")
        stack.start("run")
        out.write(f"demo: service running, webhooks at {stack.webhook_url}\n")
        stories = _sample_orders(stack, count, out)
        # The mixed order ships twice; the parked one not at all.
        ok = _wait_for_tracking(stack, len(stories), out)
        wait_for(lambda: bool(stack.alerts.received), 30, "the parked order's alert")
        report = _report(stack, stories)
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
    rows = []
    for order, s in stack.shipments():
        tracking = ", ".join(f"{t['carrier']} {t['number']}" for t in s.tracking) or "-"
        in_store = _in_store(stack, order, s)
        label = f"label {s.label.get('carrier')}:{s.label.get('service')} ${s.label.get('cost')}"
        sent_as = s.external_id if s.route == "fba" else (label if s.label.get("cost") else "-")
        rows.append((order.store, order.number, stories.get((order.store, order.platform_order_id), ""),
                     s.route, s.state, sent_as, tracking,
                     "yes" if s.state == "pushed" else (s.reason or "no"), in_store))
    text = "\n" + table(("store", "order", "story", "route", "state", "sent as", "tracking", "pushed",
                         "in the store"), rows) + "\n"
    text += (f"\nAmazon create calls: {stack.amazon.create_calls}; labels bought: {stack.easypost.bought}; "
             f"Shopify fulfillmentCreate calls: {stack.shop.calls.count('CreateFulfillment')}; "
             f"WooCommerce orders completed: {_woo_completed(stack)}\n")
    text += "".join(f"alert received: {a}\n" for a in stack.alerts.received)
    files = sorted(p.name for p in (stack.workdir / "var" / "labels").rglob("*.pdf"))
    text += f"label files in {stack.workdir / 'var' / 'labels'}: {', '.join(files) or 'none'}\n"
    mixed = next((o for o in stack.orders()
                  if stories.get((o.store, o.platform_order_id), "").startswith("mixed")), None)
    if mixed is not None and stack.app is not None:
        with stack.app.sessions() as session:
            row = session.get(OrderRow, mixed.id)
            assert row is not None
            text += f"\nThe timeline of order {row.number} (`autofulfill show demo {row.number}`):\n"
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
