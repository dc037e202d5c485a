"""Before lines go to FBA: ask Amazon whether it can ship them (getFulfillmentPreview), so no
create is sent that Amazon would refuse; what it cannot ship takes the routing ``fallback``."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy.orm import Session

from connectors.errors import PermanentError
from worker import routing, state
from worker.bootstrap import App
from worker.config import StoreConfig
from worker.domain import LabelRequest, Order, Preview, PreviewItem, Route
from worker.ledger import OrderRow
from worker.rates import choose_rate, from_address, shipment_parcel


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


def unavailable_at_amazon(app: App, session: Session, row: OrderRow, order: Order, cfg: StoreConfig, *,
                          actor: str) -> Answer:
    """``ask_amazon``, with the answer recorded on the order's timeline."""
    answer = ask_amazon(app, order, cfg)
    now = app.clock()
    p = answer.preview
    if answer.refused:
        state.event(session, row.id, "preview_refused", actor=actor, at=now, reason=answer.refused)
    elif p is not None:
        state.event(session, row.id, "previewed", actor=actor, at=now, speed=p.speed,
                    fees=f"{p.fees} {p.currency}" if p.currency else "unknown", fulfillable=p.fulfillable,
                    unfulfillable=[f"{sku}: {why}" for sku, why in p.unfulfillable] or None,
                    reasons=list(p.reasons) or None)
    return answer


# The slowest delivery (days) a label may promise and still count as meeting the MCF speed.
SPEED_DAYS = {"Standard": 5, "Expedited": 3, "Priority": 1, "ScheduledDelivery": 1}


@dataclass(frozen=True)
class Comparison:
    """The verdict of ``compare_costs``: ``label_is_cheaper`` is the reason to self-ship the FBA
    lines ("" keeps FBA). When it is set, ``quote`` is the provider shipment that was rated, kept
    so the label is bought from it instead of rating the same parcel twice."""

    label_is_cheaper: str = ""
    quote: QuoteToReuse | None = None


@dataclass(frozen=True)
class QuoteToReuse:
    reference: str  # the external id the label shipment will have
    lines: frozenset[tuple[str, int]]  # (line id, quantity) the quote was made for
    label: dict[str, Any]  # ShipmentRow.label: {"shipment_id", "rate"}


def compare_costs(app: App, session: Session, row: OrderRow, order: Order, cfg: StoreConfig,
                  answer: Answer, *, actor: str) -> Comparison:
    """``prefer = "cheapest"``: quote one label for the lines the rules send to FBA and compare it
    with the MCF preview's fees. Both numbers and the choice go on the timeline. Quoting buys
    nothing; when the label wins, its quote is bought later (``Comparison.quote``)."""
    p = answer.preview
    if cfg.routing.prefer != "cheapest" or cfg.labels not in app.config.labels or p is None or not p.currency:
        return Comparison()
    fba = next((s for s in routing.plan(order, cfg, unavailable=answer.unavailable).shipments
                if s.route == Route.FBA), None)
    if fba is None or order.address is None:
        return Comparison()
    labels_cfg = app.config.labels[cfg.labels]
    parcel = shipment_parcel([(pl.line.sku, pl.line.quantity) for pl in fba.lines],
                             app.config.parcels(row.store), labels_cfg.default_parcel)
    # The label shipment, if the label wins, is the next one of this order (it takes every line).
    n = max((s.n for s in row.shipments), default=0) + 1
    reference = f"{cfg.order_prefix}-{row.platform_order_id}-{n}"
    request = LabelRequest(reference=reference, email=order.email,
                           to_address=order.address, from_address=from_address(labels_cfg.from_address),
                           parcel=parcel)
    try:
        quote = app.labeler(cfg.labels).quote(request)
        rate = choose_rate(quote.rates, labels_cfg.choose, quote.messages)
    except PermanentError as exc:  # no label possible: FBA it is
        state.event(session, row.id, "cost_compared", actor=actor, at=app.clock(),
                    fba=f"{p.fees} {p.currency}", label=f"none ({str(exc)[:200]})", choice="fba")
        return Comparison()
    label_cost = rate.amount + cfg.self_ship_cost_per_order
    fast_enough = rate.delivery_days is not None and rate.delivery_days <= SPEED_DAYS.get(fba.speed, 5)
    cheaper = label_cost < p.fees and rate.currency == p.currency and fast_enough
    state.event(session, row.id, "cost_compared", actor=actor, at=app.clock(), fba=f"{p.fees} {p.currency}",
                label=f"{rate.carrier}:{rate.service} {rate.amount} + {cfg.self_ship_cost_per_order} "
                      f"{rate.currency} ({rate.delivery_days or '?'} days; {fba.speed} needs "
                      f"≤{SPEED_DAYS.get(fba.speed, 5)})",
                choice="label" if cheaper else "fba")
    if not cheaper:
        return Comparison()
    why = (f"prefer = cheapest: a label ({rate.carrier}:{rate.service} {label_cost} {rate.currency}) "
           f"costs less than FBA ({p.fees} {p.currency})")
    lines = frozenset((pl.line.line_id, pl.line.quantity) for pl in fba.lines)
    rate_json = {**asdict(rate), "amount": str(rate.amount)}
    label = {"shipment_id": quote.shipment_id, "rate": rate_json}
    return Comparison(why, QuoteToReuse(reference, lines, label))
