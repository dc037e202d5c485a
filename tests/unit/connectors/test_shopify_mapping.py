from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.shopify.errors import ShopifyAlreadyFulfilled, ShopifyNotReady, ShopifyPayloadError
from connectors.shopify.mapping import (
    SHOPIFY_COMPANIES,
    FulfillmentOrderLine,
    FulfillmentOrderState,
    FulfillmentTracking,
    allocate,
    existing_tracking,
    fulfillment_input,
    fulfillment_order_from_graphql,
    fulfillment_order_lines,
    fulfillment_orders_from_graphql,
    fulfillment_tracking,
    fulfillments_from_graphql,
    gid_to_id,
    next_cursor,
    order_from_graphql,
    order_from_rest,
    orders_search_query,
    tracking_company,
)
from worker.domain import Address, Tracking
from worker.errors import PermanentError, TransientError


def _example(specs_dir: Path, name: str) -> dict[str, Any]:
    return json.loads((specs_dir / "shopify" / "examples" / name).read_text())


def test_new_paid_unfulfilled_example(specs_dir: Path) -> None:
    order = order_from_rest(_example(specs_dir, "rest-order-2026-01-new-paid-unfulfilled.json"))
    assert order.platform_order_id == "1073459976"
    assert order.number == "1002"
    assert order.financial_status == "PAID"
    assert not order.fulfilled and not order.cancelled
    assert order.created_at == datetime(2025, 4, 2, 16, 31, 26, tzinfo=UTC)
    assert order.updated_at == datetime(2025, 4, 2, 16, 31, 26, tzinfo=UTC)
    assert order.address is None and order.shipping_title == ""
    assert order.currency == "EUR" and order.total == Decimal("238.47")
    assert order.tags == () and order.email == ""
    [line] = order.lines
    assert (line.line_id, line.sku, line.quantity) == ("1071823188", "", 3)
    assert line.title == "Big Brown Bear Boots" and line.unit_price == Decimal("74.99")


def test_full_docs_order_example(specs_dir: Path) -> None:
    order = order_from_rest(_example(specs_dir, "rest-order-2026-01-450789469-full.json"))
    assert order.platform_order_id == "450789469"
    assert order.number == "1001"
    assert order.financial_status == "PARTIALLY_REFUNDED"
    assert not order.fulfilled and not order.cancelled
    assert order.created_at == datetime(2008, 1, 10, 16, 0, tzinfo=UTC)
    assert order.email == "bob.norman@mail.example.com"
    assert order.shipping_title == "Free Shipping"
    assert order.currency == "USD" and order.total == Decimal("598.94")
    assert order.address == Address(name="Bob Norman", address1="Chestnut Street 92", address2="",
                                    city="Louisville", region="KY", postal_code="40202", country="US",
                                    phone="+1(502)-459-2181", company="")
    # Two of the three lines were refunded (current_quantity 0): nothing of them is left to ship.
    assert [(ln.line_id, ln.sku, ln.quantity) for ln in order.lines] == [("518995019", "IPOD2008RED", 1)]


def test_rest_details(specs_dir: Path) -> None:
    payload = _example(specs_dir, "rest-order-2026-01-450789469-full.json")
    payload.update(id=820982911946154508, tags="vip, wholesale ,,gift", fulfillment_status="fulfilled",
                   cancelled_at="2026-01-05T10:00:00-05:00")
    for item in payload["line_items"]:
        item.pop("current_quantity")
    order = order_from_rest(payload)
    assert order.platform_order_id == "820982911946154508"  # beyond 2**53, kept exact
    assert order.tags == ("vip", "wholesale", "gift")
    assert order.fulfilled and order.cancelled
    assert [ln.quantity for ln in order.lines] == [1, 1, 1]  # no current_quantity: quantity


def test_rest_without_id_is_refused() -> None:
    with pytest.raises(ShopifyPayloadError, match="no id"):
        order_from_rest({"name": "#1", "created_at": "2026-01-01T00:00:00Z"})
    assert issubclass(ShopifyPayloadError, PermanentError)


