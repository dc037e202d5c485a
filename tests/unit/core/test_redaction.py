"""One redaction point (issue 13, item 5): what leaves a connector as text carries the provider's
error code and message, never a raw body, and known token shapes and contact fields are masked
wherever the text goes (error messages, reasons, logs, alerts, the CLI)."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
import requests
import responses

from connectors.easypost.client import EasyPostLabels, EasyPostSettings
from connectors.http import send
from tests.unit.connectors.test_easypost_client import API, error, request
from worker import logs
from worker.errors import PermanentError, TransientError, redact

TOKENS = ["shpat_0123456789abcdef", "shpca_feedbeef0011", "EZAK0123456789abcdefXYZ",
          "EZTK0123456789abcdefXYZ", "ck_0123456789abcdef0123456789abcdef01234567"]
SECRETS = ["Atza|IwEBIAbcDEF123", "Atzr|IwEBIrefresh456", *TOKENS, "Bearer eyJhbGciOi.payload.sig",
           "179 N Harbor Dr", "+1 310-555-0100", "ada@example.com"]
ECHO = {"to_address": {"name": "Elizabeth Swan", "street1": "179 N Harbor Dr", "phone": "+1 310-555-0100",
                       "email": "ada@example.com"},
        "headers": {"Authorization": "Bearer eyJhbGciOi.payload.sig",
                    "x-amz-access-token": "Atza|IwEBIAbcDEF123"},
        "refresh_token": "Atzr|IwEBIrefresh456", "tokens": TOKENS}


def leaked(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


@pytest.mark.parametrize(("text", "kept"), [
    (json.dumps(ECHO), ['"street1": [redacted]']),
    (str(ECHO), []),  # a Python repr of the same
    ("x-amz-access-token: Atza|IwEBIAbcDEF123; refresh_token=Atzr|IwEBIrefresh456", []),
    ("street1=179 N Harbor Dr&phone=+1 310-555-0100&email=ada@example.com", []),
    ("to_address.street1: House number is missing", ["House number is missing"]),  # a field error stays
    ("InvalidInput: the seller SKU TEE-RED-M is not known", ["TEE-RED-M is not known"]),
])
def test_redact_masks_token_shapes_and_contact_fields(text: str, kept: list[str]) -> None:
    out = redact(text)
    assert leaked(out) == [] and "Elizabeth Swan" not in out
    for piece in kept:
        assert piece in out


def test_every_connector_error_is_redacted_when_made() -> None:
    exc = PermanentError(f"amazon refused: {json.dumps(ECHO)}")
    assert leaked(str(exc)) == [] and "amazon refused" in str(exc)
    assert leaked(str(TransientError("HTTP 503: Atza|IwEBIAbcDEF123"))) == []


@responses.activate
@pytest.mark.parametrize("answer", [
    {"json": {"errors": [{"code": "InvalidInput", "message": "bad address", "details": "x"}], "echo": ECHO}},
    {"json": {"error": {"code": "ADDRESS.VERIFY.FAILURE", "message": "Address not found"}, "request": ECHO}},
    {"body": f"<html>you sent {json.dumps(ECHO)}</html>"},
    {"json": ECHO},
])
def test_http_errors_carry_the_providers_code_and_message_never_the_body(answer: dict[str, Any]) -> None:
    responses.post("https://api.example/x", status=400, **answer)
    with pytest.raises(PermanentError) as err:
        send(requests.Session(), "POST", "https://api.example/x", what="create")
    text = str(err.value)
    assert leaked(text) == [] and "you sent" not in text and "to_address" not in text
    assert text.startswith("create: HTTP 400")


def test_an_easypost_error_echoing_the_request_is_redacted() -> None:
    labels = EasyPostLabels("main", EasyPostSettings(api_key="EZTK0123456789abcdefXYZ", timeout_s=5))
    with responses.RequestsMock() as mock:
        mock.post(API + "/shipments", **error(422, "ADDRESS.VERIFY.FAILURE",
                                              f"Address not found: {json.dumps(ECHO['to_address'])}",
                                              [{"field": "street1", "message": "House number is missing"}]))
        with pytest.raises(PermanentError) as err:
            labels.quote(request())
    text = str(err.value)
    assert "ADDRESS.VERIFY.FAILURE" in text and "street1: House number is missing" in text
    assert leaked(text) == [] and "Elizabeth" not in text


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_logs_mask_tokens_in_every_field_and_in_library_records(fmt: str) -> None:
    stream = io.StringIO()
    logs.setup(fmt, "INFO", stream)
    try:
        logs.log("api.failed", error=f"HTTP 400: {json.dumps(ECHO)}", detail=["Atza|IwEBIAbcDEF123"])
        logging.getLogger("easypost").warning("raw", extra={"body": json.dumps(ECHO)})
        try:
            raise ValueError("token shpat_0123456789abcdef")
        except ValueError:
            logging.getLogger("somelib").exception("failed with Atzr|IwEBIrefresh456")
    finally:
        logs.setup("json", "INFO")
    out = stream.getvalue()
    assert "api.failed" in out and leaked(out) == []
