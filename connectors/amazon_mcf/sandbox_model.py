"""The sandbox's fulfillment orders: validation, time-driven life cycle and Amazon-shaped payloads.

Used by ``sandbox.AmazonSandbox`` only. Times are epoch seconds from the sandbox's clock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

SPEEDS = {"Standard", "Expedited", "Priority", "ScheduledDelivery"}
ACTIONS = {"Ship", "Hold"}
POLICIES = {"FillOrKill", "FillAll", "FillAllAvailable"}
CARRIERS = ("UPS", "USPS", "AMZN_US")
# Fractions of ship_after_s at which an order enters each status.
PHASES = (("Received", 0.0), ("Planning", 0.25), ("Processing", 0.5), ("Complete", 1.0))
CANCELLABLE = {"Received", "Planning"}
TRACKING_SITES = {
    "UPS": "https://www.ups.com/track?tracknum={}",
    "USPS": "https://tools.usps.com/go/TrackConfirmAction?tLabels={}",
    "AMZN_US": "https://www.swiship.com/track?id={}",
}
CARRIER_SITES = {"UPS": "https://www.ups.com", "USPS": "https://www.usps.com",
                 "AMZN_US": "https://logistics.amazon.com/"}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(int(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(value: object) -> float | None:
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


class InvalidInput(Exception):
    """A create body the real API would refuse; ``str(exc)`` names the field."""


def _require_str(obj: dict[str, Any], key: str, where: str, max_len: int | None = None) -> None:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"Value for parameter {where}{key} is invalid. Reason: Missing.")
    if max_len is not None and len(value) > max_len:
        raise InvalidInput(f"Value for parameter {where}{key} is invalid. Reason: longer than {max_len}.")


def validate_create(body: object) -> None:
    """The CreateFulfillmentOrderRequest checks of the v2020-07-01 model (required, enums, lengths)."""
    if not isinstance(body, dict):
        raise InvalidInput("Request body must be a JSON object.")
    for key, limit in (("sellerFulfillmentOrderId", 40), ("displayableOrderId", 40),
                       ("displayableOrderComment", 750)):
        _require_str(body, key, "", limit)
    if parse_iso(body.get("displayableOrderDate")) is None:
        raise InvalidInput("Value for parameter displayableOrderDate is invalid. Reason: not an "
                           "ISO 8601 date-time.")
    if body.get("shippingSpeedCategory") not in SPEEDS:
        raise InvalidInput("Value for parameter shippingSpeedCategory is invalid. Reason: InvalidValue.")
    for key, allowed in (("fulfillmentAction", ACTIONS), ("fulfillmentPolicy", POLICIES)):
        if key in body and body[key] not in allowed:
            raise InvalidInput(f"Value for parameter {key} is invalid. Reason: InvalidValue.")
    _validate_address(body.get("destinationAddress"), "destinationAddress")
    _validate_items(body.get("items"))
    _validate_features(body.get("featureConstraints", []))
    emails = body.get("notificationEmails", [])
    if not isinstance(emails, list) or any(not isinstance(e, str) or len(e) > 64 for e in emails):
        raise InvalidInput("Value for parameter notificationEmails is invalid. Reason: InvalidValue.")


def _validate_address(address: object, where: str) -> None:
    if not isinstance(address, dict):
        raise InvalidInput(f"Value for parameter {where} is invalid. Reason: Missing.")
    for key in ("name", "addressLine1", "postalCode", "countryCode"):
        _require_str(address, key, f"{where}.")
    for key, value in address.items():
        if not isinstance(value, str):
            raise InvalidInput(f"Value for parameter {where}.{key} is invalid. Reason: not a string.")


def _validate_items(items: object) -> None:
    if not isinstance(items, list) or not items:
        raise InvalidInput("Value for parameter items is invalid. Reason: Missing.")
    item_ids: set[str] = set()
    for i, item in enumerate(items):
        where = f"items[{i}]."
        if not isinstance(item, dict):
            raise InvalidInput(f"Value for parameter items[{i}] is invalid. Reason: not an object.")
        _require_str(item, "sellerSku", where, 50)
        _require_str(item, "sellerFulfillmentOrderItemId", where, 50)
        qty = item.get("quantity")
        if not isinstance(qty, int) or isinstance(qty, bool) or qty < 1:
            raise InvalidInput(f"Value for parameter {where}quantity is invalid. Reason: InvalidValue.")
        if item["sellerFulfillmentOrderItemId"] in item_ids:
            raise InvalidInput(f"Value for parameter {where}sellerFulfillmentOrderItemId is invalid. "
                               "Reason: Duplicate sellerFulfillmentOrderItemId.")
        item_ids.add(item["sellerFulfillmentOrderItemId"])


def _validate_features(features: object) -> None:
    if not isinstance(features, list) or any(
            not isinstance(f, dict) or f.get("featureFulfillmentPolicy", "Required")
            not in ("Required", "NotRequired") for f in features):
        raise InvalidInput("Value for parameter featureConstraints is invalid. Reason: InvalidValue.")


MAX_PREVIEW_LINES = 100  # "Maximum of 100 line items with a maximum of 250 units per order."
MAX_PREVIEW_UNITS = 250


def validate_preview(body: object) -> None:
    """The GetFulfillmentPreviewRequest checks of the v2020-07-01 model (required, enums, limits)."""
    if not isinstance(body, dict):
        raise InvalidInput("Request body must be a JSON object.")
    _validate_address(body.get("address"), "address")
    _validate_items(body.get("items"))
    items = body["items"]
    if len(items) > MAX_PREVIEW_LINES or sum(i["quantity"] for i in items) > MAX_PREVIEW_UNITS:
        raise InvalidInput(f"Value for parameter items is invalid. Reason: more than {MAX_PREVIEW_LINES} "
                           f"line items or {MAX_PREVIEW_UNITS} units.")
    if "marketplaceId" in body and not isinstance(body["marketplaceId"], str):
        raise InvalidInput("Value for parameter marketplaceId is invalid. Reason: not a string.")
    speeds = body.get("shippingSpeedCategories", [])
    if not isinstance(speeds, list) or any(s not in SPEEDS for s in speeds):
        raise InvalidInput("Value for parameter shippingSpeedCategories is invalid. Reason: InvalidValue.")
    for key in ("includeCODFulfillmentPreview", "includeDeliveryWindows"):
        if key in body and not isinstance(body[key], bool):
            raise InvalidInput(f"Value for parameter {key} is invalid. Reason: not a boolean.")
    _validate_features(body.get("featureConstraints", []))


# Per-unit fee of the cheapest SKU and (ship after, arrive after, arrive by) in days, per speed.
PREVIEW_SPEEDS: dict[str, tuple[Decimal, float, int, int]] = {
    "Standard": (Decimal("5.40"), 1.0, 3, 5),
    "Expedited": (Decimal("7.90"), 0.5, 2, 3),
    "Priority": (Decimal("12.35"), 0.25, 1, 2),
}
CURRENCIES = {"ATVPDKIKX0DER": "USD", "A2EUQ1WTGCTBG2": "CAD", "A1AM78C64UM0Y8": "MXN",
              "A1F83G8C2ARO7P": "GBP", "A1PA6795UKMFR9": "EUR", "A13V1IB3VIYZZH": "EUR",
              "APJ6JRA9NG5V4": "EUR", "A1RKKUPIHCS9HS": "EUR", "A1VC38T7YXB528": "JPY"}


def unit_fee(speed: str, sku: str) -> Decimal:
    """Deterministic per-unit fee: the speed's base plus 0.00-0.99 that depends on the SKU only."""
    extra = int(hashlib.sha256(sku.encode()).hexdigest(), 16) % 100
    return PREVIEW_SPEEDS[speed][0] + Decimal(extra) / 100


