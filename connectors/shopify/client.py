"""``ShopifyStore``: the Admin GraphQL API on ``requests``, behind the worker's ``Store`` Protocol.

Cost-based throttling: Shopify keeps a leaky bucket of query-cost points per app and shop and
reports it in ``extensions.cost.throttleStatus``. Every call first takes its estimated cost from
the shared Limiter bucket ``shopify:{shop host}`` (refill = restoreRate, size = maximumAvailable,
both learned from the answers). The estimate is the cost the operation last actually drew
(Shopify checks the *requested* cost but charges the *actual* one, which for a short page is far
smaller); a THROTTLED answer pauses the bucket for as long as Shopify needs to refill the
requested cost and the call is retried, a bounded number of times.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import requests

from connectors.http import ClientSession, send
from connectors.shopify import mapping, queries, webhooks
from connectors.shopify.errors import (
    ShopifyAuthError,
    ShopifyGraphQLError,
    ShopifyPayloadError,
    ShopifyReadIncomplete,
    ShopifyThrottled,
    ShopifyUserError,
)
from connectors.shopify.inventory import ShopifyInventory
from connectors.shopify.queries import Operation
from worker.domain import (
    Line,
    ListedUntil,
    Order,
    PushRequest,
    PushResult,
    StockChange,
    StockRead,
    StockWriteResult,
    Unreadable,
    WebhookEvent,
)
from worker.errors import AmbiguousOutcome, PermanentError, TransientError
from worker.ports import Limiter, Store, StoreStock

MAX_TRIES = 5
TOKEN_MARGIN_S = 300.0  # renew a client-credentials token this long before it expires
DEFAULT_BUCKET = 1000.0  # until Shopify's first answer tells us the real size and rate
DEFAULT_RESTORE = 50.0
TIMEOUT = (5.0, 30.0)


@dataclass(frozen=True)
class ShopifySettings:
    """What one shop needs: its URL and API version, a static access token or an app's client id
    and secret (client-credentials grant), the webhook secret (else the client secret), and the
    location (name or gid) whose ``available`` mirrors the FBA stock."""

    shop_url: str
    api_version: str = "2026-01"
    access_token: str | None = field(default=None, repr=False)
    client_id: str | None = field(default=None, repr=False)
    client_secret: str | None = field(default=None, repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    inventory_location: str = ""


class ShopifyStore:
    """One Shopify shop. Thread-safe; one ``requests.Session`` per instance."""

    def __init__(self, name: str, config: ShopifySettings, limiter: Limiter,
                 session: requests.Session | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._config = config
        self._limiter = limiter
        self._session = session or ClientSession()
        self._clock = clock
        base = config.shop_url.rstrip("/")
        self._base = base
        self._endpoint = f"{base}/admin/api/{config.api_version}/graphql.json"
        self._bucket = f"shopify:{urlsplit(base).netloc}"
        self._rate = DEFAULT_RESTORE
        self._burst = DEFAULT_BUCKET
        self._drawn: dict[str, float] = {}  # operation -> cost it last drew from the bucket
        self._lock = threading.Lock()
        self._token = ""
        self._token_expires = 0.0
        self._inventory = ShopifyInventory(name, config.inventory_location, self._call)

    # --- Store Protocol ----------------------------------------------------------------------

    def fetch_order(self, order_id: str) -> Order | None:
        lines: list[Line] = []
        after: str | None = None
        while True:
            data = self._call(queries.GET_ORDER, {"id": mapping.order_gid(order_id),
                                                  "lines": queries.ORDER_LINES, "linesAfter": after,
                                                  "refunds": queries.REFUNDS})
            node = data.get("order")
            if node is None:
                return None
            lines.extend(mapping.lines_from_graphql(node.get("lineItems")))
            page = (node.get("lineItems") or {}).get("pageInfo") or {}
            if not page.get("hasNextPage"):
                return mapping.order_from_graphql(node, lines)
            after = page.get("endCursor")

    def iter_orders(self, updated_since: datetime) -> Iterator[Order | Unreadable | ListedUntil]:
        """Every order updated since, whatever its financial status (the poll must see
        cancellations and refunds too), sorted by ``updated_at``: Shopify's cursors are keyset
        cursors on that sort, so an order updated while we page moves behind the cursor (read
        again later in the pass) and none is skipped."""
        search = mapping.orders_search_query(updated_since)
        after: str | None = None
        while True:
            data = self._call(queries.LIST_ORDERS, {"first": queries.ORDERS_PAGE_SIZE, "after": after,
                                                    "query": search, "lines": queries.POLL_LINES})
            conn = data.get("orders") or {}
            for node in conn.get("nodes") or ():
                try:
                    if ((node.get("lineItems") or {}).get("pageInfo") or {}).get("hasNextPage"):
                        full = self.fetch_order(mapping.gid_to_id(node["id"]))  # more lines than a page
                        if full is not None:
                            yield full
                    else:
                        yield mapping.order_from_graphql(node)
                except ShopifyPayloadError as exc:
                    yield Unreadable(mapping.node_id(node), str(exc))
            stamps = [n.get("updatedAt") for n in conn.get("nodes") or () if n.get("updatedAt")]
            if stamps:  # sorted by UPDATED_AT: everything changed before the page's last is listed
                yield ListedUntil(mapping.parse_time(stamps[-1]))
            page = conn.get("pageInfo") or {}
            if not page.get("hasNextPage"):
                return
            after = page.get("endCursor")

    def is_ping(self, body: bytes, headers: Mapping[str, str]) -> bool:
        return False  # Shopify sends no unsigned hello

    def warnings(self) -> list[str]:
        return []  # webhook subscriptions are not read yet

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> bool:
        secret = self._config.webhook_secret or self._config.client_secret
        if secret is None:
            return False
        return webhooks.verify(body, webhooks.header(headers, webhooks.HMAC_HEADER), secret)

    def signed_test_delivery(self) -> tuple[bytes, dict[str, str]]:
        secret = self._config.webhook_secret or self._config.client_secret or ""
        body = json.dumps({"autofulfill": "webhook test", "id": uuid.uuid4().hex}).encode()
        return body, {"Content-Type": "application/json", webhooks.TOPIC_HEADER: "autofulfill/webhook_test",
                      webhooks.EVENT_ID_HEADER: f"autofulfill-test-{uuid.uuid4().hex}",
                      webhooks.HMAC_HEADER: webhooks.sign(body, secret),
                      "X-Shopify-Shop-Domain": urlsplit(self._base).netloc}

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        return webhooks.parse(body, headers, shop_url=self._config.shop_url)

    def push_tracking(self, request: PushRequest) -> PushResult:
        """Create one fulfillment holding the shipment's lines and tracking, unless it is there.

        Not idempotent by itself; made safe by reading first, completely (every fulfillment order
        line, every fulfillment and its tracking, paged where needed): a tracking number already
        on a live fulfillment returns ``already_there`` and writes nothing. Raises ShopifyNotReady
        (TransientError) without an OPEN fulfillment order yet, ShopifyAlreadyFulfilled when the
        lines have nothing remaining, ShopifyReadIncomplete when a fulfillment holds more tracking
        numbers than can be read, ShopifyUserError for userErrors, AmbiguousOutcome when the
        create was sent without an answer (calling again is safe: it reads first).
        """
        if not request.tracking:
            raise PermanentError(f"order {request.order_id}: no tracking number to push")
        state = self._fulfillment_state(request.order_id)
        if state is None:
            raise PermanentError(f"order {request.order_id} not found on Shopify")
        fulfillment_orders, fulfillments = state
        existing = mapping.existing_tracking(fulfillments)
        for t in request.tracking:
            ful_id = existing.get(mapping.normalise_number(t.number))
            if ful_id is not None:
                return PushResult(fulfillment_id=ful_id, already_there=True)
        allocation = mapping.allocate(fulfillment_orders, request.lines)
        variables = {"fulfillment": mapping.fulfillment_input(allocation, request.tracking,
                                                              request.notify_customer),
                     "message": None}
        result = self._call(queries.CREATE_FULFILLMENT, variables).get("fulfillmentCreate") or {}
        errors = result.get("userErrors") or []
        if errors:
            raise ShopifyUserError(f"order {request.order_id}: fulfillmentCreate refused: " + "; ".join(
                f"{'.'.join(e.get('field') or [])}: {e.get('message')}".lstrip(": ") for e in errors))
        fulfillment = result.get("fulfillment")
        if not fulfillment:
            raise ShopifyPayloadError(f"order {request.order_id}: fulfillmentCreate returned nothing")
        return PushResult(fulfillment_id=mapping.gid_to_id(fulfillment["id"]))

    # --- StoreStock Protocol (connectors/shopify/inventory.py) --------------------------------

    def read_stock(self, skus: Sequence[str]) -> StockRead:
        """``available`` of each SKU's inventory item at the configured location."""
        if not self._config.inventory_location:
            raise PermanentError(f"shopify: no [stores.{self.name}.inventory] location configured")
        return self._inventory.read(skus)

    def write_stock(self, changes: Sequence[StockChange], reference: str) -> StockWriteResult:
        """``inventorySetQuantities`` (available, correction, changeFromQuantity), 250 a call."""
        if not self._config.inventory_location:
            raise PermanentError(f"shopify: no [stores.{self.name}.inventory] location configured")
        return self._inventory.write(changes, reference)

    def check(self) -> str:
        """One cheap read for ``autofulfill check --live``: the shop's name."""
        shop = self._call(queries.SHOP_NAME, {}).get("shop") or {}
        return str(shop.get("name", ""))

    # --- reading the fulfillment state completely ---------------------------------------------

    def _fulfillment_state(self, order_id: str) -> tuple[
            list[mapping.FulfillmentOrderState], list[mapping.FulfillmentTracking]] | None:
        """Every fulfillment order with all its lines, every fulfillment with all its tracking.

        None when the order does not exist. One query for a typical order; what did not fit is
        paged by follow-ups (see ``queries.py``). Raises ShopifyReadIncomplete when a fulfillment
        has more tracking numbers than one read returns, TransientError when something read a
        moment ago is gone (the order changed while it was read).
        """
        gid = mapping.order_gid(order_id)
        sizes = {"fulfillmentOrders": queries.FULFILLMENT_ORDERS, "foLines": queries.FO_LINES}
        order = self._call(queries.FULFILLMENT_STATE, {"id": gid, **sizes, "tracking": queries.TRACKING,
                                                       "fulfillments": queries.FULFILLMENTS}).get("order")
        if order is None:
            return None
        fos = list(mapping.fulfillment_orders_from_graphql(order))
        what = f"order {order_id}: fulfillment orders"
        after = mapping.next_cursor(order.get("fulfillmentOrders"), what)
        while after is not None:
            page = self._call(queries.FULFILLMENT_ORDERS_PAGE,
                              {"id": gid, **sizes, "after": after}).get("order")
            if page is None:
                raise TransientError(f"order {order_id} vanished while its fulfillment orders were read")
            fos += mapping.fulfillment_orders_from_graphql(page)
            after = mapping.next_cursor(page.get("fulfillmentOrders"), what)
        fos = [self._all_lines(fo) for fo in fos]
        fulfillments = mapping.fulfillments_from_graphql(order.get("fulfillments"), queries.TRACKING)
        if len(fulfillments) >= queries.FULFILLMENTS:
            # Order.fulfillments is a list cut at `first`, not a connection: a full one may hide
            # more. A fulfillment is made from fulfillment orders, and theirs are paged.
            fulfillments += [f for fo in fos for f in self._fulfillments_of(fo.id)]
        unique: dict[str, mapping.FulfillmentTracking] = {}
        for ful in fulfillments:  # one fulfillment can span several fulfillment orders
            unique.setdefault(ful.id, ful)
        return fos, [self._all_tracking(order_id, f) for f in unique.values()]

    def _all_lines(self, fo: mapping.FulfillmentOrderState) -> mapping.FulfillmentOrderState:
        lines, after = list(fo.lines), fo.lines_after
        while after is not None:
            node = self._call(queries.FULFILLMENT_ORDER_LINES, {"id": fo.id, "lines": queries.FO_LINES_PAGE,
                                                                "after": after}).get("fulfillmentOrder")
            if node is None:
                raise TransientError(f"fulfillment order {fo.id} vanished while its lines were read")
            lines += mapping.fulfillment_order_lines(node.get("lineItems"))
            after = mapping.next_cursor(node.get("lineItems"), f"fulfillment order {fo.id}: lines")
        return replace(fo, lines=tuple(lines), lines_after=None)

    def _fulfillments_of(self, fo_id: str) -> list[mapping.FulfillmentTracking]:
        found: list[mapping.FulfillmentTracking] = []
        after: str | None = None
        while True:
            node = self._call(queries.FULFILLMENT_ORDER_FULFILLMENTS, {
                "id": fo_id, "first": queries.FO_FULFILLMENTS, "after": after,
                "tracking": queries.TRACKING}).get("fulfillmentOrder")
            if node is None:
                raise TransientError(f"fulfillment order {fo_id} vanished while its fulfillments were read")
            found += mapping.fulfillments_from_graphql(node.get("fulfillments"), queries.TRACKING)
            after = mapping.next_cursor(node.get("fulfillments"), f"fulfillment order {fo_id}: fulfillments")
            if after is None:
                return found

    def _all_tracking(self, order_id: str, ful: mapping.FulfillmentTracking) -> mapping.FulfillmentTracking:
        if ful.complete or not ful.live:  # a dead fulfillment's numbers do not count anyway
            return ful
        node = self._call(queries.FULFILLMENT_TRACKING, {"id": ful.id, "tracking": queries.TRACKING_MAX}
                          ).get("fulfillment")
        if node is None:
            raise TransientError(f"fulfillment {ful.id} vanished while its tracking was read")
        full = mapping.fulfillment_tracking(node, queries.TRACKING_MAX)
        if not full.complete:
            raise ShopifyReadIncomplete(
                f"order {order_id}: fulfillment {mapping.gid_to_id(ful.id)} has {queries.TRACKING_MAX} "
                f"or more tracking numbers and autofulfill reads at most {queries.TRACKING_MAX - 1} of "
                "one fulfillment; nothing was written, since a number left unread could be written "
                "twice: add this shipment's tracking in the Shopify admin")
        return full

    # --- transport ---------------------------------------------------------------------------

    def _call(self, op: Operation, variables: dict[str, Any]) -> dict[str, Any]:
        """POST one operation; returns ``data``. Retries THROTTLED and 429 inside, bounded."""
        wait = 0.0
        for _ in range(MAX_TRIES):
            self._limiter.acquire(self._bucket, rate=self._rate, burst=self._burst,
                                  cost=min(self._drawn.get(op.name, op.expected_cost), self._burst))
            resp = self._post(op, variables)
            if resp is None:  # HTTP 429
                continue
            try:
                body = resp.json()
            except ValueError as exc:
                raise TransientError(f"shopify {op.name}: answer is not JSON",
                                     status=resp.status_code) from exc
            if not isinstance(body, dict):
                raise ShopifyPayloadError(f"shopify {op.name}: answer is not a JSON object")
            requested = self._learn(op, body.get("extensions"))
            errors = body.get("errors")
            if not errors:
                data = body.get("data")
                if not isinstance(data, dict):
                    raise ShopifyPayloadError(f"shopify {op.name}: answer has no data")
                return data
            if _is_throttled(errors):
                wait = self._throttle_wait(body.get("extensions"), requested)
                self._limiter.pause(self._bucket, wait)
                continue
            raise ShopifyGraphQLError(f"shopify {op.name}: {_messages(errors)}")
        raise ShopifyThrottled(f"shopify {op.name}: still throttled after {MAX_TRIES} tries",
                               retry_after=wait or None)

    def _post(self, op: Operation, variables: dict[str, Any]) -> requests.Response | None:
        body = {"query": op.document, "operationName": op.name, "variables": variables}
        for attempt in (1, 2):
            headers = {"X-Shopify-Access-Token": self._access_token(),
                       "Content-Type": "application/json", "Accept": "application/json"}
            try:
                return send(self._session, "POST", self._endpoint, what=f"shopify {op.name}",
                            timeout=TIMEOUT, request_id_header="X-Request-Id", json=body, headers=headers)
            except AmbiguousOutcome as exc:
                if op.mutation:
                    raise
                # A query changes nothing: an unanswered one is simply retried later.
                raise TransientError(str(exc), request_id=exc.request_id) from exc
            except TransientError as exc:
                if exc.status != 429:
                    raise
                self._limiter.pause(self._bucket, exc.retry_after or 1.0)
                return None
            except PermanentError as exc:
                if exc.status not in (401, 403):
                    raise
                if exc.status == 401 and attempt == 1 and self._config.access_token is None:
                    self._drop_token()  # a client-credentials token may have been revoked: renew once
                    continue
                raise ShopifyAuthError(
                    f"shopify {op.name}: HTTP {exc.status} from {urlsplit(self._base).netloc}: check "
                    "the store's access token (or client id/secret) and the app's scopes "
                    "(read_orders, write_merchant_managed_fulfillment_orders; for the stock sync "
                    "read_inventory, write_inventory, read_locations)",
                    request_id=exc.request_id, status=exc.status) from exc
        raise AssertionError("unreachable")

    def _learn(self, op: Operation, extensions: Any) -> float:
        """Record bucket size, refill rate and this operation's cost; returns the requested cost."""
        cost = (extensions or {}).get("cost") or {}
        status = cost.get("throttleStatus") or {}
        if status.get("maximumAvailable"):
            self._burst = float(status["maximumAvailable"])
        if status.get("restoreRate"):
            self._rate = float(status["restoreRate"])
        requested = float(cost.get("requestedQueryCost") or op.requested_cost)
        actual = cost.get("actualQueryCost")
        if actual is not None:
            self._drawn[op.name] = max(1.0, float(actual))
        return requested

    def _throttle_wait(self, extensions: Any, requested: float) -> float:
        status = ((extensions or {}).get("cost") or {}).get("throttleStatus") or {}
        available = float(status.get("currentlyAvailable") or 0.0)
        return max(0.1, (requested - available) / self._rate)

    def _access_token(self) -> str:
        if self._config.access_token is not None:
            return self._config.access_token
        with self._lock:
            if self._token and self._clock() < self._token_expires:
                return self._token
            assert self._config.client_id is not None and self._config.client_secret is not None
            form = {"grant_type": "client_credentials",
                    "client_id": self._config.client_id,
                    "client_secret": self._config.client_secret}
            what = "shopify access token (client credentials)"
            try:
                resp = send(self._session, "POST", f"{self._base}/admin/oauth/access_token", what=what,
                            timeout=TIMEOUT, data=form, headers={"Accept": "application/json"})
            except AmbiguousOutcome as exc:  # asking for a token twice does no harm
                raise TransientError(str(exc)) from exc
            except TransientError:
                raise
            except PermanentError as exc:
                raise ShopifyAuthError(
                    f"{what}: refused (HTTP {exc.status}): check client_id/client_secret and that the "
                    "app is installed on the shop", status=exc.status) from exc
            try:
                body = resp.json()
                token = str(body["access_token"])
                expires_in = float(body.get("expires_in") or 86399)
            except (ValueError, KeyError, TypeError) as exc:
                raise ShopifyPayloadError(f"{what}: answer has no access_token") from exc
            self._token = token
            self._token_expires = self._clock() + max(0.0, expires_in - TOKEN_MARGIN_S)
            return token

    def _drop_token(self) -> None:
        with self._lock:
            self._token = ""
            self._token_expires = 0.0


def _is_throttled(errors: Any) -> bool:
    return isinstance(errors, list) and any(
        isinstance(e, dict) and (e.get("extensions") or {}).get("code") == "THROTTLED" for e in errors)


def _messages(errors: Any) -> str:
    if isinstance(errors, str):
        return errors[:300]
    if isinstance(errors, list):
        return "; ".join(str(e.get("message", e) if isinstance(e, dict) else e) for e in errors)[:500]
    return str(errors)[:300]


if TYPE_CHECKING:  # mypy proves the class satisfies the worker's Protocols
    _store: type[Store] = ShopifyStore
    _stock: type[StoreStock] = ShopifyStore
