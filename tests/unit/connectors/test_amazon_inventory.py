"""FBA Inventory ``getInventorySummaries``: the pure mapping, then the client against the
AmazonSandbox over loopback (paging, quota, throttling, expired page tokens, the sandbox's stock)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests

from connectors.amazon_mcf import inventory_mapping as im
from connectors.amazon_mcf.client import AmazonMCF, AmazonSettings
from connectors.amazon_mcf.errors import AmazonThrottled
from connectors.amazon_mcf.sandbox import AmazonSandbox
from connectors.ratelimit import LocalLimiter
from worker.domain import Address, FbaStock, FulfillmentItem, FulfillmentRequest
from worker.errors import TransientError
from worker.ports import Limiter

pytestmark = pytest.mark.usefixtures("fresh_amazon_tokens")

SUMMARY = {
    "asin": "B0ABC", "fnSku": "X00ABC", "sellerSku": "AMZ-TEE", "condition": "NewItem",
    "lastUpdatedTime": "2026-03-01T08:30:00Z", "productName": "Tee", "totalQuantity": 31,
    "inventoryDetails": {
        "fulfillableQuantity": 12, "inboundWorkingQuantity": 5, "inboundShippedQuantity": 6,
        "inboundReceivingQuantity": 1,
        "reservedQuantity": {"totalReservedQuantity": 4, "pendingCustomerOrderQuantity": 3,
                             "pendingTransshipmentQuantity": 1, "fcProcessingQuantity": 0},
        "researchingQuantity": {"totalResearchingQuantity": 2, "researchingQuantityBreakdown": [
            {"name": "researchingQuantityInShortTerm", "quantity": 2}]},
        "unfulfillableQuantity": {"totalUnfulfillableQuantity": 1, "customerDamagedQuantity": 1}},
}


def test_a_summary_becomes_fba_stock() -> None:
    assert im.stock_from_summary(SUMMARY) == FbaStock("AMZ-TEE", fulfillable=12, reserved=4, inbound=12,
                                                      researching=2, unfulfillable=1)
    bare = {"sellerSku": "AMZ-MUG", "totalQuantity": 3}  # details=false, or Amazon left them out
    assert im.stock_from_summary(bare) == FbaStock("AMZ-MUG", fulfillable=None)
    odd = {"sellerSku": "X", "inventoryDetails": {"fulfillableQuantity": -2, "inboundShippedQuantity": True}}
    assert im.stock_from_summary(odd) == FbaStock("X", fulfillable=0)


def test_the_next_token_comes_from_the_top_level_pagination() -> None:
    body = {"payload": {"granularity": {"granularityType": "Marketplace", "granularityId": "ATVPDKIKX0DER"},
                        "inventorySummaries": [SUMMARY, {"sellerSku": ""}, "junk"]},
            "pagination": {"nextToken": "tok/+="}}
    stocks, token = im.summaries_from_payload(body)
    assert [s.seller_sku for s in stocks] == ["AMZ-TEE"] and token == "tok/+="
    assert im.summaries_from_payload({"payload": {"inventorySummaries": []}}) == ([], None)


def test_skus_go_fifty_a_call_and_one_with_a_comma_alone() -> None:
    skus = [f"S{i}" for i in range(120)] + ["S3", "", "PACK,2"]
    chunks = list(im.chunks(skus))
    assert [len(c) for c in chunks] == [1, 50, 50, 20] and chunks[0] == ["PACK,2"]
    assert im.summaries_params("M", ["PACK,2"]) == {
        "details": "true", "granularityType": "Marketplace", "granularityId": "M", "marketplaceIds": "M",
        "sellerSku": "PACK,2"}
    assert im.summaries_params("M", ["A", "B"], "t")["sellerSkus"] == "A,B"
    with pytest.raises(ValueError, match="1 to 50"):
        im.summaries_params("M", [f"S{i}" for i in range(51)])


class Recording:
    """A LocalLimiter that remembers every acquire, and can move the sandbox's clock on each."""

    def __init__(self, sandbox: AmazonSandbox | None = None, step_s: float = 0.0) -> None:
        self.inner = LocalLimiter()
        self.acquired: list[tuple[str, float, float]] = []
        self.sandbox, self.step_s, self.offset = sandbox, step_s, 0.0

    def acquire(self, key: str, *, rate: float, burst: float, cost: float = 1.0) -> None:
        self.acquired.append((key, rate, burst))
        if self.sandbox is not None and key.endswith("getInventorySummaries"):
            self.offset += self.step_s
            self.sandbox.set_time_offset(self.offset)
        self.inner.acquire(key, rate=rate, burst=burst, cost=cost)

    def pause(self, key: str, seconds: float) -> None:
        self.inner.pause(key, seconds)


@pytest.fixture
def sandbox() -> Iterator[AmazonSandbox]:
    with AmazonSandbox(stock={"AMZ-TEE": 12, "AMZ-MUG": 0}, known_skus=("AMZ-TEE", "AMZ-MUG", "AMZ-CAP"),
                       inventory_page_size=2, ship_after_s=3600) as sb:
        yield sb