def unit_weight(sku: str) -> Decimal:
    grams = 100 + int(hashlib.sha256(f"w:{sku}".encode()).hexdigest(), 16) % 1900
    return (Decimal(grams) / Decimal("453.592")).quantize(Decimal("0.001"))


def preview_payload(body: dict[str, Any], now: float,
                    unfulfillable: Callable[[str, int], str | None]) -> dict[str, Any]:
    """A GetFulfillmentPreviewResult for a validated request.

    ``unfulfillable(sku, quantity)`` is why that many cannot ship (e.g. "InventoryUnavailable"), or None.
    One preview per requested speed (Standard, Expedited and Priority when none is named);
    ScheduledDelivery is JP-only and answers ``DeliverySLAUnavailable``. Fees and the shipment
    cover the fulfillable items only."""
    marketplace = body.get("marketplaceId") or "ATVPDKIKX0DER"
    currency = CURRENCIES.get(marketplace, "USD")
    speeds = list(dict.fromkeys(body.get("shippingSpeedCategories") or PREVIEW_SPEEDS))
    features = [{"featureName": str(f.get("featureName", "")),
                 "featureFulfillmentPolicy": f.get("featureFulfillmentPolicy", "Required")}
                for f in body.get("featureConstraints", [])]
    bad: list[dict[str, Any]] = []
    good: list[dict[str, Any]] = []
    for item in body["items"]:
        reason = unfulfillable(item["sellerSku"], int(item["quantity"]))
        ident = {k: item[k] for k in ("sellerSku", "sellerFulfillmentOrderItemId", "quantity")}
        if reason:
            bad.append({**ident, "itemUnfulfillableReasons": [reason]})
        else:
            good.append(ident)
    previews = []
    for speed in speeds:
        preview: dict[str, Any] = {"shippingSpeedCategory": speed, "isCODCapable": False,
                                   "marketplaceId": marketplace, "featureConstraints": features,
                                   "unfulfillablePreviewItems": bad}
        if speed not in PREVIEW_SPEEDS:
            preview.update(isFulfillable=False, orderUnfulfillableReasons=["DeliverySLAUnavailable"],
                           unfulfillablePreviewItems=[], fulfillmentPreviewShipments=[],
                           estimatedFees=[])
            previews.append(preview)
            continue
        _, ship_days, first_day, last_day = PREVIEW_SPEEDS[speed]
        weight = sum((unit_weight(i["sellerSku"]) * i["quantity"] for i in good), Decimal("0"))
        fee = sum((unit_fee(speed, i["sellerSku"]) * i["quantity"] for i in good), Decimal("0"))
        ship = now + ship_days * 86400
        preview.update(
            isFulfillable=not bad,
            orderUnfulfillableReasons=[],
            estimatedShippingWeight={"unit": "POUNDS", "value": str(weight)},
            estimatedFees=[{"name": "FBAPerUnitFulfillmentFee",
                            "amount": {"currencyCode": currency, "value": str(fee)}}] if good else [],
            fulfillmentPreviewShipments=[{
                "earliestShipDate": iso(now), "latestShipDate": iso(ship),
                "earliestArrivalDate": iso(ship + first_day * 86400),
                "latestArrivalDate": iso(ship + last_day * 86400),
                "fulfillmentPreviewItems": [{
                    **i, "estimatedShippingWeight": {"unit": "POUNDS",
                                                     "value": str(unit_weight(i["sellerSku"]))},
                    "shippingWeightCalculationMethod": "Package"} for i in good],
            }] if good else [],
        )
        previews.append(preview)
    return {"fulfillmentPreviews": previews}


