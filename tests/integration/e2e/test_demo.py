"""`autofulfill demo`: the whole service in one `run` process group on the embedded SQLite broker
(no Redis), against the sandboxes — the README's first command, as a test."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from worker.sandbox.demo import run_demo

pytestmark = pytest.mark.integration


def test_demo_ships_every_fba_order_once_on_the_embedded_broker(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_demo(str(tmp_path / "demo"), out=out) == 0, out.getvalue()[-5000:]
    text = out.getvalue()
    assert "demo: OK" in text
    assert ("Amazon create calls: 7; labels bought: 3; Shopify fulfillmentCreate calls: 8; "
            "WooCommerce orders completed: 2") in text
    files = re.search(r"label files in .*: (.*)", text)
    assert files is not None and re.fullmatch(r"DEMO-\d+-2\.pdf, DEMO-\d+-1\.pdf, DEMO-\d+-1\.pdf", files[1])
    # The cost-aware choice: both numbers on the timeline, and the compared quote is the one bought.
    assert "fba=22.68 USD; label=USPS:GroundAdvantage 5.93 + 5.00 USD" in text and "choice=label" in text
    assert "label_quote=shp_" in text
    # The order cancelled during its hold: on the timeline, nothing sent.
    assert "bolt   1004   held, then cancelled in the store: nothing sent  -          cancelled" in text
    assert text.count("webhook.duplicate") == 4  # Shopify's and WooCommerce's thrice-delivered webhooks
    assert "self-ship only: cheapest label" in text
    assert "alert received: autofulfill: bolt order 1003 — shipment BOLT-1003-1 parked: " \
           "no self-ship route configured" in text
    assert (tmp_path / "demo" / "var" / "broker.sqlite").exists()  # the embedded broker was used
    # The stock sync: both stores show what Amazon can ship (demo's buffer is 1), and the SKU that
    # sells out at Amazon goes to 0 in both, with one alert per store.
    assert "TEE-RED-M  37                  36                                    37" in text
    assert "CAP-NAVY   0                   0                                     0" in text
    assert text.count("alert received: autofulfill: store ") == 2 and "CAP-NAVY went to 0" in text