GRAPHQL_NODE: dict[str, Any] = {
    "id": "gid://shopify/Order/820982911946154508",
    "name": "#1042",
    "email": "jane@example.com",
    "createdAt": "2026-01-02T03:04:05Z",
    "updatedAt": "2026-01-02T04:00:00Z",
    "cancelledAt": None,
    "displayFinancialStatus": "PARTIALLY_REFUNDED",
    "displayFulfillmentStatus": "UNFULFILLED",
    "tags": ["vip", " rush "],
    "shippingAddress": {"name": "Jane Doe", "address1": "1 Main St", "address2": "Apt 2", "city": "Austin",
                        "provinceCode": "TX", "zip": "78701", "countryCodeV2": "US",
                        "phone": "+15125550100", "company": None},
    "shippingLine": {"title": "Express"},
    "totalPriceSet": {"shopMoney": {"amount": "42.50", "currencyCode": "USD"}},
    "lineItems": {"pageInfo": {"hasNextPage": False}, "nodes": [
        {"id": "gid://shopify/LineItem/11", "sku": "TEE-RED-M", "title": "Tee", "quantity": 2,
         "currentQuantity": 1, "originalUnitPriceSet": {"shopMoney": {"amount": "20.00"}}},
        {"id": "gid://shopify/LineItem/12", "sku": None, "title": "Gone", "quantity": 1,
         "currentQuantity": 0},
    ]},
}


def test_order_from_graphql() -> None:
    order = order_from_graphql(GRAPHQL_NODE)
    assert order.platform_order_id == "820982911946154508"
    assert order.number == "1042"
    assert order.financial_status == "PARTIALLY_REFUNDED"
    assert not order.fulfilled and not order.cancelled
    assert order.created_at == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert order.address is not None and order.address.region == "TX" and order.address.country == "US"
    assert order.address.company == "" and order.address.address2 == "Apt 2"
    assert order.shipping_title == "Express" and order.tags == ("vip", "rush")
    assert (order.currency, order.total) == ("USD", Decimal("42.50"))
    [line] = order.lines
    assert (line.line_id, line.sku, line.quantity) == ("11", "TEE-RED-M", 1)
    assert line.unit_price == Decimal("20.00")


def test_graphql_fulfilled_and_cancelled() -> None:
    node = {**GRAPHQL_NODE, "displayFulfillmentStatus": "FULFILLED", "cancelledAt": "2026-01-03T00:00:00Z",
            "shippingAddress": None, "shippingLine": None, "displayFinancialStatus": None}
    order = order_from_graphql(node)
    assert order.fulfilled and order.cancelled
    assert order.address is None and order.shipping_title == "" and order.financial_status == ""


def test_gid_to_id() -> None:
    assert gid_to_id("gid://shopify/Order/123") == "123"
    assert gid_to_id("gid://shopify/LineItem/9?x=1") == "9"
    assert gid_to_id("77") == "77"
    with pytest.raises(ShopifyPayloadError):
        gid_to_id("gid://shopify/Order/abc")


def test_orders_search_query() -> None:
    since = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    # No status filter: the poll must see cancelled and refunded orders too.
    assert orders_search_query(since) == "updated_at:>='2026-01-02T03:04:05Z'"


@pytest.mark.parametrize(("carrier", "company"), [
    ("UPS", "UPS"), ("USPS", "USPS"), ("FEDEX", "FedEx"), ("DHL", "DHL Express"), ("fedex", "FedEx"),
    ("AMZN_US", "Amazon"), ("amzn_uk", "Amazon"), ("CANADA_POST", "Canada Post"),
    ("royal mail", "Royal Mail"), ("ontrac", "OnTrac"), ("LaserShip", "Lasership"),
    ("dhl express", "DHL Express"), ("PUROLATOR", "Purolator"),
])
def test_tracking_company_known(carrier: str, company: str) -> None:
    assert tracking_company(carrier) == company


