"""Webhook health end to end: `check --live` reads each WooCommerce webhook and says exactly what
is wrong; `--webhook-test` sends each store a signed delivery through the running receiver."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from tests.integration.support import make_stack, stop
from worker.service.cli import main

SQLITE = "sqlite:///var/ledger.db"


def test_check_live_reads_the_webhooks_and_tests_the_secret_through_the_receiver(tmp_path: Path) -> None:
    stack = make_stack(tmp_path, "", SQLITE)
    try:
        stack.start("web")
        runner = CliRunner()
        receiver = f"http://127.0.0.1:{stack.port}"
        good = runner.invoke(main, ["check", "--live", "--webhook-test", "--receiver", receiver,
                                    "--config", str(stack.config_path)])
        assert good.exit_code == 0, good.output
        assert "store demo: webhook test ok" in good.output and "store bolt: webhook test ok" in good.output
        assert "WARNING" not in good.output

        with stack.woo.state.lock:  # one webhook points at another store, one has a topic we ignore
            stack.woo.state.webhooks[1]["delivery_url"] = receiver + "/webhooks/woocommerce/other"
            stack.woo.state.webhooks[2]["topic"] = "order.deleted"
        other = tmp_path / "other.toml"  # this config's secret is not the receiver's
        other.write_text(stack.config_path.read_text().replace('webhook_secret = "sandbox-woo-secret"',
                                                               'webhook_secret = "not-the-same"'))
        bad = runner.invoke(main, ["check", "--live", "--webhook-test", "--receiver", receiver,
                                   "--config", str(other)])
        assert bad.exit_code == 1
        assert "a store named 'other', not 'bolt'" in bad.output
        assert "webhook 2" in bad.output and "topic autofulfill does not act on" in bad.output
        assert "store bolt: webhook test FAILED: HTTP 401" in bad.output
        assert "another webhook_secret" in bad.output
        assert "store demo: webhook test ok" in bad.output
    finally:
        stop(stack)
