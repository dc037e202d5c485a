"""WooStore against the real WooSandbox over loopback (plain http, so OAuth 1.0a signed)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from woocommerce.oauth import OAuth  # type: ignore[import-untyped]

from connectors.woocommerce.client import WooSettings, WooStore
from connectors.woocommerce.errors import WooAuthError
from connectors.woocommerce.sandbox import WooSandbox
from tests.unit.connectors.test_woo_client import RecordingLimiter
from worker.domain import Order, PushRequest, Tracking
from worker.errors import PermanentError


@pytest.fixture
def woo(request: pytest.FixtureRequest) -> Iterator[WooSandbox]:
    with WooSandbox(tracking_extension=getattr(request, "param", None)) as sandbox:
        yield sandbox


def store_for(woo: WooSandbox, secret: str = "cs_sandbox", **extra: Any) -> WooStore:
    config = WooSettings(shop_url=woo.url, consumer_key="ck_sandbox", consumer_secret=secret,
                         webhook_secret="sandbox-woo-secret", **extra)
    return WooStore("bolt", config, RecordingLimiter())


def push(store: WooStore, order_id: int, *tracking: Tracking, final: bool = False) -> Any:
    return store.push_tracking(PushRequest(order_id=str(order_id), lines=(), tracking=tracking, final=final))


def writes(woo: WooSandbox) -> list[str]:
    return [c for c in woo.calls if not c.startswith("GET ")]


# --- reading -------------------------------------------------------------------------------------

def test_iter_orders_pages_over_more_than_100_orders(woo: WooSandbox) -> None:
    ids = [woo.add_order([(f"SKU-{n}", 1)])["id"] for n in range(130)]
    done = woo.add_order([("X", 1)], status="completed")["id"]
    draft = woo.add_order([("X", 1)], status="checkout-draft")["id"]
    store = store_for(woo)
    orders = [o for o in store.iter_orders(datetime.now(UTC) - timedelta(hours=1)) if isinstance(o, Order)]
    # every status, by id: ingest decides what completed or draft means
    assert [o.platform_order_id for o in orders] == [str(i) for i in [*ids, done, draft]]
    assert woo.calls == ["GET /orders", "GET /orders"]  # two pages (X-WP-TotalPages = 2)
    assert list(store.iter_orders(datetime.now(UTC) + timedelta(hours=1))) == []


def test_iter_orders_reads_again_when_an_order_leaves_the_listing(woo: WooSandbox) -> None:
    ids = [woo.add_order([(f"SKU-{n}", 1)])["id"] for n in range(150)]
    trashed: list[int] = []

    def trash_one_of_page_one() -> None:  # every later order moves back one place
        if not trashed:
            woo.set_status(ids[10], "trash")
            trashed.append(ids[10])

    woo.intercept(lambda m, path, body: m == "GET" and "page=2" in path, trash_one_of_page_one)
    got = {o.platform_order_id for o in store_for(woo).iter_orders(datetime.now(UTC) - timedelta(hours=1))
           if isinstance(o, Order)}
    assert got >= {str(i) for i in ids if i != ids[10]}  # nothing pulled across the page boundary
    assert woo.calls.count("GET /orders") == 4  # two pages, then both again


def test_fetch_order_and_404(woo: WooSandbox) -> None:
    created = woo.add_order([("TEE", 2, "Tee", "12.50")], ship_to_billing_only=True,
                            customer_name="Zoë Ångström")
    order = store_for(woo).fetch_order(str(created["id"]))
    assert order is not None and order.address is not None
    assert order.address.name == "Zoë Ångström" and order.address.address1 == "1 Main St"  # from billing
    assert order.lines[0].sku == "TEE" and str(order.total) == "30.00"
    assert order.created_at == datetime.fromisoformat(created["date_created_gmt"]).replace(tzinfo=UTC)
    assert store_for(woo).fetch_order("999999") is None


def test_wrong_secret_is_an_auth_error(woo: WooSandbox) -> None:
    with pytest.raises(WooAuthError, match="Read/Write") as caught:
        store_for(woo, secret="cs_wrong").check()
    assert "clock" in str(caught.value) and "cs_wrong" not in str(caught.value)
    assert woo.auth_failures == ["Invalid signature - provided signature does not match."]


def test_sandbox_auth_like_woocommerce_on_http(woo: WooSandbox) -> None:
    url = f"{woo.url}/wp-json/wc/v3/orders"
    assert requests.get(url, timeout=5).json()["code"] == "woocommerce_rest_cannot_view"
    ok = requests.get(url, params={"consumer_key": "ck_sandbox", "consumer_secret": "cs_sandbox"}, timeout=5)
    assert ok.status_code == 200 and ok.headers["X-WP-Total"] == "0"
    bad = requests.get(url, params={"consumer_key": "ck_sandbox", "consumer_secret": "nope"}, timeout=5)
    assert bad.status_code == 401 and bad.json()["code"] == "woocommerce_rest_authentication_error"
    signed = OAuth(url=url, consumer_key="ck_sandbox", consumer_secret="cs_sandbox", version="wc/v3",
                   method="GET").get_oauth_url()
    assert requests.get(signed, timeout=5).status_code == 200
    replay = requests.get(signed, timeout=5)  # the same nonce again
    assert replay.status_code == 401 and "nonce" in replay.json()["message"]
    assert requests.get(f"{woo.url}/shop/", timeout=5).headers["Content-Type"].startswith("text/html")


def test_check_and_warnings(woo: WooSandbox) -> None:
    store = store_for(woo)
    assert store.check().startswith("WooCommerce REST API ok (oauth1 auth")
    assert store.warnings() == []
    woo.disable_webhook(2)
    warning, missing = store.warnings()
    assert "no active v3 webhook for order.updated" in missing
    assert "webhook 2" in warning and "'Order updated'" in warning and "order.updated" in warning
    assert "disabled" in warning


def test_webhooks_from_the_sandbox(woo: WooSandbox) -> None:
    order_id = woo.add_order([("TEE", 1)])["id"]
    store = store_for(woo)
    body, headers = woo.signed_webhook("order.created", order_id)
    assert store.verify_webhook(body, headers) and not store.is_ping(body, headers)
    event = store.parse_webhook(body, headers)
    assert event.topic == "order.created" and event.order is not None
    assert event.event_id == f"{order_id}:{woo.order(order_id)['date_modified_gmt']}"
    body2, headers2 = woo.signed_webhook("order.created", order_id)
    assert headers2["X-WC-Webhook-Delivery-ID"] != headers["X-WC-Webhook-Delivery-ID"]
    assert store.parse_webhook(body2, headers2).event_id == event.event_id
    woo.set_status(order_id, "cancelled")
    changed = store.parse_webhook(*woo.signed_webhook("order.updated", order_id))
    assert changed.event_id != event.event_id and changed.order is not None and changed.order.cancelled
    assert not store.verify_webhook(body.replace(b"TEE", b"TEA"), headers)
    ping, ping_headers = woo.ping_body(2)
    assert store.is_ping(ping, ping_headers) and not store.verify_webhook(ping, ping_headers)


def test_failed_deliveries_disable_the_webhook(woo: WooSandbox) -> None:
    order_id = woo.add_order([("TEE", 1)])["id"]
    dead = "http://127.0.0.1:9/webhooks/woocommerce/bolt"  # discard port: nothing listens
    assert [woo.deliver(dead, "order.updated", order_id) for _ in range(6)] == [0] * 6
    assert [w["status"] for w in woo.webhooks()] == ["active", "disabled"]
    assert len(store_for(woo).warnings()) == 2  # the disabled hook, and order.updated not delivered


# --- pushing tracking ------------------------------------------------------------------------------

def test_push_without_extension_writes_one_customer_note(woo: WooSandbox) -> None:
    order_id = woo.add_order([("TEE", 1)])["id"]
    store = store_for(woo)
    first = push(store, order_id, Tracking("UPS", "1Z999AA10123456784"))
    [note] = woo.notes(order_id)
    assert note["customer_note"] is True
    assert "UPS" in note["note"] and "1Z999AA10123456784" in note["note"]
    assert "https://www.ups.com/" in note["note"]
    assert first.fulfillment_id == str(note["id"]) and not first.already_there
    again = push(store, order_id, Tracking("UPS", "1Z999AA10123456784"))
    assert again.already_there and again.fulfillment_id == first.fulfillment_id
    assert len(woo.notes(order_id)) == 1
    assert writes(woo) == [f"POST /orders/{order_id}/notes"]
    assert woo.order(order_id)["status"] == "processing"  # final=False: not completed


def test_push_without_notify_writes_a_private_note(woo: WooSandbox) -> None:
    order_id = woo.add_order([("TEE", 1)])["id"]
    store_for(woo).push_tracking(PushRequest(order_id=str(order_id), lines=(),
                                             tracking=(Tracking("USPS", "9400"),), notify_customer=False))
    assert [n["customer_note"] for n in woo.notes(order_id)] == [False]


@pytest.mark.parametrize("woo", ["shipment-tracking", "ast"], indirect=True)
def test_push_with_an_extension_writes_tracking_items_never_a_note(woo: WooSandbox) -> None:
    order_id = woo.add_order([("TEE", 1), ("MUG", 1)])["id"]
    store = store_for(woo)
    result = push(store, order_id, Tracking("UPS", "1Z999AA10123456784"),
                  Tracking("AMZN_US", "TBA305017418000", "https://track.amazon.com/tracking/TBA305017418000"))
    ups, amazon = woo.trackings(order_id)
    assert ups["tracking_number"] == "1Z999AA10123456784"
    assert ups["tracking_provider"] == ("ups" if woo.state.extension == "shipment-tracking" else "UPS")
    assert "ups.com" in ups["tracking_link"]
    assert amazon["tracking_provider"] == ""
    assert amazon["custom_tracking_provider"] == "Amazon Logistics"
    assert amazon["custom_tracking_link"] == "https://track.amazon.com/tracking/TBA305017418000"
    assert result.fulfillment_id == ups["tracking_id"] and not result.already_there
    assert woo.notes(order_id) == []  # never both
    assert woo.order(order_id)["status"] == "processing"  # AST was told status_shipped 0
    again = push(store, order_id, Tracking("UPS", "1z999aa1 0123456784"))
    assert again.already_there and again.fulfillment_id == ups["tracking_id"]
    assert len(woo.trackings(order_id)) == 2


@pytest.mark.parametrize("woo", ["shipment-tracking"], indirect=True)
def test_extension_is_detected_once_per_client(woo: WooSandbox) -> None:
    a, b = (woo.add_order([("TEE", 1)])["id"] for _ in range(2))
    store = store_for(woo)
    push(store, a, Tracking("FEDEX", "7700"))
    push(store, b, Tracking("FEDEX", "7701"))
    assert woo.calls == [f"GET /wc-ast/v3/orders/{a}/shipment-trackings",  # Advanced Shipment Tracking?
                         f"GET /wc-shipment-tracking/v3/orders/{a}/shipment-trackings",
                         f"POST /wc-shipment-tracking/v3/orders/{a}/shipment-trackings",
                         f"GET /wc-shipment-tracking/v3/orders/{b}/shipment-trackings",
                         f"POST /wc-shipment-tracking/v3/orders/{b}/shipment-trackings"]
    assert woo.trackings(b)[0]["tracking_provider"] == "fedex"


@pytest.mark.parametrize("woo", ["ast"], indirect=True)
def test_advanced_shipment_tracking_is_told_from_shipment_tracking_and_names_amazon(woo: WooSandbox) -> None:
    order_id = woo.add_order([("TEE", 1)])["id"]
    push(store_for(woo), order_id, Tracking("AMZN_US", "TBA123456789000", "https://track.amazon.com/x"))
    (item,) = woo.trackings(order_id)
    assert item["custom_tracking_provider"] == "Amazon Logistics"  # not "shipped with  and ..."
    assert item["custom_tracking_link"] == "https://track.amazon.com/x"
    assert f"POST /wc-ast/v3/orders/{order_id}/shipment-trackings" in woo.calls


def test_a_tracking_plugin_activated_after_start_is_found_within_minutes(woo: WooSandbox) -> None:
    later = [0.0]
    settings = WooSettings(shop_url=woo.url, consumer_key="ck_sandbox", consumer_secret="cs_sandbox",
                           webhook_secret="sandbox-woo-secret")
    store = WooStore("bolt", settings, RecordingLimiter(), clock=lambda: time.time() + later[0])
    first, second, third = (woo.add_order([("TEE", 1)])["id"] for _ in range(3))
    push(store, first, Tracking("UPS", "1Z1"))  # no plugin: a customer note
    woo.state.extension = "shipment-tracking"  # the merchant activates one
    push(store, second, Tracking("UPS", "1Z2"))  # still within the cache: a note
    later[0] = 301  # (the sandbox allows OAuth timestamps this far off)
    push(store, third, Tracking("UPS", "1Z3"))
    assert [len(woo.trackings(o)) for o in (first, second, third)] == [0, 0, 1]


@pytest.mark.parametrize("woo", [None, "shipment-tracking", "ast"], indirect=True)
def test_final_push_completes_the_order_after_the_tracking_is_written(woo: WooSandbox) -> None:
    order_id = woo.add_order([("TEE", 1)])["id"]
    push(store_for(woo), order_id, Tracking("USPS", "9400111899560000000000"), final=True)
    assert woo.order(order_id)["status"] == "completed"
    assert woo.order(order_id)["date_completed_gmt"]
    calls = writes(woo)
    assert len(calls) == 2 and calls[0].startswith("POST ") and calls[1] == f"PUT /orders/{order_id}"
    assert (len(woo.trackings(order_id)), len([n for n in woo.notes(order_id) if n["customer_note"]])) == (
        (0, 1) if woo.state.extension is None else (1, 0))


def test_tracking_already_there_still_completes_a_final_push(woo: WooSandbox) -> None:
    order_id = woo.add_order([("TEE", 1)])["id"]
    store = store_for(woo)
    push(store, order_id, Tracking("UPS", "1Z1"))  # a crash came before completion
    result = push(store, order_id, Tracking("UPS", "1Z1"), final=True)
    assert result.already_there
    assert woo.order(order_id)["status"] == "completed"
    assert writes(woo) == [f"POST /orders/{order_id}/notes", f"PUT /orders/{order_id}"]
    push(store, order_id, Tracking("UPS", "1Z1"), final=True)  # completed already: nothing more
    assert len(writes(woo)) == 2


def test_no_completion_when_configured_off_or_order_cancelled(woo: WooSandbox) -> None:
    kept = woo.add_order([("TEE", 1)])["id"]
    push(store_for(woo, complete_on_ship=False), kept, Tracking("UPS", "1Z2"), final=True)
    assert woo.order(kept)["status"] == "processing"
    cancelled = woo.add_order([("TEE", 1)])["id"]
    woo.set_status(cancelled, "cancelled")
    push(store_for(woo), cancelled, Tracking("UPS", "1Z3"), final=True)
    assert woo.order(cancelled)["status"] == "cancelled"
    assert not any(c.startswith("PUT ") for c in woo.calls)


def test_push_to_a_missing_order_is_permanent(woo: WooSandbox) -> None:
    with pytest.raises(PermanentError, match="not found"):
        push(store_for(woo), 424242, Tracking("UPS", "1Z4"))


# --- refunds and tags ------------------------------------------------------------------------------

def test_a_partial_refund_lowers_what_fetch_order_ships(woo: WooSandbox) -> None:
    placed = woo.add_order([("MUG", 3, "Mug", "12.00"), ("TEE", 1, "Tee", "20.00")])
    mug, tee = (str(i["id"]) for i in placed["line_items"])
    made = woo.refund_lines(placed["id"], [(mug, 1)], reason="chipped")
    order = woo.order(placed["id"])
    assert order["status"] == "processing"
    assert order["refunds"] == [{"id": made["id"], "reason": "chipped", "total": "-12.00"}]
    assert [i["quantity"] for i in order["line_items"]] == [3, 1]  # WooCommerce leaves them
    assert order["date_modified_gmt"] > placed["date_modified_gmt"]
    assert made["amount"] == "12.00" and made["refunded_payment"] is False
    [line] = made["line_items"]
    assert (line["quantity"], line["total"], line["sku"]) == (-1, "-12.00", "MUG")
    assert [(m["key"], m["value"]) for m in line["meta_data"]] == [("_refunded_item_id", mug)]
    assert woo.refunds(placed["id"]) == [made]

    store = store_for(woo)
    fetched = store.fetch_order(str(placed["id"]))
    assert fetched is not None and fetched.refunds == 1
    assert [(ln.line_id, ln.quantity) for ln in fetched.lines] == [(mug, 2), (tee, 1)]
    assert woo.calls[-2:] == [f"GET /orders/{placed['id']}", f"GET /orders/{placed['id']}/refunds"]

    woo.refund_lines(placed["id"], [(tee, 1)])
    fetched = store.fetch_order(str(placed["id"]))
    assert fetched is not None and fetched.refunds == 2 and not fetched.cancelled
    assert [(ln.line_id, ln.quantity) for ln in fetched.lines] == [(mug, 2)]


def test_refunding_every_unit_refunds_the_order(woo: WooSandbox) -> None:
    placed = woo.add_order([("MUG", 2), ("TEE", 1)])
    mug, tee = (i["id"] for i in placed["line_items"])
    woo.refund_lines(placed["id"], [(mug, 1)])
    woo.refund_lines(placed["id"], [(mug, 1), (tee, 1)])
    order = woo.order(placed["id"])
    assert order["status"] == "refunded"
    assert [r["total"] for r in order["refunds"]] == ["-20.00", "-10.00"]  # newest first
    assert woo.notes(placed["id"])[0]["note"] == "Order status changed from Processing to Refunded."
    fetched = store_for(woo).fetch_order(str(placed["id"]))
    assert fetched is not None and fetched.cancelled and fetched.lines == ()
    with pytest.raises(ValueError, match="fewer unrefunded units"):
        woo.refund_lines(placed["id"], [(mug, 1)])
    with pytest.raises(ValueError, match="cannot refund"):
        woo.refund_lines(placed["id"], [(424242, 1)])


def test_refunds_route_pages_and_knows_missing_orders(woo: WooSandbox) -> None:
    placed = woo.add_order([("MUG", 3)])
    for _ in range(3):
        woo.refund_lines(placed["id"], [(placed["line_items"][0]["id"], 1)])
    auth = {"consumer_key": "ck_sandbox", "consumer_secret": "cs_sandbox"}
    with requests.Session() as session:
        page = session.get(f"{woo.url}/wp-json/wc/v3/orders/{placed['id']}/refunds",
                           params={**auth, "per_page": "2", "page": "2"}, timeout=5)
        missing = session.get(f"{woo.url}/wp-json/wc/v3/orders/424242/refunds", params=auth, timeout=5)
    assert page.status_code == 200 and page.headers["X-WP-TotalPages"] == "2" and len(page.json()) == 1
    assert missing.status_code == 404


def test_tags_from_meta_and_note_keywords(woo: WooSandbox) -> None:
    placed = woo.add_order([("MUG", 1)], meta_data=[{"key": "autofulfill_tags", "value": "BLOCK_AMZL"}],
                           customer_note="No-FBA please; household goods")
    assert placed["meta_data"][0]["key"] == "autofulfill_tags" and placed["meta_data"][0]["id"]
    assert placed["customer_note"] == "No-FBA please; household goods"
    plain = store_for(woo).fetch_order(str(placed["id"]))
    assert plain is not None and plain.tags == ("BLOCK_AMZL",)  # note_keywords is off by default
    store = store_for(woo, note_keywords=("no-fba", "hold"))
    fetched = store.fetch_order(str(placed["id"]))
    assert fetched is not None and fetched.tags == ("BLOCK_AMZL", "no-fba")
    event = store.parse_webhook(*woo.signed_webhook("order.created", placed["id"]))
    assert event.order is not None and event.order.tags == ("BLOCK_AMZL", "no-fba")
