"""SP-API Fulfillment Outbound v2020-07-01 over ``requests``: the ``Fulfiller`` for Amazon MCF,
and the account's FBA stock (FBA Inventory v1 ``getInventorySummaries``, the ``StockSource``).

Auth is the LWA refresh-token grant (``x-amz-access-token``, no SigV4). Every call goes through
``connectors.http.send`` with explicit timeouts, draws from the shared rate limiter first, and
records Amazon's ``x-amzn-RequestId`` (``last_request_id`` and on every error) for the ledger.
Tokens, secrets and addresses never appear in errors or logs.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

import requests

from connectors.amazon_mcf import inventory_mapping, mapping
from connectors.amazon_mcf.errors import AmazonRejected, AmazonThrottled, CancelTooLate
from connectors.http import DEFAULT_TIMEOUT, ClientSession, send
from worker.domain import Address, FbaStock, FulfillmentRequest, FulfillmentStatus, Preview, PreviewItem
from worker.errors import AmbiguousOutcome, NotFound, PermanentError, TransientError
from worker.ports import Fulfiller, Limiter, StockSource

log = logging.getLogger(__name__)

API = "/fba/outbound/2020-07-01"
DEFAULT_RATE = 2.0  # SP-API Fulfillment Outbound usage plan: 2 requests/s, burst 30, per operation
DEFAULT_BURST = 30
# Amazon counts a request when it arrives, we when we send it: one slowed on its way lets the next
# arrive less than a token after it, and right after a burst (both buckets empty) Amazon refuses
# it. Our bucket holds this many tokens fewer than Amazon's, so Amazon's stays that far ahead.
BURST_CUSHION = 1.0
# Operations whose published usage plan differs from the default: (rate per second, burst).
QUOTAS: dict[str, tuple[float, float]] = {"getInventorySummaries": (2.0, 2.0)}
TOKEN_MARGIN_S = 60.0  # renew an access token this long before Amazon says it expires
USER_AGENT = (f"autofulfill/0.1 (Language=Python/{sys.version_info.major}.{sys.version_info.minor};"
              f" Platform={sys.platform})")
RID = "x-amzn-RequestId"


@dataclass(frozen=True)
class AmazonSettings:
    """One seller account in one region: the marketplace, the SP-API endpoint, the LWA app and
    refresh token, and per-operation quota overrides (rate per second, burst)."""

    marketplace_id: str
    client_id: str = field(repr=False)
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    base_url: str = "https://sellingpartnerapi-na.amazon.com"
    token_url: str = "https://api.amazon.com/auth/o2/token"
    quota: Mapping[str, tuple[float, float]] = field(default_factory=dict)


class AmazonMCF:
    """One seller account in one region. Thread-safe; tokens are shared by clients of one account."""

    _tokens: ClassVar[dict[tuple[str, str, str], tuple[str, float]]] = {}
    _tokens_lock: ClassVar[threading.Lock] = threading.Lock()
    _login_locks: ClassVar[dict[tuple[str, str, str], threading.Lock]] = {}

    def __init__(self, name: str, config: AmazonSettings, limiter: Limiter,
                 session: requests.Session | None = None, *,
                 timeout: tuple[float, float] = DEFAULT_TIMEOUT, max_throttle_retries: int = 3,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = name
        self._config = config
        self._limiter = limiter
        self._session = session or ClientSession()
        self._timeout = timeout
        self._max_throttle_retries = max_throttle_retries
        self._clock = clock
        self._rates: dict[str, float] = {}  # operation -> rate learned from x-amzn-RateLimit-Limit
        self._local = threading.local()
        self._token_key = (name, config.client_id, config.token_url)

    @classmethod
    def clear_token_cache(cls) -> None:
        with cls._tokens_lock:
            cls._tokens.clear()

    @property
    def last_request_id(self) -> str:
        """``x-amzn-RequestId`` of the last answer this thread got (for the ledger)."""
        return str(getattr(self._local, "request_id", ""))

    # -- Fulfiller ---------------------------------------------------------------------------------

    def submit(self, request: FulfillmentRequest) -> None:
        """createFulfillmentOrder. Idempotent by ``seller_fulfillment_order_id``.

        A refused create whose id Amazon already has is ours: returns normally. Raises
        AmbiguousOutcome on a timeout after sending or a 5xx (look it up before any resubmit),
        AmazonThrottled after repeated 429s, AmazonRejected for other refusals."""
        oid = request.seller_fulfillment_order_id
        body = mapping.create_request_body(request, self._config.marketplace_id)
        try:
            self._call("createFulfillmentOrder", "POST", "/fulfillmentOrders", json=body)
        except AmazonRejected as exc:
            if exc.status not in (400, 409):
                raise
            # Confirm by reading the id: an earlier attempt may have landed (the wording of
            # Amazon's duplicate answer is not a contract), and a duplicate *item* id is not ours.
            if self._exists(oid):
                log.info("amazon.create_duplicate", extra={"shipment": oid, "request_id": exc.request_id})
                return
            if mapping.is_duplicate_error(exc.code, exc.amazon_message):
                raise TransientError(f"amazon createFulfillmentOrder {oid}: Amazon says the id exists "
                                     "but cannot show it yet", request_id=exc.request_id,
                                     status=exc.status) from exc
            raise
        log.info("amazon.created", extra={"shipment": oid, "request_id": self.last_request_id})

    def lookup(self, seller_fulfillment_order_id: str) -> FulfillmentStatus | None:
        """getFulfillmentOrder (+ getPackageTrackingDetails for Amazon Logistics packages).

        None when Amazon does not know the id. Read-only."""
        payload = self._get_order(seller_fulfillment_order_id)
        if payload is None:
            return None
        urls: dict[str, str] = {}
        for number in mapping.amazon_package_numbers(payload):
            try:
                urls[str(number)] = self.tracking_link(number)
            except PermanentError:
                pass  # no link for this package: the number alone still goes to the store
        return mapping.status_from_get(payload, urls)

    def tracking_link(self, package_number: int) -> str:
        """getPackageTrackingDetails → the customer's tracking link ("" when Amazon has none)."""
        resp = self._call("getPackageTrackingDetails", "GET", "/tracking",
                          params={"packageNumber": int(package_number)})
        return mapping.tracking_link_from_package_details(_json(resp))

    def changed_since(self, since: datetime) -> Iterator[str]:
        """listAllFulfillmentOrders from ``since`` (whole seconds, inclusive), every page."""
        params: dict[str, str] = {"queryStartDate": mapping.iso_z(since)}
        seen: set[str] = set()
        while True:
            resp = self._call("listAllFulfillmentOrders", "GET", "/fulfillmentOrders", params=params)
            ids, token = mapping.ids_from_list(_json(resp))
            for oid in ids:
                if oid not in seen:
                    seen.add(oid)
                    yield oid
            if not token:
                return
            params = {"nextToken": token}

    def cancel(self, seller_fulfillment_order_id: str) -> None:
        """cancelFulfillmentOrder. Safe to repeat: an order already cancelled counts as done.

        Raises CancelTooLate (a PermanentError) when Amazon refuses because the order is past
        Planning, NotFound when Amazon does not know the id."""
        oid = seller_fulfillment_order_id
        try:
            self._call("cancelFulfillmentOrder", "PUT", f"/fulfillmentOrders/{_path(oid)}/cancel")
        except AmazonRejected as exc:
            if exc.status != 400:
                raise
            current = self.lookup(oid)
            if current is not None and current.status == "cancelled":
                return
            state = current.status if current is not None else "unknown"
            raise CancelTooLate(
                f"amazon cancelFulfillmentOrder {oid}: cancel too late (status {state}), "
                f"intercept manually in Seller Central: {exc.code}: {exc.amazon_message}".rstrip(": "),
                code=exc.code, amazon_message=exc.amazon_message,
                request_id=exc.request_id, status=exc.status) from exc
        log.info("amazon.cancelled", extra={"shipment": oid, "request_id": self.last_request_id})

    def preview(self, address: Address, items: Sequence[PreviewItem], speeds: Sequence[str],
                features: Sequence[str] = ()) -> tuple[Preview, ...]:
        """getFulfillmentPreview: can Amazon ship these lines, at which fees and arrival, per speed.

        Read-only (nothing is created): a timeout or 5xx is a TransientError, never ambiguous.
        ``speeds`` empty asks for every speed. Raises AmazonRejected for a refused request (400:
        e.g. an invalid address), AmazonThrottled after repeated 429s."""
        body = mapping.preview_request_body(address, items, self._config.marketplace_id, speeds,
                                            features)
        resp = self._call("getFulfillmentPreview", "POST", "/fulfillmentOrders/preview", json=body)
        try:
            previews = mapping.previews_from_payload(_json(resp))
        except PermanentError as exc:
            raise PermanentError(str(exc), request_id=self.last_request_id,
                                 status=resp.status_code) from exc
        log.info("amazon.preview", extra={"request_id": self.last_request_id, "speeds": [
            f"{p.speed}:{'ok' if p.fulfillable else 'no'}" for p in previews]})
        return previews

    def fba_stock(self, seller_skus: Sequence[str]) -> dict[str, FbaStock]:
        """getInventorySummaries (details, this marketplace), 50 SKUs a call, every page.

        A SKU Amazon does not know is absent. Read-only; a next page is asked at once (Amazon's
        token lasts ~30 s). Raises AmazonThrottled after repeated 429s, TransientError, or
        AmazonRejected; then the caller has nothing half-read."""
        out: dict[str, FbaStock] = {}
        marketplace = self._config.marketplace_id
        for chunk in inventory_mapping.chunks(seller_skus):
            wanted, token, restarted = set(chunk), None, False
            while True:
                try:
                    resp = self._call("getInventorySummaries", "GET", inventory_mapping.PATH, api="",
                                      params=inventory_mapping.summaries_params(marketplace, chunk, token))
                except AmazonRejected as exc:
                    if token is None or exc.status != 400:
                        raise
                    if restarted:  # the page token expired twice: the pass is tried again later
                        raise TransientError(f"amazon getInventorySummaries: nextToken expired again "
                                             f"({exc.code})", request_id=exc.request_id, status=400) from exc
                    restarted, token = True, None  # it lasts ~30 s: ask for these SKUs from the start
                    continue
                stocks, token = inventory_mapping.summaries_from_payload(_json(resp))
                out.update((s.seller_sku, s) for s in stocks if s.seller_sku in wanted)
                if not token:
                    break
        log.info("amazon.inventory", extra={"account": self.name, "asked": len(set(seller_skus)),
                                            "known": len(out), "request_id": self.last_request_id})
        return out

    def check(self) -> str:
        """One cheap authenticated read for ``autofulfill check --live``."""
        now = datetime.now(UTC)
        resp = self._call("listAllFulfillmentOrders", "GET", "/fulfillmentOrders",
                          params={"queryStartDate": mapping.iso_z(now)})
        mapping.ids_from_list(_json(resp))  # the answer has Amazon's shape
        return (f"ok ({self._config.base_url}, marketplace "
                f"{self._config.marketplace_id}, request id {self.last_request_id or '-'})")

    # -- internals ---------------------------------------------------------------------------------

    def _exists(self, oid: str) -> bool:
        return self._get_order(oid) is not None

    def _get_order(self, oid: str) -> dict[str, Any] | None:
        try:
            resp = self._call("getFulfillmentOrder", "GET", f"/fulfillmentOrders/{_path(oid)}")
        except NotFound:
            return None
        except AmazonRejected as exc:
            if exc.status == 400 and mapping.is_not_found_error(exc.code, exc.amazon_message):
                return None
            raise
        return _json(resp)

    def _quota(self, operation: str) -> tuple[float, float]:
        rate, burst = self._config.quota.get(operation, QUOTAS.get(operation, (DEFAULT_RATE, DEFAULT_BURST)))
        return self._rates.get(operation, float(rate)), float(burst)

    def _call(self, operation: str, method: str, path: str, *, api: str = API,
              **kwargs: Any) -> requests.Response:
        """One SP-API operation: limiter, token, send, 429 pause-and-retry, error translation."""
        key = f"amazon:{self.name}:{operation}"
        what = f"amazon {operation}"
        url = self._config.base_url + api + path
        token_retried = False
        attempt = 0
        while True:
            rate, burst = self._quota(operation)
            self._limiter.acquire(key, rate=rate, burst=max(1.0, burst - BURST_CUSHION))
            seen: list[requests.Response] = []
            headers = {"x-amz-access-token": self._access_token(), "user-agent": USER_AGENT,
                       "accept": "application/json"}
            try:
                resp = send(self._session, method, url, what=what, timeout=self._timeout,
                            request_id_header=RID, headers=headers,
                            hooks={"response": [_recorder(seen)]}, **kwargs)
            except AmbiguousOutcome as exc:
                self._observe(operation, seen)
                if operation == "createFulfillmentOrder":
                    raise
                # Reads, and a cancel (repeating it is harmless): simply try again later.
                raise TransientError(str(exc), request_id=exc.request_id, status=exc.status) from exc
            except TransientError as exc:
                self._observe(operation, seen)
                if exc.status == 429:
                    # No Retry-After on SP-API: nothing was executed, so wait one token and retry.
                    self._limiter.pause(key, 1.0 / rate)
                    attempt += 1
                    if attempt <= self._max_throttle_retries:
                        continue
                    raise AmazonThrottled(f"{what}: throttled (429 QuotaExceeded) {attempt} times",
                                          retry_after=1.0 / rate, request_id=exc.request_id,
                                          status=429) from exc
                if exc.status is not None and exc.status >= 500 and operation == "createFulfillmentOrder":
                    raise AmbiguousOutcome(f"{what}: HTTP {exc.status}, outcome unknown",
                                           request_id=exc.request_id, status=exc.status) from exc
                raise TransientError(_message(what, exc, seen), retry_after=exc.retry_after,
                                     request_id=exc.request_id, status=exc.status) from exc
            except NotFound as exc:
                self._observe(operation, seen)
                raise NotFound(_message(what, exc, seen), request_id=exc.request_id,
                               status=404) from exc
            except PermanentError as exc:
                self._observe(operation, seen)
                if exc.status == 403 and not token_retried:
                    token_retried = True  # expired or revoked access token: log in again once
                    self._drop_token()
                    continue
                code, message = _first_error(seen)
                raise AmazonRejected(_message(what, exc, seen), code=code, amazon_message=message,
                                     request_id=exc.request_id, status=exc.status) from exc
            self._observe(operation, [resp])
            return resp

    def _observe(self, operation: str, seen: list[requests.Response]) -> None:
        if not seen:
            self._local.request_id = ""
            return
        resp = seen[-1]
        self._local.request_id = resp.headers.get(RID, "")
        limit = resp.headers.get("x-amzn-RateLimit-Limit")
        if limit:
            try:
                rate = float(limit)
            except ValueError:
                return
            if rate > 0:
                self._rates[operation] = rate

    def _cached_token(self) -> str | None:
        with self._tokens_lock:
            cached = self._tokens.get(self._token_key)
        if cached and cached[1] - TOKEN_MARGIN_S > self._clock():
            return cached[0]
        return None

    def _access_token(self) -> str:
        token = self._cached_token()
        if token:
            return token
        with self._tokens_lock:
            login_lock = self._login_locks.setdefault(self._token_key, threading.Lock())
        with login_lock:  # one login per account at a time; the others reuse its token
            token = self._cached_token()
            if token:
                return token
            token, expires_in = self._login()
            with self._tokens_lock:
                self._tokens[self._token_key] = (token, self._clock() + expires_in)
            return token

    def _drop_token(self) -> None:
        with self._tokens_lock:
            self._tokens.pop(self._token_key, None)

    def _login(self) -> tuple[str, float]:
        cfg = self._config
        form = {
            "grant_type": "refresh_token",
            "refresh_token": cfg.refresh_token,
            "client_id": cfg.client_id,
            "client_secret": cfg.client_secret,
        }
        seen: list[requests.Response] = []
        what = "amazon LWA token"
        try:
            resp = send(self._session, "POST", cfg.token_url, what=what, timeout=self._timeout,
                        data=form, headers={"user-agent": USER_AGENT, "accept": "application/json"},
                        hooks={"response": [_recorder(seen)]})
        except AmbiguousOutcome as exc:  # asking for a token twice is harmless
            raise TransientError(f"{what}: no answer") from exc
        except TransientError as exc:
            raise TransientError(f"{what}: HTTP {exc.status or 'error'}", status=exc.status,
                                 retry_after=exc.retry_after) from exc
        except PermanentError as exc:
            # LWA's answer names the problem (invalid_grant, invalid_client); the body never echoes
            # our secrets, but we print only its error code to be sure.
            err = _lwa_error(seen)
            raise AmazonRejected(f"{what}: login refused ({err or exc.status}); check client_id, "
                                 f"client_secret and refresh_token of [amazon.{self.name}]",
                                 code=err, status=exc.status) from exc
        data = _json(resp)
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            raise AmazonRejected(f"{what}: answer without access_token", status=resp.status_code)
        try:
            expires_in = float(data.get("expires_in", 3600))
        except (TypeError, ValueError):
            expires_in = 3600.0
        log.info("amazon.token", extra={"account": self.name, "expires_in": expires_in})
        return token, expires_in


