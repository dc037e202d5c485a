"""ShopifyStore against ``responses`` (transport-level mocks) and against the real ShopifySandbox."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
import responses

from connectors.ratelimit import LocalLimiter
from connectors.shopify import queries
from connectors.shopify.client import ShopifySettings, ShopifyStore
from connectors.shopify.errors import (
    ShopifyAlreadyFulfilled,
    ShopifyAuthError,
    ShopifyGraphQLError,
    ShopifyNotReady,
    ShopifyReadIncomplete,
    ShopifyThrottled,
    ShopifyUserError,
)
from worker.domain import Order, PushRequest, Tracking
from worker.errors import AmbiguousOutcome, PermanentError, TransientError

SHOP = "https://acme.myshopify.com"
GRAPHQL = f"{SHOP}/admin/api/2026-01/graphql.json"
TOKEN_URL = f"{SHOP}/admin/oauth/access_token"


class FakeTime:
    """A clock the limiter sleeps on without waiting."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        # At least a microsecond: LocalLimiter can ask for a float-rounding-sized wait (~1e-15 s)
        # that would not move a clock of this magnitude, and a real sleep always takes longer.
        self.now += max(seconds, 1e-6)


@pytest.fixture
def fake_time() -> FakeTime:
    return FakeTime()


def _config(**creds: str) -> ShopifySettings:
    creds = creds or {"access_token": "shpat_top_secret"}
    return ShopifySettings(shop_url=SHOP, webhook_secret="whsec", **creds)


@pytest.fixture
def store(fake_time: FakeTime) -> ShopifyStore:
    return ShopifyStore("acme", _config(), LocalLimiter(fake_time.clock, fake_time.sleep))


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as rsps:
        yield rsps


def _cost(available: float = 990.0, requested: float = 10, actual: float | None = 5) -> dict[str, Any]:
    return {"cost": {"requestedQueryCost": requested, "actualQueryCost": actual,
                     "throttleStatus": {"maximumAvailable": 1000.0, "currentlyAvailable": available,
                                        "restoreRate": 50.0}}}


def _ok(data: dict[str, Any]) -> dict[str, Any]:
    return {"data": data, "extensions": _cost()}


# The page sizes ShopifyStore sends with FulfillmentState.
STATE_SIZES = {"fulfillmentOrders": queries.FULFILLMENT_ORDERS, "foLines": queries.FO_LINES,
               "fulfillments": queries.FULFILLMENTS, "tracking": queries.TRACKING}

THROTTLED = {"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
             "extensions": _cost(available=10, requested=110, actual=None)}