def _digits(seed: str, n: int) -> str:
    out = ""
    counter = 0
    while len(out) < n:
        out += str(int(hashlib.sha256(f"{seed}:{counter}".encode()).hexdigest(), 16))
        counter += 1
    return out[:n]


def tracking_number(carrier: str, seed: str) -> str:
    """Realistic shapes: UPS 1Z + 16, USPS 22 digits (9400...), Amazon Logistics TBA + 12 digits."""
    if carrier == "UPS":
        alnum = hashlib.sha256(seed.encode()).hexdigest().upper()[:6]
        return f"1Z{alnum}03{_digits(seed, 8)}"
    if carrier == "USPS":
        return "9400" + _digits(seed, 18)
    return "TBA" + _digits(seed, 12)


@dataclass
class SandboxOrder:
    request: dict[str, Any]
    created_at: float
    seq: int
    ship_after_s: float
    shipped_at: float | None = None  # set by ship_now; otherwise created_at + ship_after_s
    cancelled_at: float | None = None
    short: dict[str, int] = field(default_factory=dict)  # item id -> quantity Amazon could not ship
    package_number: int = 0
    carrier: str = ""
    tracking: str = ""

    def __post_init__(self) -> None:
        self.package_number = 100_000_000 + self.seq
        self.carrier = CARRIERS[(self.seq - 1) % len(CARRIERS)]
        self.tracking = tracking_number(self.carrier, self.request["sellerFulfillmentOrderId"])

    @property
    def id(self) -> str:
        return str(self.request["sellerFulfillmentOrderId"])

    def status_at(self, now: float) -> tuple[str, float]:
        """(status, statusUpdated) at ``now``, from the creation time and the overrides."""
        if self.cancelled_at is not None and self.cancelled_at <= now:
            return "Cancelled", self.cancelled_at
        complete_at = self.shipped_at if self.shipped_at is not None else (
            self.created_at + self.ship_after_s)
        if complete_at <= now:
            return ("CompletePartialled" if self.short else "Complete"), complete_at
        current = ("Received", self.created_at)
        for name, fraction in PHASES[1:-1]:
            start = self.created_at + fraction * self.ship_after_s
            if start <= now and start < complete_at:
                current = (name, start)
        return current

    def order_json(self, now: float) -> dict[str, Any]:
        status, updated = self.status_at(now)
        req = self.request
        out: dict[str, Any] = {k: req[k] for k in (
            "sellerFulfillmentOrderId", "marketplaceId", "displayableOrderId", "displayableOrderDate",
            "displayableOrderComment", "shippingSpeedCategory", "destinationAddress",
            "fulfillmentAction", "fulfillmentPolicy", "notificationEmails", "featureConstraints",
        ) if k in req}
        out.setdefault("marketplaceId", "ATVPDKIKX0DER")
        out.setdefault("fulfillmentAction", "Ship")
        out.setdefault("fulfillmentPolicy", "FillOrKill")
        out.update({"receivedDate": iso(self.created_at), "fulfillmentOrderStatus": status,
                    "statusUpdatedDate": iso(updated)})
        return out

    def payload(self, now: float) -> dict[str, Any]:
        status, updated = self.status_at(now)
        cancelled = status == "Cancelled"
        items = [{
            "sellerSku": i["sellerSku"], "sellerFulfillmentOrderItemId": i["sellerFulfillmentOrderItemId"],
            "quantity": i["quantity"], "cancelledQuantity": i["quantity"] if cancelled else 0,
            "unfulfillableQuantity": self.short.get(i["sellerFulfillmentOrderItemId"], 0),
        } for i in self.request["items"]]
        shipped = [(i, i["quantity"] - self.short.get(i["sellerFulfillmentOrderItemId"], 0))
                   for i in self.request["items"]]
        shipments = []
        if status in ("Complete", "CompletePartialled"):
            shipments.append({
                "amazonShipmentId": hashlib.sha256(self.id.encode()).hexdigest()[:33],
                "fulfillmentCenterId": "PHX3",
                "fulfillmentShipmentStatus": "SHIPPED",
                "shippingDate": iso(updated),
                "estimatedArrivalDate": iso(updated + 3 * 86400),
                "fulfillmentShipmentItem": [{
                    "sellerSku": i["sellerSku"],
                    "sellerFulfillmentOrderItemId": i["sellerFulfillmentOrderItemId"],
                    "quantity": qty, "packageNumber": self.package_number,
                } for i, qty in shipped if qty > 0],
                "fulfillmentShipmentPackage": [{
                    "packageNumber": self.package_number, "carrierCode": self.carrier,
                    "trackingNumber": self.tracking, "estimatedArrivalDate": iso(updated + 3 * 86400),
                }],
            })
        return {"fulfillmentOrder": self.order_json(now), "fulfillmentOrderItems": items,
                "fulfillmentShipments": shipments, "returnItems": [], "returnAuthorizations": []}

    def tracking_payload(self, now: float) -> dict[str, Any]:
        _, shipped = self.status_at(now)
        address = self.request["destinationAddress"]
        delivered = now >= shipped + 2.0
        return {
            "packageNumber": self.package_number,
            "trackingNumber": self.tracking,
            "customerTrackingLink": TRACKING_SITES[self.carrier].format(self.tracking),
            "carrierCode": self.carrier,
            "carrierPhoneNumber": "1-877-250-0485",
            "carrierURL": CARRIER_SITES[self.carrier],
            "shipDate": iso(shipped),
            "estimatedArrivalDate": iso(shipped + 3 * 86400),
            "shipToAddress": {"city": address.get("city", ""), "state": address.get("stateOrRegion", ""),
                              "country": address.get("countryCode", "")},
            "currentStatus": "DELIVERED" if delivered else "IN_TRANSIT",
            "trackingEvents": [{
                "eventDate": iso(shipped), "eventCode": "EVENT_101",
                "eventAddress": {"city": "Phoenix", "state": "AZ", "country": "US"},
                "eventDescription": "Carrier notified to pick up package.",
            }],
        }
