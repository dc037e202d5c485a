"""Before lines go to FBA: ask Amazon whether it can ship them (getFulfillmentPreview), so no
create is sent that Amazon would refuse; what it cannot ship takes the routing ``fallback``."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from connectors.errors import PermanentError
from worker import routing, state
from worker.bootstrap import App
from worker.config import StoreConfig
from worker.domain import Order, Preview, PreviewItem, Route
from worker.ledger import OrderRow


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
                          actor: str) -> frozenset[str]:
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
    return answer.unavailable
