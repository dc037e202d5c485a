"""What a store may sell of one SKU: the inventory sync's formula, pure (no I/O, no clock).

    sellable = fulfillable − not_sent − buffer, never below 0

``fulfillable``: Amazon's ``fulfillableQuantity`` of the seller SKU (the only units that can ship
now). ``not_sent``: units of that seller SKU in paid orders of *every* store on the same Amazon
account that Amazon has not accepted yet (held, being routed, pending submission, or parked
before reaching Amazon) — the stores have counted them as sold, Amazon still counts them as
fulfillable. ``buffer``: the store's own margin (``buffers[sku]``, else the larger of ``buffer``
units and ``buffer_percent`` of ``fulfillable``, rounded up).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from worker.config import InventoryConfig
from worker.domain import FbaStock


@dataclass(frozen=True)
class OpenUnits:
    """Units of one order line not yet at Amazon, as the ledger showed them at one moment."""

    order_id: int
    line_id: str
    seller_sku: str
    quantity: int

    @property
    def key(self) -> tuple[int, str, str]:
        return self.order_id, self.line_id, self.seller_sku


def buffer_for(sku: str, fulfillable: int, inv: InventoryConfig) -> int:
    """The units held back for ``sku``: its own entry in ``buffers`` wins; otherwise the larger
    of ``buffer`` and ``buffer_percent`` of Amazon's fulfillable units (rounded up)."""
    if sku in inv.buffers:
        return inv.buffers[sku]
    share = math.ceil(Decimal(max(0, fulfillable)) * inv.buffer_percent / 100)
    return max(inv.buffer, int(share))


def sellable(fulfillable: int, not_sent: int, buffer: int) -> int:
    """Amazon's fulfillable units minus the units already sold but not yet sent to Amazon, minus
    the buffer; never below 0."""
    return max(0, fulfillable - max(0, not_sent) - max(0, buffer))


def not_sent(*snapshots: Iterable[OpenUnits]) -> dict[str, int]:
    """Units per seller SKU not yet at Amazon, over several ledger snapshots taken around the
    reads: a line seen in any of them counts, with its largest quantity. A line that reached
    Amazon between the snapshots is counted although Amazon may no longer list it as fulfillable
    (the store is told one unit too few until the next pass); a line that arrived between them
    is not missed."""
    largest: dict[tuple[int, str, str], int] = {}
    for snapshot in snapshots:
        for units in snapshot:
            if units.quantity > 0:
                largest[units.key] = max(largest.get(units.key, 0), units.quantity)
    out: dict[str, int] = {}
    for (_, _, seller_sku), qty in largest.items():
        out[seller_sku] = out.get(seller_sku, 0) + qty
    return out


def after_a_sale(target: int, read: int, now: int) -> int:
    """The number to write after the store's number moved from ``read`` to ``now`` between our
    read and our write (compare-and-swap refused): units the store sold meanwhile are units
    Amazon will be asked for, and no order in the ledger holds them yet, so they come off the
    target. A rise (a cancellation put units back) is not trusted until the next pass sees it."""
    return max(0, target + min(0, now - read))



@dataclass(frozen=True)
class SkuLine:
    """One store SKU in a pass: Amazon's units, the ledger's, the buffer, the store's number and
    what the formula gives. ``problem`` is one line a person must act on (alerted once);
    ``unsettled`` means the store's number kept moving while it was written (tried again soon)."""

    sku: str
    seller_sku: str
    fba: FbaStock | None = None
    not_sent: int = 0
    buffer: int = 0
    store_qty: int | None = None  # what the store showed (after a refused write: when read again)
    ref: str = ""
    managed: bool = True
    target: int | None = None
    problem: str = ""
    written: bool = False
    unsettled: bool = False

    @property
    def fulfillable(self) -> int | None:
        return self.fba.fulfillable if self.fba is not None else None

    @property
    def wants_write(self) -> bool:
        """The store shows something else than the target (or does not manage its stock)."""
        return (not self.problem and self.target is not None and self.store_qty is not None
                and (self.store_qty != self.target or not self.managed))