def client(sb: AmazonSandbox, limiter: Limiter, session: requests.Session) -> AmazonMCF:
    cfg = AmazonSettings(marketplace_id="ATVPDKIKX0DER", client_id="sandbox-client",
                         client_secret="sandbox-secret", refresh_token="sandbox-refresh", base_url=sb.url,
                         token_url=sb.token_url)
    return AmazonMCF("us", cfg, limiter, session)


def test_stock_of_known_skus_every_page_at_two_a_second(sandbox: AmazonSandbox,
                                                         session: requests.Session) -> None:
    limiter = Recording()
    stock = client(sandbox, limiter, session).fba_stock(["AMZ-TEE", "AMZ-MUG", "AMZ-CAP", "AMZ-GONE"])
    assert {s: (v.fulfillable, v.reserved) for s, v in stock.items()} == {
        "AMZ-TEE": (12, 0), "AMZ-MUG": (0, 0), "AMZ-CAP": (100, 0)}  # AMZ-GONE: Amazon does not know it
    assert sandbox.calls == ["getInventorySummaries"] * 2  # 3 known SKUs, 2 a page
    # The same Limiter as MCF, its own bucket: the published usage plan, 2 requests/s, burst 2 —
    # less the token held back so that Amazon's bucket stays ahead of ours (BURST_CUSHION).
    asked = {a for a in limiter.acquired if "Inventory" in a[0]}
    assert asked == {("amazon:us:getInventorySummaries", 2.0, 1.0)}


def test_a_throttled_amazon_raises_a_transient_error_after_the_bounded_retries(
        sandbox: AmazonSandbox, session: requests.Session) -> None:
    sandbox.fail_next("getInventorySummaries", 429, count=4)
    with pytest.raises(AmazonThrottled, match="throttled"):
        client(sandbox, LocalLimiter(), session).fba_stock(["AMZ-TEE"])
    sandbox.fail_next("getInventorySummaries", 503)
    with pytest.raises(TransientError, match="503"):
        client(sandbox, LocalLimiter(), session).fba_stock(["AMZ-TEE"])


def test_an_expired_page_token_asks_again_from_the_start_once(sandbox: AmazonSandbox,
                                                              session: requests.Session) -> None:
    skus = ["AMZ-TEE", "AMZ-MUG", "AMZ-CAP"]
    slow = Recording(sandbox, step_s=31.0)  # every call lands after the last page's token expired
    with pytest.raises(TransientError, match="nextToken expired again"):
        client(sandbox, slow, session).fba_stock(skus)
    # page 1, page 2 (expired), then both again (plus a 429 retry when the sandbox's own bucket says so)
    assert sandbox.calls.count("getInventorySummaries") >= 4
    once: dict[str, Any] = {"n": 0}

    class SlowOnce(Recording):
        def acquire(self, key: str, *, rate: float, burst: float, cost: float = 1.0) -> None:
            once["n"] += 1
            self.step_s = 31.0 if once["n"] == 2 else 0.0
            super().acquire(key, rate=rate, burst=burst, cost=cost)

    assert set(client(sandbox, SlowOnce(sandbox), session).fba_stock(skus)) == set(skus)


def test_the_sandbox_stock_moves_with_its_orders(sandbox: AmazonSandbox, session: requests.Session) -> None:
    amazon = client(sandbox, LocalLimiter(), session)
    address = Address(name="Jo", address1="1 Main St", city="Austin", region="TX", postal_code="78701",
                      country="US")
    when = datetime(2026, 3, 1, tzinfo=UTC)
    for n in (1, 2):
        amazon.submit(FulfillmentRequest(f"ACME-{n}-1", str(n), when, "Thanks", "Standard", address,
                                         (FulfillmentItem("AMZ-TEE", "1", 5),)))
    tee = amazon.fba_stock(["AMZ-TEE"])["AMZ-TEE"]
    assert (tee.fulfillable, tee.reserved) == (2, 10)  # accepted orders reserve their units
    assert [p.fulfillable for p in amazon.preview(address, [FulfillmentItem("AMZ-TEE", "1", 3)],
                                                  ["Standard"])] == [False]
    amazon.cancel("ACME-1-1")
    sandbox.ship_now("ACME-2-1")
    tee = amazon.fba_stock(["AMZ-TEE"])["AMZ-TEE"]
    assert (tee.fulfillable, tee.reserved) == (7, 0)  # the cancelled units are back, the shipped ones gone
    sandbox.set_stock("AMZ-TEE", False)
    assert amazon.fba_stock(["AMZ-TEE"])["AMZ-TEE"].fulfillable == 0
    sandbox.set_stock("AMZ-TEE", 4, inbound=6)
    tee = amazon.fba_stock(["AMZ-TEE"])["AMZ-TEE"]
    assert (tee.fulfillable, tee.inbound) == (4, 6)
