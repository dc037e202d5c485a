"""A local stand-in for the EasyPost v2 API, over real HTTP, for tests and ``autofulfill demo``.

``EasyPostSandbox().start()`` listens on 127.0.0.1; use ``.endpoint`` (``{url}/v2``) as the
``[labels]`` endpoint and ``.api_key`` as the key. It answers what ``EasyPostLabels`` asks:

- ``POST /v2/shipments``: validates, stores the shipment (with its ``reference``) and rates it with
  each of ``carriers`` (USPS, UPS, FedEx; fixed amounts by weight and destination). UPS and FedEx
  do not rate a PO box (a ``rate_error`` message each); no carrier rates an international
  shipment without the recipient's phone. Missing address fields or weight, or a ``customs_info``
  breaking EasyPost's rules (items need a description, quantity, value and weight above 0 and a
  two-letter origin_country; a certified one needs its signer): 422 with field errors.
- ``GET /v2/shipments/{id or reference}``; ``GET /v2/users`` (the key's user).
- ``POST /v2/shipments/{id}/buy``: records the purchase *first*, then waits ``buy_delay_s`` and
  answers; a second purchase of one shipment is 422 ``SHIPMENT.POSTAGE.EXISTS`` ("Postage already
  exists for this shipment.", as EasyPost answers). An international shipment (to another
  country than its from_address) created without customs items is refused: 422
  ``SHIPMENT.CUSTOMS_INFO.REQUIRED`` with EasyPost's message ("'customs_info' is required for
  international shipments, ..."). The label PDF is served at ``/labels/{id}.pdf``.
- ``POST /v2/shipments/{id}/refund``: ``refund_status`` = ``refund_outcome`` ("submitted"); a second
  refund, or one of an unbought shipment, is 422.

Auth: the key as Bearer token (what the SDK sends) or as Basic-auth user name; otherwise 401.
``fail_next`` injects failures; status 0 hangs up without answering. Thread-safe.
"""

from __future__ import annotations

import base64
import copy
import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote, urlsplit

from connectors.easypost import sandbox_model as model
from connectors.sandbox_server import LoopbackServer, SandboxHandler

API = "/v2"
POSTAGE_EXISTS = ("SHIPMENT.POSTAGE.EXISTS", "Postage already exists for this shipment.")
_FAILURES = {
    400: ("BAD_REQUEST", "The request could not be understood."),
    404: ("NOT_FOUND", "The requested resource could not be found."),
    422: ("UNPROCESSABLE_ENTITY", "The request could not be processed."),
    429: ("RATE_LIMITED", "Too many requests."),
    500: ("INTERNAL_SERVER_ERROR", "We're sorry, something went wrong."),
    503: ("SERVICE_UNAVAILABLE", "A service EasyPost depends on is unavailable."),
}
Reply = tuple[int, Any, str]  # status, JSON value or bytes, content type
HANG_UP = 0


