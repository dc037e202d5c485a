"""``WooStore``: a WooCommerce shop's REST API v3 behind the worker's ``Store`` Protocol.

Transport, auth and error classification live in ``rest.py``; payload translation in
``mapping.py``. Tracking goes back as a tracking item when a Shipment Tracking extension answers
(WooCommerce Shipment Tracking at ``wc-shipment-tracking/v3``, or Advanced Shipment Tracking at
``wc/v3/orders/{id}/shipment-trackings``), otherwise as one customer note — never both — and is
written before the order is set ``completed``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import requests

from connectors.woocommerce import mapping, webhooks
from connectors.woocommerce.errors import WooNoRoute, WooPayloadError
from connectors.woocommerce.inventory import WooInventory
from connectors.woocommerce.rest import WooRest
from worker.domain import (
    ListedUntil,
    Order,
    PushRequest,
    PushResult,
    StockChange,
    StockRead,
    StockWriteResult,
    Tracking,
    Unreadable,
    WebhookEvent,
)
from worker.errors import NotFound, PermanentError, TransientError
from worker.ports import Limiter, Store, StoreStock

SHIPMENT_TRACKING = "shipment-tracking"  # WooCommerce Shipment Tracking (woocommerce.com)
AST = "ast"  # Advanced Shipment Tracking (zorem)
_NO_EXTENSION = ""
LISTING_TRIES = 3  # reads of one poll's listing when orders leave it meanwhile


EXTENSION_TTL_S = 300.0  # a tracking extension found is trusted this long, then looked for again


def tracking_route(extension: str, order_id: str) -> tuple[str, str]:
    """(namespace, path) of an order's tracking items for the extension. Advanced Shipment
    Tracking also answers on Shipment Tracking's namespace, but takes no custom provider there
    (Amazon's own deliveries came out "shipped with  and ..."): it is spoken to on its own."""
    if extension == SHIPMENT_TRACKING:
        return "wc-shipment-tracking/v3", f"orders/{order_id}/shipment-trackings"
    return "wc-ast/v3", f"orders/{order_id}/shipment-trackings"


@dataclass(frozen=True)
class WooSettings:
    """What one shop needs: its URL, REST keys (in the query string for hosts that drop the
    Authorization header), the webhook secret, where routing tags come from, and whether a
    shipped order is set completed."""

    shop_url: str
    consumer_key: str = field(repr=False)
    consumer_secret: str = field(repr=False)
    webhook_secret: str | None = field(default=None, repr=False)
    query_string_auth: bool = False
    tag_meta_keys: tuple[str, ...] = ("autofulfill_tags",)
    note_keywords: tuple[str, ...] = ()
    complete_on_ship: bool = True


class WooStore:
    """One WooCommerce shop. Thread-safe; one ``requests.Session`` per instance."""

    def __init__(self, name: str, config: WooSettings, limiter: Limiter,
                 session: requests.Session | None = None, *,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self._config = config
        self._rest = WooRest(config.shop_url, config.consumer_key, config.consumer_secret, limiter, session,
                             query_string_auth=config.query_string_auth, sleep=sleep, clock=clock)
        self._lock = threading.Lock()
        # (extension, when found): "" = none installed; None = look for it on the next push. Per
        # store and short-lived: a plugin activated or removed later is noticed within minutes.
        self._extension: tuple[str, float] | None = None
        self._clock = clock
        self._inventory = WooInventory(self._rest)

    @property
    def auth_mode(self) -> str:
        """"basic", "query" or "oauth1" (from shop_url's scheme and query_string_auth)."""
        return self._rest.auth_mode

    # --- Store Protocol ----------------------------------------------------------------------

    def fetch_order(self, order_id: str) -> Order | None:
        """The order as it is now; None when the shop has no such order.

        Its lines are what is left to ship: a refund does not change the order's line quantities,
        so when the order has refunds they are read (``GET orders/<id>/refunds``) and each line is
        lowered by its refunded units, a line with none left dropped."""
        oid = _oid(order_id)
        try:
            order = self._order(_object(self._rest.get(f"orders/{oid}").data, "order"))
            if order.refunds:
                refunded = mapping.refunded_quantities(self._all(f"orders/{oid}/refunds", "refunds"))
                order = mapping.apply_refunds(order, refunded)
        except WooNoRoute:
            raise
        except NotFound:  # also when the order went between the two reads
            return None
        return order

    def iter_orders(self, updated_since: datetime) -> Iterator[Order | Unreadable | ListedUntil]:
        """Every order modified after ``updated_since``, in any status, paged by id.

        WooCommerce adds no tie-breaker to ``orderby=modified``: orders modified in the same
        second come in a different order on each page request, so paging by modification time
        skips some and repeats others. Paging by id within the window is stable: an order modified
        while we page stays in the window (its new time is later still) and keeps its place, and
        an order entering the window only pushes later pages on (seen twice, never skipped). Only
        an order leaving it (trashed) could pull another back across a page boundary: the
        listing's X-WP-Total going down says so, and the listing is read again."""
        seen: set[tuple[str, datetime | None]] = set()
        for _ in range(LISTING_TRIES):
            page, last_total, shrank = 1, None, False
            while True:
                answer = self._rest.get("orders", mapping.orders_params(updated_since, page))
                items = answer.data
                if not isinstance(items, list):
                    raise WooPayloadError("woocommerce GET /orders: the answer is not a list")
                total = _int(answer.headers.get("X-WP-Total"))
                if total is not None and last_total is not None and total < last_total:
                    shrank = True
                    break
                last_total = total if total is not None else last_total
                for item in items:
                    try:
                        order = self._order(_object(item, "order"))
                    except WooPayloadError as exc:
                        yield Unreadable(_id_for_report(item), str(exc))
                        continue
                    if (order.platform_order_id, order.updated_at) not in seen:
                        seen.add((order.platform_order_id, order.updated_at))
                        yield order
                pages = _int(answer.headers.get("X-WP-TotalPages"))
                last = page >= pages if pages is not None else len(items) < mapping.PAGE_SIZE
                if not items or last:
                    break
                page += 1
            if not shrank:
                return
        raise TransientError(f"woocommerce GET /orders: orders left the listing while it was read, "
                             f"{LISTING_TRIES} times; the next pass reads it again")

    def is_ping(self, body: bytes, headers: Mapping[str, str]) -> bool:
        return webhooks.is_ping(body, headers)

    def warnings(self) -> list[str]:
        hooks = [h for h in self._all("webhooks", "webhooks") if isinstance(h, dict)]
        return mapping.webhook_warnings(hooks, self.name)

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> bool:
        secret = self._config.webhook_secret
        if secret is None:
            return False
        return webhooks.verify(body, webhooks.header(headers, webhooks.SIGNATURE_HEADER), secret)

    def signed_test_delivery(self) -> tuple[bytes, dict[str, str]]:
        body = json.dumps({"id": 0, "autofulfill": "webhook test"}).encode()
        return body, {"Content-Type": "application/json",
                      webhooks.TOPIC_HEADER: "action.autofulfill_webhook_test",
                      webhooks.DELIVERY_ID_HEADER: f"autofulfill-test-{uuid.uuid4().hex}",
                      webhooks.SOURCE_HEADER: self._config.shop_url.rstrip("/") + "/",
                      webhooks.SIGNATURE_HEADER: webhooks.sign(body, self._config.webhook_secret or "")}

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        return webhooks.parse(body, headers, tag_meta_keys=self._config.tag_meta_keys,
                              note_keywords=self._config.note_keywords, shop_url=self._config.shop_url)

    def push_tracking(self, request: PushRequest) -> PushResult:
        """Write the tracking once: tracking items when an extension answers, else one customer note.

        Reads first (the order's tracking items, or its notes): a number already there is not
        written again, and when every number is there nothing is written (``already_there``).
        Then, when ``request.final`` and ``complete_on_ship``, sets the order ``completed`` unless
        it is completed, cancelled or refunded already — also when the tracking was there, so a
        crash between the two steps still completes it. Not atomic: an AmbiguousOutcome or
        TransientError part-way is safe to retry, because the retry reads first.
        """
        if not request.tracking:
            raise PermanentError(f"order {request.order_id}: no tracking number to push")
        oid = _oid(request.order_id)
        extension, existing = self._existing(oid, request.tracking)
        ids: dict[str, str] = dict(existing)
        missing = [t for t in request.tracking if mapping.normalise_number(t.number) not in ids]
        if extension:
            namespace, path = tracking_route(extension, oid)
            for t in missing:
                body = mapping.tracking_item(t, ast=extension == AST)
                try:
                    item = _object(self._rest.post(path, body, namespace=namespace).data, "tracking item")
                except WooNoRoute:
                    self._forget_extension()  # removed meanwhile: the retry looks for it again
                    raise
                ids[mapping.normalise_number(t.number)] = str(item.get("tracking_id", ""))
        elif missing:
            note = {"note": mapping.note_text(missing), "customer_note": request.notify_customer}
            written = _object(self._rest.post(f"orders/{oid}/notes", note).data, "order note")
            for t in missing:
                ids[mapping.normalise_number(t.number)] = str(written.get("id", ""))
        if request.final and self._config.complete_on_ship:
            self._complete(oid)
        return PushResult(fulfillment_id=ids.get(mapping.normalise_number(request.tracking[0].number), ""),
                          already_there=not missing)

    # --- StoreStock Protocol (connectors/woocommerce/inventory.py) ----------------------------

    def read_stock(self, skus: Sequence[str]) -> StockRead:
        """``stock_quantity`` of the product or variation holding each SKU."""
        return self._inventory.read(skus)

    def write_stock(self, changes: Sequence[StockChange], reference: str) -> StockWriteResult:
        """Batch updates (100 a call), after reading the SKUs again: a number that moved is stale.
        WooCommerce keeps no history reference, so ``reference`` is not sent."""
        return self._inventory.write(changes)

    def check(self) -> str:
        """One cheap read for ``autofulfill check --live``."""
        answer = self._rest.get("orders", {"per_page": "1"})
        total = answer.headers.get("X-WP-Total", "?")
        return f"WooCommerce REST API ok ({self._rest.auth_mode} auth, {total} orders)"

    # --- internals -----------------------------------------------------------------------------

    def _order(self, payload: dict[str, Any]) -> Order:
        return mapping.order_from_rest(payload, tag_meta_keys=self._config.tag_meta_keys,
                                       note_keywords=self._config.note_keywords)

    def _all(self, path: str, what: str) -> list[Any]:
        """Every item of a paged list route, 100 a page."""
        items: list[Any] = []
        page = 1
        while True:
            answer = self._rest.get(path, {"per_page": str(mapping.PAGE_SIZE), "page": str(page)})
            if not isinstance(answer.data, list):
                raise WooPayloadError(f"woocommerce GET /{path}: the {what} answer is not a list")
            items.extend(answer.data)
            pages = _int(answer.headers.get("X-WP-TotalPages")) or 1
            if not answer.data or page >= pages:
                return items
            page += 1

    def _existing(self, oid: str, tracking: tuple[Tracking, ...]) -> tuple[str, dict[str, str]]:
        """(extension or "", {normalised number already on the order: tracking or note id}).

        The extension is the first whose route answers (Advanced Shipment Tracking first: it also
        answers Shipment Tracking's routes), remembered for ``EXTENSION_TTL_S``."""
        with self._lock:
            cached = self._extension
        fresh = cached is not None and self._clock() - cached[1] < EXTENSION_TTL_S
        known = cached[0] if cached is not None and fresh else None
        candidates = [known] if known is not None else [AST, SHIPMENT_TRACKING, _NO_EXTENSION]
        for extension in candidates:
            try:
                if extension == _NO_EXTENSION:
                    notes = self._rest.get(f"orders/{oid}/notes").data
                    found = mapping.numbers_in_notes(notes, (t.number for t in tracking))
                else:
                    namespace, path = tracking_route(extension, oid)
                    found = mapping.numbers_in_trackings(self._rest.get(path, namespace=namespace).data)
            except WooNoRoute:
                if known is not None:  # the extension was removed since: detect again
                    self._forget_extension()
                    return self._existing(oid, tracking)
                continue
            except NotFound as exc:
                raise PermanentError(f"order {oid} not found on WooCommerce ({exc})",
                                     status=exc.status) from exc
            with self._lock:
                if known is None:
                    self._extension = (extension, self._clock())
            return extension, found
        raise AssertionError("unreachable: the notes route always exists")

    def _forget_extension(self) -> None:
        with self._lock:
            self._extension = None

    def _complete(self, oid: str) -> None:
        """Set the order completed unless it is completed, cancelled or refunded already.

        WooCommerce has no conditional write: a cancellation between our read and our PUT would be
        overwritten. WooCommerce's own note of our change says from what status it moved; if that
        was a cancellation (or a refund, a failed payment), the status is put back and this
        raises PermanentError, so the caller treats the order as cancelled, not shipped."""
        order = _object(self._rest.get(f"orders/{oid}").data, "order")
        if str(order.get("status", "")).lower() not in mapping.COMPLETABLE:
            return
        self._rest.put(f"orders/{oid}", {"status": "completed"})
        notes = self._rest.get(f"orders/{oid}/notes").data
        overwritten = mapping.status_completed_over(notes)
        if overwritten:
            self._rest.put(f"orders/{oid}", {"status": overwritten})
            raise PermanentError(f"order {oid} was set {overwritten} in the store while it was being "
                                 f"completed; its status is {overwritten} again")


def _oid(order_id: str) -> str:
    text = str(order_id).strip()
    if not text.isdigit():
        raise PermanentError(f"not a WooCommerce order id: {order_id!r}")
    return str(int(text))


def _object(data: Any, what: str) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise WooPayloadError(f"woocommerce answer: the {what} is not a JSON object")
    return data


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _id_for_report(item: object) -> str:
    try:
        return mapping.order_id_of(item) if isinstance(item, dict) else "?"
    except WooPayloadError:
        return "?"


if TYPE_CHECKING:  # mypy proves the class satisfies the worker's Protocols
    _store: type[Store] = WooStore
    _stock: type[StoreStock] = WooStore
