"""WooCommerce REST v3 order JSON -> Order, carrier names and the tracking note (pure)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from connectors.woocommerce import mapping
from connectors.woocommerce.errors import WooPayloadError
from worker.domain import Address, Line, Tracking

# An order as WooCommerce 9 answers GET /wp-json/wc/v3/orders/727 (shop in UTC-05:00): two
# variations with their own SKUs, a simple product, a coupon, a fee, two shipping lines.
ORDER: dict[str, Any] = {
    "id": 727, "parent_id": 0, "status": "processing", "currency": "EUR", "version": "9.4.0",
    "prices_include_tax": False,
    "date_created": "2026-11-25T05:00:00", "date_created_gmt": "2026-11-25T10:00:00",
    "date_modified": "2026-11-25T05:03:17", "date_modified_gmt": "2026-11-25T10:03:17",
    "discount_total": "5.00", "discount_tax": "0.00", "shipping_total": "12.90", "shipping_tax": "0.00",
    "cart_tax": "0.00", "total": "75.89", "total_tax": "0.00", "customer_id": 12,
    "order_key": "wc_order_8Xz5fQ2pLm1Kd",
    "billing": {"first_name": "Zoë", "last_name": "Ångström", "company": "Bolt AB",
                "address_1": "Storgatan 1", "address_2": "", "city": "Stockholm", "state": "",
                "postcode": "111 22", "country": "SE", "email": "zoe@example.se", "phone": "+46 8 123 456"},
    "shipping": {"first_name": "Zoë", "last_name": "Ångström", "company": "", "address_1": "Kungsgatan 5",
                 "address_2": "lgh 1102", "city": "Göteborg", "state": "O", "postcode": "411 19",
                 "country": "SE", "phone": ""},
    "payment_method": "stripe", "payment_method_title": "Kort", "transaction_id": "pi_3Q",
    "customer_ip_address": "203.0.113.9", "customer_user_agent": "Mozilla/5.0", "created_via": "checkout",
    "customer_note": "Lämna vid dörren", "date_completed": None, "date_paid": "2026-11-25T05:00:04",
    "cart_hash": "b3f1", "number": "727",
    "meta_data": [{"id": 9001, "key": "_stripe_customer_id", "value": "cus_x"}],
    "line_items": [
        {"id": 315, "name": "Hoodie - Blue, L", "product_id": 93, "variation_id": 101, "quantity": 2,
         "tax_class": "", "subtotal": "50.00", "subtotal_tax": "0.00", "total": "45.00", "total_tax": "0.00",
         "taxes": [], "meta_data": [{"id": 2911, "key": "pa_color", "value": "blue", "display_key": "Color",
                                     "display_value": "Blue"}],
         "sku": "HOODIE-BLU-L", "price": 22.5, "image": {"id": "41", "src": "https://bolt.example/h.jpg"},
         "parent_name": "Hoodie"},
        {"id": 316, "name": "Hoodie - Red, M", "product_id": 93, "variation_id": 102, "quantity": 1,
         "tax_class": "", "subtotal": "25.00", "subtotal_tax": "0.00", "total": "25.00", "total_tax": "0.00",
         "taxes": [], "meta_data": [], "sku": "HOODIE-RED-M", "price": 25, "image": {"id": "", "src": ""},
         "parent_name": "Hoodie"},
        {"id": 317, "name": "Sticker", "product_id": 120, "variation_id": 0, "quantity": 3, "tax_class": "",
         "subtotal": "5.97", "subtotal_tax": "0.00", "total": "5.97", "total_tax": "0.00", "taxes": [],
         "meta_data": [], "sku": "", "price": 1.99, "image": {"id": "", "src": ""}, "parent_name": None},
    ],
    "tax_lines": [],
    "shipping_lines": [
        {"id": 318, "method_title": "PostNord Express", "method_id": "flat_rate", "instance_id": "3",
         "total": "9.90", "total_tax": "0.00", "taxes": [], "meta_data": []},
        {"id": 319, "method_title": "Flat rate", "method_id": "flat_rate", "instance_id": "1",
         "total": "3.00", "total_tax": "0.00", "taxes": [], "meta_data": []},
    ],
    "fee_lines": [{"id": 320, "name": "Gift wrap", "tax_class": "", "tax_status": "taxable", "amount": "2.00",
                   "total": "2.00", "total_tax": "0.00", "taxes": [], "meta_data": []}],
    "coupon_lines": [{"id": 321, "code": "winter5", "discount": "5.00", "discount_tax": "0.00",
                      "meta_data": []}],
    "refunds": [], "payment_url": "https://bolt.example/checkout/order-pay/727/", "is_editable": False,
    "needs_payment": False, "needs_processing": True, "date_completed_gmt": None,
    "date_paid_gmt": "2026-11-25T10:00:04", "currency_symbol": "€",
    "_links": {"self": [{"href": "https://bolt.example/wp-json/wc/v3/orders/727"}]},
}


def test_order_maps_exactly() -> None:
    order = mapping.order_from_rest(ORDER)
    assert order.platform_order_id == "727"
    assert order.number == "727"
    assert order.created_at == datetime(2026, 11, 25, 10, 0, 0, tzinfo=UTC)  # the _gmt field, not local
    assert order.updated_at == datetime(2026, 11, 25, 10, 3, 17, tzinfo=UTC)
    assert order.financial_status == "PROCESSING"
    assert (order.cancelled, order.fulfilled) == (False, False)
    assert order.lines == (
        Line(line_id="315", sku="HOODIE-BLU-L", quantity=2, title="Hoodie - Blue, L",
             unit_price=Decimal("22.5")),
        Line(line_id="316", sku="HOODIE-RED-M", quantity=1, title="Hoodie - Red, M",
             unit_price=Decimal("25")),
        Line(line_id="317", sku="", quantity=3, title="Sticker", unit_price=Decimal("1.99")),
    )
    assert order.address == Address(name="Zoë Ångström", address1="Kungsgatan 5", address2="lgh 1102",
                                    city="Göteborg", region="O", postal_code="411 19", country="SE",
                                    phone="+46 8 123 456", company="")
    assert order.shipping_title == "PostNord Express"  # the first shipping line
    assert order.email == "zoe@example.se"
    assert order.currency == "EUR"
    assert order.total == Decimal("75.89")
    assert isinstance(order.total, Decimal)


def test_empty_shipping_address_falls_back_to_billing() -> None:
    payload = copy.deepcopy(ORDER)
    payload["shipping"] = {"first_name": "", "last_name": "", "company": "", "address_1": "", "address_2": "",
                           "city": "", "state": "", "postcode": "", "country": "", "phone": ""}
    order = mapping.order_from_rest(payload)
    assert order.address == Address(name="Zoë Ångström", address1="Storgatan 1", address2="",
                                    city="Stockholm", region="", postal_code="111 22", country="SE",
                                    phone="+46 8 123 456", company="Bolt AB")


def test_no_address_at_all_is_none() -> None:
    payload = copy.deepcopy(ORDER)
    payload["shipping"] = {}
    payload["billing"] = {"email": "x@example.com", "address_1": ""}
    assert mapping.order_from_rest(payload).address is None


@pytest.mark.parametrize(("status", "cancelled", "fulfilled"), [
    ("processing", False, False), ("on-hold", False, False), ("pending", False, False),
    ("checkout-draft", False, False), ("completed", False, True), ("cancelled", True, False),
    ("refunded", True, False), ("failed", False, False),
])
def test_status_words(status: str, cancelled: bool, fulfilled: bool) -> None:
    order = mapping.order_from_rest({**ORDER, "status": status})
    assert order.financial_status == status.upper()
    assert (order.cancelled, order.fulfilled) == (cancelled, fulfilled)


def test_zero_quantity_lines_are_dropped_and_missing_modified_is_none() -> None:
    payload = copy.deepcopy(ORDER)
    payload["line_items"][2]["quantity"] = 0
    payload["date_modified_gmt"] = None
    order = mapping.order_from_rest(payload)
    assert [ln.line_id for ln in order.lines] == ["315", "316"]
    assert order.updated_at is None


@pytest.mark.parametrize("bad", [{**ORDER, "id": None}, {**ORDER, "id": "abc"}, {**ORDER, "id": True},
                                 {**ORDER, "date_created_gmt": ""}, {**ORDER, "total": "12,50"},
                                 {**ORDER, "date_created_gmt": "yesterday"},
                                 {**ORDER, "line_items": [{"id": 1, "quantity": "two"}]}])
def test_bad_orders_raise_payload_error(bad: dict[str, Any]) -> None:
    with pytest.raises(WooPayloadError):
        mapping.order_from_rest(bad)


def test_orders_params_for_the_poller() -> None:
    since = datetime(2026, 11, 25, 5, 0, tzinfo=UTC)
    # Every status (a cancellation must be seen too), by id: a stable order while orders change.
    assert mapping.orders_params(since, 3) == {
        "status": "any", "modified_after": "2026-11-25T05:00:00", "dates_are_gmt": "true",
        "orderby": "id", "order": "asc", "per_page": "100", "page": "3"}


@pytest.mark.parametrize(("carrier", "provider"), [
    ("UPS", "UPS"), ("ups", "UPS"), ("USPS", "USPS"), ("FEDEX", "Fedex"), ("FedEx", "Fedex"),
    ("DHL", None), ("AMZN_US", None), ("AMZN_UK", None), ("Acme Couriers", None), ("", None),
])
def test_tracking_provider(carrier: str, provider: str | None) -> None:
    assert mapping.tracking_provider(carrier) == provider


def test_carrier_names_and_links() -> None:
    assert mapping.carrier_name("AMZN_US") == "Amazon Logistics"
    assert mapping.carrier_name("FEDEX") == "FedEx"
    assert mapping.carrier_name("Acme Couriers") == "Acme Couriers"
    assert mapping.tracking_link(Tracking("UPS", "1Z 999")) == "https://www.ups.com/track?tracknum=1Z%20999"
    assert mapping.tracking_link(Tracking("AMZN_US", "TBA1", "https://amzn.example/t/TBA1")) == \
        "https://amzn.example/t/TBA1"
    assert mapping.tracking_link(Tracking("Acme", "A1")) == ""


def test_note_text_one_and_many() -> None:
    assert mapping.note_text([Tracking("UPS", "1Z999AA10123456784")]) == (
        "Your order has shipped.\n"
        "UPS tracking number 1Z999AA10123456784: https://www.ups.com/track?tracknum=1Z999AA10123456784")
    text = mapping.note_text([Tracking("AMZN_US", "TBA123", "https://track.example/TBA123"),
                              Tracking("Acme", "A-1")])
    assert text == ("Your order has shipped in 2 parts.\n"
                    "Amazon Logistics tracking number TBA123: https://track.example/TBA123\n"
                    "Acme tracking number A-1")
    with pytest.raises(WooPayloadError):
        mapping.note_text([])


def test_tracking_item_bodies() -> None:
    assert mapping.tracking_item(Tracking("USPS", "9400 1"), ast=False) == {
        "tracking_number": "9400 1", "tracking_provider": "USPS"}
    assert mapping.tracking_item(Tracking("AMZN_US", "TBA9", "https://t.example/TBA9"), ast=True) == {
        "tracking_number": "TBA9", "custom_tracking_provider": "Amazon Logistics",
        "custom_tracking_link": "https://t.example/TBA9", "status_shipped": 0}


def test_existing_numbers_in_trackings_and_notes() -> None:
    items = [{"tracking_id": "ab12", "tracking_number": "1z999 aa1", "tracking_provider": "ups"}]
    assert mapping.numbers_in_trackings(items) == {"1Z999AA1": "ab12"}
    notes = [{"id": 9, "note": "Order status changed from Pending payment to Processing."},
             {"id": 7, "note": "Your order has shipped.\nUPS tracking number 1Z999AA1: https://x"}]
    assert mapping.numbers_in_notes(notes, ["1Z999AA1", "TBA2"]) == {"1Z999AA1": "7"}
    with pytest.raises(WooPayloadError):
        mapping.numbers_in_notes({"code": "x"}, ["1"])


OURS = "https://autofulfill.example.com/webhooks/woocommerce/bolt"


def hook(i: int, topic: str, status: str = "active", url: str = OURS,
         api: str = "wp_api_v3") -> dict[str, Any]:
    return {"id": i, "name": f"hook {i}", "status": status, "topic": topic, "delivery_url": url,
            "api_version": api}


def test_webhook_warnings_name_inactive_hooks() -> None:
    hooks = [hook(1, "order.created"), hook(2, "order.updated", "disabled"),
             hook(3, "order.created", "paused")]
    warnings = mapping.webhook_warnings(hooks, "bolt")
    assert len(warnings) == 3
    assert "webhook 2" in warnings[0] and "'hook 2'" in warnings[0] and "order.updated" in warnings[0]
    assert "disabled" in warnings[0]
    assert "webhook 3" in warnings[1] and "paused" in warnings[1]
    assert warnings[2].startswith("no active v3 webhook for order.updated delivers to")


def test_webhook_warnings_say_exactly_what_is_wrong() -> None:
    assert mapping.webhook_warnings([hook(1, "order.created"), hook(2, "order.updated")], "bolt") == []
    wrong = mapping.webhook_warnings([
        hook(1, "order.created", url="https://a.example/webhooks/woocommerce/acme"),  # another store's
        hook(2, "order.deleted"),  # a topic we do not act on
        hook(3, "order.updated", api="legacy_v3"),
        hook(4, "order.updated", url="https://zapier.example/hooks/123", status="disabled"),  # not ours
    ], "bolt")
    assert len(wrong) == 5, wrong
    assert "store named 'acme', not 'bolt'" in wrong[0]
    assert "webhook 2" in wrong[1] and "topic autofulfill does not act on" in wrong[1]
    assert "webhook 3" in wrong[2] and "legacy_v3" in wrong[2] and "v3" in wrong[2]
    assert "order.created" in wrong[3] and "order.updated" in wrong[4]
    assert not any("webhook 4" in w for w in wrong)


# --- tags ----------------------------------------------------------------------------------------

def _tagged(meta: Any = None, note: Any = "", keywords: tuple[str, ...] = ()) -> tuple[str, ...]:
    payload = {**ORDER, "customer_note": note}
    if meta is not None:
        payload["meta_data"] = meta
    return mapping.order_from_rest(payload, tag_meta_keys=("autofulfill_tags", "_routing"),
                                   note_keywords=keywords).tags


def test_no_tags_without_configuration() -> None:
    payload = {**ORDER, "meta_data": [{"id": 1, "key": "autofulfill_tags", "value": "hold"}],
               "customer_note": "please hold"}
    assert mapping.order_from_rest(payload).tags == ()


@pytest.mark.parametrize(("value", "tags"), [
    ("no-fba, BLOCK_AMZL", ("no-fba", "BLOCK_AMZL")),
    (" hold ,, ", ("hold",)),
    (["no-fba", "BLANK_BOX", 7, None, " "], ("no-fba", "BLANK_BOX")),  # a serialised array's JSON
    ('["no-fba", "hold"]', ("no-fba", "hold")),  # a plugin that stores json_encode()'s text
    ("[not json, hold", ("[not json", "hold")),
    (42, ()), (None, ()), ({"a": "hold"}, ()), (True, ()),
])
def test_tags_from_meta_values(value: Any, tags: tuple[str, ...]) -> None:
    assert _tagged([{"id": 9002, "key": "autofulfill_tags", "value": value}]) == tags


def test_tags_from_several_meta_keys_in_order_without_repeats() -> None:
    meta = [{"id": 1, "key": "_stripe_customer_id", "value": "hold"},  # not a tag key
            {"id": 2, "key": "_routing", "value": "BLOCK_AMZL"},
            {"id": 3, "key": "autofulfill_tags", "value": "block_amzl, no-fba"},
            {"id": 4, "key": "AUTOFULFILL_TAGS", "value": "hold"}]  # meta keys are case-sensitive
    assert _tagged(meta) == ("BLOCK_AMZL", "no-fba")


@pytest.mark.parametrize("meta", ["no-fba", {"key": "autofulfill_tags", "value": "no-fba"}, 17, None])
def test_meta_data_that_is_not_a_list_gives_no_tags(meta: Any) -> None:
    payload = {**ORDER, "meta_data": meta}
    assert mapping.order_from_rest(payload, tag_meta_keys=("autofulfill_tags",)).tags == ()


def test_meta_entries_that_are_not_objects_are_skipped() -> None:
    meta = ["autofulfill_tags", None, 3, [{"key": "autofulfill_tags", "value": "no-fba"}],
            {"value": "no-fba"}, {"key": "autofulfill_tags", "value": "hold"}]
    assert _tagged(meta) == ("hold",)


@pytest.mark.parametrize(("note", "tags"), [
    ("Please HOLD until Monday", ("hold",)),
    ("hold", ("hold",)),
    ("(hold)", ("hold",)),
    ("hold.", ("hold",)),
    ("household items, fragile", ()),
    ("on-hold please", ()),  # '-' joins words
    ("hold_me", ()),
    ("holds", ()),
    ("No-FBA please, ship yourself", ("no-fba",)),
    ("no-fbaX", ()),
    ("xno-fba", ()),
    ("no fba", ()),
    ("leave at door", ()),
])
def test_note_keywords_match_whole_words_in_any_case(note: str, tags: tuple[str, ...]) -> None:
    assert _tagged(note=note, keywords=("hold", "no-fba")) == tags


def test_keywords_follow_meta_tags_and_a_bad_note_is_ignored() -> None:
    meta = [{"id": 9, "key": "autofulfill_tags", "value": "BLOCK_AMZL, no-fba"}]
    assert _tagged(meta, note="NO-FBA and hold", keywords=("hold", "no-fba", " ")) == (
        "BLOCK_AMZL", "no-fba", "hold")
    assert _tagged(meta, note=None, keywords=("hold",)) == ("BLOCK_AMZL", "no-fba")
    assert _tagged(note=["hold"], keywords=("hold",)) == ()


# --- refunds -------------------------------------------------------------------------------------

def test_refunds_are_counted() -> None:
    assert mapping.order_from_rest(ORDER).refunds == 0
    two = [{"id": 730, "reason": "", "total": "-22.50"}, {"id": 729, "reason": "damaged", "total": "-1.99"}]
    assert mapping.order_from_rest({**ORDER, "refunds": two}).refunds == 2
    assert mapping.order_from_rest({**ORDER, "refunds": None}).refunds == 0
    assert mapping.order_from_rest({**ORDER, "refunds": {"id": 730}}).refunds == 0


def refund_line(item_id: int, refunded: Any, quantity: Any, total: str = "-22.50") -> dict[str, Any]:
    """One line of a refund as ``GET orders/<id>/refunds`` lists it (WooCommerce 9)."""
    return {"id": item_id, "name": "Hoodie - Blue, L", "product_id": 93, "variation_id": 101,
            "quantity": quantity, "tax_class": "", "subtotal": total, "subtotal_tax": "0.00", "total": total,
            "total_tax": "0.00", "taxes": [],
            "meta_data": [{"id": 3100 + item_id, "key": "_refunded_item_id", "value": refunded,
                           "display_key": "_refunded_item_id", "display_value": refunded}],
            "sku": "HOODIE-BLU-L", "price": 22.5, "image": {"id": "41", "src": ""}, "parent_name": "Hoodie"}


def refund(refund_id: int, *lines: dict[str, Any], amount: str = "22.50") -> dict[str, Any]:
    return {"id": refund_id, "date_created": "2026-11-26T09:00:00", "date_created_gmt": "2026-11-26T14:00:00",
            "amount": amount, "reason": "", "refunded_by": 1, "refunded_payment": False, "meta_data": [],
            "line_items": list(lines), "shipping_lines": [], "tax_lines": [], "fee_lines": []}


def test_refunded_quantities_add_up_per_line() -> None:
    refunds = [refund(731, refund_line(400, "315", -1)),  # newest first, as WooCommerce lists them
               refund(730, refund_line(398, "315", -1), refund_line(399, 317, -2, "-3.98")),
               refund(729, refund_line(397, "316", 0, "-5.00")),  # money only: no units
               refund(728, amount="3.00")]  # no lines at all (shipping, or an amount)
    assert mapping.refunded_quantities(refunds) == {"315": 2, "317": 2}
    assert mapping.refunded_quantities([]) == {}
    assert mapping.refunded_quantities(["x", {"id": 1, "line_items": None}, refund(2, "y")]) == {}


@pytest.mark.parametrize("bad", [
    {"refunds": "no"},
    [refund(730, refund_line(398, "315", "one"))],
    [refund(730, {**refund_line(398, "315", -1), "meta_data": []})],
    [refund(730, refund_line(398, "", -1))],
    [refund(730, refund_line(398, True, -1))],
])
def test_refunds_we_cannot_read_raise(bad: Any) -> None:
    with pytest.raises(WooPayloadError):
        mapping.refunded_quantities(bad)


def test_apply_refunds_lowers_and_drops_lines() -> None:
    order = mapping.order_from_rest(ORDER)
    after = mapping.apply_refunds(order, {"315": 1, "316": 1, "999": 4})
    assert [(ln.line_id, ln.quantity) for ln in after.lines] == [("315", 1), ("317", 3)]
    assert after.lines[0] == Line(line_id="315", sku="HOODIE-BLU-L", quantity=1, title="Hoodie - Blue, L",
                                  unit_price=Decimal("22.5"))
    assert mapping.apply_refunds(order, {}) == order
    assert mapping.apply_refunds(order, {"317": 5}).lines == order.lines[:2]  # never below zero


@pytest.mark.parametrize(("notes", "overwritten"), [
    ([{"note": "Order status changed from Processing to Completed."}], ""),
    ([{"note": "Order status changed from Cancelled to Completed."},
      {"note": "Order status changed from Processing to Cancelled."}], "cancelled"),
    ([{"note": "Your order has shipped."}, {"note": "Order status changed from Refunded to Completed."}],
     "refunded"),
    ([{"note": "Order status changed from Completed to Cancelled."},  # newer: someone else's change
      {"note": "Order status changed from Processing to Completed."}], ""),
    ([], ""), ({"code": "x"}, ""),
])
def test_a_completion_over_a_cancellation_is_recognised(notes: Any, overwritten: str) -> None:
    assert mapping.status_completed_over(notes) == overwritten
