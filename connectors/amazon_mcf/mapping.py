"""Pure translation between our domain records and Fulfillment Outbound v2020-07-01 payloads.

No I/O and no clock. Parsers accept either the whole response (``{"payload": ...}``) or the
payload itself, and ignore fields they do not know (Amazon's own examples carry extra ones).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from worker.domain import (
    DEAD_STATUSES,
    SHIPPED_STATUSES,
    Address,
    FulfillmentRequest,
    FulfillmentStatus,
    ItemOutcome,
    Preview,
    PreviewItem,
    Tracking,
)
from worker.errors import PermanentError

# Cancel is possible only while the order has not started to be picked (DESIGN §7).
CANCELLABLE = frozenset({"new", "received", "planning"})

# What Amazon says when a create reuses a sellerFulfillmentOrderId. The exact wording is not
# published; SP-API answers 400 with code "InvalidInput" (other SP-APIs use "DuplicateRequest" or
# "Conflict") and a message in the style "Value X for parameter Y is invalid. Reason: Duplicate.".
# So match the meaning, not one sentence, and never trust it alone: the client confirms every
# refused create by looking the id up (client.AmazonMCF.submit).
_DUPLICATE_CODES = frozenset({"duplicaterequest", "duplicate", "conflict", "alreadyexists"})
_DUPLICATE_TEXT = re.compile(
    r"duplicate|already\s+(?:exists?|been\s+(?:used|submitted|created))|not\s+unique|must\s+be\s+unique",
    re.IGNORECASE,
)
_NOT_FOUND_TEXT = re.compile(
    r"not\s+found|does\s+not\s+exist|no\s+(?:such\s+)?fulfillment\s+order|"
    r"invalid\s+(?:seller\s*)?fulfillment\s*order\s*id|sellerfulfillmentorderid\s+is\s+invalid",
    re.IGNORECASE,
)


def _unwrap(payload: Mapping[str, Any]) -> Mapping[str, Any]:
    inner = payload.get("payload")
    return inner if isinstance(inner, Mapping) else payload


def iso_z(when: datetime) -> str:
    """ISO-8601 in UTC with a ``Z``, whole seconds (naive datetimes are taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: object) -> datetime | None:
    """An Amazon timestamp ("2026-03-30T17:54:09Z", offsets and fractions allowed) or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def destination_address(address: Address) -> dict[str, str]:
    """MCF ``Address``: the required keys always, optional ones only when they have a value."""
    out = {"name": address.name, "addressLine1": address.address1}
    optional = {
        "addressLine2": address.address2,
        "city": address.city,
        "stateOrRegion": address.region,
    }
    out.update({k: v for k, v in optional.items() if v})
    out["postalCode"] = address.postal_code
    out["countryCode"] = address.country.upper()
    if address.phone:
        out["phone"] = address.phone
    return out


def create_request_body(req: FulfillmentRequest, marketplace_id: str) -> dict[str, Any]:
    """``CreateFulfillmentOrderRequest`` for one shipment: ship now, all or nothing."""
    body: dict[str, Any] = {
        "marketplaceId": marketplace_id,
        "sellerFulfillmentOrderId": req.seller_fulfillment_order_id,
        "displayableOrderId": req.displayable_order_id,
        "displayableOrderDate": iso_z(req.displayable_order_date),
        "displayableOrderComment": req.displayable_comment,
        "shippingSpeedCategory": req.speed,
        "destinationAddress": destination_address(req.address),
        "fulfillmentAction": "Ship",
        "fulfillmentPolicy": "FillOrKill",
        "items": [
            {
                "sellerSku": item.seller_sku,
                "sellerFulfillmentOrderItemId": item.item_id,
                "quantity": item.quantity,
            }
            for item in req.items
        ],
    }
    if req.features:
        body["featureConstraints"] = _feature_constraints(req.features)
    if req.notification_emails:
        body["notificationEmails"] = list(req.notification_emails)
    return body


def _feature_constraints(features: Iterable[str]) -> list[dict[str, str]]:
    return [{"featureName": f, "featureFulfillmentPolicy": "Required"} for f in features]


def preview_request_body(address: Address, items: Sequence[PreviewItem], marketplace_id: str,
                         speeds: Sequence[str], features: Sequence[str] = ()) -> dict[str, Any]:
    """``GetFulfillmentPreviewRequest``: one preview per speed in ``speeds`` (all speeds when empty).

    No COD previews and no delivery windows (JP scheduled delivery); features are ``Required``, as
    in the create, so the preview answers for the order we would really send."""
    body: dict[str, Any] = {
        "marketplaceId": marketplace_id,
        "address": destination_address(address),
        "items": [
            {
                "sellerSku": item.seller_sku,
                "sellerFulfillmentOrderItemId": item.item_id,
                "quantity": item.quantity,
            }
            for item in items
        ],
        "includeCODFulfillmentPreview": False,
        "includeDeliveryWindows": False,
    }
    if speeds:
        body["shippingSpeedCategories"] = list(dict.fromkeys(speeds))
    if features:
        body["featureConstraints"] = _feature_constraints(features)
    return body


def _fee_total(fees: object, speed: str) -> tuple[Decimal, str]:
    total = Decimal("0")
    currency = ""
    for fee in fees if isinstance(fees, list) else ():
        amount = fee.get("amount") if isinstance(fee, Mapping) else None
        if not isinstance(amount, Mapping):
            continue
        code = str(amount.get("currencyCode", "")).strip().upper()
        try:
            value = Decimal(str(amount.get("value", "")).strip())
        except InvalidOperation:
            value = Decimal("NaN")
        if not value.is_finite():
            # A fee we cannot read must not turn into a cheaper FBA: refuse the whole preview.
            raise PermanentError(f"amazon getFulfillmentPreview: {speed}: unreadable fee "
                                 f"{str(fee.get('name', ''))[:40]!r}")
        if currency and code and code != currency:
            raise PermanentError(f"amazon getFulfillmentPreview: {speed}: fees in {currency} and {code}")
        currency = currency or code
        total += value
    return total, currency


def previews_from_payload(payload: Mapping[str, Any]) -> tuple[Preview, ...]:
    """One ``Preview`` per ``fulfillmentPreviews[]`` entry (one per speed), in Amazon's order.

    Fees are the sum of ``estimatedFees[].amount.value``; arrival is the earliest
    ``earliestArrivalDate`` and the latest ``latestArrivalDate`` over the preview's shipments.
    Raises PermanentError when fees cannot be read or mix currencies."""
    out: list[Preview] = []
    for entry in _unwrap(payload).get("fulfillmentPreviews") or ():
        if not isinstance(entry, Mapping):
            continue
        speed = str(entry.get("shippingSpeedCategory", ""))
        fees, currency = _fee_total(entry.get("estimatedFees"), speed)
        unfulfillable: list[tuple[str, str]] = []
        for item in entry.get("unfulfillablePreviewItems") or ():
            if not isinstance(item, Mapping):
                continue
            reasons = [str(r) for r in item.get("itemUnfulfillableReasons") or () if r]
            unfulfillable.append((str(item.get("sellerSku", "")), ", ".join(reasons) or "Unfulfillable"))
        earliest: list[datetime] = []
        latest: list[datetime] = []
        for shipment in entry.get("fulfillmentPreviewShipments") or ():
            if not isinstance(shipment, Mapping):
                continue
            first = parse_time(shipment.get("earliestArrivalDate"))
            last = parse_time(shipment.get("latestArrivalDate"))
            if first is not None:
                earliest.append(first)
            if last is not None:
                latest.append(last)
        out.append(Preview(
            speed=speed,
            fulfillable=entry.get("isFulfillable") is True,
            unfulfillable=tuple(unfulfillable),
            fees=fees,
            currency=currency,
            earliest_arrival=min(earliest) if earliest else None,
            latest_arrival=max(latest) if latest else None,
            reasons=tuple(str(r) for r in entry.get("orderUnfulfillableReasons") or () if r),
        ))
    return tuple(out)


def is_amazon_carrier(carrier_code: str) -> bool:
    """Amazon Logistics: ``AMZN_US``-style codes, or "Amazon Logistics" as Amazon's examples spell it."""
    code = carrier_code.strip().upper()
    return code.startswith("AMZN") or code.startswith("AMAZON")


