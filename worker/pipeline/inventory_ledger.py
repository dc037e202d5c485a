"""The inventory sync's ledger: units not yet sent to Amazon, pass records, per-SKU state, and the
early-refresh flags (``refresh_after``) that an MCF cancellation, an unfulfillable order, a sale
in a store sharing the SKU, or a failed pass set for the scheduler to act on.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from worker.app import App
from worker.ledger.models import (
    CursorRow,
    InventoryPassRow,
    InventorySkuRow,
    OrderRow,
    ShipmentLineRow,
    ShipmentRow,
)
from worker.pipeline.inventory_formula import OpenUnits, SkuLine

NOT_AT_AMAZON = ("pending", "submitting")  # a shipment in these states has not reached Amazon
SALES_CURSOR = "inventory:sales"
SALES_OVERLAP = timedelta(minutes=1)


def stores_on(app: App, account: str) -> dict[str, dict[str, str]]:
    """Every store selling from the Amazon account, with its sku_map (store SKU -> seller SKU)."""
    return {name: dict(cfg.routing.sku_map) for name, cfg in app.config.stores.items()
            if cfg.amazon == account}


def open_units(app: App, account: str, seller_skus: Collection[str]) -> list[OpenUnits]:
    """Units of these seller SKUs in paid orders of every store on the account that Amazon has not
    accepted: orders still held (before routing), and FBA (or held-for-a-person) shipments pending,
    being submitted, or parked before they reached Amazon — of orders not being cancelled."""
    stores = stores_on(app, account)
    wanted = set(seller_skus)
    if not stores or not wanted:
        return []
    out: list[OpenUnits] = []
    with app.sessions() as session:
        for order in session.scalars(select(OrderRow).where(OrderRow.store.in_(list(stores)),
                                                            OrderRow.status == "held")):
            for line in order.payload.get("lines", ()):
                seller = stores[order.store].get(str(line.get("sku", "")))
                if seller in wanted:
                    out.append(OpenUnits(order.id, str(line.get("line_id", "")), seller,
                                         int(line.get("quantity", 0))))
        rows = session.execute(
            select(OrderRow.id, OrderRow.store, ShipmentLineRow.line_id, ShipmentLineRow.sku,
                   ShipmentLineRow.seller_sku, ShipmentLineRow.quantity)
            .join(ShipmentRow, ShipmentRow.order_id == OrderRow.id)
            .join(ShipmentLineRow, ShipmentLineRow.shipment_id == ShipmentRow.id)
            .where(OrderRow.store.in_(list(stores)), OrderRow.status.not_in(("cancelling", "cancelled")),
                   ShipmentRow.route.in_(("fba", "hold")),
                   or_(ShipmentRow.state.in_(NOT_AT_AMAZON),
                       and_(ShipmentRow.state == "attention",
                            ShipmentRow.parked_from.in_(("", *NOT_AT_AMAZON)))))).all()
    summed: dict[tuple[int, str, str], int] = {}
    for order_id, store, line_id, sku, seller_sku, quantity in rows:
        seller = seller_sku or stores[store].get(sku, "")
        if seller in wanted:
            key = (order_id, line_id, seller)
            summed[key] = summed.get(key, 0) + quantity
    out += [OpenUnits(o, ln, s, q) for (o, ln, s), q in summed.items()]
    return out


def start_pass(app: App, store: str, *, dry_run: bool, actor: str, started: datetime,
               skus: Collection[str] | None) -> int:
    with app.sessions() as session:
        row = InventoryPassRow(store=store, status="running", dry_run=dry_run, started_at=started,
                               actor=actor, detail={"skus": sorted(skus)} if skus is not None else {})
        session.add(row)
        session.commit()
        return row.id


def finish_pass(app: App, pass_id: int, store: str, account: str, *, status: str, lines: Iterable[SkuLine],
                detail: dict[str, Any], counts: tuple[int, int, int, int], started: datetime,
                retry_at: datetime | None,
                retry_skus: Collection[str] = ()) -> tuple[list[SkuLine], list[SkuLine]]:
    """Record the pass and each SKU's numbers. Clears the SKUs' early-refresh flags set before the
    pass started; sets ``retry_at`` on ``retry_skus`` (a failed pass, a number that kept moving).
    Returns what is news for a person: the SKUs that went to 0 now (the store or the last pass
    had more), and the SKUs whose problem is new (not the one recorded before)."""
    now = app.clock()
    went_to_zero: list[SkuLine] = []
    new_problems: list[SkuLine] = []
    with app.sessions() as session:
        existing = {r.sku: r for r in session.scalars(select(InventorySkuRow).where(
            InventorySkuRow.store == store))}
        for line in lines:
            row = existing.get(line.sku) or _new_row(session, store, line.sku)
            if line.problem and line.problem != row.problem:
                new_problems.append(line)
            before = row.target
            row.account, row.seller_sku = account, line.seller_sku
            fba = line.fba
            row.fulfillable = fba.fulfillable if fba is not None else None
            row.reserved = fba.reserved if fba is not None else 0
            row.inbound = fba.inbound if fba is not None else 0
            row.not_sent, row.buffer, row.store_qty = line.not_sent, line.buffer, line.store_qty
            row.target, row.problem, row.checked_at = line.target, line.problem, now
            if line.written:
                row.written_qty, row.written_at = line.target, now
            if line.target == 0 and row.zero_since is None and not line.problem:
                row.zero_since = now
                if (before or 0) > 0 or (line.store_qty or 0) > 0:  # not one that was 0 all along
                    went_to_zero.append(line)
            elif line.target is not None and line.target > 0:
                row.zero_since = None
            if row.refresh_after is not None and row.refresh_after <= started:
                row.refresh_after = None
            existing[line.sku] = row
        for sku in retry_skus:
            row = existing.get(sku) or _new_row(session, store, sku)
            row.account = account
            row.refresh_after = retry_at
        pass_row = session.get(InventoryPassRow, pass_id)
        if pass_row is not None:
            pass_row.status, pass_row.finished_at = status, now
            pass_row.read, pass_row.changed, pass_row.skipped, pass_row.errors = counts
            pass_row.detail = {**pass_row.detail, **detail}
        session.commit()
    return went_to_zero, new_problems


def _new_row(session: Session, store: str, sku: str) -> InventorySkuRow:
    row = InventorySkuRow(store=store, sku=sku, account="", seller_sku="", problem="")
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # a pass of the same store cannot run at once; a CLI preview does not write
        found = session.scalar(select(InventorySkuRow).where(InventorySkuRow.store == store,
                                                             InventorySkuRow.sku == sku))
        assert found is not None
        return found
    return row


def failures_in_a_row(app: App, store: str) -> int:
    with app.sessions() as session:
        last_ok = session.scalar(select(func.max(InventoryPassRow.started_at)).where(
            InventoryPassRow.store == store, InventoryPassRow.status == "ok"))
        query = select(func.count()).select_from(InventoryPassRow).where(
            InventoryPassRow.store == store, InventoryPassRow.status == "failed")
        if last_ok is not None:
            query = query.where(InventoryPassRow.started_at > last_ok)
        return int(session.scalar(query) or 0)


def failing_since(session: Session, store: str) -> datetime | None:
    """When the store's sync started failing (its first failed pass since the last good one)."""
    last_ok = session.scalar(select(func.max(InventoryPassRow.started_at)).where(
        InventoryPassRow.store == store, InventoryPassRow.status == "ok"))
    query = select(func.min(InventoryPassRow.started_at)).where(
        InventoryPassRow.store == store, InventoryPassRow.status == "failed")
    if last_ok is not None:
        query = query.where(InventoryPassRow.started_at > last_ok)
    return session.scalar(query)


