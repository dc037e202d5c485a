"""`autofulfill demo`: the real service against the connectors' local sandboxes.

``Stack`` (also used by the integration tests) starts the Shopify and Amazon sandboxes in this
process, writes a config that points at them, and runs the service's parts as real processes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import requests

from connectors.amazon_mcf.sandbox import AmazonSandbox
from connectors.shopify.sandbox import ShopifySandbox
from worker.bootstrap import App, bootstrap
from worker.config import load_config
from worker.ledger import OrderRow, ShipmentRow
from worker.migrate import ensure_schema
from worker.views import table, timeline

SKU_MAP = {"TEE-RED-M": "AMZ-TEE-RED-M", "MUG-BLK": "AMZ-MUG-BLK", "CAP-NAVY": "AMZ-CAP-NAVY"}

CONFIG = """\
[service]
database_url = "{database_url}"
broker_url = "{broker_url}"
data_dir = "var"
listen = "127.0.0.1:{port}"
poll_interval_s = {poll_interval_s}
tracking_interval_s = {tracking_interval_s}
release_interval_s = 1
task_time_limit_s = {task_time_limit_s}
visibility_timeout_s = {visibility_timeout_s}
log_format = "{log_format}"
queue = "{queue}"
worker_concurrency = {worker_concurrency}

# The sandboxes' fixed, public credentials; a real config reads secrets with "env:NAME".
[amazon.us]
region = "na"
marketplace_id = "ATVPDKIKX0DER"
client_id = "sandbox-client"
client_secret = "sandbox-secret"
refresh_token = "sandbox-refresh"
endpoint = "{amazon_url}"
token_url = "{amazon_token_url}"

[stores.demo]
platform = "shopify"
shop_url = "{shop_url}"
access_token = "sandbox-token"
webhook_secret = "sandbox-secret"
api_version = "2026-01"
amazon = "us"
order_prefix = "DEMO"
hold_minutes = 0
notify_customer = true

[stores.demo.routing]
default = "self_ship"
sku_map = {{ {sku_map} }}
speeds = {{ "Standard" = "Standard", "Express" = "Expedited", "Overnight" = "Priority" }}
fba_countries = ["US"]
split = true
features = []
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.3) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


