from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from worker.config import ConfigError, load_config, parse_config
from worker.service.example_config import EXAMPLE

ENV = {"AMZ_CLIENT_ID": "cid", "AMZ_CLIENT_SECRET": "csecret", "AMZ_REFRESH_TOKEN": "rtoken",
       "ACME_SHOPIFY_TOKEN": "shpat_x", "ACME_SHOPIFY_SECRET": "whsec",
       "BOLT_WC_KEY": "ck_x", "BOLT_WC_SECRET": "cs_x", "BOLT_WC_WEBHOOK_SECRET": "wcwh",
       "EASYPOST_API_KEY": "EZTK_x"}


def test_example_config_is_valid_and_reads_secrets_from_env(tmp_path: Path) -> None:
    path = tmp_path / "autofulfill.toml"
    path.write_text(EXAMPLE)
    config = load_config(path, env=ENV)
    store = config.store("acme")
    assert store.access_token is not None and store.access_token.get_secret_value() == "shpat_x"
    assert store.routing.sku_map == {"TEE-RED-M": "AMZ-TEE-RED-M"}
    assert config.amazon["us"].base_url == "https://sellingpartnerapi-na.amazon.com"
    # relative paths are relative to the config file's folder
    assert config.data_dir == tmp_path / "var"
    assert config.database_url == f"sqlite:///{tmp_path / 'var' / 'autofulfill.db'}"
    assert config.broker_url.startswith("sqla+sqlite:///") and config.embedded_broker
    assert "shpat_x" not in repr(config) and "csecret" not in str(config)


def test_every_problem_is_reported_at_once_naming_key_and_variable(tmp_path: Path) -> None:
    data = tomllib.loads(EXAMPLE)
    data["service"]["poll_interval_s"] = -1
    data["service"]["colour"] = "blue"
    data["stores"]["acme"]["routing"]["speeds"]["Express"] = "Warp"
    data["stores"]["acme"]["order_prefix"] = "AC ME"
    with pytest.raises(ConfigError) as err:
        parse_config(data, tmp_path, env={k: v for k, v in ENV.items() if k != "AMZ_REFRESH_TOKEN"})
    problems = "\n".join(err.value.problems)
    assert "amazon.us.refresh_token: environment variable AMZ_REFRESH_TOKEN is not set" in problems
    assert "service.poll_interval_s:" in problems
    assert "service.colour: unknown key" in problems
    assert "stores.acme.routing.speeds: unknown MCF speed ['Warp']" in problems
    assert "stores.acme.order_prefix:" in problems
    assert len(err.value.problems) == 5


def test_cross_references_are_checked(tmp_path: Path) -> None:
    data = tomllib.loads(EXAMPLE)
    data["stores"]["acme"]["amazon"] = "eu"
    data["stores"]["second"] = {**data["stores"]["acme"], "amazon": "us"}
    with pytest.raises(ConfigError) as err:
        parse_config(data, tmp_path, env=ENV)
    problems = "\n".join(err.value.problems)
    assert "stores.acme.amazon: no [amazon.eu] block" in problems
    assert "order_prefix 'ACME' is used by more than one store" in problems


def test_shopify_store_needs_a_credential(tmp_path: Path) -> None:
    data = tomllib.loads(EXAMPLE)
    del data["stores"]["acme"]["access_token"]
    with pytest.raises(ConfigError, match="needs access_token, or client_id and client_secret"):
        parse_config(data, tmp_path, env=ENV)


