"""FBA stock -> store stock against the Amazon, Shopify and WooCommerce sandboxes, on a real
ledger (SQLite and PostgreSQL): both stores end at what Amazon can ship minus the units sold and
not yet sent minus the buffer; a sale between read and write is not overwritten; a throttled
Amazon writes nothing and is retried; one bad SKU never stops the others."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from connectors.amazon_mcf.sandbox import AmazonSandbox
from connectors.ratelimit import LocalLimiter
from connectors.shopify.sandbox import ShopifySandbox
from connectors.woocommerce.sandbox import WooSandbox
from tests.fakes import make_order
from tests.ledger_support import Clock
from worker.app import App
from worker.config import parse_config
from worker.ledger.migrate import ensure_schema
from worker.ledger.models import InventoryPassRow, InventorySkuRow, OrderRow, OutboxRow
from worker.pipeline import cancel, intake, inventory_ledger, names, release, tracking
from worker.pipeline.inventory import sync_store
from worker.service import alerts, scheduler
from worker.service.bootstrap import bootstrap
from worker.service.status import health

HOOK = "https://hooks.example/services/T000/B000/XXXX"
SKU_MAP = {"TEE-RED-M": "AMZ-TEE", "MUG-BLK": "AMZ-MUG", "CAP-NAVY": "AMZ-CAP"}


@dataclass
class World:
    app: App
    amazon: AmazonSandbox
    shop: ShopifySandbox
    woo: WooSandbox
    published: list[tuple[str, list[Any]]]
    clock: Clock

    def alerts(self) -> list[str]:
        """The alerts queued (the scheduler's sender delivers them), one per problem."""
        with self.app.sessions() as s:
            rows = s.scalars(select(OutboxRow).where(OutboxRow.task == names.ALERT).order_by(OutboxRow.id))
            return list(dict.fromkeys(str(r.args[0]) for r in rows))


def make_world(db_url: str, tmp_path: Path, *, acme: dict[str, Any] | None = None,
               bolt: dict[str, Any] | None = None, amazon: AmazonSandbox | None = None,
               hold_minutes: float = 30) -> Iterator[World]:
    """Both stores on one Amazon account; ``acme``/``bolt``: their [inventory] keys over the defaults."""
    amazon = (amazon or AmazonSandbox(stock={"AMZ-TEE": 10, "AMZ-MUG": 3, "AMZ-CAP": 7})).start()
    shop, woo = ShopifySandbox().start(), WooSandbox().start()
    shop.add_location("Warehouse")
    shop.add_location("Amazon FBA")
    for sku in SKU_MAP:
        shop.add_inventory_item(sku, {"Amazon FBA": 50, "Warehouse": 4})
    woo.add_product("TEE-RED-M", 50)
    woo.add_variable_product("MUG", {"MUG-BLK": 50})
    woo.add_product("CAP-NAVY")  # stock management off: turned on with the first write
    published: list[tuple[str, list[Any]]] = []
    clock = Clock()
    amazon_cfg = {"marketplace_id": "ATVPDKIKX0DER", "client_id": "sandbox-client",
                  "client_secret": "sandbox-secret", "refresh_token": "sandbox-refresh",
                  "endpoint": amazon.url, "token_url": amazon.token_url}
    config = parse_config({
        "service": {"database_url": db_url, "task_time_limit_s": 10, "data_dir": str(tmp_path / "var")},
        "alerts": {"webhook_url": HOOK, "api_failing_minutes": 10},
        "amazon": {"us": amazon_cfg},
        "stores": {
            "acme": {"platform": "shopify", "shop_url": shop.url, "access_token": "sandbox-token",
                     "order_prefix": "ACME", "amazon": "us", "hold_minutes": hold_minutes,
                     "routing": {"sku_map": SKU_MAP},
                     "inventory": {"enabled": True, "location": "Amazon FBA", "buffer": 1, **(acme or {})}},
            "bolt": {"platform": "woocommerce", "shop_url": woo.url, "consumer_key": "ck_sandbox",
                     "consumer_secret": "cs_sandbox", "order_prefix": "BOLT", "amazon": "us",
                     "hold_minutes": hold_minutes,
                     "routing": {"sku_map": SKU_MAP},
                     "inventory": {"enabled": True, "buffers": {"MUG-BLK": 0}, "buffer_percent": 20,
                                   **(bolt or {})}},
        }}, tmp_path, env={})
    app = bootstrap(config, lambda name, args, _id: published.append((name, args)), limiter=LocalLimiter(),
                    clock=clock)
    ensure_schema(app.sessions.kw["bind"])
    yield World(app, amazon, shop, woo, published, clock)
    app.sessions.kw["bind"].dispose()
    for sandbox in (amazon, shop, woo):
        sandbox.stop()


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    yield from make_world(db_url, tmp_path)


def hold_order(world: World, store: str, order_id: str, lines: tuple[tuple[str, int], ...]) -> None:
    """A paid order the ledger holds (hold window): sold in the store, not yet at Amazon."""
    paid = "PAID" if store == "acme" else "PROCESSING"
    order = make_order(order_id, lines=lines, financial_status=paid)
    with world.app.sessions() as session:
        result = intake.ingest(world.app, session, store, order, source="webhook")
        session.commit()
    assert result.status == "held"


def sku_rows(world: World, store: str) -> dict[str, InventorySkuRow]:
    with world.app.sessions() as session:
        rows = session.scalars(select(InventorySkuRow).where(InventorySkuRow.store == store))
        return {r.sku: r for r in rows}


def test_both_stores_show_what_amazon_can_ship_less_unsent_units_and_buffer(world: World) -> None:
    hold_order(world, "acme", "5001", (("TEE-RED-M", 2),))  # sold in Shopify, still in its hold window
    hold_order(world, "bolt", "6001", (("TEE-RED-M", 1), ("MUG-BLK", 1)))  # and in WooCommerce
    acme = sync_store(world.app, "acme")
    bolt = sync_store(world.app, "bolt")
    assert (acme.status, bolt.status) == ("ok", "ok")
    # TEE: 10 at Amazon, 3 sold and not sent (both stores), acme buffer 1; bolt 20% of 10 = 2.
    assert world.shop.available("TEE-RED-M", "Amazon FBA") == 10 - 3 - 1
    assert world.woo.stock("TEE-RED-M") == 10 - 3 - 2
    # MUG: 3 at Amazon, 1 not sent; acme buffer 1, bolt's own MUG buffer 0.
    assert world.shop.available("MUG-BLK", "Amazon FBA") == 3 - 1 - 1
    assert world.woo.stock("MUG-BLK") == 3 - 1
    # CAP: 7, nothing sold; bolt's product had no stock management: turned on with its first write.
    assert world.woo.stock("CAP-NAVY") == 7 - 2 and world.woo.product("CAP-NAVY")["manage_stock"] is True
    assert bolt.notes and "CAP-NAVY" in bolt.notes[0]
    assert world.shop.available("TEE-RED-M", "Warehouse") == 4  # only the FBA location is ours
    [sent] = world.shop.inventory_sets
    assert {sent["name"], sent["reason"]} == {"available", "correction"}
    assert sent["referenceDocumentUri"] == f"gid://autofulfill/InventorySyncPass/{acme.pass_id}"
    assert sorted(q["changeFromQuantity"] for q in sent["quantities"]) == [50, 50, 50]
    assert (acme.changed, bolt.changed) == (3, 3)
    rows = sku_rows(world, "acme")
    tee = rows["TEE-RED-M"]
    assert (tee.fulfillable, tee.not_sent, tee.buffer, tee.written_qty) == (10, 3, 1, 6)

    # Nothing moved: the next passes read, and write nothing.
    again = sync_store(world.app, "acme"), sync_store(world.app, "bolt")
    assert [(r.changed, r.skipped, r.errors) for r in again] == [(0, 3, 0), (0, 3, 0)]
    assert len(world.shop.inventory_sets) == 1 and len(world.woo.batches) == 2
    with world.app.sessions() as session:
        passes = list(session.scalars(select(InventoryPassRow).order_by(InventoryPassRow.id)))
    assert [(p.store, p.status, p.read, p.changed, p.skipped, p.errors) for p in passes] == [
        ("acme", "ok", 3, 3, 0, 0), ("bolt", "ok", 3, 3, 0, 0), ("acme", "ok", 3, 0, 3, 0),
        ("bolt", "ok", 3, 0, 3, 0)]


def test_a_sale_between_read_and_write_is_not_overwritten_in_shopify(world: World) -> None:
    # The pass reads 50; before its write lands, the shop sells one (available 49).
    world.shop.after("InventoryItemsBySku", lambda: world.shop.sell("TEE-RED-M", 1, "Amazon FBA"))
    result = sync_store(world.app, "acme")
    # The call with changeFromQuantity 50 for TEE is refused as a whole; the other two go again
    # alone; TEE is read again (49) and written one lower than the formula's 9, since the sale is
    # not in the ledger yet.
    assert world.shop.available("TEE-RED-M", "Amazon FBA") == 10 - 1 - 1
    tee = world.shop.inventory_sets[0]["quantities"][-1]["inventoryItemId"]  # SKUs in order: CAP, MUG, TEE
    calls = [[(q["inventoryItemId"] == tee, q["changeFromQuantity"], q["quantity"])
              for q in call["quantities"]] for call in world.shop.inventory_sets]
    assert calls == [[(False, 50, 6), (False, 50, 2), (True, 50, 9)], [(False, 50, 6), (False, 50, 2)],
                     [(True, 49, 8)]]
    assert result.changed == 3 and result.errors == 0
    # When the order arrives in the ledger, the formula agrees with what the store shows: no write.
    hold_order(world, "acme", "5002", (("TEE-RED-M", 1),))
    assert sync_store(world.app, "acme").changed == 0


def test_a_sale_between_read_and_write_is_not_overwritten_in_woocommerce(world: World) -> None:
    world.woo.after("GET /products", lambda: world.woo.sell("TEE-RED-M", 1))
    result = sync_store(world.app, "bolt")
    assert world.woo.stock("TEE-RED-M") == 10 - 2 - 1  # 8 computed, one sold meanwhile
    assert result.changed == 3 and result.errors == 0


def test_a_throttled_amazon_writes_nothing_and_the_pass_is_tried_again_soon(world: World) -> None:
    world.amazon.fail_next("getInventorySummaries", 429, count=4)  # the call and the client's 3 retries
    failed = sync_store(world.app, "acme")
    assert failed.status == "failed" and failed.retrying and "throttled" in failed.error
    assert world.amazon.calls.count("getInventorySummaries") == 4
    assert world.shop.inventory_sets == [] and world.shop.available("TEE-RED-M", "Amazon FBA") == 50
    rows = sku_rows(world, "acme")
    retry_at = {r.refresh_after for r in rows.values()}
    assert len(retry_at) == 1 and None not in retry_at  # every SKU of the pass, 30 s from now
    assert inventory_ledger.due_stores(world.app, world.clock()) == []
    world.clock.advance(31)
    assert inventory_ledger.due_stores(world.app, world.clock()) == ["acme"]
    retried = sync_store(world.app, "acme", refresh=True)
    assert (retried.status, retried.changed) == ("ok", 3)
    assert world.shop.available("TEE-RED-M", "Amazon FBA") == 9
    assert all(r.refresh_after is None for r in sku_rows(world, "acme").values())


def test_a_5xx_from_the_store_while_writing_is_tried_again_soon(world: World) -> None:
    world.woo.fail_next("POST /products/batch", 503)  # the simple products' batch; variations go through
    failed = sync_store(world.app, "bolt")
    assert failed.status == "failed" and failed.retrying and "503" in failed.error
    assert (world.woo.stock("TEE-RED-M"), world.woo.stock("CAP-NAVY")) == (50, None)  # as they were
    assert {ln.sku for ln in failed.lines if ln.written} <= {"MUG-BLK"}  # each written number is whole
    world.clock.advance(31)
    assert sync_store(world.app, "bolt", refresh=True).status == "ok"
    assert [world.woo.stock(s) for s in ("TEE-RED-M", "MUG-BLK", "CAP-NAVY")] == [8, 3, 5]


def test_one_bad_sku_never_stops_the_others(db_url: str, tmp_path: Path) -> None:
    amazon = AmazonSandbox(stock={"AMZ-TEE": 10, "AMZ-MUG": 3}, known_skus=("AMZ-TEE", "AMZ-MUG"))
    gen = make_world(db_url, tmp_path, amazon=amazon)
    world = next(gen)
    try:
        world.shop.add_inventory_item("MUG-BLK", {"Amazon FBA": 9})  # a second variant with that SKU
        first = sync_store(world.app, "acme")
        by_sku = {ln.sku: ln for ln in first.lines}
        assert "AMZ-CAP" in by_sku["CAP-NAVY"].problem and "sku_map" in by_sku["CAP-NAVY"].problem
        assert "2 Shopify variants" in by_sku["MUG-BLK"].problem
        assert by_sku["TEE-RED-M"].written and world.shop.available("TEE-RED-M", "Amazon FBA") == 9
        assert (first.status, first.errors) == ("ok", 2)
        alerts.inventory_pass(world.app, first)
        alerts.inventory_pass(world.app, sync_store(world.app, "acme"))  # the same problems again: no news
        [text] = world.alerts()  # one alert, a line per SKU naming the fix
        assert text.startswith("autofulfill: store acme: inventory sync: 2 SKU(s) cannot be synced:")
        assert "- Amazon does not know seller SKU 'AMZ-CAP'" in text
        assert "give each variant its own SKU" in text
        assert sku_rows(world, "acme")["CAP-NAVY"].problem
        world.amazon.known_skus = {"AMZ-TEE", "AMZ-MUG", "AMZ-CAP"}  # fixed in Seller Central ...
        assert not sync_store(world.app, "acme").new_problems
        world.amazon.known_skus = {"AMZ-TEE", "AMZ-MUG"}  # ... and broken again: news again
        assert [ln.sku for ln in sync_store(world.app, "acme").new_problems] == ["CAP-NAVY"]
    finally:
        next(gen, None)


def test_an_unknown_location_is_one_clear_failure_and_one_alert(db_url: str, tmp_path: Path) -> None:
    gen = make_world(db_url, tmp_path, acme={"location": "FBA Warehouse"})
    world = next(gen)
    try:
        for _ in range(2):
            result = sync_store(world.app, "acme")
            alerts.inventory_pass(world.app, result)
        assert result.status == "failed" and not result.retrying
        assert "'FBA Warehouse'" in result.error and "'Amazon FBA'" in result.error
        assert "[stores.acme.inventory] location" in result.error
        [text] = world.alerts()
        assert "inventory sync cannot run" in text and world.shop.inventory_sets == []
    finally:
        next(gen, None)


def test_a_dry_run_records_what_it_would_write_and_writes_nothing(db_url: str, tmp_path: Path) -> None:
    gen = make_world(db_url, tmp_path, acme={"dry_run": True}, bolt={"dry_run": True})
    world = next(gen)
    try:
        acme, bolt = sync_store(world.app, "acme"), sync_store(world.app, "bolt")
        assert (acme.dry_run, acme.changed, bolt.changed) == (True, 3, 3)
        assert world.shop.inventory_sets == [] and world.woo.batches == []
        rows = sku_rows(world, "acme")
        assert rows["TEE-RED-M"].target == 9 and rows["TEE-RED-M"].written_at is None
    finally:
        next(gen, None)


def test_a_sku_that_sells_out_at_amazon_goes_to_zero_in_both_stores_with_one_alert(world: World) -> None:
    for store in ("acme", "bolt"):
        sync_store(world.app, store)
    world.amazon.set_stock("AMZ-MUG", 0)  # sold out on amazon.com
    results = [sync_store(world.app, store) for store in ("acme", "bolt")]
    for result in results * 2:
        alerts.inventory_pass(world.app, result)
    assert world.shop.available("MUG-BLK", "Amazon FBA") == 0 and world.woo.stock("MUG-BLK") == 0
    assert [ln.sku for r in results for ln in r.went_to_zero] == ["MUG-BLK", "MUG-BLK"]
    zero = [t for t in world.alerts() if "MUG-BLK went to 0" in t]
    assert len(zero) == 2  # once per store, however often the pass is seen
    assert "- MUG-BLK: Amazon can ship 0 of AMZ-MUG, 0 sold and not yet sent, buffer 1" in zero[0]
    assert not any(r.went_to_zero for r in (sync_store(world.app, "acme"), sync_store(world.app, "bolt")))


def test_a_sku_at_0_all_along_is_not_news(db_url: str, tmp_path: Path) -> None:
    amazon = AmazonSandbox(stock={"AMZ-TEE": 10, "AMZ-MUG": 3, "AMZ-CAP": 0})
    gen = make_world(db_url, tmp_path, amazon=amazon)
    world = next(gen)
    try:
        world.shop.sell("CAP-NAVY", 50, "Amazon FBA")  # the store shows 0 too (WooCommerce: not managed)
        results = [sync_store(world.app, store) for store in ("acme", "bolt")]
        assert [r.went_to_zero for r in results] == [(), ()]
        assert world.woo.stock("CAP-NAVY") == 0 and sku_rows(world, "bolt")["CAP-NAVY"].zero_since is not None
    finally:
        next(gen, None)


def test_an_mcf_cancellation_refreshes_its_skus_early(db_url: str, tmp_path: Path) -> None:
    gen = make_world(db_url, tmp_path, hold_minutes=0)  # orders are routed at once
    world = next(gen)
    try:
        _cancel_at_amazon(world)
    finally:
        next(gen, None)


def _cancel_at_amazon(world: World) -> None:
    for store in ("acme", "bolt"):
        sync_store(world.app, store)
    world.app.stores["acme"] = _StoreFromLedger(world)  # the order as ingested (the Store port)
    order = make_order("7001", lines=(("TEE-RED-M", 4),))
    intake.ingest_and_publish(world.app, "acme", order, source="webhook")
    _drain(world)
    assert world.amazon.fulfillable("AMZ-TEE") == 6  # reserved by the MCF order
    intake.ingest_and_publish(world.app, "acme", replace(order, cancelled=True), source="webhook")
    _drain(world)
    assert world.amazon.fulfillable("AMZ-TEE") == 10  # cancelled at Amazon: back
    assert inventory_ledger.due_stores(world.app, world.clock()) == ["acme", "bolt"]
    refreshed = sync_store(world.app, "bolt", refresh=True)
    assert [ln.sku for ln in refreshed.lines] == ["TEE-RED-M"]
    assert world.woo.stock("TEE-RED-M") == 8


def test_an_mcf_order_amazon_could_not_fill_refreshes_its_skus_early(db_url: str, tmp_path: Path) -> None:
    gen = make_world(db_url, tmp_path, hold_minutes=0)
    world = next(gen)
    try:
        world.clock.now = datetime.now(UTC)  # the tracking sweep asks the sandbox for orders changed since
        for store in ("acme", "bolt"):
            sync_store(world.app, store)
        world.app.stores["acme"] = _StoreFromLedger(world)
        intake.ingest_and_publish(world.app, "acme", make_order("7002", lines=(("MUG-BLK", 2),)),
                                  source="webhook")
        _drain(world)
        assert inventory_ledger.due_stores(world.app, world.clock()) == []
        world.amazon.ship_short("ACME-7002-1", {"70020": 1})  # one of the two could not be found
        assert tracking.sweep(world.app, "us") == 1
        assert inventory_ledger.due_stores(world.app, world.clock()) == ["acme", "bolt"]
        assert [ln.sku for ln in sync_store(world.app, "acme", refresh=True).lines] == ["MUG-BLK"]
    finally:
        next(gen, None)


class _StoreFromLedger:
    """acme's orders as the test made them (the Store port), its stock from the Shopify sandbox."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.stock = world.app.store("acme")

    def fetch_order(self, order_id: str) -> Any:
        with self.world.app.sessions() as session:
            row = session.scalar(select(OrderRow).where(OrderRow.platform_order_id == order_id))
        return intake.stored_order(row) if row is not None else None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stock, name)


def _drain(world: World) -> None:
    from worker.pipeline import fulfill

    steps = {names.RELEASE: release.release, names.SUBMIT: fulfill.submit, names.CANCEL: cancel.cancel_order}
    while any(n in steps for n, _ in world.published):
        name, args = next((n, a) for n, a in world.published if n in steps)
        world.published.remove((name, args))
        steps[name](world.app, *args)


def test_the_scheduler_starts_a_pass_every_interval_and_early_for_flagged_skus(world: World) -> None:
    scheduler.tick(world.app, last := {}, 1000.0)
    inventory = [args for name, args in world.published if name == names.INVENTORY]
    assert sorted(inventory) == [["acme", "all"], ["bolt", "all"]]
    for store in ("acme", "bolt"):
        sync_store(world.app, store)
    world.published.clear()
    world.clock.advance(5)
    hold_order(world, "acme", "5003", (("CAP-NAVY", 1),))  # a sale in acme: bolt's CAP is stale
    world.clock.advance(5)
    scheduler.tick(world.app, last, 1010.0)
    assert [args for name, args in world.published if name == names.INVENTORY] == [["bolt", "due"]]
    assert [ln.sku for ln in sync_store(world.app, "bolt", refresh=True).lines] == ["CAP-NAVY"]
    assert world.woo.stock("CAP-NAVY") == 7 - 1 - 2


def test_a_failing_sync_is_announced_after_api_failing_minutes(world: World) -> None:
    for _ in range(0, 15, 3):  # a pass every 3 minutes, each one a 500
        world.amazon.fail_next("getInventorySummaries", 500)
        alerts.inventory_pass(world.app, sync_store(world.app, "acme"))
        world.clock.advance(180)
    [text] = world.alerts()  # at minute 12, not at 9 (api_failing_minutes = 10), and once
    assert "inventory sync has failed for 12 minutes" in text and "500" in text
    status = health(world.app, queue_depth=lambda: 0, workers=lambda: 1)
    assert status.needs_person and any(p.startswith("store acme: the inventory sync has failed since 15m ago")
                                       for p in status.problems), status.problems
    with world.app.sessions() as session:
        assert inventory_ledger.failing_since(session, "acme") == world.clock() - timedelta(minutes=15)
    world.clock.advance(60)
    assert sync_store(world.app, "acme").status == "ok"
    with world.app.sessions() as session:
        assert inventory_ledger.failing_since(session, "acme") is None


def test_skus_no_longer_mapped_are_forgotten_and_a_store_turned_off_is_left_alone(
        db_url: str, tmp_path: Path) -> None:
    gen = make_world(db_url, tmp_path, bolt={"enabled": False})
    world = next(gen)
    try:
        sync_store(world.app, "acme")
        with world.app.sessions() as session:
            inventory_ledger.refresh_soon(session, "us", ["AMZ-MUG"], world.clock())
            session.commit()
        assert inventory_ledger.due_stores(world.app, world.clock()) == ["acme"]
        # MUG-BLK left sku_map (a config reload): its row, flag and problems go with it.
        assert inventory_ledger.forget_unmapped(world.app, "acme", ["TEE-RED-M", "CAP-NAVY"]) == 1
        assert inventory_ledger.due_stores(world.app, world.clock()) == []
        assert sync_store(world.app, "bolt").status == "off" and world.woo.batches == []
    finally:
        next(gen, None)


def test_two_workers_share_amazons_inventory_quota_through_redis(redis_db: str) -> None:
    """The sandbox enforces the published plan (2 requests/s, burst 2): every 429 it answers is a
    call our shared bucket let through too early."""
    import threading
    import time

    import redis

    from connectors.amazon_mcf.client import AmazonMCF, AmazonSettings
    from connectors.ratelimit import RedisLimiter

    AmazonMCF.clear_token_cache()
    with AmazonSandbox(default_stock=5) as sandbox:
        settings = AmazonSettings(marketplace_id="ATVPDKIKX0DER", client_id="sandbox-client",
                                  client_secret="sandbox-secret", refresh_token="sandbox-refresh",
                                  base_url=sandbox.url, token_url=sandbox.token_url)
        limiter = RedisLimiter(redis.Redis.from_url(redis_db))
        workers = [AmazonMCF("us", settings, limiter) for _ in range(2)]
        found: list[int] = []
        started = time.monotonic()
        threads = [threading.Thread(target=lambda w=w, n=n: found.append(len(w.fba_stock(
            [f"W{n}-{i}" for i in range(250)])))) for n, w in enumerate(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        elapsed = time.monotonic() - started
    calls = sandbox.calls.count("getInventorySummaries")
    assert found == [250, 250]  # 5 calls of 50 each
    assert elapsed >= (10 - 2) / 2 * 0.9  # 10 calls: a burst of 2, then 2 a second, across both workers
    assert calls - 10 <= 2, f"{calls - 10} answered 429"
    print(f"10 getInventorySummaries calls (500 SKUs) by two workers in {elapsed:.1f} s, {calls - 10} x 429")
