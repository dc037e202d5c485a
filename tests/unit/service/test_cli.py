"""The `autofulfill` command in-process (click's runner) on a real SQLite ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.fakes import FakeFulfiller, FakeLabels, FakeStore, make_order
from tests.ledger_support import drain
from worker.config import load_config
from worker.errors import PermanentError
from worker.ledger.migrate import ensure_schema
from worker.pipeline import intake
from worker.service import sweeper
from worker.service.bootstrap import bootstrap
from worker.service.cli import main
from worker.service.operations import retry_order

ENV = {"AMZ_CLIENT_ID": "cid", "AMZ_CLIENT_SECRET": "csecret", "AMZ_REFRESH_TOKEN": "rtoken",
       "ACME_SHOPIFY_TOKEN": "shpat_secret_value", "ACME_SHOPIFY_SECRET": "whsec",
       "BOLT_WC_KEY": "ck_x", "BOLT_WC_SECRET": "cs_x", "BOLT_WC_WEBHOOK_SECRET": "wcwh",
       "EASYPOST_API_KEY": "EZTK_x"}


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "autofulfill.toml"
    result = CliRunner().invoke(main, ["init", "--config", str(path)])
    assert result.exit_code == 0, result.output
    return path


def test_init_refuses_to_overwrite(config_file: Path) -> None:
    result = CliRunner().invoke(main, ["init", "--config", str(config_file)])
    assert result.exit_code == 2 and "--force" in result.output


def test_check_names_the_missing_variable_and_exits_2(config_file: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)
    result = CliRunner().invoke(main, ["check", "--config", str(config_file)])
    assert result.exit_code == 2
    assert "stores.acme.access_token: environment variable ACME_SHOPIFY_TOKEN is not set" in result.output
    assert "amazon.us.client_secret: environment variable AMZ_CLIENT_SECRET is not set" in result.output


def test_check_passes_with_the_environment(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    result = CliRunner().invoke(main, ["check", "--config", str(config_file)])
    assert result.exit_code == 0 and "2 store(s), 1 Amazon account(s)" in result.output


def test_orders_show_and_retry_print_the_ledger_without_secrets_or_street(
        config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    config = load_config(config_file)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    published: list[tuple[str, list[Any]]] = []
    app = bootstrap(config, lambda name, args, _id: published.append((name, args)))
    ensure_schema(app.sessions.kw["bind"])
    store, amazon, labels = FakeStore(), FakeFulfiller(), FakeLabels()
    app.stores["acme"], app.fulfillers["us"], app.labelers["main"] = store, amazon, labels
    labels.fail_quote.append(PermanentError("to_address: the street could not be found"))
    order = make_order("7001", lines=(("TEE-RED-M", 1), ("POSTER", 1)))
    store.orders["7001"] = order
    intake.ingest_and_publish(app, "acme", order, source="test")
    drain(app, published)

    runner = CliRunner()
    table = runner.invoke(main, ["orders", "--config", str(config_file)])
    assert table.exit_code == 0, table.output
    assert "7001" in table.output and "1:fba:submitted; 2:self_ship:attention" in table.output
    assert "Austin, TX, US" in table.output
    shown = runner.invoke(main, ["show", "acme", "7001", "--config", str(config_file)])
    assert shown.exit_code == 0, shown.output
    for expected in ("ingested", "routed", "submitted", "parked", "no label bought: to_address: the street",
                     "ACME-7001-1", "Austin, TX, US"):
        assert expected in shown.output
    for secret in ("1 Analytical Way", "Ada Lovelace", "5125550100", "shpat_secret_value"):
        assert secret not in shown.output and secret not in table.output
    missing = runner.invoke(main, ["show", "acme", "nope", "--config", str(config_file)])
    assert missing.exit_code == 1
    parked = runner.invoke(main, ["orders", "--status", "attention", "--config", str(config_file)])
    assert "7001" in parked.output
    # retry works from the store's order as it is now: no store, no retry (and it says so)
    unreachable = runner.invoke(main, ["retry", "acme", "#7001", "--config", str(config_file)])
    assert unreachable.exit_code == 1 and "the store could not be read now" in unreachable.output
    app.clock = lambda: datetime.now(UTC) + timedelta(minutes=5)  # a person retries a while later
    assert "shipment 2 -> submitting" in retry_order(app, "acme", "#7001")
    sweeper.redrive_due(app)  # the ledger says it is due
    drain(app, published)  # the address was fixed meanwhile: the label is bought now
    shown = runner.invoke(main, ["show", "acme", "7001", "--config", str(config_file)])
    assert "label USPS:GroundAdvantage 6.95 USD at" in shown.output and "-7001-2.pdf" in shown.output


def test_status_exits_1_when_a_person_is_needed(config_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    result = CliRunner().invoke(main, ["status", "--config", str(config_file)])
    assert result.exit_code == 1, result.output
    assert "store acme: no successful poll never" in result.output
    assert "n/a (embedded broker)" in result.output