@pytest.mark.parametrize("carrier", ["ACME_FREIGHT", "", "  ", "Bob's Trucks"])
def test_tracking_company_unknown(carrier: str) -> None:
    assert tracking_company(carrier) is None


@given(st.sampled_from(SHOPIFY_COMPANIES), st.randoms())
def test_tracking_company_ignores_case(name: str, rnd: Any) -> None:
    scrambled = "".join(c.upper() if rnd.random() < 0.5 else c.lower() for c in name)
    assert tracking_company(scrambled) == name


def _fo(n: int, status: str, *lines: tuple[str, int]) -> FulfillmentOrderState:
    return FulfillmentOrderState(
        id=f"gid://shopify/FulfillmentOrder/{n}", status=status,
        lines=tuple(FulfillmentOrderLine(id=f"gid://shopify/FulfillmentOrderLineItem/{n}{i}", line_id=lid,
                                         sku=f"SKU{lid}", remaining=rem)
                    for i, (lid, rem) in enumerate(lines)))


def test_allocate_skips_on_hold_and_respects_remaining() -> None:
    fos = [_fo(1, "ON_HOLD", ("11", 5)), _fo(2, "OPEN", ("11", 2), ("12", 1))]
    assert allocate(fos, [("11", 2)]) == [
        {"fulfillmentOrderId": "gid://shopify/FulfillmentOrder/2",
         "fulfillmentOrderLineItems": [{"id": "gid://shopify/FulfillmentOrderLineItem/20", "quantity": 2}]}]


def test_allocate_splits_over_two_fulfillment_orders() -> None:
    fos = [_fo(1, "IN_PROGRESS", ("11", 1)), _fo(2, "OPEN", ("11", 4), ("12", 1)),
           _fo(3, "CLOSED", ("11", 9))]
    result = allocate(fos, [("11", 3), ("12", 1)])
    assert result == [
        {"fulfillmentOrderId": "gid://shopify/FulfillmentOrder/1",
         "fulfillmentOrderLineItems": [{"id": "gid://shopify/FulfillmentOrderLineItem/10", "quantity": 1}]},
        {"fulfillmentOrderId": "gid://shopify/FulfillmentOrder/2",
         "fulfillmentOrderLineItems": [{"id": "gid://shopify/FulfillmentOrderLineItem/20", "quantity": 2},
                                       {"id": "gid://shopify/FulfillmentOrderLineItem/21", "quantity": 1}]},
    ]


@pytest.mark.parametrize("fos", [[], [_fo(1, "ON_HOLD", ("11", 1))], [_fo(1, "SCHEDULED", ("11", 1))],
                                 [_fo(1, "CLOSED", ("11", 0)), _fo(2, "ON_HOLD", ("11", 1))]])
def test_allocate_not_ready(fos: list[FulfillmentOrderState]) -> None:
    with pytest.raises(ShopifyNotReady, match="not ready yet"):
        allocate(fos, [("11", 1)])
    assert issubclass(ShopifyNotReady, TransientError)


@pytest.mark.parametrize("status", ["CLOSED", "CANCELLED", "INCOMPLETE"])
def test_allocate_nothing_remaining_is_permanent(status: str) -> None:
    with pytest.raises(ShopifyAlreadyFulfilled, match="line 11: only 1 of 2"):
        allocate([_fo(1, "OPEN", ("11", 1)), _fo(2, status, ("11", 5))], [("11", 2)])


@given(st.lists(st.tuples(st.sampled_from(["OPEN", "IN_PROGRESS", "CLOSED", "ON_HOLD"]),
                          st.lists(st.tuples(st.sampled_from(["1", "2", "3"]), st.integers(0, 4)),
                                   max_size=3)), min_size=1, max_size=4),
       st.dictionaries(st.sampled_from(["1", "2", "3"]), st.integers(1, 6), min_size=1))