def _script(rsps: responses.RequestsMock, answers: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Answer GraphQL POSTs by operationName from queues; returns the request bodies seen."""
    seen: list[dict[str, Any]] = []

    def callback(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body or b"{}")
        seen.append(body)
        answer = answers[body["operationName"]].pop(0)
        if isinstance(answer, BaseException):
            raise answer
        status, payload = answer if isinstance(answer, tuple) else (200, answer)
        return status, {"Content-Type": "application/json"}, json.dumps(payload)

    rsps.add_callback(responses.POST, GRAPHQL, callback=callback)
    return seen


def test_request_shape(store: ShopifyStore, mocked: responses.RequestsMock) -> None:
    seen = _script(mocked, {"ShopName": [_ok({"shop": {"name": "Acme"}})]})
    assert store.check() == "Acme"
    assert seen[0]["operationName"] == "ShopName" and "query ShopName" in seen[0]["query"]
    assert mocked.calls[0].request.headers["X-Shopify-Access-Token"] == "shpat_top_secret"


def test_throttled_then_success(store: ShopifyStore, mocked: responses.RequestsMock,
                                fake_time: FakeTime) -> None:
    seen = _script(mocked, {"ShopName": [THROTTLED, _ok({"shop": {"name": "Acme"}})]})
    assert store.check() == "Acme"
    assert len(seen) == 2
    assert sum(fake_time.sleeps) >= (110 - 10) / 50  # waited for Shopify's bucket to refill


def test_throttled_too_often(store: ShopifyStore, mocked: responses.RequestsMock) -> None:
    _script(mocked, {"ShopName": [THROTTLED] * 5})
    with pytest.raises(ShopifyThrottled) as info:
        store.check()
    assert isinstance(info.value, TransientError) and info.value.retry_after


def test_http_429_is_retried(store: ShopifyStore, mocked: responses.RequestsMock) -> None:
    seen = _script(mocked, {"ShopName": [(429, {"errors": "Too many"}), _ok({"shop": {"name": "A"}})]})
    assert store.check() == "A" and len(seen) == 2


def test_other_graphql_errors_are_permanent(store: ShopifyStore, mocked: responses.RequestsMock) -> None:
    _script(mocked, {"ShopName": [{"errors": [{"message": "Field 'x' doesn't exist on type 'Shop'"}]}]})
    with pytest.raises(ShopifyGraphQLError, match="doesn't exist"):
        store.check()


@pytest.mark.parametrize("status", [401, 403])
def test_unauthorised_is_permanent_without_secrets(store: ShopifyStore, mocked: responses.RequestsMock,
                                                   status: int) -> None:
    _script(mocked, {"ShopName": [(status, {"errors": "[API] Invalid API key or access token"})]})
    with pytest.raises(ShopifyAuthError) as info:
        store.check()
    assert isinstance(info.value, PermanentError)
    assert "access token" in str(info.value) and "scopes" in str(info.value)
    assert "shpat_top_secret" not in str(info.value)


@pytest.mark.parametrize(("exc", "expected"), [
    (requests.ConnectTimeout(), TransientError),
    (requests.ReadTimeout(), TransientError),  # a query changes nothing: just retry later
    (requests.ConnectionError(), TransientError),
])
def test_query_timeouts_are_transient(store: ShopifyStore, mocked: responses.RequestsMock,
                                      exc: Exception, expected: type[Exception]) -> None:
    _script(mocked, {"ShopName": [exc]})
    with pytest.raises(expected) as info:
        store.check()
    assert not isinstance(info.value, AmbiguousOutcome)


def test_client_credentials_token_cached_and_renewed(mocked: responses.RequestsMock,
                                                     fake_time: FakeTime) -> None:
    tokens = iter(["tok-1", "tok-2"])
    mocked.add_callback(responses.POST, TOKEN_URL, callback=lambda req: (
        200, {}, json.dumps({"access_token": next(tokens), "scope": "read_orders", "expires_in": 86399})))
    _script(mocked, {"ShopName": [_ok({"shop": {"name": "A"}})] * 3})
    store = ShopifyStore("acme", _config(client_id="cid", client_secret="csecret"),
                         LocalLimiter(fake_time.clock, fake_time.sleep), clock=fake_time.clock)
    store.check()
    store.check()
    token_calls = [c for c in mocked.calls if c.request.url == TOKEN_URL]
    assert len(token_calls) == 1
    assert "grant_type=client_credentials" in str(token_calls[0].request.body)
    assert "client_secret=csecret" in str(token_calls[0].request.body)
    fake_time.now += 86399 - 299  # within 5 minutes of expiry: renew
    store.check()
    headers = [c.request.headers.get("X-Shopify-Access-Token")
               for c in mocked.calls if c.request.url == GRAPHQL]
    assert headers == ["tok-1", "tok-1", "tok-2"]


def test_client_credentials_refused(mocked: responses.RequestsMock, fake_time: FakeTime) -> None:
    mocked.add(responses.POST, TOKEN_URL, status=400, json={"error": "invalid_client"})
    store = ShopifyStore("acme", _config(client_id="cid", client_secret="csecret"),
                         LocalLimiter(fake_time.clock, fake_time.sleep))
    with pytest.raises(ShopifyAuthError, match="client_id/client_secret") as info:
        store.check()
    assert "csecret" not in str(info.value)


def _state(fos: list[dict[str, Any]], fuls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return _ok({"order": {"id": "gid://shopify/Order/1", "fulfillmentOrders": {"nodes": fos},
                          "fulfillments": fuls or []}})


def _fo_node(status: str, remaining: int = 2) -> dict[str, Any]:
    return {"id": "gid://shopify/FulfillmentOrder/5", "status": status, "lineItems": {"nodes": [
        {"id": "gid://shopify/FulfillmentOrderLineItem/6", "remainingQuantity": remaining,
         "lineItem": {"id": "gid://shopify/LineItem/11", "sku": "A"}}]}}


PUSH = PushRequest(order_id="1", lines=(("11", 2),), tracking=(Tracking("FEDEX", "7712"),),
                   notify_customer=False)


def test_push_creates_fulfillment(store: ShopifyStore, mocked: responses.RequestsMock) -> None:
    created = _ok({"fulfillmentCreate": {"fulfillment": {"id": "gid://shopify/Fulfillment/99",
                                                         "status": "SUCCESS", "trackingInfo": []},
                                         "userErrors": []}})
    seen = _script(mocked, {"FulfillmentState": [_state([_fo_node("OPEN")])], "CreateFulfillment": [created]})
    result = store.push_tracking(PUSH)
    assert result.fulfillment_id == "99" and not result.already_there
    assert seen[1]["variables"]["fulfillment"] == {
        "lineItemsByFulfillmentOrder": [
            {"fulfillmentOrderId": "gid://shopify/FulfillmentOrder/5",
             "fulfillmentOrderLineItems": [
                 {"id": "gid://shopify/FulfillmentOrderLineItem/6", "quantity": 2}]}],
        "notifyCustomer": False,
        "trackingInfo": {"company": "FedEx", "numbers": ["7712"]}}


def test_push_never_creates_when_number_is_there(store: ShopifyStore, mocked: responses.RequestsMock) -> None:
    there = [{"id": "gid://shopify/Fulfillment/42", "status": "SUCCESS",
              "trackingInfo": [{"number": "7712", "company": "FedEx", "url": None}]}]
    seen = _script(mocked, {"FulfillmentState": [_state([_fo_node("CLOSED", 0)], there)]})
    result = store.push_tracking(PUSH)
    assert result.fulfillment_id == "42" and result.already_there
    assert [s["operationName"] for s in seen] == ["FulfillmentState"]


@pytest.mark.parametrize("fos", [[], [_fo_node("ON_HOLD")], [_fo_node("SCHEDULED")]])
def test_push_not_ready(store: ShopifyStore, mocked: responses.RequestsMock,
                        fos: list[dict[str, Any]]) -> None:
    seen = _script(mocked, {"FulfillmentState": [_state(fos)]})
    with pytest.raises(TransientError, match="not ready yet"):
        store.push_tracking(PUSH)
    assert len(seen) == 1


def test_push_fulfilled_elsewhere(store: ShopifyStore, mocked: responses.RequestsMock) -> None:
    _script(mocked, {"FulfillmentState": [_state([_fo_node("CLOSED", 0)])]})
    with pytest.raises(ShopifyAlreadyFulfilled, match="line 11"):
        store.push_tracking(PUSH)


def test_push_user_errors(store: ShopifyStore, mocked: responses.RequestsMock) -> None:
    refused = _ok({"fulfillmentCreate": {"fulfillment": None, "userErrors": [
        {"field": ["fulfillment", "trackingInfo", "urls"], "message": "is invalid"}]}})
    _script(mocked, {"FulfillmentState": [_state([_fo_node("OPEN")])], "CreateFulfillment": [refused]})
    with pytest.raises(ShopifyUserError, match="fulfillment.trackingInfo.urls: is invalid"):
        store.push_tracking(PUSH)


def test_push_timeout_after_send_is_ambiguous(store: ShopifyStore, mocked: responses.RequestsMock) -> None:
    _script(mocked, {"FulfillmentState": [_state([_fo_node("OPEN")])],
                     "CreateFulfillment": [requests.ReadTimeout()]})
    with pytest.raises(AmbiguousOutcome):
        store.push_tracking(PUSH)


def _ful(n: int, *numbers: str, status: str = "SUCCESS") -> dict[str, Any]:
    return {"id": f"gid://shopify/Fulfillment/{n}", "status": status,
            "trackingInfo": [{"number": x, "company": "UPS", "url": None} for x in numbers]}


def _line(fo_line: int, line: int, remaining: int = 2) -> dict[str, Any]:
    return {"id": f"gid://shopify/FulfillmentOrderLineItem/{fo_line}", "remainingQuantity": remaining,
            "lineItem": {"id": f"gid://shopify/LineItem/{line}", "sku": f"S{line}"}}


def _more(cursor: str) -> dict[str, Any]:
    return {"hasNextPage": True, "endCursor": cursor}


CREATED = _ok({"fulfillmentCreate": {"userErrors": [], "fulfillment": {
    "id": "gid://shopify/Fulfillment/99", "status": "SUCCESS", "trackingInfo": []}}})


def test_push_reads_every_page_of_fulfillment_orders_and_lines(store: ShopifyStore,
                                                               mocked: responses.RequestsMock) -> None:
    first = {"id": "gid://shopify/Order/1", "fulfillments": [], "fulfillmentOrders": {
        "pageInfo": _more("fo-c1"), "nodes": [
            {"id": "gid://shopify/FulfillmentOrder/5", "status": "CLOSED",
             "lineItems": {"pageInfo": {"hasNextPage": False}, "nodes": [_line(50, 10, 0)]}}]}}
    second = {"id": "gid://shopify/Order/1", "fulfillmentOrders": {
        "pageInfo": {"hasNextPage": False, "endCursor": "fo-c2"}, "nodes": [
            {"id": "gid://shopify/FulfillmentOrder/4", "status": "OPEN",
             "lineItems": {"pageInfo": _more("li-c1"), "nodes": [_line(40, 10)]}}]}}
    lines = {"id": "gid://shopify/FulfillmentOrder/4",
             "lineItems": {"pageInfo": {"hasNextPage": False}, "nodes": [_line(41, 11)]}}
    seen = _script(mocked, {"FulfillmentState": [_ok({"order": first})],
                            "FulfillmentOrdersPage": [_ok({"order": second})],
                            "FulfillmentOrderLines": [_ok({"fulfillmentOrder": lines})],
                            "CreateFulfillment": [CREATED]})
    assert store.push_tracking(PUSH).fulfillment_id == "99"
    assert [s["operationName"] for s in seen] == ["FulfillmentState", "FulfillmentOrdersPage",
                                                  "FulfillmentOrderLines", "CreateFulfillment"]
    assert seen[1]["variables"]["after"] == "fo-c1"
    assert seen[2]["variables"] == {"id": "gid://shopify/FulfillmentOrder/4", "lines": 250, "after": "li-c1"}
    assert seen[3]["variables"]["fulfillment"]["lineItemsByFulfillmentOrder"] == [
        {"fulfillmentOrderId": "gid://shopify/FulfillmentOrder/4",
         "fulfillmentOrderLineItems": [{"id": "gid://shopify/FulfillmentOrderLineItem/41", "quantity": 2}]}]


def test_push_reads_a_full_fulfillment_list_through_fulfillment_orders(
        store: ShopifyStore, mocked: responses.RequestsMock) -> None:
    listed = [_ful(n, f"OTHER{n}") for n in range(100, 150)]  # as many as asked: maybe cut
    page1 = {"id": "gid://shopify/FulfillmentOrder/5", "fulfillments": {
        "pageInfo": _more("f-c1"), "nodes": listed[:3]}}
    page2 = {"id": "gid://shopify/FulfillmentOrder/5", "fulfillments": {
        "pageInfo": {"hasNextPage": False}, "nodes": [_ful(150, "OTHER150"), _ful(151, "77 12")]}}
    seen = _script(mocked, {
        "FulfillmentState": [_ok({"order": {"id": "gid://shopify/Order/1", "fulfillments": listed,
                                            "fulfillmentOrders": {"nodes": [_fo_node("IN_PROGRESS")]}}})],
        "FulfillmentOrderFulfillments": [_ok({"fulfillmentOrder": page1}), _ok({"fulfillmentOrder": page2})]})
    result = store.push_tracking(PUSH)
    assert result.fulfillment_id == "151" and result.already_there
    assert seen[0]["variables"]["fulfillments"] == 50
    assert [s["operationName"] for s in seen] == ["FulfillmentState"] + ["FulfillmentOrderFulfillments"] * 2
    assert [s["variables"]["after"] for s in seen[1:]] == [None, "f-c1"]


def test_push_reads_a_full_tracking_list_alone(store: ShopifyStore, mocked: responses.RequestsMock) -> None:
    full = _ful(42, "A1", "A2", "A3", "A4", "A5")  # five, as many as asked: maybe cut
    dead = _ful(43, "B1", "B2", "B3", "B4", "B5", status="CANCELLED")  # does not count: not re-read
    seen = _script(mocked, {
        "FulfillmentState": [_state([_fo_node("OPEN")], [full, dead])],
        "FulfillmentTracking": [_ok({"fulfillment": _ful(42, "A1", "A2", "A3", "A4", "A5", "7712")})]})
    result = store.push_tracking(PUSH)
    assert result.fulfillment_id == "42" and result.already_there
    assert [s["operationName"] for s in seen] == ["FulfillmentState", "FulfillmentTracking"]
    assert seen[1]["variables"] == {"id": "gid://shopify/Fulfillment/42", "tracking": 250}


def test_push_refuses_when_tracking_cannot_be_read_completely(store: ShopifyStore,
                                                              mocked: responses.RequestsMock) -> None:
    numbers = [f"N{i}" for i in range(250)]
    seen = _script(mocked, {"FulfillmentState": [_state([_fo_node("OPEN")], [_ful(42, *numbers[:5])])],
                            "FulfillmentTracking": [_ok({"fulfillment": _ful(42, *numbers)})]})
    with pytest.raises(ShopifyReadIncomplete, match="fulfillment 42 has 250 or more tracking") as info:
        store.push_tracking(PUSH)
    assert isinstance(info.value, PermanentError) and "at most 249" in str(info.value)
    assert "CreateFulfillment" not in [s["operationName"] for s in seen]


def test_push_fulfillment_order_gone_mid_read_is_transient(store: ShopifyStore,
                                                           mocked: responses.RequestsMock) -> None:
    fo = {"id": "gid://shopify/FulfillmentOrder/4", "status": "OPEN",
          "lineItems": {"pageInfo": _more("li-c1"), "nodes": [_line(40, 10)]}}
    _script(mocked, {"FulfillmentState": [_state([fo])],
                     "FulfillmentOrderLines": [_ok({"fulfillmentOrder": None})]})
    with pytest.raises(TransientError, match="vanished"):
        store.push_tracking(PUSH)


# --- against the real sandbox over loopback ---------------------------------------------------

def _sandbox_store(url: str, **creds: str) -> ShopifyStore:
    creds = creds or {"access_token": "sandbox-token"}
    config = ShopifySettings(shop_url=url, webhook_secret="sandbox-secret", **creds)
    return ShopifyStore("sbx", config, LocalLimiter())


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., Any]]:
    from connectors.shopify.sandbox import ShopifySandbox

    started: list[ShopifySandbox] = []

    def make(**kwargs: Any) -> ShopifySandbox:
        started.append(ShopifySandbox(**kwargs).start())
        return started[-1]

    yield make
    for sb in started:
        sb.stop()


def test_sandbox_poll_pages_across_many_orders(sandbox_factory: Callable[..., Any]) -> None:
    sb = sandbox_factory(restore_rate=1000)  # a real bucket: page 2 and 3 may be THROTTLED first
    ids = {str(sb.add_order([("A", 1)])["id"]) for _ in range(120)}
    unpaid = sb.add_order([("B", 1)], financial_status="pending")  # listed too: ingest decides
    big = sb.add_order([(f"S{i}", 1) for i in range(12)])  # more lines than a poll page holds
    store = _sandbox_store(sb.url)
    orders = [o for o in store.iter_orders(datetime.now(UTC) - timedelta(hours=1)) if isinstance(o, Order)]
    got = [o.platform_order_id for o in orders]
    assert len(got) == len(set(got)) == 122
    assert ids | {str(big["id"]), str(unpaid["id"])} == set(got)
    assert len(next(o for o in orders if o.platform_order_id == str(big["id"])).lines) == 12
    assert sb.calls.count("ListOrders") >= 3 and "GetOrder" in sb.calls
    assert list(store.iter_orders(datetime.now(UTC) + timedelta(hours=1))) == []


def test_sandbox_throttles_and_client_waits(sandbox_factory: Callable[..., Any]) -> None:
    sb = sandbox_factory(restore_rate=50)
    store = _sandbox_store(sb.url)
    assert store.check() == "Sandbox Shop"
    sb.drain(0)
    started = time.monotonic()
    assert store.check() == "Sandbox Shop"
    assert sb.calls == ["ShopName", "ShopName", "ShopName"]  # one THROTTLED answer, then success
    assert time.monotonic() - started >= 0.1


def test_sandbox_push_round_trip(sandbox_factory: Callable[..., Any]) -> None:
    sb = sandbox_factory()
    rest = sb.add_order([("A", 2, "Tee", "12.50"), ("B", 1)])
    store = _sandbox_store(sb.url)
    order = store.fetch_order(str(rest["id"]))
    assert order is not None and order.number == "1001" and order.lines[0].quantity == 2
    line_a, line_b = (ln.line_id for ln in order.lines)
    first = store.push_tracking(PushRequest(str(rest["id"]), ((line_a, 2),), (Tracking("UPS", "1Z1"),)))
    again = store.push_tracking(PushRequest(str(rest["id"]), ((line_a, 2),), (Tracking("UPS", "1Z1"),)))
    assert again == type(first)(first.fulfillment_id, already_there=True)
    second = store.push_tracking(PushRequest(str(rest["id"]), ((line_b, 1),),
                                             (Tracking("ACME_FREIGHT", "AF9", "https://acme.example/AF9"),),
                                             notify_customer=False))
    written = sb.fulfillments(rest["id"])
    assert [(f["tracking_company"], f["tracking_numbers"], f["tracking_urls"], f["notify_customer"])
            for f in written] == [("UPS", ["1Z1"], [], True),
                                  ("ACME_FREIGHT", ["AF9"], ["https://acme.example/AF9"], False)]
    assert written[0]["line_items"] == [{"line_item_id": line_a, "sku": "A", "quantity": 2}]
    assert str(written[1]["id"]) == second.fulfillment_id
    assert sb.calls.count("CreateFulfillment") == 2
    refreshed = store.fetch_order(str(rest["id"]))
    assert refreshed is not None and refreshed.fulfilled
    with pytest.raises(ShopifyAlreadyFulfilled):
        store.push_tracking(PushRequest(str(rest["id"]), ((line_b, 1),), (Tracking("UPS", "1Z2"),)))
    assert store.fetch_order("999") is None


def test_sandbox_not_ready_then_ready(sandbox_factory: Callable[..., Any]) -> None:
    sb = sandbox_factory(fulfillment_orders_delay_s=0.3)
    rest = sb.add_order([("A", 1)])
    store = _sandbox_store(sb.url)
    push = PushRequest(str(rest["id"]), ((str(rest["line_items"][0]["id"]), 1),), (Tracking("USPS", "9400"),))
    with pytest.raises(ShopifyNotReady):
        store.push_tracking(push)
    time.sleep(0.35)
    sb.hold(rest["id"])
    with pytest.raises(ShopifyNotReady):
        store.push_tracking(push)
    sb.hold(rest["id"], "OPEN")
    assert not store.push_tracking(push).already_there


def test_sandbox_rejects_quantity_above_remaining(sandbox_factory: Callable[..., Any]) -> None:
    sb = sandbox_factory()
    rest = sb.add_order([("A", 1)])
    def post(op: queries.Operation, variables: dict[str, Any]) -> dict[str, Any]:
        body = {"query": op.document, "operationName": op.name, "variables": variables}
        return dict(requests.post(f"{sb.url}/admin/api/2026-01/graphql.json", json=body, timeout=5,
                                  headers={"X-Shopify-Access-Token": "sandbox-token"}).json())

    state = post(queries.FULFILLMENT_STATE, {"id": rest["admin_graphql_api_id"], **STATE_SIZES})
    fo = state["data"]["order"]["fulfillmentOrders"]["nodes"][0]
    items = [{"id": fo["lineItems"]["nodes"][0]["id"], "quantity": 2}]
    fulfillment = {"lineItemsByFulfillmentOrder": [{"fulfillmentOrderId": fo["id"],
                                                    "fulfillmentOrderLineItems": items}]}
    answer = post(queries.CREATE_FULFILLMENT, {"fulfillment": fulfillment})
    assert answer["data"]["fulfillmentCreate"]["userErrors"][0]["message"].startswith("Invalid")
    assert sb.fulfillments(rest["id"]) == []
    assert answer["extensions"]["cost"]["throttleStatus"]["maximumAvailable"] == 1000


def test_sandbox_auth(sandbox_factory: Callable[..., Any]) -> None:
    sb = sandbox_factory(client_id="cid", client_secret="csecret")
    with pytest.raises(ShopifyAuthError):
        _sandbox_store(sb.url, access_token="wrong").check()
    store = _sandbox_store(sb.url, client_id="cid", client_secret="csecret")
    assert store.check() == "Sandbox Shop"
    assert store.check() == "Sandbox Shop"
    assert sb.token_requests == 1
    with pytest.raises(ShopifyAuthError):
        _sandbox_store(sb.url, client_id="cid", client_secret="nope").check()


def test_sandbox_webhooks_verify(sandbox_factory: Callable[..., Any]) -> None:
    from connectors.shopify.webhooks import verify

    sb = sandbox_factory()
    rest = sb.add_order([("A", 1)])
    body, headers = sb.signed_webhook("orders/create", rest["id"], event_id="evt-7")
    assert verify(body, headers["X-Shopify-Hmac-Sha256"], "sandbox-secret")
    store = _sandbox_store(sb.url)
    assert store.verify_webhook(body, {k.lower(): v for k, v in headers.items()})
    event = store.parse_webhook(body, headers)
    assert event.event_id.startswith(f"order:{rest['id']}:") and event.order_id == str(rest["id"])
    assert not store.verify_webhook(body + b" ", headers)
    sb.cancel_order(rest["id"])
    body, headers = sb.signed_webhook("orders/cancelled", rest["id"])
    cancelled = store.parse_webhook(body, headers)
    assert cancelled.order is not None and cancelled.order.cancelled


def test_sandbox_refund_lowers_current_quantity_and_counts_refunds(
        sandbox_factory: Callable[..., Any]) -> None:
    from connectors.shopify import mapping

    sb = sandbox_factory()
    rest = sb.add_order([("A", 3), ("B", 1)])
    line_a, line_b = (li["id"] for li in rest["line_items"])
    refunded = sb.refund_lines(rest["id"], [(line_a, 1), (line_b, 1)])
    assert refunded["financial_status"] == "partially_refunded"
    webhook_order = mapping.order_from_rest(refunded)  # what orders/updated carries
    assert [(ln.sku, ln.quantity) for ln in webhook_order.lines] == [("A", 2)]
    assert webhook_order.refunds == 1
    fetched = _sandbox_store(sb.url).fetch_order(str(rest["id"]))
    assert fetched is not None and fetched.refunds == 1
    assert [(ln.sku, ln.quantity) for ln in fetched.lines] == [("A", 2)]
    assert sb.refund_lines(rest["id"], [(line_a, 2)])["financial_status"] == "refunded"


def _line_ids(rest_order: dict[str, Any]) -> list[str]:
    return [str(li["id"]) for li in rest_order["line_items"]]


@pytest.mark.parametrize("per_fo", [None, 5], ids=["one-fulfillment-order", "twelve-fulfillment-orders"])
def test_sandbox_sixty_lines_in_two_shipments(sandbox_factory: Callable[..., Any],
                                              per_fo: int | None) -> None:
    sb = sandbox_factory(restore_rate=1_000_000)
    rest = sb.add_order([(f"S{i}", 1 + i % 3) for i in range(60)], lines_per_fulfillment_order=per_fo)
    oid = str(rest["id"])
    lines = [(str(li["id"]), li["quantity"]) for li in rest["line_items"]]
    store = _sandbox_store(sb.url)
    first = store.push_tracking(PushRequest(oid, tuple(lines[:30]), (Tracking("UPS", "1ZA"),)))
    second = store.push_tracking(PushRequest(oid, tuple(lines[30:]), (Tracking("UPS", "1ZB"),)))
    assert not first.already_there and not second.already_there
    written = sb.fulfillments(oid)
    assert [str(f["id"]) for f in written] == [first.fulfillment_id, second.fulfillment_id]
    assert [[(li["line_item_id"], li["quantity"]) for li in f["line_items"]] for f in written] == [
        lines[:30], lines[30:]]
    # Lines beyond the first page of a fulfillment order, or fulfillment orders beyond the first page.
    assert ("FulfillmentOrderLines" if per_fo is None else "FulfillmentOrdersPage") in sb.calls
    again = store.push_tracking(PushRequest(oid, tuple(lines[30:]), (Tracking("UPS", "1ZB"),)))
    assert again.already_there and again.fulfillment_id == second.fulfillment_id
    assert sb.calls.count("CreateFulfillment") == 2
    fetched = store.fetch_order(oid)
    assert fetched is not None and fetched.fulfilled


def test_sandbox_many_fulfillments_never_written_twice(sandbox_factory: Callable[..., Any]) -> None:
    # More fulfillments than FulfillmentState lists (50) and than one page of the fulfillment
    # order's connection (100): a repeated number is found wherever it sits.
    sb = sandbox_factory(restore_rate=1_000_000)
    count = queries.FO_FULFILLMENTS + 5
    rest = sb.add_order([(f"S{i}", 1) for i in range(count + 1)])
    oid = str(rest["id"])
    ids = _line_ids(rest)
    store = _sandbox_store(sb.url)
    pushes = [PushRequest(oid, ((ids[i], 1),), (Tracking("UPS", f"1Z{i:04d}"),)) for i in range(count)]
    made = [store.push_tracking(p).fulfillment_id for p in pushes]
    assert len(set(made)) == count == len(sb.fulfillments(oid))
    for i in (0, queries.FULFILLMENTS + 1, count - 2):  # listed by the order; on page 1; on page 2
        before = len(sb.calls)
        result = store.push_tracking(pushes[i])
        assert result.already_there and result.fulfillment_id == made[i]
        assert sb.calls[before:].count("FulfillmentOrderFulfillments") == 2
    assert sb.calls.count("CreateFulfillment") == count
    last = store.push_tracking(PushRequest(oid, ((ids[count], 1),), (Tracking("UPS", "NEW1"),)))
    assert not last.already_there and sb.calls.count("CreateFulfillment") == count + 1
    assert len(sb.fulfillments(oid)) == count + 1


def test_sandbox_many_packages_in_one_shipment(sandbox_factory: Callable[..., Any]) -> None:
    sb = sandbox_factory()
    rest = sb.add_order([("A", 8)])
    oid = str(rest["id"])
    [line] = _line_ids(rest)
    store = _sandbox_store(sb.url)
    packages = tuple(Tracking("FEDEX", f"7712{i}") for i in range(8))  # more than a list read holds
    made = store.push_tracking(PushRequest(oid, ((line, 8),), packages))
    last = store.push_tracking(PushRequest(oid, ((line, 8),), packages[-1:]))
    assert last.already_there and last.fulfillment_id == made.fulfillment_id
    assert "FulfillmentTracking" in sb.calls and sb.calls.count("CreateFulfillment") == 1


def test_sandbox_costs_match_the_requested_costs(sandbox_factory: Callable[..., Any]) -> None:
    sb = sandbox_factory()
    rest = sb.add_order([("A", 1)])
    store = _sandbox_store(sb.url)
    made = store.push_tracking(PushRequest(str(rest["id"]), ((_line_ids(rest)[0], 1),),
                                           (Tracking("UPS", "1Z1"),)))

    def post(op: queries.Operation, variables: dict[str, Any]) -> dict[str, Any]:
        body = {"query": op.document, "operationName": op.name, "variables": variables}
        answer = requests.post(f"{sb.url}/admin/api/2026-01/graphql.json", json=body, timeout=5,
                               headers={"X-Shopify-Access-Token": "sandbox-token"}).json()
        assert "errors" not in answer, (op.name, answer)
        assert answer["extensions"]["cost"]["requestedQueryCost"] == op.requested_cost < 1000, op.name
        return dict(answer["data"])

    # The variables ShopifyStore sends; the cursors are the (last) pages' own.
    order = post(queries.FULFILLMENT_STATE, {"id": rest["admin_graphql_api_id"], **STATE_SIZES})["order"]
    fos = order["fulfillmentOrders"]
    [fo] = fos["nodes"]
    post(queries.FULFILLMENT_ORDERS_PAGE, {"id": rest["admin_graphql_api_id"],
                                           "fulfillmentOrders": queries.FULFILLMENT_ORDERS,
                                           "foLines": queries.FO_LINES,
                                           "after": fos["pageInfo"]["endCursor"]})
    post(queries.FULFILLMENT_ORDER_LINES, {"id": fo["id"], "lines": queries.FO_LINES_PAGE,
                                           "after": fo["lineItems"]["pageInfo"]["endCursor"]})
    post(queries.FULFILLMENT_ORDER_FULFILLMENTS, {"id": fo["id"], "first": queries.FO_FULFILLMENTS,
                                                  "after": None, "tracking": queries.TRACKING})
    post(queries.FULFILLMENT_TRACKING, {"id": f"gid://shopify/Fulfillment/{made.fulfillment_id}",
                                        "tracking": queries.TRACKING_MAX})
