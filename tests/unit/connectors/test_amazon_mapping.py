"""Pure mapping against Amazon's own example answers (specs/amazon/fixtures)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from connectors.amazon_mcf import mapping
from worker.domain import Address, FulfillmentItem, FulfillmentRequest


def _fixture(specs_dir: Path, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((specs_dir / "amazon" / "fixtures" / name).read_text())
    return data


def test_every_fixture_is_json_and_parses(specs_dir: Path) -> None:
    files = sorted((specs_dir / "amazon" / "fixtures").glob("*.json"))
    assert len(files) >= 7
    for path in files:
        body = json.loads(path.read_text())
        # Every parser accepts every answer without crashing (unknown fields are ignored).
        mapping.status_from_get(body)
        mapping.ids_from_list(body)
        mapping.tracking_link_from_package_details(body)
        mapping.amazon_package_numbers(body)


def test_get_fulfillment_order_complete(specs_dir: Path) -> None:
    body = _fixture(specs_dir, "mcf-v1-getFulfillmentOrder.json")
    status = mapping.status_from_get(body)
    assert status.seller_fulfillment_order_id == "SidOMSTestOrder_MCF_11"
    assert status.status == "complete"
    assert status.is_shipped and not status.is_dead
    assert [(t.carrier, t.number, t.url) for t in status.tracking] == [
        ("Amazon Logistics", "cf28ebcb-be19-4f4c-b7d4-99486bd2ad6c", "")]
    assert status.status_updated_at == datetime(2026, 3, 30, 17, 54, 9, tzinfo=UTC)
    # Amazon Logistics packages get their link from getPackageTrackingDetails.
    assert mapping.amazon_package_numbers(body) == [543939833]
    linked = mapping.status_from_get(body["payload"], {"543939833": "https://track.example/x"})
    assert linked.tracking[0].url == "https://track.example/x"


def test_get_fulfillment_order_cancelled(specs_dir: Path) -> None:
    status = mapping.status_from_get(_fixture(specs_dir, "mcf-v1-getFulfillmentOrder-cancelled.json"))
    assert status.status == "cancelled"
    assert status.tracking == ()
    assert status.is_dead and not status.is_shipped


def test_package_tracking_details_link(specs_dir: Path) -> None:
    body = _fixture(specs_dir, "mcf-v1-getPackageTrackingDetails.json")
    # Amazon's example has no customerTrackingLink: fall back to the carrier's page.
    assert mapping.tracking_link_from_package_details(body) == "https://logistics.amazon.com/"
    body["payload"]["customerTrackingLink"] = "https://www.swiship.com/track?id=TBA1"
    assert mapping.tracking_link_from_package_details(body) == "https://www.swiship.com/track?id=TBA1"
    assert mapping.tracking_link_from_package_details({"payload": {"packageNumber": 1}}) == ""


def test_preview_fixture_is_not_an_order(specs_dir: Path) -> None:
    status = mapping.status_from_get(_fixture(specs_dir, "mcf-v1-getFulfillmentPreview.json"))
    assert status.status == "" and status.tracking == ()


def test_cancelled_shipments_and_packages_without_number_are_skipped() -> None:
    payload = {
        "fulfillmentOrder": {"sellerFulfillmentOrderId": "A-1-1",
                             "fulfillmentOrderStatus": "COMPLETEPARTIALLED"},
        "fulfillmentShipments": [
            {"fulfillmentShipmentStatus": "CANCELLED_BY_FULFILLER",
             "fulfillmentShipmentPackage": [
                 {"packageNumber": 1, "carrierCode": "UPS", "trackingNumber": "1ZX"}]},
            {"fulfillmentShipmentStatus": "SHIPPED",
             "fulfillmentShipmentPackage": [
                 {"packageNumber": 2, "carrierCode": "USPS", "trackingNumber": "9400111"},
                 {"packageNumber": 3, "carrierCode": "AMZN_US"},
                 {"packageNumber": 4, "carrierCode": "AMZN_US", "trackingNumber": "TBA123"}]},
            {"fulfillmentShipmentStatus": "PENDING"},
        ],
    }
    status = mapping.status_from_get(payload, {"4": "https://www.swiship.com/track?id=TBA123"})
    assert status.status == "completepartialled" and status.is_shipped
    assert [(t.carrier, t.number, t.url) for t in status.tracking] == [
        ("USPS", "9400111", ""), ("AMZN_US", "TBA123", "https://www.swiship.com/track?id=TBA123")]
    assert mapping.amazon_package_numbers(payload) == [4]


def test_item_outcomes_of_a_partially_shipped_order() -> None:
    payload = {"payload": {
        "fulfillmentOrder": {"sellerFulfillmentOrderId": "A-7-1",
                             "fulfillmentOrderStatus": "CompletePartialled"},
        "fulfillmentOrderItems": [
            {"sellerSku": "AMZ-MUG", "sellerFulfillmentOrderItemId": "11", "quantity": 3,
             "unfulfillableQuantity": 1, "cancelledQuantity": 0},
            {"sellerSku": "AMZ-TEE", "sellerFulfillmentOrderItemId": "12", "quantity": 1,
             "unfulfillableQuantity": 1, "cancelledQuantity": 0},
            "not an item",
        ],
        "fulfillmentShipments": [
            {"fulfillmentShipmentStatus": "SHIPPED",
             "fulfillmentShipmentItem": [{"sellerSku": "AMZ-MUG", "sellerFulfillmentOrderItemId": "11",
                                          "quantity": 1, "packageNumber": 1}],
             "fulfillmentShipmentPackage": [{"packageNumber": 1, "carrierCode": "UPS",
                                             "trackingNumber": "1Z1"}]},
            {"fulfillmentShipmentStatus": "SHIPPED",
             "fulfillmentShipmentItem": [{"sellerSku": "AMZ-MUG", "sellerFulfillmentOrderItemId": "11",
                                          "quantity": 1, "packageNumber": 2}]},
            {"fulfillmentShipmentStatus": "CANCELLED_BY_FULFILLER",
             "fulfillmentShipmentItem": [{"sellerSku": "AMZ-TEE", "sellerFulfillmentOrderItemId": "12",
                                          "quantity": 1, "packageNumber": 3}]},
        ],
    }}
    status = mapping.status_from_get(payload)
    assert [(i.item_id, i.seller_sku, i.quantity, i.shipped, i.unfulfillable) for i in status.items] == [
        ("11", "AMZ-MUG", 3, 2, 1), ("12", "AMZ-TEE", 1, 0, 1)]
    assert status.is_shipped and status.partial
    # Without item detail in the packages, or when Amazon says Complete, nothing is split off.
    for shipment in payload["payload"]["fulfillmentShipments"]:
        shipment.pop("fulfillmentShipmentItem")
    assert not mapping.status_from_get(payload).partial
    complete = {"payload": {**payload["payload"], "fulfillmentOrder": {
        "sellerFulfillmentOrderId": "A-7-1", "fulfillmentOrderStatus": "Complete"}}}
    assert not mapping.status_from_get(complete).partial


def test_complete_order_is_not_partial(specs_dir: Path) -> None:
    status = mapping.status_from_get(_fixture(specs_dir, "mcf-v1-getFulfillmentOrder.json"))
    assert status.items and all(i.shipped == i.quantity for i in status.items)
    assert not status.partial


def test_ids_from_list_pages() -> None:
    body = {"payload": {"nextToken": "abc", "fulfillmentOrders": [
        {"sellerFulfillmentOrderId": "A-1-1", "extra": 1}, {"sellerFulfillmentOrderId": "A-2-1"}, {}]}}
    assert mapping.ids_from_list(body) == (["A-1-1", "A-2-1"], "abc")
    assert mapping.ids_from_list({"payload": {"fulfillmentOrders": []}}) == ([], None)


def _request(**kw: Any) -> FulfillmentRequest:
    base: dict[str, Any] = dict(
        seller_fulfillment_order_id="ACME-5001-1", displayable_order_id="1001",
        displayable_order_date=datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=timezone(timedelta(hours=-6))),
        displayable_comment="Thank you for your order", speed="Standard",
        address=Address(name="Jo Doe", address1="1 Main St", city="Austin", region="TX",
                        postal_code="78701", country="us"),
        items=(FulfillmentItem("AMZ-TEE", "111", 2),))
    base.update(kw)
    return FulfillmentRequest(**base)


def test_create_body_minimal() -> None:
    body = mapping.create_request_body(_request(), "ATVPDKIKX0DER")
    assert body == {
        "marketplaceId": "ATVPDKIKX0DER",
        "sellerFulfillmentOrderId": "ACME-5001-1",
        "displayableOrderId": "1001",
        "displayableOrderDate": "2026-01-02T09:04:05Z",
        "displayableOrderComment": "Thank you for your order",
        "shippingSpeedCategory": "Standard",
        "destinationAddress": {"name": "Jo Doe", "addressLine1": "1 Main St", "city": "Austin",
                               "stateOrRegion": "TX", "postalCode": "78701", "countryCode": "US"},
        "fulfillmentAction": "Ship",
        "fulfillmentPolicy": "FillOrKill",
        "items": [{"sellerSku": "AMZ-TEE", "sellerFulfillmentOrderItemId": "111", "quantity": 2}],
    }


def test_create_body_with_everything() -> None:
    req = _request(features=("BLOCK_AMZL", "BLANK_BOX"), notification_emails=("jo@example.com",),
                   address=Address(name="Jo", address1="1 Main", address2="Apt 2", city="X", region="CA",
                                   postal_code="90001", country="US", phone="5125550100"))
    body = mapping.create_request_body(req, "ATVPDKIKX0DER")
    assert body["destinationAddress"]["addressLine2"] == "Apt 2"
    assert body["destinationAddress"]["phone"] == "5125550100"
    assert body["featureConstraints"] == [
        {"featureName": "BLOCK_AMZL", "featureFulfillmentPolicy": "Required"},
        {"featureName": "BLANK_BOX", "featureFulfillmentPolicy": "Required"}]
    assert body["notificationEmails"] == ["jo@example.com"]


@pytest.mark.parametrize(("code", "message", "expected"), [
    ("InvalidInput", "Value ACME-1-1 for parameter SellerFulfillmentOrderId is invalid. Reason: Duplicate.",
     True),
    ("InvalidInput", "A fulfillment order with this SellerFulfillmentOrderId already exists", True),
    ("DuplicateRequest", "", True),
    ("InvalidInput", "Value for parameter items[1].sellerFulfillmentOrderItemId is invalid. "
     "Reason: Duplicate sellerFulfillmentOrderItemId.", False),
    ("InvalidInput", "the SellerSKU for Item Id: x-0 is invalid.", False),
])
def test_duplicate_detection(code: str, message: str, expected: bool) -> None:
    assert mapping.is_duplicate_error(code, message) is expected


def test_iso_z_and_naive_times() -> None:
    assert mapping.iso_z(datetime(2026, 5, 1, 12, 0, 0, 999999)) == "2026-05-01T12:00:00Z"
    assert mapping.parse_time("2026-05-01T12:00:00.5+02:00") == datetime(2026, 5, 1, 10, 0, 0, 500000,
                                                                         tzinfo=UTC)
    assert mapping.parse_time("yesterday") is None
