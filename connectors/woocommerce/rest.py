"""``WooRest``: one shop's REST API over our own ``requests.Session`` — auth, timeouts, errors, retries.

Auth is what WooCommerce accepts: HTTP Basic with the consumer key/secret over https; the key and
secret as query parameters over https with ``query_string_auth = true`` (for hosts that strip the
Authorization header); OAuth 1.0a one-legged (HMAC-SHA256) over plain http. The OAuth signature
is made by the ``woocommerce`` package's ``OAuth`` class. Its ``API`` class is not used to send:
it calls ``requests.request`` without a session (no connection reuse, no test transport), and in
OAuth mode it sends the query twice (once signed in the URL, once again as ``params``).

Outcomes are classified like ``connectors.http.send`` (which cannot be called as is, because a
4xx here must be told apart by its body: WooCommerce JSON, ``rest_no_route``, or an HTML page):
nothing sent / 429 / 5xx -> TransientError (honouring Retry-After); sent without an answer ->
AmbiguousOutcome for writes; 401/403 -> WooAuthError; HTML or a redirect -> WooNotJsonError;
404 -> NotFound (``WooNoRoute`` for ``rest_no_route``); other 4xx -> PermanentError. GETs are
retried on TransientError a bounded number of times with backoff; writes never are.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlencode, urlsplit

import requests
from woocommerce.oauth import OAuth  # type: ignore[import-untyped]

from connectors.http import ClientSession, error_of, retry_after_seconds
from connectors.woocommerce.errors import WooAuthError, WooNoRoute, WooNotJsonError
from worker.errors import AmbiguousOutcome, ConnectorError, NotFound, PermanentError, TransientError
from worker.ports import Limiter

WC = "wc/v3"
TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
MAX_TRIES = 4  # GETs only
MAX_WAIT_S = 30.0  # a longer Retry-After is left to the worker's own backoff
RATE, BURST = 5.0, 10.0  # requests/s per shop: WooCommerce sets no limit, shared hosts do
USER_AGENT = "autofulfill (WooCommerce REST v3)"
HTML_HINT = ("check that Settings > Permalinks is not 'Plain' (the REST API needs pretty permalinks), that "
             "no firewall or security plugin blocks /wp-json/, that PHP notices are not printed into "
             "answers (WP_DEBUG_DISPLAY), and that shop_url is the site's address")


@dataclass(frozen=True)
class Answer:
    data: Any  # the decoded JSON
    headers: Mapping[str, str]  # case-insensitive (requests' CaseInsensitiveDict)
    status: int


class WooRest:
    """Thread-safe as ``requests.Session`` is for independent requests."""

    def __init__(self, shop_url: str, consumer_key: str, consumer_secret: str, limiter: Limiter,
                 session: requests.Session | None = None, *, query_string_auth: bool = False,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time,
                 timeout: tuple[float, float] = TIMEOUT, max_tries: int = MAX_TRIES) -> None:
        if not consumer_key or not consumer_secret:
            raise PermanentError("a woocommerce store needs consumer_key and consumer_secret")
        self._key = consumer_key
        self._secret = consumer_secret
        self._base = shop_url.rstrip("/")
        self._limiter = limiter
        self._session = session or ClientSession()
        self._sleep = sleep
        self._clock = clock
        self._timeout = timeout
        self._max_tries = max(1, max_tries)
        host = urlsplit(self._base).netloc
        self.host = host
        self._bucket = f"woocommerce:{host}"
        if self._base.startswith("https://"):
            self.auth_mode = "query" if query_string_auth else "basic"
        else:
            self.auth_mode = "oauth1"

    # --- public --------------------------------------------------------------------------------

    def get(self, path: str, params: Mapping[str, str] | None = None, *, namespace: str = WC) -> Answer:
        """GET with bounded retries on TransientError (backoff with jitter, Retry-After honoured)."""
        for attempt in range(1, self._max_tries + 1):
            try:
                return self.request("GET", path, params=params, namespace=namespace)
            except TransientError as exc:
                wait = exc.retry_after if exc.retry_after is not None else _backoff(attempt)
                if attempt == self._max_tries or wait > MAX_WAIT_S:
                    raise
                self._sleep(wait)
        raise AssertionError("unreachable")

    def post(self, path: str, body: Mapping[str, Any], *, namespace: str = WC) -> Answer:
        """Not retried: an unanswered write raises AmbiguousOutcome; the caller reads before retrying."""
        return self.request("POST", path, body=body, namespace=namespace)

    def put(self, path: str, body: Mapping[str, Any], *, namespace: str = WC) -> Answer:
        return self.request("PUT", path, body=body, namespace=namespace)

    def request(self, method: str, path: str, *, params: Mapping[str, str] | None = None,
                body: Mapping[str, Any] | None = None, namespace: str = WC) -> Answer:
        """One request, classified (see the module docstring); no retry."""
        what = f"woocommerce {method} " + (f"/{path}" if namespace == WC else f"/{namespace}/{path}")
        url = f"{self._base}/wp-json/{namespace}/{path}"
        url, query, auth = self._signed(method, url, dict(params or {}))
        self._limiter.acquire(self._bucket, rate=RATE, burst=BURST)
        try:
            resp = self._session.request(
                method, url, params=query, json=body, auth=auth, timeout=self._timeout,
                allow_redirects=False, headers={"Accept": "application/json", "User-Agent": USER_AGENT})
        except requests.ConnectTimeout as exc:
            self._fail(TransientError(f"{what}: connect timeout"), exc)
        except requests.ConnectionError as exc:
            # A reset or a read timeout after the request was written: the server may have acted.
            if method == "GET":
                self._fail(TransientError(f"{what}: connection failed ({type(exc).__name__})"), exc)
            self._fail(AmbiguousOutcome(f"{what}: no answer ({type(exc).__name__})"), exc)
        except requests.Timeout as exc:
            if method == "GET":
                self._fail(TransientError(f"{what}: read timeout"), exc)
            self._fail(AmbiguousOutcome(f"{what}: read timeout"), exc)
        except requests.RequestException as exc:
            self._fail(PermanentError(f"{what}: request failed ({type(exc).__name__})"), exc)
        return self._classify(resp, what)

    # --- internals -----------------------------------------------------------------------------

    def _signed(self, method: str, url: str, params: dict[str, str]
                ) -> tuple[str, dict[str, str] | None, tuple[str, str] | None]:
        """(url, query params, basic auth) for the shop's auth mode."""
        if self.auth_mode == "basic":
            return url, params or None, (self._key, self._secret)
        if self.auth_mode == "query":
            return url, {**params, "consumer_key": self._key, "consumer_secret": self._secret}, None
        full = f"{url}?{urlencode(params)}" if params else url
        oauth = OAuth(url=full, consumer_key=self._key, consumer_secret=self._secret, version=WC,
                      method=method, oauth_timestamp=int(self._clock()))
        return str(oauth.get_oauth_url()), None, None

    def _fail(self, error: ConnectorError, exc: BaseException) -> NoReturn:
        if self.auth_mode != "basic":
            # The library exception's text holds the URL, and with it the key (and, with
            # query-string auth, the secret): it must not ride along into logs as __cause__.
            raise error from None
        raise error from exc

    def _classify(self, resp: requests.Response, what: str) -> Answer:
        code = resp.status_code
        rid = resp.headers.get("X-Request-Id", "")
        html = _is_html(resp)
        if 300 <= code < 400:
            where = urlsplit(resp.headers.get("Location", ""))
            raise WooNotJsonError(
                f"{what}: HTTP {code} redirect to {where.scheme}://{where.netloc}{where.path}: set shop_url "
                "to the site's final address (https, www or not)", status=code, request_id=rid)
        if code == 429 or code >= 500:
            retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
            if code == 429:
                self._limiter.pause(self._bucket, retry_after or 1.0)
            raise TransientError(f"{what}: HTTP {code}{_detail(resp)}", retry_after=retry_after,
                                 status=code, request_id=rid)
        if code < 300:
            if html:
                raise WooNotJsonError(f"{what}: an HTML page answered instead of the REST API: {HTML_HINT}",
                                      status=code, request_id=rid)
            try:
                data = resp.json()
            except ValueError as exc:
                raise WooNotJsonError(f"{what}: the answer is not JSON: {HTML_HINT}",
                                      status=code, request_id=rid) from exc
            return Answer(data=data, headers=resp.headers, status=code)
        if html:
            raise WooNotJsonError(f"{what}: HTTP {code} with an HTML page instead of the REST API: "
                                  f"{HTML_HINT}", status=code, request_id=rid)
        err_code, message = _error_of(resp)
        if code in (401, 403):
            hint = ("check the REST key (WooCommerce > Settings > Advanced > REST API): consumer key and "
                    "secret, and that its permissions are Read/Write")
            if self.auth_mode == "basic":
                hint += ("; some hosts strip the Authorization header over https, where "
                         "query_string_auth = true helps")
            elif self.auth_mode == "oauth1":
                hint += "; OAuth 1.0a over http also needs this machine's clock right (15-minute window)"
            raise WooAuthError(f"{what}: HTTP {code}{_said(err_code, message)}: {hint}",
                               status=code, request_id=rid)
        if code == 404:
            if err_code == "rest_no_route":
                raise WooNoRoute(f"{what}: no such REST route (rest_no_route): the plugin serving it is "
                                 "not active, or WooCommerce's REST API is off", status=code, request_id=rid)
            raise NotFound(f"{what}: not found (HTTP 404){_said(err_code, message)}",
                           status=code, request_id=rid)
        raise PermanentError(f"{what}: HTTP {code}{_said(err_code, message)}", status=code, request_id=rid)


def _backoff(attempt: int) -> float:
    return float(0.5 * 2 ** (attempt - 1) + random.uniform(0, 0.25))  # noqa: S311 - jitter, not crypto


def _is_html(resp: requests.Response) -> bool:
    ctype = resp.headers.get("Content-Type", "").lower()
    if "html" in ctype:
        return True
    head = resp.content[:200].lstrip().lower()
    return head.startswith((b"<!doctype", b"<html", b"<br", b"<b>", b"<?xml", b"<head", b"<body"))


def _error_of(resp: requests.Response) -> tuple[str, str]:
    """WooCommerce's error JSON ``{"code", "message", "data": {"status"}}`` -> (code, message)."""
    return error_of(resp)


def _said(err_code: str, message: str) -> str:
    said = " ".join(p for p in (f"({err_code})" if err_code else "", message) if p)
    return f" {said}" if said else ""


def _detail(resp: requests.Response) -> str:
    """The answer's error code and message, never its raw body (it may echo the request)."""
    said = _said(*error_of(resp))
    return f":{said}" if said else ""