def _live_packages(payload: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    for shipment in _unwrap(payload).get("fulfillmentShipments") or ():
        if not isinstance(shipment, Mapping):
            continue
        if str(shipment.get("fulfillmentShipmentStatus", "")).upper().startswith("CANCELLED"):
            continue
        for package in shipment.get("fulfillmentShipmentPackage") or ():
            if isinstance(package, Mapping) and package.get("trackingNumber"):
                yield package


def amazon_package_numbers(payload: Mapping[str, Any]) -> list[int]:
    """Package numbers whose tracking link must come from ``getPackageTrackingDetails``."""
    out: list[int] = []
    for package in _live_packages(payload):
        number = package.get("packageNumber")
        if isinstance(number, int) and is_amazon_carrier(str(package.get("carrierCode", ""))):
            out.append(number)
    return out


def status_from_get(payload: Mapping[str, Any],
                    tracking_urls: Mapping[str, str] | None = None) -> FulfillmentStatus:
    """``FulfillmentStatus`` from a ``getFulfillmentOrder`` answer.

    One ``Tracking`` per shipped package with a tracking number; cancelled shipments are skipped.
    ``tracking_urls`` maps ``str(packageNumber)`` to a link (``customerTrackingLink``)."""
    body = _unwrap(payload)
    order = body.get("fulfillmentOrder") or {}
    urls = tracking_urls or {}
    tracking: list[Tracking] = []
    seen: set[tuple[str, str]] = set()
    for package in _live_packages(body):
        carrier = str(package.get("carrierCode", "")).strip()
        number = str(package["trackingNumber"]).strip()
        if (carrier, number) in seen:
            continue
        seen.add((carrier, number))
        url = urls.get(str(package.get("packageNumber", "")), "")
        tracking.append(Tracking(carrier=carrier, number=number, url=url))
    return FulfillmentStatus(
        seller_fulfillment_order_id=str(order.get("sellerFulfillmentOrderId", "")),
        status=str(order.get("fulfillmentOrderStatus", "")).strip().lower(),
        tracking=tuple(tracking),
        status_updated_at=parse_time(order.get("statusUpdatedDate")),
        items=item_outcomes(body),
    )


def _count(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def item_outcomes(payload: Mapping[str, Any]) -> tuple[ItemOutcome, ...]:
    """Per item: ordered, shipped (in shipments with status SHIPPED), unfulfillable and cancelled
    quantities. A ``CompletePartialled`` order ships less than it was asked to."""
    body = _unwrap(payload)
    shipped: dict[str, int] = {}
    for shipment in body.get("fulfillmentShipments") or ():
        if not isinstance(shipment, Mapping) or shipment.get("fulfillmentShipmentStatus") != "SHIPPED":
            continue
        for item in shipment.get("fulfillmentShipmentItem") or ():
            if isinstance(item, Mapping):
                key = str(item.get("sellerFulfillmentOrderItemId", ""))
                shipped[key] = shipped.get(key, 0) + _count(item.get("quantity"))
    out = []
    for item in body.get("fulfillmentOrderItems") or ():
        if not isinstance(item, Mapping):
            continue
        key = str(item.get("sellerFulfillmentOrderItemId", ""))
        out.append(ItemOutcome(item_id=key, seller_sku=str(item.get("sellerSku", "")),
                               quantity=_count(item.get("quantity")), shipped=shipped.get(key, 0),
                               unfulfillable=_count(item.get("unfulfillableQuantity")),
                               cancelled=_count(item.get("cancelledQuantity"))))
    return tuple(out)


def ids_from_list(payload: Mapping[str, Any]) -> tuple[list[str], str | None]:
    """Ids and ``nextToken`` (None on the last page) from ``listAllFulfillmentOrders``: the ids of
    orders that shipped or died, or whose status the answer leaves out. Orders still in progress
    are left out — looking each up would find nothing to record."""
    body = _unwrap(payload)
    ids = [
        str(order["sellerFulfillmentOrderId"])
        for order in body.get("fulfillmentOrders") or ()
        if isinstance(order, Mapping) and order.get("sellerFulfillmentOrderId")
        and _may_carry_news(order.get("fulfillmentOrderStatus"))
    ]
    token = body.get("nextToken")
    return ids, (str(token) if token else None)


def _may_carry_news(status: Any) -> bool:
    if not isinstance(status, str) or not status.strip():
        return True
    return status.strip().lower() in SHIPPED_STATUSES | DEAD_STATUSES


def tracking_link_from_package_details(payload: Mapping[str, Any]) -> str:
    """The customer's tracking page for one package.

    ``customerTrackingLink`` when Amazon gives one; otherwise the carrier's ``carrierURL`` (Amazon's
    own example answer has only that), else ""."""
    body = _unwrap(payload)
    for key in ("customerTrackingLink", "carrierURL"):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return ""


def amazon_errors(body: object) -> list[tuple[str, str]]:
    """``(code, message)`` pairs from an SP-API ``{"errors": [...]}`` body; [] when it has none."""
    if not isinstance(body, Mapping):
        return []
    out = []
    for err in body.get("errors") or ():
        if isinstance(err, Mapping):
            out.append((str(err.get("code", "")), str(err.get("message", ""))))
    return out


def is_duplicate_error(code: str, message: str) -> bool:
    """True when a refused create says the sellerFulfillmentOrderId is taken.

    A duplicate *item* id ("Duplicate sellerFulfillmentOrderItemId") is a plain validation error."""
    if re.search(r"item", message, re.IGNORECASE):
        return False
    if code.replace("_", "").lower() in _DUPLICATE_CODES:
        return True
    return bool(_DUPLICATE_TEXT.search(message))


def is_not_found_error(code: str, message: str) -> bool:
    """True when a 400 on getFulfillmentOrder means "no such order" rather than a bad request."""
    return code.lower() == "notfound" or bool(_NOT_FOUND_TEXT.search(message))
