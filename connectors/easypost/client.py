"""EasyPost through its own SDK (``easypost`` 10.x, on ``requests``): the ``LabelProvider``.

The SDK makes every API call (Bearer auth with the key, JSON bodies, our ``timeout_s``); its
``ApiError``s are translated here, at the boundary, into our error classes. The SDK keeps its
own ``requests.Session`` (it takes none from outside), so the ``session`` given to
``EasyPostLabels`` is used only to download label files, which live on EasyPost's file host and
need no key. ``last_request_id`` is EasyPost's ``x-ep-request-uuid`` of this thread's last answer.

Exactly-once buying: ``buy`` on a shipment that already has postage answers the existing label
(EasyPost refuses a second purchase with ``SHIPMENT.POSTAGE.EXISTS``), and an unknown outcome is
an ``AmbiguousOutcome`` for the caller to resolve with ``lookup``. ``lookup`` also takes our
reference in place of the shipment id (EasyPost accepts a reference wherever an id goes).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from easypost.easypost_client import EasyPostClient
from easypost.errors.api.api_error import ApiError
from easypost.errors.api.json_error import JsonError
from easypost.errors.api.timeout_error import TimeoutError as EasyPostTimeout

from connectors.easypost import mapping
from connectors.easypost.errors import (
    EasyPostAddressError,
    EasyPostAuthError,
    EasyPostRejected,
    EasyPostThrottled,
)
from connectors.http import ClientSession
from worker.domain import Label, LabelRequest, Quote, Rate
from worker.errors import AmbiguousOutcome, ConnectorError, NotFound, PermanentError, TransientError

log = logging.getLogger(__name__)

POSTAGE_EXISTS = "SHIPMENT.POSTAGE.EXISTS"  # EasyPost's answer to a second purchase of one shipment
PURCHASE_IN_PROGRESS = "SHIPMENT.PURCHASE.IN_PROGRESS"
AUTH_HINT = "check api_key (test keys start with EZTK, production EZAK)"
_ADDRESS_CODES = ("ADDRESS.", "PARCEL.", "SHIPMENT.INVALID_PARAMS", "SHIPMENT.MISSING_INFORMATION")
# A missing or refused customs declaration: by its code, or by a message or field naming customs
# (carriers' refusals at purchase come as SHIPMENT.POSTAGE.FAILURE with their own words).
CUSTOMS_CODE = "SHIPMENT.CUSTOMS_INFO."
_REFUNDED = ("submitted", "refunded")


@dataclass(frozen=True)
class EasyPostSettings:
    """One EasyPost account: its API key and endpoint, the label file format, the call timeout."""

    api_key: str = field(repr=False)
    endpoint: str = "https://api.easypost.com/v2"
    label_format: str = "PDF"
    timeout_s: float = 30.0


class EasyPostLabels:
    """One ``[labels.<name>]`` EasyPost account. Thread-safe."""

    def __init__(self, name: str, config: EasyPostSettings, session: requests.Session | None = None) -> None:
        self.name = name
        self._config = config
        self._key = config.api_key
        # requests takes float seconds; the SDK's hint says int.
        self._sdk = EasyPostClient(self._key, api_base=config.endpoint.rstrip("/"),
                                   timeout=config.timeout_s)  # type: ignore[arg-type]
        self._sdk.subscribe_to_response_hook(self._on_response)  # type: ignore[no-untyped-call]
        self._session = session or ClientSession()
        self._local = threading.local()

    @property
    def last_request_id(self) -> str:
        return str(getattr(self._local, "request_id", ""))

    # -- LabelProvider -----------------------------------------------------------------------------

    def quote(self, request: LabelRequest) -> Quote:
        """POST /shipments with our reference and label format; returns the rates. Buys nothing.

        Raises EasyPostAddressError for address/parcel/customs problems (EasyPost's 422, or no carrier
        rated it because of a missing international phone or a PO box), NoRateFits when no carrier
        offered any rate (with the carriers' messages), TransientError for timeouts, 429, 5xx."""
        params = mapping.shipment_params(request, self._config.label_format)
        obj = self._call("create shipment", request.reference, self._sdk.shipment.create, **params)
        rates = mapping.rates_from_shipment(obj)
        messages = mapping.messages_from_shipment(obj)
        if not rates:
            raise mapping.no_rates_error(request, messages)
        log.info("easypost.quoted", extra={"shipment": obj.get("id"), "reference": request.reference,
                                           "rates": len(rates), "request_id": self.last_request_id})
        return Quote(shipment_id=str(obj["id"]), rates=rates, messages=messages)

    def buy(self, shipment_id: str, rate: Rate) -> Label:
        """POST /shipments/{id}/buy with this rate. Not idempotent by itself, made safe so:

        a shipment already bought (EasyPost: ``SHIPMENT.POSTAGE.EXISTS``) returns the existing
        label, whatever rate it was bought at. Raises AmbiguousOutcome when the request may have
        been executed without our seeing the answer (timeout, connection lost, 5xx, a purchase
        still in progress): call ``lookup`` before buying again. 429 is a TransientError. An
        international shipment created without ``customs_info`` is refused (EasyPostAddressError)."""
        try:
            obj = self._call("buy", shipment_id, self._sdk.shipment.buy, shipment_id,
                             ambiguous=True, rate={"id": rate.rate_id})
        except EasyPostRejected as exc:
            if exc.code == PURCHASE_IN_PROGRESS:
                raise AmbiguousOutcome(f"easypost buy {shipment_id}: a purchase is still in progress; "
                                       "look it up before buying again", request_id=exc.request_id,
                                       status=exc.status) from exc
            if exc.code != POSTAGE_EXISTS:
                raise
            label = self.lookup(shipment_id)
            if label is None:
                raise TransientError(f"easypost buy {shipment_id}: EasyPost says postage exists but the "
                                     "shipment shows no label yet", request_id=exc.request_id,
                                     status=exc.status) from exc
            log.info("easypost.already_bought", extra={"shipment": shipment_id, "request_id": exc.request_id})
            return label
        label = mapping.label_from_shipment(obj)
        if label is None:
            raise AmbiguousOutcome(f"easypost buy {shipment_id}: answered without a postage label; "
                                   "look it up before buying again", request_id=self.last_request_id)
        log.info("easypost.bought", extra={"shipment": shipment_id, "carrier": label.rate.carrier,
                                           "service": label.rate.service, "request_id": self.last_request_id})
        return label

    def lookup(self, shipment_id: str) -> Label | None:
        """GET /shipments/{id} (or our reference): the label when bought, else None. Read-only.

        Raises NotFound when EasyPost does not know the id, TransientError for timeouts/429/5xx."""
        return mapping.label_from_shipment(self._shipment(shipment_id))

    def label_file(self, label: Label) -> bytes:
        """GET the label document (no API key: it is a plain file URL). TransientError on failure."""
        what = f"easypost label file of {label.shipment_id}"
        if not label.label_url:
            raise PermanentError(f"{what}: the label has no URL")
        try:
            resp = self._session.get(label.label_url, timeout=self._config.timeout_s)
        except requests.RequestException as exc:
            raise TransientError(f"{what}: {type(exc).__name__}") from exc
        if resp.status_code != 200:
            raise TransientError(f"{what}: HTTP {resp.status_code}", status=resp.status_code)
        data = resp.content
        if not data or (label.label_format == "PDF" and not data.startswith(b"%PDF")):
            raise TransientError(f"{what}: the download is empty or not a {label.label_format}")
        return data

    def refund(self, shipment_id: str) -> str:
        """POST /shipments/{id}/refund; returns ``submitted`` or ``refunded``. Safe to repeat: when
        EasyPost refuses because a refund was already asked for, the shipment's status answers.

        Raises PermanentError when the refund is rejected (label used, too old) or impossible
        (nothing bought)."""
        try:
            obj = self._call("refund", shipment_id, self._sdk.shipment.refund, shipment_id)
        except EasyPostRejected as exc:
            status = mapping.refund_status(self._shipment(shipment_id))
            if status in _REFUNDED:
                return status
            raise EasyPostRejected(f"easypost refund {shipment_id}: EasyPost will not refund this label "
                                   f"({exc.code or exc.status}: {exc}); void it with the carrier or "
                                   "in the EasyPost dashboard", code=exc.code, request_id=exc.request_id,
                                   status=exc.status) from exc
        status = mapping.refund_status(obj)
        if status == "rejected":
            raise EasyPostRejected(f"easypost refund {shipment_id}: the carrier rejected the refund (label "
                                   "used or too old); settle it in the EasyPost dashboard",
                                   code="REFUND.REJECTED", request_id=self.last_request_id)
        log.info("easypost.refund", extra={"shipment": shipment_id, "refund_status": status,
                                           "request_id": self.last_request_id})
        return status

    def check(self) -> str:
        """GET /users (the key's own user): one cheap authenticated read."""
        user = self._call("check", self.name, self._sdk.user.retrieve_me)
        kind = {"EZTK": "test", "EZAK": "production"}.get(self._key[:4], "unrecognised")
        return f"easypost [labels.{self.name}]: ok, {kind} key of user {user.get('id') or '?'}"

    # -- plumbing ----------------------------------------------------------------------------------

    def _shipment(self, shipment_id: str) -> dict[str, Any]:
        return self._call("retrieve", shipment_id, self._sdk.shipment.retrieve, shipment_id)

    def _on_response(self, **kwargs: Any) -> None:
        headers = kwargs.get("headers") or {}
        self._local.request_id = str(headers.get("x-ep-request-uuid", "")) if hasattr(headers, "get") else ""

    def _call(self, operation: str, subject: str, fn: Callable[..., Any], *args: Any,
              ambiguous: bool = False, **kwargs: Any) -> dict[str, Any]:
        self._local.request_id = ""
        try:
            obj = fn(*args, **kwargs)
        except ApiError as exc:
            raise self._translate(exc, operation, subject, ambiguous) from exc
        if hasattr(obj, "to_dict"):
            obj = obj.to_dict()
        if not isinstance(obj, Mapping):
            raise TransientError(f"easypost {operation} {subject}: unexpected answer {type(obj).__name__}")
        return dict(obj)

    def _translate(self, exc: ApiError, operation: str, subject: str, ambiguous: bool) -> ConnectorError:
        status = exc.http_status
        code = str(exc.code or "")
        rid = self.last_request_id
        what = f"easypost {operation} {subject}"
        text = self._scrub(str(exc.message or type(exc).__name__))
        if status is None or status >= 500 or status == 408:
            if isinstance(exc, EasyPostTimeout):
                kind = "timeout"
            elif status:
                kind = f"HTTP {status}"
            else:
                kind = "unreadable answer" if isinstance(exc, JsonError) else "connection failed"
            if ambiguous:
                return AmbiguousOutcome(f"{what}: sent, outcome unknown ({kind}); look it up before "
                                        "trying again", request_id=rid, status=status)
            return TransientError(f"{what}: {kind}", request_id=rid, status=status)
        if status == 429:
            return EasyPostThrottled(f"{what}: EasyPost rate limit (429)", request_id=rid, status=status)
        if status in (401, 403):
            return EasyPostAuthError(f"{what}: EasyPost refused the key of [labels.{self.name}] "
                                     f"({status} {code or text}): {AUTH_HINT}", request_id=rid, status=status)
        if status == 404:
            return NotFound(f"{what}: EasyPost does not know it (404)", request_id=rid, status=status)
        details = self._field_errors(exc)
        message = f"{what}: {code + ': ' if code else ''}{text}{details}"
        if status == 402:
            return EasyPostRejected(message + "; add funds or a payment method in the EasyPost dashboard",
                                    code=code, request_id=rid, status=status)
        if code.startswith(CUSTOMS_CODE) or "customs" in f"{text} {details}".lower():
            return EasyPostAddressError(message + f"; fix the customs declaration ([labels.{self.name}] "
                                        "customs, the store's customs_items) and retry",
                                        code=code, request_id=rid, status=status)
        if code.startswith(_ADDRESS_CODES) or code == "" and "address" in text.lower():
            return EasyPostAddressError(message + "; correct the address or parcel and retry",
                                        code=code, request_id=rid, status=status)
        return EasyPostRejected(message, code=code, request_id=rid, status=status)

    def _field_errors(self, exc: ApiError) -> str:
        parts: list[str] = []
        for err in exc.errors or ():
            if isinstance(err, Mapping):
                field, msg = err.get("field") or "", err.get("message") or ""
                parts.append(f"{field}: {msg}" if field else str(msg))
            elif err:
                parts.append(str(err))
        return " (" + "; ".join(self._scrub(p) for p in parts[:5]) + ")" if parts else ""

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "[api key]") if self._key else text