class EasyPostSandbox(LoopbackServer):
    thread_name = "easypost-sandbox"

    def __init__(self, *, api_key: str = "EZTKsandbox", carriers: tuple[str, ...] = ("USPS", "UPS", "FedEx"),
                 buy_delay_s: float = 0.0, refund_outcome: str = "submitted",
                 scan_after_s: float | None = None, purchase_lag_s: float = 0.0) -> None:
        super().__init__()
        unknown = [c for c in carriers if c not in model.DOMESTIC]
        if unknown:
            raise ValueError(f"unknown sandbox carriers {unknown}; known: {sorted(model.DOMESTIC)}")
        self.api_key = api_key
        self.carriers = tuple(carriers)
        self.buy_delay_s = buy_delay_s
        self.refund_outcome = refund_outcome
        self.scan_after_s = scan_after_s  # the carrier's first scan this long after purchase (None: never)
        # A purchase that takes this long to complete: meanwhile the shipment shows no label, a
        # second purchase is 422 SHIPMENT.PURCHASE.IN_PROGRESS, and the buy answers without a label.
        self.purchase_lag_s = purchase_lag_s
        self._pending: dict[str, tuple[float, dict[str, Any]]] = {}  # shipment id -> (done at, label)
        self._bought_at: dict[str, float] = {}
        self._lock = threading.RLock()
        self.shipments: dict[str, dict[str, Any]] = {}  # id -> the shipment as EasyPost shows it
        self.bought = 0  # labels bought
        self.buy_calls = 0  # buy requests that reached the handler, refused ones included
        self.refunds: list[str] = []  # shipment ids whose refund was accepted
        self.calls: list[str] = []  # "METHOD /path" of every authorised API call
        self._refs: dict[str, str] = {}  # reference -> latest shipment id with it
        self._labels: dict[str, bytes] = {}  # label id -> file
        self._accounts = {c: model.new_id("ca") for c in model.DOMESTIC}
        self._failures: list[tuple[str, int, bool]] = []  # (path suffix, status, after)
        self._seq = 0

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler(self)

    @property
    def endpoint(self) -> str:
        return self.url + API

    # -- test and demo helpers --------------------------------------------------------------------

    def fail_next(self, path_suffix: str, status: int = 500, count: int = 1, *, after: bool = False) -> None:
        """Answer the next ``count`` requests whose path ends with ``path_suffix`` (e.g. "/buy",
        "/shipments", "/refund") with ``status`` in EasyPost's error shape; 0 hangs up instead.
        ``after=True`` performs the request first: an outcome the caller cannot see."""
        with self._lock:
            self._failures.extend([(path_suffix, status, after)] * count)

    def shipment(self, id_or_reference: str) -> dict[str, Any] | None:
        """A copy of the shipment as EasyPost would show it."""
        with self._lock:
            found = self._find(id_or_reference)
            return copy.deepcopy(found) if found else None

    def bought_for(self, reference: str) -> int:
        """How many labels were bought for shipments with this reference."""
        with self._lock:
            self._settle()
            return sum(1 for s in self.shipments.values()
                       if s.get("reference") == reference and s.get("postage_label"))

    # -- request handling (called by the HTTP handler threads) -------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: bytes) -> tuple[Reply, bool]:
        """(reply, hang_up)."""
        path = urlsplit(raw_path).path
        failure = self._take_failure(path)
        if failure is not None and not failure[1]:
            return self._failure(failure[0]), failure[0] == HANG_UP
        if path.startswith("/labels/") and method == "GET":
            reply = self._label_file(path[len("/labels/"):].removesuffix(".pdf"))
        elif path.startswith("/track/") and method == "GET":
            reply = (200, b"<html><body>Sandbox tracking: pre_transit</body></html>", "text/html")
        elif not self._authorised(headers.get("authorization", "")):
            return (401, model.error("APIKEY.INACTIVE", "The API key provided is not valid."),
                    "application/json"), False
        else:
            route = self._route(method, path)
            if route is None:
                return (404, model.error("NOT_FOUND", "The requested resource could not be found."),
                        "application/json"), False
            with self._lock:
                self.calls.append(f"{method} {path[len(API):]}")
            try:
                payload = json.loads(body) if body else {}
            except ValueError:
                return (400, model.error("BAD_REQUEST", "The request body is not valid JSON."),
                        "application/json"), False
            handler, arg = route
            reply = handler(arg, payload)
        if failure is not None:
            return self._failure(failure[0]), failure[0] == HANG_UP
        return reply, False

    def _take_failure(self, path: str) -> tuple[int, bool] | None:
        with self._lock:
            for i, (suffix, status, after) in enumerate(self._failures):
                if path.endswith(suffix):
                    del self._failures[i]
                    return status, after
        return None

    def _failure(self, status: int) -> Reply:
        code, message = _FAILURES.get(status, ("ERROR", "Injected failure."))
        return status, model.error(code, message), "application/json"

    def _authorised(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return value.strip() == self.api_key
        if scheme.lower() == "basic":
            try:
                user = base64.b64decode(value.strip()).decode().partition(":")[0]
            except ValueError:
                return False
            return user == self.api_key
        return False

    def _route(self, method: str, path: str) -> tuple[Callable[[str, Any], Reply], str] | None:
        if not path.startswith(API + "/"):
            return None
        rest = [unquote(p) for p in path[len(API) + 1:].split("/")]
        if rest == ["shipments"] and method == "POST":
            return self._create, ""
        if rest == ["users"] and method == "GET":
            return self._user, ""
        if len(rest) == 2 and rest[0] == "shipments" and method == "GET":
            return self._get, rest[1]
        if len(rest) == 3 and rest[0] == "shipments" and method == "POST":
            return {"buy": self._buy, "refund": self._refund}.get(rest[2], self._unknown), rest[1]
        return None

    def _settle(self) -> None:
        now = time.monotonic()
        for sid, (done_at, update) in list(self._pending.items()):
            if done_at <= now:  # the purchase in progress has completed
                self.shipments[sid].update(update)
                del self._pending[sid]

    def _find(self, key: str) -> dict[str, Any] | None:
        self._settle()
        return self.shipments.get(key) or self.shipments.get(self._refs.get(key, ""))

    def _unknown(self, _: str, payload: Any) -> Reply:
        return 404, model.error("NOT_FOUND", "The requested resource could not be found."), "application/json"

    def _not_found(self) -> Reply:
        return 404, model.error("NOT_FOUND", "The requested resource could not be found."), "application/json"

    def _create(self, _: str, payload: Any) -> Reply:
        problems = model.invalid_params(payload)
        if problems:
            return 422, model.error("SHIPMENT.INVALID_PARAMS", "Unable to create shipment, one or more "
                                    "parameters were invalid.", problems), "application/json"
        raw = payload["shipment"]
        sid = model.new_id("shp")
        rates, messages = model.rate_shop(sid, raw["to_address"], raw["from_address"], raw["parcel"],
                                          self.carriers, self._accounts)
        at = model.now_iso()
        options = dict(raw.get("options") or {})
        options.setdefault("label_format", "PNG")
        options.update({"currency": "USD", "payment": {"type": "SENDER"}, "date_advance": 0})
        to, frm = model.address_json(raw["to_address"]), model.address_json(raw["from_address"])
        shipment = {"id": sid, "object": "Shipment", "created_at": at, "updated_at": at, "is_return": False,
                    "messages": messages, "mode": "test", "options": options,
                    "reference": raw.get("reference"), "status": "unknown", "tracking_code": None,
                    "batch_id": None, "batch_status": None, "batch_message": None,
                    "customs_info": model.customs_info_json(raw.get("customs_info")),
                    "from_address": frm, "to_address": to, "return_address": frm, "buyer_address": to,
                    "insurance": None, "order_id": None, "parcel": model.parcel_json(raw["parcel"]),
                    "postage_label": None, "rates": rates, "refund_status": None, "scan_form": None,
                    "selected_rate": None, "tracker": None, "usps_zone": 4, "forms": [], "fees": []}
        with self._lock:
            self.shipments[sid] = shipment
            if shipment["reference"]:
                self._refs[str(shipment["reference"])] = sid
            return 201, copy.deepcopy(shipment), "application/json"

    def _get(self, key: str, payload: Any) -> Reply:
        with self._lock:
            found = self._find(key)
            if found is None:
                return self._not_found()
            reply = copy.deepcopy(found)
            bought = self._bought_at.get(found["id"])
            if (bought is not None and self.scan_after_s is not None and reply.get("tracker")
                    and time.monotonic() - bought >= self.scan_after_s):
                reply["tracker"].update(status="in_transit", status_detail="arrived_at_facility")
            return 200, reply, "application/json"

    def _user(self, _: str, payload: Any) -> Reply:
        return 200, {"id": "user_sandbox", "object": "User", "name": "Sandbox Merchant", "children": []}, \
            "application/json"

    def _buy(self, key: str, payload: Any) -> Reply:
        with self._lock:
            self.buy_calls += 1
            shipment = self._find(key)
            if shipment is None:
                return self._not_found()
            if shipment["postage_label"] is not None:
                return 422, model.error(*POSTAGE_EXISTS), "application/json"
            if shipment["id"] in self._pending:
                return 422, model.error("SHIPMENT.PURCHASE.IN_PROGRESS", "A purchase of this shipment is "
                                        "already in progress."), "application/json"
            if model.is_international(shipment) and not model.has_customs(shipment):
                missing = [{"field": "customs_info", "message": "is required", "suggestion": None}]
                return 422, model.error(*model.CUSTOMS_REQUIRED, missing), "application/json"
            rate_id = str((payload.get("rate") or {}).get("id") or "") if isinstance(payload, dict) else ""
            rate = next((r for r in shipment["rates"] if r["id"] == rate_id), None)
            if rate is None:
                bad = [{"field": "rate.id", "message": "is invalid", "suggestion": None}]
                return 422, model.error("SHIPMENT.INVALID_PARAMS", "Unable to buy the shipment: the rate "
                                        "is not one of this shipment's rates.", bad), "application/json"
            self._seq += 1
            code = model.tracking_code(rate["carrier"], self._seq)
            label_id = model.new_id("pl")
            tracker_id = model.new_id("trk")
            url = f"{self.url}/labels/{label_id}.pdf"
            fmt = str(shipment["options"].get("label_format") or "PDF")
            self._labels[label_id] = model.label_pdf([
                f"{rate['carrier']} {rate['service']}", f"TRACKING # {code}",
                f"REF {shipment.get('reference') or ''}", "SANDBOX - NOT POSTAGE"])
            bought = {"selected_rate": rate, "tracking_code": code, "updated_at": model.now_iso(),
                      "postage_label": model.postage_label_json(url, fmt),
                      "tracker": model.tracker_json(shipment["id"], rate["carrier"], code,
                                                    f"{self.url}/track/{tracker_id}", tracker_id),
                      "fees": [{"object": "Fee", "type": "LabelFee", "amount": "0.00000",
                                "charged": True, "refunded": False},
                               {"object": "Fee", "type": "PostageFee", "amount": f"{rate['rate']}000",
                                "charged": True, "refunded": False}]}
            self.bought += 1
            self._bought_at[shipment["id"]] = time.monotonic() + self.purchase_lag_s
            if self.purchase_lag_s > 0:
                self._pending[shipment["id"]] = (time.monotonic() + self.purchase_lag_s, bought)
            else:
                shipment.update(bought)
            reply = copy.deepcopy(shipment)
        if self.buy_delay_s > 0:
            time.sleep(self.buy_delay_s)  # bought first: the caller may die (kill -9) while waiting
        return 200, reply, "application/json"

    def _refund(self, key: str, payload: Any) -> Reply:
        with self._lock:
            shipment = self._find(key)
            if shipment is None:
                return self._not_found()
            if shipment["postage_label"] is None:
                return 422, model.error("SHIPMENT.POSTAGE.REQUIRED", "This shipment has no postage to "
                                        "refund."), "application/json"
            if shipment["refund_status"]:
                return 422, model.error("SHIPMENT.REFUND.UNAVAILABLE", "A refund has already been "
                                        "requested for this shipment."), "application/json"
            shipment["refund_status"] = self.refund_outcome
            shipment["updated_at"] = model.now_iso()
            if self.refund_outcome != "rejected":
                self.refunds.append(shipment["id"])
            return 200, copy.deepcopy(shipment), "application/json"

    def _label_file(self, label_id: str) -> Reply:
        with self._lock:
            data = self._labels.get(label_id)
        if data is None:
            return 404, b"not found", "text/plain"
        return 200, data, "application/pdf"


def _handler(sandbox: EasyPostSandbox) -> type[BaseHTTPRequestHandler]:
    class Handler(SandboxHandler):
        server_version = "EasyPostSandbox/1.0"

        def _serve(self) -> None:
            headers, body = self.read_request()
            try:
                (status, reply, ctype), hang_up = sandbox.handle(self.command, self.path, headers, body)
            except Exception as exc:  # a sandbox bug must look like a 500, not a dropped connection
                (status, reply, ctype), hang_up = (500, model.error("INTERNAL_SERVER_ERROR",
                                                                    f"sandbox error: {type(exc).__name__}"),
                                                   "application/json"), False
            if hang_up:
                self.close_connection = True
                return
            data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
            self.reply(status, data, ctype, {"x-ep-request-uuid": model.new_id("req").removeprefix("req_")})

        do_GET = do_POST = do_PUT = do_DELETE = _serve

    return Handler
