"""Before lines go to FBA: ask Amazon whether it can ship them (getFulfillmentPreview), so no
create is sent that Amazon would refuse; what it cannot ship takes the routing ``fallback``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from worker.app import App
from worker.config import StoreConfig
from worker.domain import Order, Preview, PreviewItem, Route
from worker.errors import PermanentError
from worker.ledger import state
from worker.ledger.models import OrderRow
from worker.pipeline import routing
from worker.pipeline.rates import choose_rate, label_request


@dataclass(frozen=True)
class Answer:
    unavailable: frozenset[str]  # seller SKUs Amazon cannot fulfil now
    preview: Preview | None = None  # None: not asked (no FBA lines, preview off) or refused
    refused: str = ""  # Amazon refused the preview request itself


def ask_amazon(app: App, order: Order, cfg: StoreConfig) -> Answer:
    """Preview the lines the rules would send to FBA. Read-only; TransientError to try later."""
    fba = next((s for s in routing.plan(order, cfg).shipments if s.route == Route.FBA), None)
    if fba is None or not cfg.routing.preview or cfg.amazon not in app.config.amazon or order.address is None:
        return Answer(frozenset())
    skus = frozenset(pl.seller_sku for pl in fba.lines)
    items = [PreviewItem(pl.seller_sku, pl.line.line_id, pl.line.quantity) for pl in fba.lines]
    try:
        previews = app.fulfiller(cfg.amazon).preview(order.address, items, [fba.speed],
                                                     routing.features_for(order, cfg))
    except PermanentError as exc:
        return Answer(skus, refused=str(exc)[:300])
    found = next((p for p in previews if p.speed == fba.speed), previews[0] if previews else None)
    if found is None:
        return Answer(frozenset())
    unfulfillable = frozenset(sku for sku, _ in found.unfulfillable)
    if not found.fulfillable and not unfulfillable:  # refused as a whole (address, speed)
        unfulfillable = skus
    return Answer(unfulfillable, found)


def describe(answer: Answer) -> str:
    p = answer.preview
    if answer.refused:
        return f"Amazon refused the preview: {answer.refused}"
    if p is None:
        return "no preview (no FBA lines, or preview = false)"
    fees = f"{p.fees} {p.currency}" if p.currency else "unknown"
    gone = "; ".join(f"{sku}: {why}" for sku, why in p.unfulfillable)
    return f"MCF preview {p.speed}: estimated fees {fees}" + (f"; cannot fulfil {gone}" if gone else "")


def record_answer(session: Session, row: OrderRow, answer: Answer, *, actor: str, now: datetime) -> None:
    """Put what ``ask_amazon`` said on the order's timeline (asked before anything was written)."""
    p = answer.preview
    if answer.refused:
        state.event(session, row.id, "preview_refused", actor=actor, at=now, reason=answer.refused)
    elif p is not None:
        state.event(session, row.id, "previewed", actor=actor, at=now, speed=p.speed,
                    fees=f"{p.fees} {p.currency}" if p.currency else "unknown", fulfillable=p.fulfillable,
                    unfulfillable=[f"{sku}: {why}" for sku, why in p.unfulfillable] or None,
                    reasons=list(p.reasons) or None)


# The slowest delivery (days) a label may promise and still count as meeting the MCF speed.
SPEED_DAYS = {"Standard": 5, "Expedited": 3, "Priority": 1, "ScheduledDelivery": 1}


@dataclass(frozen=True)
class QuoteToReuse:
    reference: str  # the external id the label shipment will have
    lines: frozenset[tuple[str, int]]  # (line id, quantity) the quote was made for
    label: dict[str, Any]  # ShipmentRow.label: {"shipment_id", "rate"}


@dataclass(frozen=True)
class Comparison:
    """The verdict of ``weigh_costs``: ``label_is_cheaper`` is the reason to self-ship the FBA
    lines ("" keeps FBA). When it is set, ``quote`` is the provider shipment that was rated, kept
    so the label is bought from it instead of rating the same parcel twice. ``fba``, ``label`` and
    ``choice`` say what was compared ("" when nothing was: prefer = rules, no preview, ...)."""

    label_is_cheaper: str = ""
    quote: QuoteToReuse | None = None
    fba: str = ""
    label: str = ""
    choice: str = ""


def weigh_costs(app: App, store: str, order: Order, answer: Answer, *, next_n: int = 1) -> Comparison:
    """``prefer = "cheapest"``: quote one label for the lines the rules send to FBA and compare it
    with the MCF preview's fees. Quoting buys nothing (the provider keeps an unbought shipment);
    ``next_n`` is the number the label shipment would get, so the quote carries its reference."""
    cfg = app.config.store(store)
    p = answer.preview
    if cfg.routing.prefer != "cheapest" or cfg.labels not in app.config.labels or p is None or not p.currency:
        return Comparison()
    fba = next((s for s in routing.plan(order, cfg, unavailable=answer.unavailable).shipments
                if s.route == Route.FBA), None)
    if fba is None or order.address is None:
        return Comparison()
    # If the label wins, it is the order's next shipment and takes every FBA line.
    reference = f"{cfg.order_prefix}-{order.platform_order_id}-{next_n}"
    fees = f"{p.fees} {p.currency}"
    try:
        wanted = [(pl.line.line_id, pl.line.sku, pl.line.quantity) for pl in fba.lines]
        request = label_request(app.config, store, cfg.labels, order, wanted, reference)
        quote = app.labeler(cfg.labels).quote(request)
        rate = choose_rate(quote.rates, app.config.labels[cfg.labels].choose, quote.messages)
    except PermanentError as exc:  # no label possible: FBA it is
        return Comparison(fba=fees, label=f"none ({str(exc)[:200]})", choice="fba")
    label_cost = rate.amount + cfg.self_ship_cost_per_order
    days = SPEED_DAYS.get(fba.speed, 5)
    fast_enough = rate.delivery_days is not None and rate.delivery_days <= days
    cheaper = label_cost < p.fees and rate.currency == p.currency and fast_enough
    label = (f"{rate.carrier}:{rate.service} {rate.amount} + {cfg.self_ship_cost_per_order} {rate.currency} "
             f"({rate.delivery_days or '?'} days; {fba.speed} needs ≤{days})")
    if not cheaper:
        return Comparison(fba=fees, label=label, choice="fba")
    why = (f"prefer = cheapest: a label ({rate.carrier}:{rate.service} {label_cost} {rate.currency}) "
           f"costs less than FBA ({fees})")
    lines = frozenset((line_id, qty) for line_id, _, qty in wanted)
    rate_json = {**asdict(rate), "amount": str(rate.amount)}
    reuse = QuoteToReuse(reference, lines, {"shipment_id": quote.shipment_id, "rate": rate_json})
    return Comparison(why, reuse, fba=fees, label=label, choice="label")


def record_comparison(session: Session, row: OrderRow, compared: Comparison, *, actor: str,
                      now: datetime) -> None:
    """Both numbers of ``weigh_costs`` and the choice, on the order's timeline."""
    if compared.choice:
        state.event(session, row.id, "cost_compared", actor=actor, at=now, fba=compared.fba,
                    label=compared.label, choice=compared.choice)
