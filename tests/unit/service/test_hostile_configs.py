"""`autofulfill check` against hostile configs (issue 13, items 8 and 9): never a traceback; every
problem a clear line naming its key (or file and line), exit code 2; CSV files are read once, at
load."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.unit.service.test_cli import ENV
from worker.config import load_config
from worker.service.cli import main
from worker.service.example_config import EXAMPLE


def edit(key: str, value: str, section: str = "") -> Callable[[str], str]:
    """Set ``key = value`` (the first one after ``[section]``, or the first one at all)."""
    def apply(text: str) -> str:
        start = text.index(f"[{section}]\n") if section else 0
        line = re.compile(rf"^{re.escape(key)}\s*=.*$", re.M)
        found = line.search(text, start)
        assert found is not None, key
        return text[:found.start()] + f"{key} = {value}" + text[found.end():]
    return apply


def append(extra: str, section: str = "stores.acme") -> Callable[[str], str]:
    def apply(text: str) -> str:
        at = text.index(f"[{section}]\n") + len(f"[{section}]\n")
        return text[:at] + extra + "\n" + text[at:]
    return apply


def rename_store(name: str) -> Callable[[str], str]:
    def apply(text: str) -> str:
        return text.replace("[stores.acme]", f'[stores."{name}"]').replace(
            "[stores.acme.", f'[stores."{name}".')
    return apply


def deep(text: str) -> str:
    return text + "\n[extra]\nx = " + "[" * 3000 + "]" * 3000 + "\n"


def deep_but_parseable(text: str) -> str:
    return text + "\n[extra]\nx = " + "[" * 40 + "]" * 40 + "\n"


CASES: list[tuple[str, Callable[[str], str], dict[str, bytes], str]] = [
    ("log level", edit("log_format", '"json"\nlog_level = "BOGUS"'), {},
     "service.log_level: 'BOGUS' is not a log level"),
    ("hold of 1e12 minutes", edit("hold_minutes", "1e12"), {},
     "stores.acme.hold_minutes: Input should be less than or equal to 10080"),
    ("hold of inf", edit("hold_minutes", "inf"), {}, "stores.acme.hold_minutes:"),
    ("negative hold", edit("hold_minutes", "-1"), {}, "stores.acme.hold_minutes:"),
    ("huge decimal", append("self_ship_cost_per_order = 1e27"), {}, "stores.acme.self_ship_cost_per_order:"),
    ("nan decimal", append("self_ship_cost_per_order = nan"), {}, "stores.acme.self_ship_cost_per_order:"),
    ("huge parcel",
     edit("default_parcel", "{ length_in = 1e30, width_in = 8, height_in = 4, weight_oz = 16 }"), {},
     "labels.main.default_parcel.length_in:"),
    ("huge poll interval", edit("poll_interval_s", "1e300"), {}, "service.poll_interval_s:"),
    ("huge retries", append("max_retries = 100000000000", "service"), {}, "service.max_retries:"),
    ("garbage listen", edit("listen", '"not an address"'), {},
     "service.listen: 'not an address' is not HOST:PORT"),
    ("listen port 0", edit("listen", '"127.0.0.1:0"'), {}, "service.listen:"),
    ("listen port too big", edit("listen", '"127.0.0.1:99999"'), {}, "service.listen:"),
    ("garbage broker", edit("broker_url", '"redis//nohost"'), {}, "service.broker_url: use redis://"),
    ("broker bad db", edit("broker_url", '"redis://127.0.0.1:6379/zero"'), {},
     "service.broker_url: a Redis URL"),
    ("broker bad port", edit("broker_url", '"redis://127.0.0.1:port/0"'), {},
     "service.broker_url: not a broker URL"),
    ("garbage database", edit("database_url", '"not a url"'), {},
     "service.database_url: not a database URL"),
    ("other database", edit("database_url", '"mysql://u@h/db"'), {}, "service.database_url: use sqlite"),
    ("empty webhook secret", edit("webhook_secret", '""'), {},
     "stores.acme: webhook_secret must not be empty"),
    ("blank access token", edit("access_token", '"   "'), {}, "stores.acme: access_token must not be empty"),
    ("store name path", rename_store("../../evil"), {}, "stores.../../evil: a store name is 1 to 64 of a-z"),
    ("store name quote", rename_store('a\\"b'), {}, 'stores.a"b: a store name'),
    ("store name upper", rename_store("Acme"), {}, "stores.Acme: a store name"),
    ("bad shop url", edit("shop_url", '"https://"'), {}, "stores.acme.shop_url:"),
    ("bad endpoint", edit("region", '"na"\nendpoint = "ftp://x"'), {}, "amazon.us.endpoint:"),
    ("smtp port", append('[alerts]\nemail_to = ["a@b.c"]\nsmtp_host = "h"\nsmtp_port = 70000\n', "service"),
     {}, "alerts.smtp_port:"),
    ("deep nesting", deep, {}, "nested deeper than 12 levels"),
    ("deep but parseable", deep_but_parseable, {}, "extra.x[0][0][0][0][0][0][0][0][0][0][0]: nested"),
    ("latin-1 sku map", append('sku_map_csv = "skus.csv"', "stores.acme.routing"),
     {"skus.csv": "store_sku,seller_sku\nCAFÉ,AMZ-CAFE\n".encode("latin-1")},
     "stores.acme.routing.sku_map_csv:"),
    ("utf-16 sku map", append('sku_map_csv = "skus.csv"', "stores.acme.routing"),
     {"skus.csv": "store_sku,seller_sku\nMUG,AMZ-MUG\n".encode("utf-16")}, "is UTF-16, not UTF-8"),
    ("huge csv cell", append('sku_map_csv = "skus.csv"', "stores.acme.routing"),
     {"skus.csv": b"store_sku,seller_sku\nMUG," + b"x" * 200_000 + b"\n"}, "skus.csv:2:"),
    ("csv cell over limit", append('parcels_csv = "p.csv"'),
     {"p.csv": b"sku,length_in,width_in,height_in,weight_oz\n" + b"S" * 5000 + b",1,1,1,1\n"},
     "p.csv:2: a cell is longer than 4096"),
    ("latin-1 customs", append('customs_items_csv = "c.csv"'),
     {"c.csv": "sku,description,hs_tariff_number,origin_country\nMUG,Tasse à café,691200,FR\n"
      .encode("latin-1")},
     "(byte 0xe0; Latin-1 or Windows-1252?)"),
]


@pytest.mark.parametrize(("name", "change", "files", "expected"), CASES, ids=[c[0] for c in CASES])
def test_check_names_the_problem_and_never_prints_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, change: Callable[[str], str],
        files: dict[str, bytes], expected: str) -> None:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    path = tmp_path / "autofulfill.toml"
    path.write_text(change(EXAMPLE))
    for file, data in files.items():
        (tmp_path / file).write_bytes(data)
    result = CliRunner().invoke(main, ["check", "--config", str(path)])
    output = result.output
    assert "Traceback" not in output and isinstance(result.exception, SystemExit), output
    assert result.exit_code == 2, output
    assert expected in output, output


def test_the_example_is_still_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in ENV.items():
        monkeypatch.setenv(k, v)
    path = tmp_path / "autofulfill.toml"
    path.write_text(edit("hold_minutes", "10080")(EXAMPLE))
    result = CliRunner().invoke(main, ["check", "--config", str(path)])
    assert result.exit_code == 0, result.output


def test_csv_files_are_read_once_at_load(tmp_path: Path) -> None:
    """A parcels or customs file broken (or gone) after the config was loaded changes nothing until
    the next load (a SIGHUP reload), which refuses it and keeps the old config."""
    path = tmp_path / "autofulfill.toml"
    path.write_text(append('parcels_csv = "p.csv"\ncustoms_items_csv = "c.csv"')(EXAMPLE))
    (tmp_path / "p.csv").write_text("sku,length_in,width_in,height_in,weight_oz\nMUG,6,6,5,14\n")
    (tmp_path / "c.csv").write_text("sku,description,hs_tariff_number,origin_country\nMUG,Mug,691200,CN\n")
    config = load_config(path, env=ENV)
    (tmp_path / "p.csv").write_text("garbage")
    (tmp_path / "c.csv").unlink()
    assert config.parcels("acme")["MUG"].weight_oz == 14
    assert config.customs_items("acme")["MUG"].hs_tariff_number == "691200"