def test_allocate_property(raw: list[tuple[str, list[tuple[str, int]]]], wanted: dict[str, int]) -> None:
    fos = [_fo(n, status, *lines) for n, (status, lines) in enumerate(raw)]
    remaining = {li.id: li.remaining for fo in fos for li in fo.lines}
    open_ids = {fo.id for fo in fos if fo.status in ("OPEN", "IN_PROGRESS")}
    try:
        result = allocate(fos, list(wanted.items()))
    except (ShopifyNotReady, ShopifyAlreadyFulfilled):
        available = {lid: sum(li.remaining for fo in fos if fo.id in open_ids for li in fo.lines
                              if li.line_id == lid) for lid in wanted}
        assert any(available[lid] < qty for lid, qty in wanted.items())
        return
    got: dict[str, int] = {}
    line_of = {li.id: li.line_id for fo in fos for li in fo.lines}
    for group in result:
        assert group["fulfillmentOrderId"] in open_ids
        for item in group["fulfillmentOrderLineItems"]:
            assert 0 < item["quantity"] <= remaining[item["id"]]
            got[line_of[item["id"]]] = got.get(line_of[item["id"]], 0) + item["quantity"]
    assert got == wanted


def test_fulfillment_state_parsing() -> None:
    order = {
        "fulfillmentOrders": {"nodes": [{"id": "gid://shopify/FulfillmentOrder/5", "status": "OPEN",
                                         "lineItems": {"nodes": [{"id": "gid://shopify/FulfillmentOrderLineItem/6",
                                                                  "remainingQuantity": 2,
                                                                  "lineItem": {"id": "gid://shopify/LineItem/7",
                                                                               "sku": "A"}}]}}]},
        "fulfillments": [
            {"id": "gid://shopify/Fulfillment/8", "status": "SUCCESS",
             "trackingInfo": [{"number": "1z 999", "company": "UPS", "url": None}]},
            {"id": "gid://shopify/Fulfillment/9", "status": "CANCELLED",
             "trackingInfo": [{"number": "OLD1", "company": "UPS", "url": None}]},
        ],
    }
    [fo] = fulfillment_orders_from_graphql(order)
    assert fo.status == "OPEN" and fo.lines[0].line_id == "7" and fo.lines[0].remaining == 2
    assert fo.lines_after is None  # no pageInfo: nothing more to read
    fulfillments = fulfillments_from_graphql(order["fulfillments"], first=3)
    assert existing_tracking(fulfillments) == {"1Z999": "8"}  # cancelled fulfillments do not count


@pytest.mark.parametrize(("page_info", "expected"), [
    (None, None),
    ({"hasNextPage": False, "endCursor": "c1"}, None),
    ({"hasNextPage": True, "endCursor": "c1"}, "c1"),
])
def test_next_cursor(page_info: dict[str, Any] | None, expected: str | None) -> None:
    assert next_cursor({"pageInfo": page_info, "nodes": []}, "x") == expected
    assert next_cursor(None, "x") is None


def test_next_cursor_without_end_cursor_is_refused() -> None:
    with pytest.raises(ShopifyPayloadError, match="order 1: lines: hasNextPage without an endCursor"):
        next_cursor({"pageInfo": {"hasNextPage": True, "endCursor": None}}, "order 1: lines")


def _fo_line(n: int) -> dict[str, Any]:
    return {"id": f"gid://shopify/FulfillmentOrderLineItem/{n}", "remainingQuantity": 1,
            "lineItem": {"id": f"gid://shopify/LineItem/{n + 100}", "sku": f"S{n}"}}