class Stack:
    """Sandboxes + config + service processes. ``parts`` are `autofulfill` subcommands."""

    def __init__(self, workdir: Path, *, database_url: str = "sqlite:///var/ledger.db",
                 broker_url: str = "", ship_after_s: float = 4.0, create_delay_s: float = 0.0,
                 poll_interval_s: float = 30, tracking_interval_s: float = 2,
                 task_time_limit_s: float = 60, log_format: str = "text", worker_concurrency: int = 2,
                 output: TextIO | None = None) -> None:
        self.workdir = workdir
        self.shop = ShopifySandbox()
        self.amazon = AmazonSandbox(ship_after_s=ship_after_s, create_delay_s=create_delay_s)
        self.port = free_port()
        self.settings = dict(database_url=database_url, broker_url=broker_url,
                             poll_interval_s=poll_interval_s, tracking_interval_s=tracking_interval_s,
                             task_time_limit_s=task_time_limit_s, worker_concurrency=worker_concurrency,
                             visibility_timeout_s=max(3600, task_time_limit_s * 3), log_format=log_format,
                             queue=f"autofulfill-{uuid.uuid4().hex[:8]}")
        self.output = output
        self.procs: dict[str, subprocess.Popen[str]] = {}
        self.config_path = workdir / "autofulfill.toml"
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.app: App | None = None

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/shopify/demo"

    def start_sandboxes(self) -> None:
        self.shop.start()
        self.amazon.start()
        sku_map = ", ".join(f'"{k}" = "{v}"' for k, v in SKU_MAP.items())
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(CONFIG.format(
            port=self.port, shop_url=self.shop.url, amazon_url=self.amazon.url,
            amazon_token_url=self.amazon.token_url, sku_map=sku_map, **self.settings))
        config = load_config(self.config_path, env=self.env)
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.app = bootstrap(config, publisher=lambda *_: None)
        ensure_schema(self.app.sessions.kw["bind"])

    def start(self, *parts: str) -> None:
        for part in parts:
            proc = subprocess.Popen(
                [sys.executable, "-m", "worker", part, "--config", str(self.config_path)],
                env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                start_new_session=True)
            self.procs[part] = proc
            threading.Thread(target=self._pump, args=(part, proc), daemon=True).start()
        if "web" in parts or "run" in parts:
            wait_for(self.healthy, 60, "the webhook receiver's /healthz")

    def _pump(self, part: str, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if self.output is not None:
                self.output.write(f"  {part:9} | {line}")
                self.output.flush()

    def healthy(self) -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{self.port}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def kill(self, part: str) -> None:
        """kill -9 the part and every process it started."""
        proc = self.procs.pop(part)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()
        self.procs.clear()
        self.shop.stop()
        self.amazon.stop()
        if self.app is not None:
            self.app.sessions.kw["bind"].dispose()

    def shipments(self) -> list[tuple[OrderRow, ShipmentRow]]:
        assert self.app is not None
        with self.app.sessions() as session:
            rows = session.query(OrderRow, ShipmentRow).join(ShipmentRow).order_by(ShipmentRow.id).all()
            for order, shipment in rows:
                _ = order.lines, shipment.lines
            return [(o, s) for o, s in rows]

    def orders(self) -> list[OrderRow]:
        assert self.app is not None
        with self.app.sessions() as session:
            return list(session.query(OrderRow).order_by(OrderRow.id))


def _sample_orders(stack: Stack, count: int, out: TextIO) -> dict[str, str]:
    """Create sample orders and deliver their webhooks as Shopify would; returns id -> story."""
    stories: dict[str, str] = {}
    skus = list(SKU_MAP)
    speeds = ["Standard", "Express", "Overnight"]
    for i in range(max(1, count - 3)):
        order = stack.shop.add_order([(skus[i % 3], 1 + i % 2)], shipping_title=speeds[i % 3])
        stack.shop.deliver(stack.webhook_url, "orders/paid", order["id"])
        stories[str(order["id"])] = "webhook"
    mixed = stack.shop.add_order([("MUG-BLK", 1), ("POSTER-A2", 1)])
    stack.shop.deliver(stack.webhook_url, "orders/paid", mixed["id"])
    stories[str(mixed["id"])] = "mixed: FBA + an unmapped line (parked)"
    thrice = stack.shop.add_order([("CAP-NAVY", 2)], shipping_title="Express")
    event_id = "demo-duplicate-event"
    for _ in range(3):
        stack.shop.deliver(stack.webhook_url, "orders/paid", thrice["id"], event_id=event_id)
    stories[str(thrice["id"])] = "same webhook delivered 3 times"
    lost = stack.shop.add_order([("TEE-RED-M", 1)])
    stories[str(lost["id"])] = "webhook lost: found by the poller"
    out.write(f"demo: {len(stories)} orders placed in the Shopify sandbox\n")
    return stories


def run_demo(workdir: str | None, count: int = 5, out: TextIO = sys.stdout) -> int:
    base = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="autofulfill-demo-"))
    stack = Stack(base.resolve(), poll_interval_s=8, output=out)
    out.write(f"demo: files in {base}\n")
    try:
        stack.start_sandboxes()
        out.write(f"demo: Shopify sandbox {stack.shop.url}, Amazon sandbox {stack.amazon.url}\n")
        stack.start("run")
        out.write(f"demo: service running, webhooks at {stack.webhook_url}\n")
        stories = _sample_orders(stack, count, out)
        ok = _wait_for_tracking(stack, len(stories), out)
        report = _report(stack, stories)
    except Exception as exc:
        out.write(f"demo: failed: {type(exc).__name__}: {exc}\n")
        return 1
    finally:
        stack.stop()
    cli = os.path.relpath(sys.argv[0]) if sys.argv[0].endswith("autofulfill") else "autofulfill"
    out.write(report)
    out.write(f"\ndemo: {'OK' if ok else 'INCOMPLETE'} — the files stay in {base}; try\n"
              f"  {cli} orders --config {stack.config_path}\n"
              f"  {cli} show demo 1001 --config {stack.config_path}\n")
    return 0 if ok else 1


def _wait_for_tracking(stack: Stack, expected: int, out: TextIO, timeout_s: float = 120) -> bool:
    def pushed() -> int:
        return sum(1 for _, s in stack.shipments() if s.route == "fba" and s.state == "pushed")

    last = -1
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and (n := pushed()) < expected:
        if n != last:
            out.write(f"demo: progress {n}/{expected} FBA shipments tracked in Shopify\n")
            last = n
        time.sleep(1)
    return pushed() == expected


def _report(stack: Stack, stories: dict[str, str]) -> str:
    """The final table, the call counts and one order's timeline, read from the ledger."""
    rows = []
    for order, s in stack.shipments():
        tracking = ", ".join(f"{t['carrier']} {t['number']}" for t in s.tracking) or "-"
        numbers = {t["number"] for t in s.tracking}
        in_store = sum(1 for f in stack.shop.fulfillments(order.platform_order_id)
                       if numbers & set(f["tracking_numbers"]))
        rows.append((order.number, stories.get(order.platform_order_id, ""), s.route, s.state,
                     s.external_id if s.route == "fba" else "-", tracking,
                     "yes" if s.state == "pushed" else (s.reason or "no"), in_store))
    text = "\n" + table(("order", "story", "route", "state", "Amazon id", "tracking", "pushed",
                         "Shopify fulfillments"), rows) + "\n"
    text += (f"\nAmazon create calls: {stack.amazon.create_calls}; "
             f"Shopify fulfillmentCreate calls: {stack.shop.calls.count('CreateFulfillment')}\n")
    mixed = next((o for o in stack.orders() if stories.get(o.platform_order_id, "").startswith("mixed")),
                 None)
    if mixed is not None and stack.app is not None:
        with stack.app.sessions() as session:
            row = session.get(OrderRow, mixed.id)
            assert row is not None
            text += f"\nThe timeline of order {row.number} (`autofulfill show demo {row.number}`):\n"
            text += timeline(session, row) + "\n"
    return text
