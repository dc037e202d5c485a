from __future__ import annotations

import io
import json
import logging

import pytest

from worker import logs


@pytest.fixture(autouse=True)
def _restore_logging() -> object:
    root = logging.getLogger()
    level = root.level
    yield
    for handler in list(root.handlers):
        if handler.get_name() == "autofulfill":
            root.removeHandler(handler)
    root.setLevel(level)


def test_json_lines_carry_bound_context_and_redact_secret_fields() -> None:
    stream = io.StringIO()
    logs.setup("json", "INFO", stream)
    with logs.bind(store="acme", order="1001", task_id="t-1"):
        logs.log("submitted", shipment="ACME-1-1", access_token="shpat_x", request_id="r-9")
    logging.getLogger("connectors.amazon_mcf.client").info("amazon.created", extra={"shipment": "S-1"})
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "submitted" and first["store"] == "acme" and first["order"] == "1001"
    assert first["task_id"] == "t-1" and first["request_id"] == "r-9"
    assert first["access_token"] == "[redacted]" and "shpat_x" not in stream.getvalue()
    assert second["event"] == "amazon.created" and second["shipment"] == "S-1"


def test_text_format_puts_context_first() -> None:
    stream = io.StringIO()
    logs.setup("text", "INFO", stream)
    with logs.bind(store="acme"):
        logs.log("parked", reason="no self-ship route configured")
    assert "parked store=acme reason=no self-ship route configured" in stream.getvalue()