def _recorder(seen: list[requests.Response]) -> Callable[..., None]:
    """A ``requests`` response hook that keeps the answer, so 4xx bodies can be read after send()."""
    def hook(resp: requests.Response, *args: Any, **kwargs: Any) -> None:
        seen.append(resp)
    return hook


def _path(oid: str) -> str:
    return quote(oid, safe="")


def _json(resp: requests.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError as exc:
        raise TransientError(f"amazon: answer is not JSON (HTTP {resp.status_code})",
                             request_id=resp.headers.get(RID, ""), status=resp.status_code) from exc
    return data if isinstance(data, dict) else {}


def _first_error(seen: list[requests.Response]) -> tuple[str, str]:
    if not seen:
        return "", ""
    try:
        errors = mapping.amazon_errors(seen[-1].json())
    except ValueError:
        return "", ""
    return errors[0] if errors else ("", "")


def _lwa_error(seen: list[requests.Response]) -> str:
    try:
        data = seen[-1].json() if seen else {}
    except ValueError:
        return ""
    return str(data.get("error", ""))[:64] if isinstance(data, dict) else ""


def _message(what: str, exc: Exception, seen: list[requests.Response]) -> str:
    """``what: HTTP n: code: message`` from Amazon's errors[], without echoing the raw body."""
    status = getattr(exc, "status", None)
    code, message = _first_error(seen)
    if code or message:
        return f"{what}: HTTP {status}: {code}: {message}"[:500]
    return f"{what}: HTTP {status}" if status else str(exc)


if TYPE_CHECKING:  # mypy proves the class satisfies the worker's Protocols
    _fulfiller: type[Fulfiller] = AmazonMCF
    _stock: type[StockSource] = AmazonMCF
