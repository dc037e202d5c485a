"""Before lines go to FBA: ask Amazon whether it can ship them (getFulfillmentPreview), so no
create is sent that Amazon would refuse; what it cannot ship takes the routing ``fallback``."""

from __future__ import annotations

from sqlalchemy.orm import Session

from connectors.errors import PermanentError
from worker import routing, state
from worker.bootstrap import App
from worker.config import StoreConfig
from worker.domain import Order, PreviewItem, Route
from worker.ledger import OrderRow


def unavailable_at_amazon(app: App, session: Session, row: OrderRow, order: Order, cfg: StoreConfig, *,
                          actor: str) -> frozenset[str]:
    """Seller SKUs Amazon says it cannot fulfil now (empty when all can, or no preview is wanted).

    Raises TransientError when Amazon could not be asked (the release is tried again later)."""
    first = routing.plan(order, cfg)
    fba = next((s for s in first.shipments if s.route == Route.FBA), None)
    if fba is None or not cfg.routing.preview or cfg.amazon not in app.config.amazon or order.address is None:
        return frozenset()
    skus = frozenset(pl.seller_sku for pl in fba.lines)
    items = [PreviewItem(pl.seller_sku, pl.line.line_id, pl.line.quantity) for pl in fba.lines]
    now = app.clock()
    try:
        previews = app.fulfiller(cfg.amazon).preview(order.address, items, [fba.speed],
                                                     routing.features_for(order, cfg))
    except PermanentError as exc:
        state.event(session, row.id, "preview_refused", actor=actor, at=now, reason=str(exc)[:300])
        return skus
    found = next((p for p in previews if p.speed == fba.speed), previews[0] if previews else None)
    if found is None:
        return frozenset()
    unfulfillable = frozenset(sku for sku, _ in found.unfulfillable)
    if not found.fulfillable and not unfulfillable:  # refused as a whole (address, speed)
        unfulfillable = skus
    state.event(session, row.id, "previewed", actor=actor, at=now, speed=found.speed,
                fees=f"{found.fees} {found.currency}".strip() if found.currency else "unknown",
                fulfillable=found.fulfillable,
                unfulfillable=[f"{sku}: {why}" for sku, why in found.unfulfillable] or None,
                reasons=list(found.reasons) or None)
    return unfulfillable
