"""Self-ship: rate-shop and buy one carrier label per shipment, exactly once.

The provider's shipment id (with our reference in its reference field) and the chosen rate are
committed to the ledger *before* the purchase. An attempt that finds them there (a dead worker,
an unknown outcome) looks the shipment up and buys only if it was not bought; the provider also
refuses a second purchase of one shipment. The label file is stored under
``data_dir/labels/<store>/<external id>.<pdf|png|zpl>``: names we control (the store name is
checked at config load), never the store's order number.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.app import App
from worker.domain import Label, LabelRequest, Rate, ShipmentState
from worker.errors import PermanentError
from worker.ledger import state
from worker.ledger.models import ShipmentRow
from worker.ledger.outbox import enqueue, publish_for
from worker.pipeline import rates
from worker.pipeline.intake import stored_order
from worker.pipeline.names import PUSH
from worker.pipeline.rates import choose_rate
from worker.ports import LabelProvider


def _rate_json(rate: Rate) -> dict[str, Any]:
    return {**asdict(rate), "amount": str(rate.amount)}


def _rate_from_json(data: dict[str, Any]) -> Rate:
    return Rate(**{**data, "amount": Decimal(data["amount"])})


def label_request(app: App, row: ShipmentRow) -> LabelRequest:
    """What the provider is asked to rate for this shipment (see ``rates.label_request``)."""
    return rates.label_request(app.config, row.order.store, row.account, stored_order(row.order),
                               [(ln.line_id, ln.sku, ln.quantity) for ln in row.lines], row.external_id)


class LabelNotSaved(Exception):
    """The label is bought but its file could not be fetched or stored: park, keep the label."""

    def __init__(self, label: Label, cause: Exception) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.label = label


def buy_label(app: App, session: Session, row: ShipmentRow, token: str, *,
              actor: str) -> tuple[str, Label, Path]:
    """Quote (once), buy (once), store the file. Returns (how, label, path).

    Raises what the provider raises: AmbiguousOutcome/TransientError (the shipment stays in
    `submitting` with its provider id recorded), PermanentError (address, no rate allowed);
    ``state.LeaseLost`` when another worker took the shipment over while we quoted (its own quote
    stands and ours is never bought); LabelNotSaved when anything fails after the purchase."""
    provider = app.labeler(row.account)
    known = row.label.get("shipment_id")
    label = provider.lookup(known) if known else None
    how = "found after an unknown outcome" if label else "bought"
    if label is None:
        if not known:
            quote = provider.quote(label_request(app, row))
            rate = choose_rate(quote.rates, app.config.labels[row.account].choose, quote.messages)
            if not state.mine_to_write(session, row, token):
                raise state.LeaseLost(f"{row.external_id}: taken over while quoting")
            row.label = {"shipment_id": quote.shipment_id, "rate": _rate_json(rate)}
            state.event(session, row.order_id, "quoted", shipment_id=row.id, actor=actor, at=app.clock(),
                        shipment=row.external_id, provider_shipment=quote.shipment_id,
                        chosen=f"{rate.carrier}:{rate.service} {rate.amount} {rate.currency}",
                        rule=str(app.config.labels[row.account].choose),
                        offered=[f"{r.carrier}:{r.service} {r.amount}" for r in quote.rates][:8],
                        carrier_messages=list(quote.messages)[:5] or None)
            session.commit()  # the attempt is on record before anything is bought
        label = provider.buy(row.label["shipment_id"], _rate_from_json(row.label["rate"]))
    try:
        path = _store_file(app, row, provider.label_file(label), label.label_format)
    except Exception as exc:  # bought: never a reason to buy again
        raise LabelNotSaved(label, exc) from exc
    return how, label, path


_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,63}")


def _store_file(app: App, row: ShipmentRow, data: bytes, fmt: str) -> Path:
    folder = app.config.data_dir / "labels" / row.order.store
    folder.mkdir(parents=True, exist_ok=True)
    name = row.external_id if _SAFE_NAME.fullmatch(row.external_id) else f"shipment-{row.id}"
    suffix = fmt.lower() if fmt.lower() in ("pdf", "png", "zpl", "epl2") else "bin"  # the provider's word
    path = folder / f"{name}.{suffix}"
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return path


NOT_SCANNED = {"", "unknown", "pre_transit"}
SCAN_BATCH = 200  # labels a scan sweep reads, looks up and writes per session


def scan_sweep(app: App, account: str, *, actor: str = "") -> int:
    """Labels bought under ``push_tracking = "first_scan"``: push the tracking of those the
    carrier has scanned since. Returns how many pushes were enqueued. Cost: one read per label
    still waiting for its first scan."""
    now = app.clock()
    provider = app.labeler(account)
    pushes, after = 0, 0
    while True:  # a batch at a time, by id: its rows in memory, its pushes sent before the next
        outbox: list[int] = []
        with app.sessions() as session:
            waiting = list(session.scalars(select(ShipmentRow).where(
                ShipmentRow.account == account, ShipmentRow.route == "self_ship",
                ShipmentRow.state == ShipmentState.LABEL_BOUGHT, ShipmentRow.next_attempt_at.is_(None),
                ShipmentRow.id > after).order_by(ShipmentRow.id).limit(SCAN_BATCH)))
            for row in waiting:
                outbox += _scanned(app, session, provider, row, now=now, actor=actor)
        publish_for(app, outbox, now=app.clock())
        pushes += len(outbox)
        if len(waiting) < SCAN_BATCH:
            return pushes
        after = waiting[-1].id


def _scanned(app: App, session: Session, provider: LabelProvider, row: ShipmentRow, *, now: datetime,
             actor: str) -> list[int]:
    """Look one waiting label up; when the carrier has it, its push is enqueued (committed)."""
    try:
        label = provider.lookup(row.label["shipment_id"])
    except PermanentError as exc:  # this label cannot be read: park it, the others go on
        state.park(session, row, f"the label's shipment cannot be read at the provider: {exc}",
                   now=now, actor=actor)
        session.commit()
        return []
    if label is None or label.carrier_status in NOT_SCANNED:
        return []
    row.next_attempt_at = now + timedelta(seconds=app.backstop_s)  # back-stop for the push
    state.event(session, row.order_id, "first_scan", shipment_id=row.id, actor=actor, at=now,
                shipment=row.external_id, carrier_status=label.carrier_status)
    oid = enqueue(session, PUSH, [row.id], f"push:{row.id}:0")
    session.commit()
    return [oid] if oid else []