# --- early refresh ---------------------------------------------------------------------------------

def refresh_soon(session: Session, account: str, seller_skus: Iterable[str], at: datetime) -> None:
    """Ask for an early sync of these seller SKUs in every store on the account (in the caller's
    transaction): an MCF order was cancelled or came back unfulfillable, so Amazon's units moved."""
    skus = sorted({s for s in seller_skus if s})
    if skus:
        row = InventorySkuRow
        session.execute(update(row)
                        .where(row.account == account, row.seller_sku.in_(skus),
                               or_(row.refresh_after.is_(None), row.refresh_after > at))
                        .values(refresh_after=at).execution_options(synchronize_session=False))


def forget_unmapped(app: App, store: str, mapped: Collection[str]) -> int:
    """Drop the rows of SKUs no longer in the store's sku_map (their flags and problems too)."""
    keep = set(mapped)
    with app.sessions() as session:
        gone = [r for r in session.scalars(select(InventorySkuRow).where(InventorySkuRow.store == store))
                if r.sku not in keep]
        for row in gone:
            session.delete(row)
        session.commit()
    return len(gone)


def due_skus(app: App, store: str, now: datetime) -> set[str]:
    with app.sessions() as session:
        return set(session.scalars(select(InventorySkuRow.sku).where(
            InventorySkuRow.store == store, InventorySkuRow.refresh_after <= now)))


def due_stores(app: App, now: datetime) -> list[str]:
    """Stores with inventory sync on and SKUs due for an early refresh."""
    enabled = [n for n, c in app.config.stores.items() if c.inventory.enabled]
    if not enabled:
        return []
    with app.sessions() as session:
        return sorted(session.scalars(select(InventorySkuRow.store).distinct().where(
            InventorySkuRow.store.in_(enabled), InventorySkuRow.refresh_after <= now)))


def flag_sales(app: App, now: datetime) -> int:
    """A sale in one store makes the other stores (and other store SKUs) selling the same seller
    SKU stale until their next pass: flag them for an early refresh. Looks at orders ingested
    since the last look; returns how many SKU rows were flagged."""
    flagged = 0
    with app.sessions() as session:
        mark = session.get(CursorRow, SALES_CURSOR)
        if mark is None:
            mark = CursorRow(name=SALES_CURSOR, value=now, lease_token="")
            try:
                with session.begin_nested():
                    session.add(mark)
            except IntegrityError:
                return 0
            session.commit()
            return 0
        since = (mark.value or now) - SALES_OVERLAP
        orders = session.scalars(select(OrderRow).where(OrderRow.created_at >= since,
                                                        OrderRow.status.not_in(("cancelled", "waiting"))))
        for order in orders:
            cfg = app.config.stores.get(order.store)
            if cfg is None or cfg.amazon is None:
                continue
            for line in order.payload.get("lines", ()):
                seller = cfg.routing.sku_map.get(str(line.get("sku", "")))
                if not seller:
                    continue
                row = InventorySkuRow  # siblings whose last pass did not see this order yet
                result = session.execute(
                    update(row)
                    .where(row.account == cfg.amazon, row.seller_sku == seller,
                           or_(row.store != order.store, row.sku != line.get("sku")),
                           row.refresh_after.is_(None),
                           or_(row.checked_at.is_(None), row.checked_at < order.created_at))
                    .values(refresh_after=now).execution_options(synchronize_session=False))
                flagged += int(result.rowcount or 0)  # type: ignore[attr-defined]
        mark.value = now
        session.commit()
    return flagged
