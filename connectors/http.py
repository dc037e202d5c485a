"""One place that turns ``requests`` outcomes into our error classes; every client calls it."""

from __future__ import annotations

import email.utils
import os
import time
from typing import Any
from urllib.parse import urlsplit

import requests

from worker.errors import AmbiguousOutcome, NotFound, PermanentError, TransientError

DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds


class ClientSession(requests.Session):
    """The session every client talks through: ``requests.Session`` with the environment read once
    per host instead of on every call. requests re-reads the proxy variables, the CA bundle and
    looks for a ``.netrc`` on each request (about 2.5 % of a worker's CPU in a burst). The same
    settings apply: ``HTTP(S)_PROXY``/``ALL_PROXY`` unless ``NO_PROXY`` names the host, and
    ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``; only ``.netrc`` credentials are never used (every
    client sends its own). Environment changes are seen by a new session (a restart)."""

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False
        bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        if bundle:
            self.verify = bundle
        self._proxies: dict[tuple[str, str], dict[str, str]] = {}

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> requests.Response:
        if kwargs.get("proxies") is None and isinstance(url, str):
            kwargs["proxies"] = self.proxies_for(url)
        return super().request(method, url, *args, **kwargs)

    def proxies_for(self, url: str) -> dict[str, str]:
        """The environment's proxies for ``url``'s host ({} when ``NO_PROXY`` bypasses it)."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        found = self._proxies.get(key)
        if found is None:
            found = self._proxies[key] = requests.utils.get_environ_proxies(url)
        return found


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent/odd."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def send(
    session: requests.Session,
    method: str,
    url: str,
    *,
    what: str,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    request_id_header: str = "",
    **kwargs: Any,
) -> requests.Response:
    """Send one request and classify the outcome.

    ``what`` names the call in error messages (never the URL's query, which may hold keys).
    Returns the response for 2xx. Raises TransientError when nothing reached the server or the
    server said try later (429, 5xx), AmbiguousOutcome when the request went out but no answer
    came back, NotFound on 404 and PermanentError on other 4xx.
    """
    try:
        resp = session.request(method, url, timeout=timeout, **kwargs)
    except requests.ConnectTimeout as exc:
        raise TransientError(f"{what}: connect timeout") from exc
    except requests.ConnectionError as exc:
        # A reset or a read timeout after the request was written: the server may have acted.
        if method.upper() == "GET":
            raise TransientError(f"{what}: connection failed ({type(exc).__name__})") from exc
        raise AmbiguousOutcome(f"{what}: no answer ({type(exc).__name__})") from exc
    except requests.Timeout as exc:
        if method.upper() == "GET":
            raise TransientError(f"{what}: read timeout") from exc
        raise AmbiguousOutcome(f"{what}: read timeout") from exc
    except requests.RequestException as exc:
        raise PermanentError(f"{what}: request failed ({type(exc).__name__})") from exc
    rid = resp.headers.get(request_id_header, "") if request_id_header else ""
    code = resp.status_code
    if code < 400:
        return resp
    detail = _short_detail(resp)
    if code == 429 or code >= 500:
        raise TransientError(
            f"{what}: HTTP {code}{detail}",
            retry_after=retry_after_seconds(resp.headers.get("Retry-After")),
            request_id=rid, status=code,
        )
    if code == 404:
        raise NotFound(f"{what}: not found (HTTP 404){detail}", request_id=rid, status=code)
    raise PermanentError(f"{what}: HTTP {code}{detail}", request_id=rid, status=code)


def _short_detail(resp: requests.Response) -> str:
    """``": code: message"`` from the provider's error JSON; never the raw body, which may echo
    the request back (an address, a token)."""
    code, message = error_of(resp)
    said = ": ".join(p for p in (code, message) if p)
    if said:
        return f": {said[:300]}"
    return f" ({len(resp.content)}-byte answer without an error message)" if resp.content else ""


def error_of(resp: requests.Response) -> tuple[str, str]:
    """(code, message) of an error answer in the shapes our providers use: ``{"errors": [{"code",
    "message"}]}`` (Amazon, Shopify), ``{"error": {"code", "message"}}`` (EasyPost), ``{"error",
    "error_description"}`` (OAuth), ``{"code", "message"}`` (WooCommerce); ("", "") otherwise."""
    try:
        body = resp.json()
    except ValueError:
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    found: Any = body.get("errors") or body.get("error") or body
    if isinstance(found, list):
        found = found[0] if found else {}
    if isinstance(found, str):
        return found[:100], str(body.get("error_description") or "")[:300]
    if not isinstance(found, dict):
        return "", ""
    code = found.get("code") or found.get("error_code") or ""
    message = found.get("message") or found.get("details") or ""
    return (str(code)[:100] if isinstance(code, str | int) else "",
            str(message)[:300] if isinstance(message, str) else "")
