"""What `orders` and `show` print. Destinations appear as city, region and country only.

Everything printed is store or provider text at heart, so each cell and line is redacted (tokens,
contact fields) and its control characters escaped: an order name with a newline or an escape
sequence prints as ``\n`` or ``\x1b``, never as a forged line or a terminal command."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from worker.errors import redact
from worker.ledger.models import EventRow, OrderRow
from worker.logs import printable


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[_safe(c) for c in headers]] + [[_safe(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def destination(row: OrderRow) -> str:
    a = row.payload.get("address") or {}
    return ", ".join(p for p in (a.get("city"), a.get("region"), a.get("country")) if p) or "-"


def find_order(session: Session, store: str, ref: str) -> OrderRow | None:
    """By platform order id or by order number (with or without '#')."""
    ref = ref.lstrip("#")
    return session.scalar(select(OrderRow).where(
        OrderRow.store == store, or_(OrderRow.platform_order_id == ref, OrderRow.number == ref))
        .order_by(OrderRow.id).limit(1))


def orders_table(session: Session, store: str | None, status: str | None) -> str:
    query = select(OrderRow).order_by(OrderRow.id)
    if store:
        query = query.where(OrderRow.store == store)
    rows = []
    for o in session.scalars(query):
        states = {s.state for s in o.shipments}
        if status and status != o.status and status not in states:
            continue
        ships = "; ".join(f"{s.n}:{s.route}:{s.state}" for s in o.shipments) or "-"
        tracking = ", ".join(t["number"] for s in o.shipments for t in (s.tracking or [])) or "-"
        reason = o.reason or next((s.reason for s in o.shipments if s.reason), "")
        labels = "; ".join(f"{s.label['cost']} {s.label.get('currency', '')} {s.label['path']}"
                           for s in o.shipments if s.label.get("path")) or "-"
        rows.append((o.store, o.number, o.platform_order_id, o.status, ships, tracking, labels,
                     destination(o), reason[:60]))
    if not rows:
        return "no orders"
    return table(("store", "number", "order id", "status", "shipments", "tracking", "label", "to", "reason"),
                 rows)


def timeline(session: Session, row: OrderRow) -> str:
    out = [f"order {row.number} (id {row.platform_order_id}) in store {row.store}: {row.status}"
           + (f" — {row.reason}" if row.reason else ""),
           f"  to: {destination(row)}",
           "  lines: " + (", ".join(f"{sku or '(no sku)'} x{qty}" for sku, qty in _lines(row)) or "none")]
    for s in row.shipments:
        track = ", ".join(f"{t['carrier']} {t['number']}" for t in s.tracking or []) or "-"
        out.append(f"  shipment {s.n} {s.external_id}: {s.route} {s.state}"
                   f"{' — ' + s.reason if s.reason else ''}; tracking {track}"
                   f"{'; store fulfillment ' + s.store_fulfillment_id if s.store_fulfillment_id else ''}")
        if s.label.get("path"):
            out.append(f"    label {s.label.get('carrier')}:{s.label.get('service')} {s.label['cost']} "
                       f"{s.label.get('currency', '')} at {s.label['path']}"
                       + (f" (refund {s.label['refund']})" if s.label.get("refund") else ""))
    out.append("  timeline:")
    events = session.scalars(select(EventRow).where(EventRow.order_id == row.id).order_by(EventRow.id))
    for e in events:
        detail = "; ".join(f"{k}={_short(v)}" for k, v in e.detail.items())
        actor = f" [{e.actor}]" if e.actor else ""
        out.append(f"    {e.at:%Y-%m-%d %H:%M:%S} {e.kind}{actor} {detail}".rstrip())
    return "\n".join(_safe(line) for line in out)


def _safe(value: object) -> str:
    return printable(redact(str(value)))


def _lines(row: OrderRow) -> list[tuple[str, int]]:
    """What was routed; before routing (held, waiting, cancelled during the hold) what the store
    order holds."""
    if row.lines:
        return [(ln.sku, ln.quantity) for ln in row.lines]
    return [(str(ln.get("sku", "")), int(ln.get("quantity", 0))) for ln in row.payload.get("lines", ())]


def _short(value: object) -> str:
    if isinstance(value, list):
        return " | ".join(str(v) for v in value)
    return str(value)