def test_fulfillment_order_with_more_lines_keeps_the_cursor() -> None:
    node = {"id": "gid://shopify/FulfillmentOrder/5", "status": "open", "lineItems": {
        "pageInfo": {"hasNextPage": True, "endCursor": "li-2"}, "nodes": [_fo_line(1), _fo_line(2)]}}
    fo = fulfillment_order_from_graphql(node)
    assert fo.status == "OPEN" and fo.lines_after == "li-2"
    assert [li.line_id for li in fo.lines] == ["101", "102"]
    more = fulfillment_order_lines({"pageInfo": {"hasNextPage": False}, "nodes": [_fo_line(3)]})
    assert [(li.id, li.sku) for li in more] == [("gid://shopify/FulfillmentOrderLineItem/3", "S3")]
    with pytest.raises(ShopifyPayloadError, match="read only in part"):
        allocate([fo], [("101", 1)])  # never spread lines over a half-read fulfillment order


def _ful(n: int, count: int, status: str = "SUCCESS") -> dict[str, Any]:
    return {"id": f"gid://shopify/Fulfillment/{n}", "status": status,
            "trackingInfo": [{"number": f"t {n}-{i}", "company": "UPS", "url": None} for i in range(count)]}


def test_fulfillment_tracking_marks_a_full_list_as_maybe_cut() -> None:
    assert fulfillment_tracking(_ful(1, 2), first=3).complete
    cut = fulfillment_tracking(_ful(1, 3), first=3)
    assert not cut.complete and cut.live and cut.numbers == ("T1-0", "T1-1", "T1-2")
    assert not fulfillment_tracking(_ful(2, 0, status="cancelled"), first=3).live
    with pytest.raises(ShopifyPayloadError, match="fulfillment has no id"):
        fulfillment_tracking({"status": "SUCCESS"}, first=3)


def test_fulfillments_from_a_list_or_a_connection() -> None:
    listed = fulfillments_from_graphql([_ful(1, 1)], first=5)
    paged = fulfillments_from_graphql({"pageInfo": {"hasNextPage": False}, "nodes": [_ful(1, 1)]}, first=5)
    assert listed == paged and [f.id for f in listed] == ["gid://shopify/Fulfillment/1"]
    assert fulfillments_from_graphql(None, first=5) == []


def test_existing_tracking_first_fulfillment_wins() -> None:
    def ful(n: int, live: bool, *numbers: str) -> FulfillmentTracking:
        return FulfillmentTracking(id=f"gid://shopify/Fulfillment/{n}", live=live, numbers=numbers,
                                   complete=True)

    assert existing_tracking([ful(7, True, "A"), ful(8, True, "A", "B"), ful(9, False, "C")]) == {
        "A": "7", "B": "8"}


def test_fulfillment_input_known_and_unknown_carrier() -> None:
    alloc = [{"fulfillmentOrderId": "gid://shopify/FulfillmentOrder/1", "fulfillmentOrderLineItems": []}]
    known = fulfillment_input(alloc, [Tracking("FEDEX", "7712")], notify_customer=False)
    assert known == {"lineItemsByFulfillmentOrder": alloc, "notifyCustomer": False,
                     "trackingInfo": {"company": "FedEx", "numbers": ["7712"]}}
    amazon = fulfillment_input(alloc, [Tracking("AMZN_US", "TBA1", "https://track.amazon.com/TBA1")], True)
    assert amazon["trackingInfo"] == {"company": "Amazon", "numbers": ["TBA1"],
                                      "urls": ["https://track.amazon.com/TBA1"]}
    unknown = fulfillment_input(alloc, [Tracking("ACME_FREIGHT", "A1", "https://acme.example/A1"),
                                        Tracking("ACME_FREIGHT", "A2", "https://acme.example/A2")], True)
    assert unknown["trackingInfo"] == {"company": "ACME_FREIGHT", "numbers": ["A1", "A2"],
                                       "urls": ["https://acme.example/A1", "https://acme.example/A2"]}
    partial = fulfillment_input(alloc, [Tracking("UPS", "1", "https://u/1"), Tracking("UPS", "2")], True)
    assert "urls" not in partial["trackingInfo"]  # urls pair with numbers by position: all or none
