"""`autofulfill inventory [--store S] [--sku X] [--apply]` and `status` against the sandboxes:
the numbers per SKU, nothing written without --apply, one pass with it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from worker.sandbox.demo import stock_the_shelves
from worker.sandbox.stack import Stack
from worker.service.cli import main


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    stack = Stack(tmp_path / "stack", extra={
        "demo": 'inventory = { enabled = true, location = "Amazon FBA", buffer = 2 }',
        "bolt": "inventory = { enabled = true, dry_run = true }"})
    stack.start_sandboxes()
    stock_the_shelves(stack)  # Amazon: TEE 40, MUG 25, CAP 6; the stores show 0
    yield stack
    stack.stop()


def run(stack: Stack, *args: str) -> Result:
    return CliRunner().invoke(main, ["inventory", *args, "--config", str(stack.config_path)])


def row(text: str, store: str, sku: str) -> list[str]:
    """The columns after the SKU of its row in the store's table."""
    section = text.split(f"store {store} (", 1)[1].split("\nstore ", 1)[0]
    line = next(ln for ln in section.splitlines() if ln.startswith(sku + " "))
    return re.split(r"\s{2,}", line.strip())[1:]


def test_without_apply_it_reads_and_writes_nothing(stack: Stack) -> None:
    result = run(stack)
    assert result.exit_code == 0, result.output
    text = result.output
    assert "store demo (shopify, location 'Amazon FBA'; buffer 2 units or 0%)" in text
    assert "store bolt (woocommerce; buffer 0 units or 0%; dry run: nothing is written)" in text
    # sku, seller sku, fulfillable, reserved, inbound, not sent, buffer, store now, pass writes, last written
    tee = ["AMZ-TEE-RED-M", "40", "0", "0", "0", "2", "0", "would write 38", "never"]
    assert row(text, "demo", "TEE-RED-M") == tee
    cap = ["AMZ-CAP-NAVY", "6", "0", "0", "0", "0", "0", "would write 6", "never"]
    assert row(text, "bolt", "CAP-NAVY") == cap
    assert stack.shop.inventory_sets == [] and stack.woo.batches == []


def test_apply_runs_one_pass_of_the_named_skus(stack: Stack) -> None:
    result = run(stack, "--store", "demo", "--sku", "TEE-RED-M", "--apply")
    assert result.exit_code == 0, result.output
    assert "pass: demo: ok: 1 read, 1 changed, 0 unchanged, 0 error(s)" in result.output
    assert "wrote 38" in result.output and "MUG-BLK" not in result.output
    assert stack.shop.available("TEE-RED-M", "Amazon FBA") == 38 and stack.shop.available("MUG-BLK") == 0
    again = run(stack, "--store", "demo")
    assert row(again.output, "demo", "TEE-RED-M")[-2:][0] == "38 (same)"
    assert row(again.output, "demo", "TEE-RED-M")[-1].startswith("38 at 20")
    assert row(again.output, "demo", "MUG-BLK")[-2:] == ["would write 23", "never"]
    status = CliRunner().invoke(main, ["status", "--config", str(stack.config_path)])
    assert "last inventory pass" in status.output and "ok: 1 read, 1 changed" in status.output
    assert "store bolt: no successful inventory pass never" in status.output


def test_apply_on_a_dry_run_store_records_and_writes_nothing(stack: Stack) -> None:
    result = run(stack, "--store", "bolt", "--apply")
    assert result.exit_code == 0, result.output
    assert "pass: bolt: dry run, ok: 3 read, 3 to change, 0 unchanged, 0 error(s)" in result.output
    assert "would write 40" in result.output and stack.woo.batches == []


def test_bad_usage_names_the_problem(stack: Stack) -> None:
    for args, words in ((["--store", "nosuch"], "stores.nosuch: no such store"),
                        (["--store", "demo", "--sku", "NOPE"], "stores.demo.routing.sku_map: no SKU 'NOPE'")):
        result = run(stack, *args)
        assert result.exit_code == 2 and words in result.output, result.output
    stack.amazon.stop()  # Amazon away: said, exit 1
    result = run(stack, "--store", "demo")
    assert result.exit_code == 1 and "cannot read" in result.output