def test_bad_toml_and_missing_file_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[service\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_visibility_timeout_must_exceed_task_limits(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="visibility_timeout_s must exceed"):
        parse_config({"service": {"task_time_limit_s": 600, "visibility_timeout_s": 900}}, tmp_path, env={})


def test_parcels_csv_is_read_relative_to_the_config_and_bad_rows_are_named(tmp_path: Path) -> None:
    data = tomllib.loads(EXAMPLE)
    data["stores"]["acme"]["parcels_csv"] = "parcels.csv"
    mug = {"length_in": 6, "width_in": 6, "height_in": 5, "weight_oz": 14}
    data["stores"]["acme"]["parcels"] = {"MUG": mug}
    (tmp_path / "parcels.csv").write_text("sku,length_in,width_in,height_in,weight_oz\n"
                                          "POSTER,24,3,3,9\nMUG,1,1,1,1\n")
    config = parse_config(data, tmp_path, env=ENV)
    parcels = config.parcels("acme")
    assert parcels["POSTER"].weight_oz == 9
    assert parcels["MUG"].weight_oz == 14  # the inline table wins over the file
    (tmp_path / "parcels.csv").write_text("sku,length_in,width_in,height_in,weight_oz\nPOSTER,24,3,x,9\n")
    with pytest.raises(ConfigError) as err:
        parse_config(data, tmp_path, env=ENV)
    assert "stores.acme.parcels_csv:" in err.value.problems[0] and "parcels.csv:2" in err.value.problems[0]
    (tmp_path / "parcels.csv").write_text("sku,weight\nPOSTER,9\n")
    with pytest.raises(ConfigError, match="missing column"):
        parse_config(data, tmp_path, env=ENV)


def test_sku_map_csv_merges_under_the_inline_map(tmp_path: Path) -> None:
    data = tomllib.loads(EXAMPLE)
    data["stores"]["acme"]["routing"]["sku_map_csv"] = "skus.csv"
    (tmp_path / "skus.csv").write_text("store_sku,seller_sku\nMUG-BLK,AMZ-MUG\nTEE-RED-M,OLD\n")
    sku_map = parse_config(data, tmp_path, env=ENV).store("acme").routing.sku_map
    assert sku_map == {"MUG-BLK": "AMZ-MUG", "TEE-RED-M": "AMZ-TEE-RED-M"}
    (tmp_path / "skus.csv").write_text("store_sku,seller_sku\nMUG-BLK,\n")
    with pytest.raises(ConfigError, match=r"stores.acme.routing.sku_map_csv: .*skus.csv:2"):
        parse_config(data, tmp_path, env=ENV)


def test_woocommerce_tag_settings_default_and_note_keywords_are_woocommerce_only(tmp_path: Path) -> None:
    data = tomllib.loads(EXAMPLE)
    config = parse_config(data, tmp_path, env=ENV)
    assert config.store("bolt").tag_meta_keys == ["autofulfill_tags"]
    assert config.store("bolt").note_keywords == []
    data["stores"]["bolt"]["note_keywords"] = ["hold", "no-fba"]
    data["stores"]["bolt"]["tag_meta_keys"] = ["routing_tags"]
    bolt = parse_config(data, tmp_path, env=ENV).store("bolt")
    assert (bolt.note_keywords, bolt.tag_meta_keys) == (["hold", "no-fba"], ["routing_tags"])
    data["stores"]["acme"]["note_keywords"] = ["hold"]
    with pytest.raises(ConfigError) as err:
        parse_config(data, tmp_path, env=ENV)
    [problem] = err.value.problems
    assert problem.startswith("stores.acme: note_keywords is for woocommerce stores only")


def test_readme_store_and_routing_examples_are_valid_config(tmp_path: Path) -> None:
    """The README's store-key and routing examples parse as they are written."""
    import re

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    blocks = [tomllib.loads(b) for b in re.findall(r"```toml\n(.*?)```", readme, re.S)]
    store = next(b["stores"]["acme"] for b in blocks if "hold_minutes" in b.get("stores", {}).get("acme", {}))
    routing = next(b["stores"]["acme"]["routing"] for b in blocks
                   if "routing" in b.get("stores", {}).get("acme", {}))
    (tmp_path / "skus.csv").write_text("store_sku,seller_sku\nMUG,AMZ-MUG\n")
    config = parse_config({
        "amazon": {"us": {"marketplace_id": "ATVPDKIKX0DER", "client_id": "c", "client_secret": "s",
                          "refresh_token": "r"}},
        "labels": {"main": {"api_key": "k", "from_address": {
            "name": "A", "street1": "1 Main St", "city": "Austin", "state": "TX", "zip": "78701"},
            "default_parcel": {"length_in": 10, "width_in": 8, "height_in": 4, "weight_oz": 16}}},
        "stores": {"acme": {"platform": "shopify", "shop_url": "https://acme.example", "access_token": "t",
                            "order_prefix": "ACME", "amazon": "us", **store, "routing": routing}},
    }, tmp_path, env={})
    acme = config.stores["acme"]
    assert acme.hold_minutes == 30 and acme.routing.prefer == "rules"
    assert acme.routing.sku_map == {"TEE-RED-M": "AMZ-TEE-RED-M", "MUG": "AMZ-MUG"}


def test_customs_defaults_and_the_sku_table_from_inline_and_csv(tmp_path: Path) -> None:
    data = tomllib.loads(EXAMPLE)
    customs = parse_config(data, tmp_path, env=ENV).labels["main"].customs
    assert (customs.signer, customs.contents_type, customs.eel_pfc, customs.non_delivery_option,
            customs.restriction_type) == ("", "merchandise", "NOEEI 30.37(a)", "return", "none")
    data["labels"]["main"]["customs"] = {"signer": "Jane Smith", "contents_type": "gift"}
    tee = {"description": "Cotton T-shirt", "hs_tariff_number": "610910", "origin_country": "us"}
    data["stores"]["acme"]["customs_items"] = {"TEE": tee}
    data["stores"]["acme"]["customs_items_csv"] = "customs.csv"
    (tmp_path / "customs.csv").write_text("sku,description,hs_tariff_number,origin_country\n"
                                          "MUG,Ceramic mug,6912.00,CN\nTEE,old,,\nPOSTER,,,\n")
    config = parse_config(data, tmp_path, env=ENV)
    assert config.labels["main"].customs.signer == "Jane Smith"
    items = config.customs_items("acme")
    assert items["TEE"].origin_country == "US" and items["TEE"].description == "Cotton T-shirt"  # inline wins
    assert (items["MUG"].hs_tariff_number, items["MUG"].origin_country) == ("6912.00", "CN")
    assert items["POSTER"].description == "" and config.customs_items("bolt") == {}


def test_customs_problems_name_the_key(tmp_path: Path) -> None:
    data = tomllib.loads(EXAMPLE)
    data["labels"]["main"]["customs"] = {"contents_type": "other", "restriction_type": "sometimes",
                                         "colour": "x"}
    data["stores"]["acme"]["customs_items"] = {"TEE": {"hs_tariff_number": "61-09", "origin_country": "USA"}}
    with pytest.raises(ConfigError) as err:
        parse_config(data, tmp_path, env=ENV)
    problems = "\n".join(err.value.problems)
    assert "labels.main.customs.restriction_type: Input should be 'none', 'other'" in problems
    assert "labels.main.customs.colour: unknown key" in problems
    assert "stores.acme.customs_items.TEE.hs_tariff_number: '61-09' is not an HS code" in problems
    assert "stores.acme.customs_items.TEE.origin_country: 'USA' is not a two-letter country code" in problems
    data["labels"]["main"]["customs"] = {"contents_type": "other"}
    del data["stores"]["acme"]["customs_items"]
    with pytest.raises(ConfigError) as err:
        parse_config(data, tmp_path, env=ENV)
    assert err.value.problems == ['labels.main.customs: contents_type = "other" needs contents_explanation '
                                  "(what the parcel holds)"]
    data["labels"]["main"]["customs"] = {"restriction_type": "quarantine"}
    with pytest.raises(ConfigError, match='labels.main.customs: restriction_type = "quarantine" needs '
                                          "restriction_comments"):
        parse_config(data, tmp_path, env=ENV)


def test_customs_items_csv_problems_name_the_file_and_line(tmp_path: Path) -> None:
    data = tomllib.loads(EXAMPLE)
    data["stores"]["acme"]["customs_items_csv"] = "customs.csv"
    (tmp_path / "customs.csv").write_text("sku,description,hs_tariff_number,origin_country\n"
                                          "MUG,Ceramic mug,6912,CN\n,Nameless,,\n")
    with pytest.raises(ConfigError) as err:
        parse_config(data, tmp_path, env=ENV)
    [first, second] = err.value.problems
    assert first.startswith("stores.acme.customs_items_csv: ")
    assert "customs.csv:2: SKU 'MUG': '6912' is not an HS code" in first
    assert second.endswith("customs.csv:3: the sku is empty")
    (tmp_path / "customs.csv").write_text("sku,hs_code\nMUG,691200\n")
    with pytest.raises(ConfigError, match=r"stores.acme.customs_items_csv: .*missing column"):
        parse_config(data, tmp_path, env=ENV)
    (tmp_path / "customs.csv").unlink()
    with pytest.raises(ConfigError, match="cannot read customs items CSV"):
        parse_config(data, tmp_path, env=ENV)


def test_example_customs_lines_are_valid_once_uncommented(tmp_path: Path) -> None:
    text = "\n".join(line[2:] if line.startswith(("# customs = ", "# customs_items")) else line
                     for line in EXAMPLE.splitlines())
    (tmp_path / "customs.csv").write_text("sku,description,hs_tariff_number,origin_country\n")
    config = parse_config(tomllib.loads(text), tmp_path, env=ENV)
    assert config.labels["main"].customs.signer == "Jane Smith"
    assert config.customs_items("acme")["MUG-BLK"].hs_tariff_number == "691200"


def test_readme_customs_example_is_valid_config(tmp_path: Path) -> None:
    import re

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    blocks = [tomllib.loads(b) for b in re.findall(r"```toml\n(.*?)```", readme, re.S)]
    block = next(b for b in blocks if "customs" in b.get("labels", {}).get("main", {}))
    data = tomllib.loads(EXAMPLE)
    data["labels"]["main"].update(block["labels"]["main"])
    data["stores"]["acme"].update(block["stores"]["acme"])
    (tmp_path / "customs.csv").write_text("sku,description,hs_tariff_number,origin_country\n"
                                          "MUG,Mug,691200,CN\n")
    config = parse_config(data, tmp_path, env=ENV)
    assert config.labels["main"].customs.signer == "Jane Smith"
    assert set(config.customs_items("acme")) == {"TEE-RED-M", "MUG"}


def test_inventory_keys_are_checked_with_the_fix(tmp_path: Path) -> None:
    data = tomllib.loads(EXAMPLE)
    inv = data["stores"]["acme"]["inventory"]
    assert inv == {"enabled": False, "location": "Amazon FBA", "interval_s": 600, "buffer": 0,
                   "buffer_percent": 0, "buffers": {"TEE-RED-M": 5}}
    config = parse_config(data, tmp_path, env=ENV)
    assert not config.store("acme").inventory.enabled and not config.store("bolt").inventory.enabled
    data["stores"]["acme"]["inventory"] = {"enabled": True, "location": " ", "buffer_percent": 120,
                                           "buffers": {"NOT-MAPPED": 1, "TEE-RED-M": -1}}
    data["stores"]["bolt"]["inventory"] = {"enabled": True, "location": "Amazon FBA", "interval_s": 1}
    with pytest.raises(ConfigError) as err:
        parse_config(data, tmp_path, env=ENV)
    problems = "\n".join(err.value.problems)
    assert "stores.acme.inventory.buffer_percent:" in problems
    assert "stores.acme.inventory.buffers.TEE-RED-M:" in problems
    assert "stores.bolt.inventory.interval_s:" in problems
    data["stores"]["acme"]["inventory"] = {"enabled": True, "location": " ", "buffers": {"NOT-MAPPED": 1}}
    data["stores"]["bolt"]["inventory"] = {"enabled": True, "location": "Amazon FBA"}
    with pytest.raises(ConfigError) as err:
        parse_config(data, tmp_path, env=ENV)
    problems = "\n".join(err.value.problems)
    assert "a shopify store syncing stock needs the location" in problems
    assert "inventory.location is for shopify stores only" in problems
    data["stores"]["acme"]["inventory"] = {"enabled": True, "location": "Amazon FBA",
                                           "buffers": {"NOT-MAPPED": 1}}
    data["stores"]["bolt"]["inventory"] = {"enabled": True}
    del data["stores"]["bolt"]["amazon"]
    data["stores"]["bolt"]["routing"] = {}
    with pytest.raises(ConfigError) as err:
        parse_config(data, tmp_path, env=ENV)
    assert err.value.problems == ["stores.bolt: inventory: enabled = true needs the store's amazon account"]
    data["stores"]["bolt"]["amazon"] = "us"
    with pytest.raises(ConfigError) as err:
        parse_config(data, tmp_path, env=ENV)
    assert err.value.problems == ["stores.acme.inventory.buffers: ['NOT-MAPPED'] not in sku_map/sku_map_csv; "
                                  "buffers are per store SKU mapped to Amazon"]


def test_a_woocommerce_store_polls_every_minute_unless_told_otherwise(tmp_path: Path) -> None:
    from worker.config import parse_config

    woo = {"platform": "woocommerce", "shop_url": "https://bolt.example", "consumer_key": "k",
           "consumer_secret": "s", "order_prefix": "BOLT"}
    shop = {"platform": "shopify", "shop_url": "https://acme.example", "access_token": "t",
            "order_prefix": "ACME"}
    slow = {**woo, "order_prefix": "SLOW", "poll_interval_s": 600}
    config = parse_config({"stores": {"bolt": woo, "acme": shop, "slow": slow}}, tmp_path, env={})
    assert [config.poll_interval(n) for n in ("bolt", "acme", "slow")] == [60, 300, 600]
    quick = parse_config({"service": {"poll_interval_s": 20}, "stores": {"bolt": woo}}, tmp_path, env={})
    assert quick.poll_interval("bolt") == 20
