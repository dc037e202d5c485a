"""FBA stock -> store stock: one sync pass of one store (README "Inventory sync").

A pass reads, per store SKU mapped in sku_map: the units not yet sent to Amazon (ledger, before
and after the reads), Amazon's fulfillable units (``StockSource``) and what the store shows
(``StoreStock``); computes what the store may sell (``inventory_formula``); and writes only the
numbers that changed, each compared-and-swapped against what was just read. A number that moved
meanwhile (a sale) is read again and written lower by what was sold; one SKU's problem is that
SKU's, never the pass's. A 429, 5xx or timeout from any side ends the pass before anything
half-computed is written, and it is tried again soon. One pass per store at a time (a cursor
lease), ``dry_run`` computes and records, writing nothing.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from worker.app import App
from worker.domain import StockChange, StockRead
from worker.errors import AmbiguousOutcome, ConnectorError, PermanentError, TransientError
from worker.ledger import cursors
from worker.logs import log
from worker.pipeline import inventory_formula as formula
from worker.pipeline import inventory_ledger as ledger
from worker.pipeline.inventory_formula import SkuLine

MAX_CAS_ROUNDS = 3  # a number still moving after this many reads is left to the next pass
RETRY_FIRST_S = 30.0  # a failed pass is tried again after 30 s, 60 s, 120 s ... up to interval_s
UNSETTLED_RETRY_S = 30.0


def cursor_name(store: str) -> str:
    return f"inventory:{store}"


def reference(pass_id: int) -> str:
    """What the store's inventory history shows as the change's source (Shopify)."""
    return f"gid://autofulfill/InventorySyncPass/{pass_id}"


@dataclass(frozen=True)
class PassResult:
    store: str
    # ok | failed | skipped (another pass holds the store) | idle (nothing due) | off (not enabled)
    status: str
    dry_run: bool = False
    lines: tuple[SkuLine, ...] = ()
    error: str = ""
    notes: tuple[str, ...] = ()
    pass_id: int | None = None
    went_to_zero: tuple[SkuLine, ...] = ()  # the store had more: news for a person
    new_problems: tuple[SkuLine, ...] = ()  # problems not recorded before: news for a person
    retrying: bool = False  # failed for a reason that passes (429, 5xx, timeout): tried again soon

    @property
    def changed(self) -> int:
        """Written, or in a dry run, would be."""
        return sum(1 for ln in self.lines if ln.written or (self.dry_run and ln.wants_write))

    @property
    def errors(self) -> int:
        return sum(1 for ln in self.lines if ln.problem or ln.unsettled) + (self.status == "failed")

    @property
    def skipped(self) -> int:
        """Already right: nothing to write."""
        return sum(1 for ln in self.lines if not (ln.problem or ln.unsettled or ln.written
                                                   or ln.wants_write))

    def summary(self) -> str:
        if self.status in ("skipped", "idle", "off"):
            return f"{self.store}: {self.status}"
        head = f"{self.store}: {'dry run, ' if self.dry_run else ''}{self.status}"
        counts = (f"{len(self.lines)} read, {self.changed} {'to change' if self.dry_run else 'changed'}, "
                  f"{self.skipped} unchanged, {self.errors} error(s)")
        return f"{head}: {counts}" + (f" ({self.error})" if self.error else "")


def mapped(app: App, store: str, only: Collection[str] | None = None) -> dict[str, str]:
    """Store SKU -> seller SKU of the SKUs this store syncs (all of sku_map, or ``only`` of them)."""
    sku_map = app.config.store(store).routing.sku_map
    return {s: a for s, a in sku_map.items() if only is None or s in only}


def compute(app: App, store: str, only: Collection[str] | None = None) -> tuple[SkuLine, ...]:
    """Read everything a pass needs and apply the formula; writes nothing (`autofulfill inventory`
    without --apply shows this). Raises ConnectorError when Amazon or the store cannot be read."""
    cfg = app.config.store(store)
    if cfg.amazon is None:
        raise PermanentError(f"stores.{store}.amazon: the inventory sync needs the store's Amazon account")
    skus = mapped(app, store, only)
    sellers = sorted(set(skus.values()))
    before = ledger.open_units(app, cfg.amazon, sellers)  # before Amazon's read: nothing missed
    stock = app.stock_source(cfg.amazon).fba_stock(sellers) if sellers else {}
    read = app.store_stock(store).read_stock(sorted(skus)) if skus else StockRead(())
    units = formula.not_sent(before, ledger.open_units(app, cfg.amazon, sellers))
    levels = {level.sku: level for level in read.levels}
    store_problems = {p.sku: p.message for p in read.problems}
    lines: list[SkuLine] = []
    for sku, seller in sorted(skus.items()):
        fba, level = stock.get(seller), levels.get(sku)
        line = SkuLine(sku=sku, seller_sku=seller, fba=fba, not_sent=units.get(seller, 0),
                       store_qty=level.quantity if level else None, ref=level.ref if level else "",
                       managed=level.managed if level else True)
        if fba is not None and fba.fulfillable is not None:
            buffer = formula.buffer_for(sku, fba.fulfillable, cfg.inventory)
            line = replace(line, buffer=buffer,
                           target=formula.sellable(fba.fulfillable, line.not_sent, buffer))
        if fba is None:
            problem = (f"Amazon does not know seller SKU {seller!r} (sku_map {sku!r} -> {seller!r}): fix the "
                       "mapping, or the listing in Seller Central; the store's number is left as it is")
        elif fba.fulfillable is None:
            problem = f"Amazon's summary of {seller!r} has no fulfillableQuantity: {sku!r} is left as it is"
        elif level is None:
            problem = store_problems.get(sku, f"the store did not report SKU {sku!r}")
        else:
            problem = ""
        lines.append(replace(line, problem=problem))
    return tuple(lines)


def write(app: App, store: str, lines: tuple[SkuLine, ...],
          ref: str) -> tuple[tuple[SkuLine, ...], ConnectorError | None]:
    """Write the targets that differ, compare-and-swap; re-read what moved and write it lower by
    what was sold meanwhile. Returns the lines and None or why the writing stopped part-way (what
    was written is whole: each SKU's number was computed completely before any write)."""
    target = app.store_stock(store)
    todo = {ln.sku: ln for ln in lines}
    changes = [_change(ln) for ln in lines if ln.wants_write]
    error: ConnectorError | None = None
    try:
        for _ in range(MAX_CAS_ROUNDS):
            if not changes:
                break
            result = target.write_stock(changes, ref)
            for sku in result.written:
                todo[sku] = replace(todo[sku], written=True)
            for p in result.problems:
                todo[p.sku] = replace(todo[p.sku], problem=p.message)
            changes = []
            if not result.stale:
                break
            again = target.read_stock(list(result.stale))
            now = {level.sku: level for level in again.levels}
            gone = {p.sku: p.message for p in again.problems}
            for sku in result.stale:
                line, level = todo[sku], now.get(sku)
                if level is None or line.target is None or line.store_qty is None:
                    todo[sku] = replace(line, problem=gone.get(sku, f"the store no longer reports {sku!r}"))
                    continue
                lower = formula.after_a_sale(line.target, line.store_qty, level.quantity)
                log("inventory.moved", store=store, sku=sku, read=line.store_qty, now=level.quantity,
                    target=lower)
                todo[sku] = line = replace(line, store_qty=level.quantity, ref=level.ref,
                                           managed=level.managed, target=lower)
                if line.wants_write:
                    changes.append(_change(line))
        for c in changes:  # still moving after the last round
            todo[c.sku] = replace(todo[c.sku], unsettled=True)
    except ConnectorError as exc:
        error = exc
    return tuple(todo[ln.sku] for ln in lines), error


def _change(line: SkuLine) -> StockChange:
    assert line.target is not None and line.store_qty is not None
    return StockChange(sku=line.sku, ref=line.ref, expected=line.store_qty, quantity=line.target,
                       manage=not line.managed)


def sync_store(app: App, store: str, *, refresh: bool = False, only: Collection[str] | None = None,
               actor: str = "") -> PassResult:
    """One pass over the store's mapped SKUs (``refresh``: only the SKUs flagged for an early
    refresh; ``only``: these store SKUs). Never raises for Amazon's or the store's failures: the
    result says ``failed`` and the ledger flags the SKUs to be tried again soon."""
    cfg = app.config.store(store)
    account = cfg.amazon or ""
    if not cfg.inventory.enabled:  # e.g. a task queued before a config reload turned it off
        return PassResult(store, "off")

    def one_pass(_last: datetime | None, started: datetime) -> PassResult:
        ledger.forget_unmapped(app, store, mapped(app, store))
        skus = set(only) if only is not None else None
        if refresh:
            due = ledger.due_skus(app, store, started)
            skus = due if skus is None else skus & due
            if not skus:
                return PassResult(store, "idle")
        dry_run = cfg.inventory.dry_run
        pass_id = ledger.start_pass(app, store, dry_run=dry_run, actor=actor, started=started, skus=skus)
        lines: tuple[SkuLine, ...] = ()
        failure: Exception | None = None
        try:
            lines = compute(app, store, skus)
            if not dry_run:
                lines, failure = write(app, store, lines, reference(pass_id))
        except (ConnectorError, LookupError) as exc:
            failure = exc
        error = f"{type(failure).__name__}: {str(failure)[:300]}" if failure is not None else ""
        # A refused login or an unknown location waits for the next scheduled pass (and a person);
        # a 429, 5xx or timeout is tried again soon.
        transient = isinstance(failure, TransientError | AmbiguousOutcome)
        retry = _retry_at(app, store) if transient else None
        manage = [ln.sku for ln in lines if ln.written and not ln.managed]
        notes = (f"stock management turned on with the first write for {len(manage)} product(s): "
                 f"{', '.join(manage)}",) if manage else ()
        result = PassResult(store, "failed" if error else "ok", dry_run, lines, error, notes, pass_id)
        unsettled = [ln.sku for ln in lines if ln.unsettled]
        failed = set(mapped(app, store, skus)) if transient else set()
        soon = started + timedelta(seconds=UNSETTLED_RETRY_S)
        zero, news = ledger.finish_pass(
            app, pass_id, store, account, status=result.status, lines=lines, started=started,
            detail={"error": error, "notes": list(notes),
                    "problems": [f"{ln.sku}: {ln.problem}" for ln in lines if ln.problem]},
            counts=(len(lines), result.changed, result.skipped, result.errors),
            retry_at=retry or soon, retry_skus=sorted(failed | set(unsettled)))
        result = replace(result, went_to_zero=tuple(zero), new_problems=tuple(news), retrying=transient)
        _log(result)
        return result

    result = cursors.run_pass(app, cursor_name(store), one_pass)
    if result is None:
        log("inventory.skipped", store=store, reason="another inventory pass of this store is running")
        return PassResult(store, "skipped")
    return result


def _retry_at(app: App, store: str) -> datetime:
    interval = app.config.store(store).inventory.interval_s
    wait = min(interval, RETRY_FIRST_S * 2 ** min(ledger.failures_in_a_row(app, store), 6))
    return app.clock() + timedelta(seconds=wait)


def _log(result: PassResult) -> None:
    for line in result.lines:
        if line.problem:
            log("inventory.sku_problem", level=30, store=result.store, sku=line.sku, problem=line.problem)
    log("inventory.pass", level=40 if result.status == "failed" else 20, store=result.store,
        status=result.status, dry_run=result.dry_run, read=len(result.lines), changed=result.changed,
        skipped=result.skipped, errors=result.errors, error=result.error or None,
        notes=list(result.notes) or None)
