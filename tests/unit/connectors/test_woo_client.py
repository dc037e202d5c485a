"""WooStore's transport: OAuth 1.0a signing against a known-good vector, and error classification
against ``responses`` (transport-level mocks, payloads shaped like WooCommerce's)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
import requests
import responses
from woocommerce.oauth import OAuth  # type: ignore[import-untyped]

from connectors.woocommerce.client import WooSettings, WooStore
from connectors.woocommerce.errors import WooAuthError, WooNoRoute, WooNotJsonError, WooPayloadError
from connectors.woocommerce.sandbox import oauth_signature
from tests.unit.connectors.test_woo_mapping import ORDER, refund, refund_line
from tests.unit.connectors.test_woo_webhooks import delivery
from worker.domain import PushRequest, Tracking
from worker.errors import AmbiguousOutcome, NotFound, PermanentError, TransientError

SHOP = "https://bolt.example"
API = f"{SHOP}/wp-json/wc/v3"
KEY, SECRET = "ck_4f0c1e5e2b", "cs_9a8b7c6d5e"


class RecordingLimiter:
    """A Limiter that never waits and remembers pauses."""

    def __init__(self) -> None:
        self.acquired = 0
        self.paused: list[tuple[str, float]] = []

    def acquire(self, key: str, *, rate: float, burst: float, cost: float = 1.0) -> None:
        self.acquired += 1

    def pause(self, key: str, seconds: float) -> None:
        self.paused.append((key, seconds))


def _store(shop: str = SHOP, sleeps: list[float] | None = None,
           **extra: Any) -> tuple[WooStore, RecordingLimiter]:
    config = WooSettings(shop_url=shop, consumer_key=KEY, consumer_secret=SECRET, webhook_secret="whsec",
                         **extra)
    limiter = RecordingLimiter()
    slept = sleeps if sleeps is not None else []
    return WooStore("bolt", config, limiter, clock=lambda: 1764064800.0, sleep=slept.append), limiter


NO_ROUTE = {"code": "rest_no_route", "message": "No route was found matching the URL and request method.",
            "data": {"status": 404}}


def _json_error(status: int, code: str, message: str) -> dict[str, Any]:
    return {"code": code, "message": message, "data": {"status": status}}


# --- OAuth 1.0a --------------------------------------------------------------------------------

VECTOR_URL = "http://bolt.example/wp-json/wc/v3/orders"
VECTOR_PARAMS = {"status": "processing,on-hold", "per_page": "100", "modified_after": "2026-11-25T10:00:00",
                 "dates_are_gmt": "true", "oauth_consumer_key": KEY, "oauth_timestamp": "1764064800",
                 "oauth_nonce": "7d8f3e4a5b6c7d8e9f0a1b2c3d4e5f60", "oauth_signature_method": "HMAC-SHA256"}
# Worked out once by hand from RFC 5849 §3.4.1 / WooCommerce's check_oauth_signature (below).
KNOWN_GOOD = "wBraMtsk6+ozquthW+P6yOOdtX75qaL21eSYEctPWZE="


def rfc5849_signature(method: str, url: str, params: dict[str, str], consumer_secret: str) -> str:
    def enc(s: str) -> str:  # RFC 3986 percent-encoding: only unreserved characters stay
        return quote(s, safe="-._~")
    normalised = "&".join(f"{k}={v}" for k, v in sorted((enc(k), enc(v)) for k, v in params.items()))
    base = "&".join([method.upper(), enc(url), enc(normalised)])
    key = f"{enc(consumer_secret)}&"  # one-legged: empty token secret
    return base64.b64encode(hmac.new(key.encode(), base.encode(), hashlib.sha256).digest()).decode()


def test_oauth_signature_known_good_vector() -> None:
    assert rfc5849_signature("GET", VECTOR_URL, VECTOR_PARAMS, SECRET) == KNOWN_GOOD
    package = OAuth(url=VECTOR_URL, consumer_key=KEY, consumer_secret=SECRET, version="wc/v3", method="GET")
    assert package.generate_oauth_signature(OrderedDict(VECTOR_PARAMS), VECTOR_URL) == KNOWN_GOOD
    assert oauth_signature("GET", VECTOR_URL, VECTOR_PARAMS, SECRET) == KNOWN_GOOD  # the sandbox's check
    assert oauth_signature("POST", VECTOR_URL, VECTOR_PARAMS, SECRET) != KNOWN_GOOD


@responses.activate
def test_http_store_signs_each_request_once_and_verifiably() -> None:
    responses.get("http://bolt.example/wp-json/wc/v3/orders", json=[], headers={"X-WP-TotalPages": "0"})
    store, _ = _store("http://bolt.example")
    assert store.auth_mode == "oauth1"
    assert list(store.iter_orders(datetime(2026, 11, 25, 10, 0, tzinfo=UTC))) == []
    sent = responses.calls[0].request
    assert "Authorization" not in sent.headers
    pairs = parse_qsl(urlsplit(sent.url).query)
    names = [k for k, _ in pairs]
    assert len(names) == len(set(names)), "every parameter once (woocommerce.API would send the query twice)"
    query = dict(pairs)
    assert query["oauth_signature_method"] == "HMAC-SHA256" and query["oauth_nonce"]
    assert query["oauth_timestamp"] == "1764064800" and query["oauth_consumer_key"] == KEY
    assert query["status"] == "any" and query["modified_after"] == "2026-11-25T10:00:00"
    unsigned = {k: v for k, v in query.items() if k != "oauth_signature"}
    assert query["oauth_signature"] == rfc5849_signature("GET", VECTOR_URL, unsigned, SECRET)
    assert SECRET not in sent.url


@responses.activate
def test_https_uses_basic_auth_or_query_string_keys() -> None:
    responses.get(f"{API}/orders/727", json=ORDER)
    basic, _ = _store()
    assert basic.fetch_order("727") is not None
    auth = responses.calls[0].request.headers["Authorization"]
    assert auth == "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    query_auth, _ = _store(query_string_auth=True)
    assert query_auth.fetch_order("727") is not None
    sent = responses.calls[1].request
    assert "Authorization" not in sent.headers
    assert dict(parse_qsl(urlsplit(sent.url).query)) == {"consumer_key": KEY, "consumer_secret": SECRET}


# --- classification ------------------------------------------------------------------------------

@responses.activate
def test_401_says_what_to_check() -> None:
    responses.get(f"{API}/orders/727", status=401, json=_json_error(
        401, "woocommerce_rest_cannot_view", "Sorry, you cannot view this resource."))
    store, _ = _store()
    with pytest.raises(WooAuthError) as caught:
        store.fetch_order("727")
    message = str(caught.value)
    assert "Read/Write" in message and "query_string_auth = true" in message and "Authorization" in message
    assert "woocommerce_rest_cannot_view" in message
    assert SECRET not in message and KEY not in message
    assert caught.value.status == 401


@responses.activate
def test_403_from_a_write_with_a_read_only_key() -> None:
    responses.post(f"{API}/orders/727/notes", status=403, json=_json_error(
        403, "woocommerce_rest_cannot_create", "Sorry, you are not allowed to create resources."))
    responses.get(f"{API}/orders/727/notes", json=[])
    responses.get(f"{SHOP}/wp-json/wc-ast/v3/orders/727/shipment-trackings", status=404, json=NO_ROUTE)
    responses.get(f"{SHOP}/wp-json/wc-shipment-tracking/v3/orders/727/shipment-trackings", status=404,
                  json=NO_ROUTE)
    responses.get(f"{API}/orders/727/shipment-trackings", status=404,
                  json=NO_ROUTE)
    store, _ = _store()
    with pytest.raises(WooAuthError, match="Read/Write"):
        store.push_tracking(PushRequest(order_id="727", lines=(), tracking=(Tracking("UPS", "1Z1"),)))


@pytest.mark.parametrize(("status", "body"), [
    (200, "<!DOCTYPE html><html><body>Welcome to Bolt</body></html>"),  # plain permalinks: the home page
    (404, "<html><head><title>Page not found</title></head></html>"),
    (403, "<html><body><h1>Access denied</h1>Wordfence</body></html>"),
])
@responses.activate
def test_html_where_json_was_expected(status: int, body: str) -> None:
    responses.get(f"{API}/orders/727", status=status, body=body, content_type="text/html; charset=UTF-8")
    store, _ = _store()
    with pytest.raises(WooNotJsonError, match="Permalinks") as caught:
        store.fetch_order("727")
    assert "firewall or security plugin" in str(caught.value)


@responses.activate
def test_php_notice_before_json_is_not_json() -> None:
    responses.get(f"{API}/orders/727", body="<br />\n<b>Notice</b>: Undefined index ... {\"id\":727}",
                  content_type="application/json")
    store, _ = _store()
    with pytest.raises(WooNotJsonError, match="WP_DEBUG_DISPLAY"):
        store.fetch_order("727")


@responses.activate
def test_redirect_is_not_followed() -> None:
    responses.get(f"{API}/orders/727", status=301,
                  headers={"Location": "https://www.bolt.example/wp-json/wc/v3/orders/727?consumer_key=x"})
    store, _ = _store()
    with pytest.raises(WooNotJsonError, match="shop_url") as caught:
        store.fetch_order("727")
    assert "https://www.bolt.example/wp-json/wc/v3/orders/727" in str(caught.value)
    assert "consumer_key" not in str(caught.value)


@responses.activate
def test_429_with_a_long_retry_after_is_a_transient_error_carrying_it() -> None:
    responses.get(f"{API}/orders/727", status=429, headers={"Retry-After": "120"},
                  json=_json_error(429, "too_many_requests", "Too many requests"))
    sleeps: list[float] = []
    store, limiter = _store(sleeps=sleeps)
    with pytest.raises(TransientError) as caught:
        store.fetch_order("727")
    assert caught.value.retry_after == 120.0 and caught.value.status == 429
    assert sleeps == []  # longer than we wait in-process: left to the worker
    assert limiter.paused == [("woocommerce:bolt.example", 120.0)]


@responses.activate
def test_429_with_a_short_retry_after_is_waited_out_for_a_get() -> None:
    responses.get(f"{API}/orders/727", status=429, headers={"Retry-After": "2"})
    responses.get(f"{API}/orders/727", json=ORDER)
    sleeps: list[float] = []
    store, _ = _store(sleeps=sleeps)
    order = store.fetch_order("727")
    assert order is not None and order.platform_order_id == "727"
    assert sleeps == [2.0]


@responses.activate
def test_503_is_retried_then_ok_for_a_get() -> None:
    responses.get(f"{API}/orders/727", status=503, body="Service Unavailable")
    responses.get(f"{API}/orders/727", status=502, body="Bad Gateway")
    responses.get(f"{API}/orders/727", json=ORDER)
    sleeps: list[float] = []
    store, _ = _store(sleeps=sleeps)
    assert store.fetch_order("727") is not None
    assert len(responses.calls) == 3
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] < sleeps[1] <= 1.25  # backoff with jitter


@responses.activate
def test_503_forever_gives_up_after_bounded_tries() -> None:
    responses.get(f"{API}/orders/727", status=503, body="Service Unavailable")
    store, _ = _store()
    with pytest.raises(TransientError, match="HTTP 503"):
        store.fetch_order("727")
    assert len(responses.calls) == 4


@responses.activate
def test_post_timeout_is_ambiguous_and_not_retried() -> None:
    responses.get(f"{SHOP}/wp-json/wc-ast/v3/orders/727/shipment-trackings", status=404, json=NO_ROUTE)
    responses.get(f"{SHOP}/wp-json/wc-shipment-tracking/v3/orders/727/shipment-trackings", json=[])
    responses.post(f"{SHOP}/wp-json/wc-shipment-tracking/v3/orders/727/shipment-trackings",
                   body=requests.ReadTimeout("read timed out"))
    store, _ = _store()
    with pytest.raises(AmbiguousOutcome, match="read timeout"):
        store.push_tracking(PushRequest(order_id="727", lines=(), tracking=(Tracking("UPS", "1Z1"),)))
    assert [c.request.method for c in responses.calls] == ["GET", "GET", "POST"]


@responses.activate
def test_put_connection_reset_is_ambiguous_and_get_reset_is_transient() -> None:
    responses.get(f"{API}/orders/727", body=requests.ConnectionError("reset"))
    store, _ = _store()
    with pytest.raises(TransientError):
        store.fetch_order("727")
    responses.put(f"{API}/orders/728", body=requests.ConnectionError("reset"))
    rest = store._rest  # the transport on its own: a bare PUT
    with pytest.raises(AmbiguousOutcome):
        rest.put("orders/728", {"status": "completed"})


@responses.activate
def test_credentials_in_the_url_never_ride_along_in_the_cause() -> None:
    responses.get(f"{API}/orders/727", body=requests.ConnectionError(
        f"Max retries exceeded with url: /wp-json/wc/v3/orders/727?consumer_key={KEY}"
        f"&consumer_secret={SECRET}"))
    store, _ = _store(query_string_auth=True)
    with pytest.raises(TransientError) as caught:
        store.fetch_order("727")
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert SECRET not in str(caught.value)


@responses.activate
def test_404_invalid_id_is_none_but_no_route_is_an_error() -> None:
    responses.get(f"{API}/orders/9", status=404,
                  json=_json_error(404, "woocommerce_rest_shop_order_invalid_id", "Invalid ID."))
    responses.get(f"{API}/orders/10", status=404,
                  json=NO_ROUTE)
    store, _ = _store()
    assert store.fetch_order("9") is None
    with pytest.raises(WooNoRoute):
        store.fetch_order("10")
    assert issubclass(WooNoRoute, NotFound)


@responses.activate
def test_400_is_permanent_with_woocommerces_message() -> None:
    responses.put(f"{API}/orders/727", status=400,
                  json=_json_error(400, "rest_invalid_param", "Invalid parameter(s): status"))
    store, _ = _store()
    expected = r"HTTP 400 \(rest_invalid_param\) Invalid parameter\(s\): status"
    with pytest.raises(PermanentError, match=expected):
        store._rest.put("orders/727", {"status": "shipped"})


def test_order_ids_must_be_numeric() -> None:
    store, _ = _store()
    with pytest.raises(PermanentError, match="not a WooCommerce order id"):
        store.fetch_order("../webhooks")


# --- refunds and tags ------------------------------------------------------------------------------

REFUNDED = {**ORDER, "refunds": [{"id": 731, "reason": "", "total": "-22.50"},
                                 {"id": 730, "reason": "damaged", "total": "-47.50"}]}


@responses.activate
def test_fetch_order_subtracts_refunded_units_read_from_every_page() -> None:
    responses.get(f"{API}/orders/727", json=REFUNDED)
    responses.get(f"{API}/orders/727/refunds", json=[refund(731, refund_line(400, "315", -1))],
                  headers={"X-WP-Total": "2", "X-WP-TotalPages": "2"},
                  match=[responses.matchers.query_param_matcher({"per_page": "100", "page": "1"})])
    responses.get(f"{API}/orders/727/refunds",
                  json=[refund(730, refund_line(398, "315", -1), refund_line(399, "316", -1, "-25.00"))],
                  headers={"X-WP-Total": "2", "X-WP-TotalPages": "2"},
                  match=[responses.matchers.query_param_matcher({"per_page": "100", "page": "2"})])
    store, limiter = _store()
    order = store.fetch_order("727")
    assert order is not None and order.refunds == 2
    assert [(ln.line_id, ln.quantity) for ln in order.lines] == [("317", 3)]  # 315: 2-2, 316: 1-1
    assert len(responses.calls) == 3 and limiter.acquired == 3


@responses.activate
def test_no_refunds_no_second_read_and_iter_orders_reads_none() -> None:
    responses.get(f"{API}/orders/727", json=ORDER)
    responses.get(f"{API}/orders", json=[REFUNDED], headers={"X-WP-TotalPages": "1"})
    store, _ = _store()
    order = store.fetch_order("727")
    assert order is not None and [ln.quantity for ln in order.lines] == [2, 1, 3]
    [polled] = store.iter_orders(datetime(2026, 11, 25, 10, 0, tzinfo=UTC))
    assert polled.refunds == 2 and [ln.quantity for ln in polled.lines] == [2, 1, 3]  # as ordered
    assert [urlsplit(c.request.url).path for c in responses.calls] == ["/wp-json/wc/v3/orders/727",
                                                                       "/wp-json/wc/v3/orders"]


@responses.activate
def test_refunds_read_fails_like_any_read() -> None:
    responses.get(f"{API}/orders/727", json=REFUNDED)
    responses.get(f"{API}/orders/727/refunds", status=503, body="Service Unavailable")
    store, _ = _store()
    with pytest.raises(TransientError, match="HTTP 503"):
        store.fetch_order("727")
    responses.get(f"{API}/orders/728", json={**REFUNDED, "id": 728})
    responses.get(f"{API}/orders/728/refunds", status=404,
                  json=_json_error(404, "woocommerce_rest_invalid_order_id", "Invalid order ID."))
    assert store.fetch_order("728") is None  # deleted between the two reads
    responses.get(f"{API}/orders/729", json={**REFUNDED, "id": 729})
    responses.get(f"{API}/orders/729/refunds", json={"not": "a list"})
    with pytest.raises(WooPayloadError, match="not a list"):
        store.fetch_order("729")


@responses.activate
def test_the_stores_tag_settings_reach_fetch_poll_and_webhook() -> None:
    tagged = {**ORDER, "meta_data": [{"id": 1, "key": "routing", "value": "BLOCK_AMZL"},
                                     {"id": 2, "key": "autofulfill_tags", "value": "ignored"}],
              "customer_note": "Fragile. Please HOLD for pickup"}
    responses.get(f"{API}/orders/727", json=tagged)
    responses.get(f"{API}/orders", json=[tagged], headers={"X-WP-TotalPages": "1"})
    store, _ = _store(tag_meta_keys=("routing",), note_keywords=("hold", "no-fba"))
    expected = ("BLOCK_AMZL", "hold")
    order = store.fetch_order("727")
    assert order is not None and order.tags == expected
    assert [o.tags for o in store.iter_orders(datetime(2026, 11, 25, 10, 0, tzinfo=UTC))] == [expected]
    event = store.parse_webhook(*delivery(body=json.dumps(tagged).encode()))
    assert event.order is not None and event.order.tags == expected
    default, _ = _store()
    default_event = default.parse_webhook(*delivery(body=json.dumps(tagged).encode()))
    assert default_event.order is not None and default_event.order.tags == ("ignored",)
