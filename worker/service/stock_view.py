"""What `autofulfill inventory` prints: per SKU, Amazon's units, the units not yet sent, the
buffer, the store's number and what a pass writes, and when it was last written."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from worker.app import App
from worker.config import AlertsConfig
from worker.errors import ConnectorError
from worker.ledger.models import InventoryPassRow, InventorySkuRow
from worker.pipeline.inventory import compute
from worker.pipeline.inventory_formula import SkuLine
from worker.pipeline.inventory_ledger import failing_since
from worker.service.views import table


def _ago(now: datetime, when: datetime | None) -> str:
    if when is None:
        return "never"
    seconds = int((now - when).total_seconds())
    return (f"{seconds}s ago" if seconds < 120 else f"{seconds // 60}m ago" if seconds < 7200
            else f"{seconds // 3600}h ago")


HEADERS = ("sku", "seller sku", "fulfillable", "reserved", "inbound", "not sent", "buffer", "store now",
           "pass writes", "last written")


def inventory_report(app: App, store: str, only: Collection[str] | None, *, apply: bool) -> tuple[str, bool]:
    """The table for one store, read live (``apply``: after running one pass now); and whether all
    went well (False when Amazon or the store could not be read, or the pass failed)."""
    cfg = app.config.store(store)
    inv = cfg.inventory
    where = f", location {inv.location!r}" if inv.location else ""
    buffers = f", {len(inv.buffers)} per-SKU" if inv.buffers else ""
    out = [f"store {store} ({cfg.platform}{where}; buffer {inv.buffer} units or {inv.buffer_percent}%"
           f"{buffers}{'; dry run: nothing is written' if inv.dry_run else ''})"]
    dry = inv.dry_run or not apply
    if apply:
        from worker.service.tasks import inventory_pass

        result = inventory_pass(app, store, only=only, actor="cli:inventory")
        lines, ok = result.lines, result.status != "failed"
        out.append(f"  pass: {result.summary()}")
        out += [f"  note: {n}" for n in result.notes]
    else:
        try:
            lines, ok = compute(app, store, only), True
        except (ConnectorError, LookupError) as exc:
            return "\n".join(out + [f"  cannot read: {type(exc).__name__}: {exc}"]), False
    with app.sessions() as session:
        rows_now = session.scalars(select(InventorySkuRow).where(InventorySkuRow.store == store))
        last = {r.sku: r for r in rows_now}
    rows = []
    for ln in lines:
        row = last.get(ln.sku)
        written = (f"{row.written_qty} at {row.written_at:%Y-%m-%d %H:%M}"
                   if row is not None and row.written_at is not None else "never")
        rows.append((ln.sku, ln.seller_sku, _n(ln.fulfillable), _n(ln.fba.reserved if ln.fba else None),
                     _n(ln.fba.inbound if ln.fba else None), ln.not_sent, ln.buffer, _n(ln.store_qty),
                     _writes(ln, dry), written))
    out.append(table(HEADERS, rows) if rows else "  no SKU mapped")
    problems = [ln for ln in lines if ln.problem]
    out += [f"  - {ln.sku}: {ln.problem}" for ln in problems]
    return "\n".join(out) + "\n", ok


def _n(value: int | None) -> str:
    return "-" if value is None else str(value)


def _writes(line: SkuLine, dry: bool) -> str:
    if line.problem or line.target is None:
        return "- (problem)"
    if line.written:
        return f"wrote {line.target}"
    if line.unsettled:
        return f"{line.target}? (kept moving; retried)"
    if line.wants_write:
        return f"{'would write' if dry else 'write'} {line.target}"
    return f"{line.target} (same)"


def inventory_health(app: App, session: Session, now: datetime,
                     overdue_factor: int) -> tuple[str, list[str]]:
    """`autofulfill status`: the last inventory pass of each store that syncs, and the problems: a
    sync failing for ``api_failing_minutes``, no good pass for ``overdue_factor`` intervals, SKUs
    that cannot be synced."""
    minutes = (app.config.alerts.api_failing_minutes if app.config.alerts is not None
               else AlertsConfig.model_fields["api_failing_minutes"].default)
    passes = InventoryPassRow
    rows, problems = [], []
    for name, cfg in app.config.stores.items():
        if not cfg.inventory.enabled:
            continue
        last = session.scalar(select(passes).where(passes.store == name)
                              .order_by(passes.started_at.desc(), passes.id.desc()).limit(1))
        last_ok = session.scalar(select(func.max(passes.started_at)).where(
            passes.store == name, passes.status == "ok"))
        stuck = sum(1 for sku in session.scalars(select(InventorySkuRow.sku).where(
            InventorySkuRow.store == name, InventorySkuRow.problem != "")) if sku in cfg.routing.sku_map)
        since = failing_since(session, name)
        what = "-" if last is None else (
            f"{last.status}{' (dry run)' if last.dry_run else ''}: {last.read} read, {last.changed} "
            f"changed, {last.skipped} unchanged, {last.errors} error(s)")
        rows.append((name, _ago(now, last.started_at if last else None), what, _ago(now, last_ok), stuck))
        command = f"`autofulfill inventory --store {name}`"
        if since is not None and now - since >= timedelta(minutes=minutes):
            error = str((last.detail if last else {}).get("error", ""))[:120]
            problems.append(f"store {name}: the inventory sync has failed since {_ago(now, since)} "
                            f"({error}) — {command}")
        elif last_ok is None or now - last_ok > timedelta(seconds=overdue_factor * cfg.inventory.interval_s):
            problems.append(f"store {name}: no successful inventory pass {_ago(now, last_ok)}")
        if stuck:
            problems.append(f"store {name}: {stuck} SKU(s) cannot be synced — {command}")
    if not rows:
        return "", problems
    return table(("store", "last inventory pass", "result", "last good pass", "SKU problems"), rows), problems
