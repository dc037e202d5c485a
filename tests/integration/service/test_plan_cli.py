"""`autofulfill plan STORE ORDER` against the sandboxes: what would happen, and nothing sent."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from worker.sandbox.stack import Stack
from worker.service.cli import main


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path / "stack", extra={"demo": "self_ship_cost_per_order = 5.00",
                                             "demo_routing": 'prefer = "cheapest"'})
    stack.start_sandboxes()
    yield stack
    stack.stop()


def plan(stack: Stack, order_id: object) -> str:
    result = CliRunner().invoke(main, ["plan", "demo", str(order_id), "--config", str(stack.config_path)])
    assert result.exit_code == 0, result.output
    return result.output


def test_plan_shows_the_preview_the_cost_choice_and_the_shipments_and_sends_nothing(stack: Stack) -> None:
    bulk = stack.shop.add_order([("MUG-BLK", 4)])
    text = plan(stack, bulk["id"])
    assert "order 1001: ships (status PAID ships)" in text
    assert "MCF preview Standard: estimated fees 22.68 USD" in text
    assert "prefer = cheapest: FBA 22.68 USD vs label USPS:GroundAdvantage 5.93 + 5.00 USD" in text
    assert text.rstrip().endswith("shipment 1: self_ship  [MUG-BLK x4]")
    single = stack.shop.add_order([("MUG-BLK", 1), ("POSTER-A2", 1)])
    text = plan(stack, single["id"])
    assert "-> fba" in text
    assert "shipment 1: fba Standard [MUG-BLK x1]" in text and "shipment 2: self_ship  [POSTER-A2 x1]" in text
    stack.amazon.set_stock("AMZ-TEE-RED-M", False)
    gone = stack.shop.add_order([("TEE-RED-M", 1)])
    text = plan(stack, gone["id"])
    assert "cannot fulfil AMZ-TEE-RED-M: InventoryUnavailable" in text
    assert "Amazon cannot fulfil AMZ-TEE-RED-M now (preview) -> self-ship" in text
    # Read-only: previews and quotes, no MCF order, no label, nothing written to the store.
    assert stack.amazon.create_calls == 0 and stack.amazon.orders == {}
    assert stack.easypost.bought == 0
    assert "CreateFulfillment" not in stack.shop.calls


def test_plan_of_an_unknown_order_says_so(stack: Stack) -> None:
    result = CliRunner().invoke(main, ["plan", "demo", "424242", "--config", str(stack.config_path)])
    assert result.exit_code == 1 and "store demo has no order 424242" in result.output
