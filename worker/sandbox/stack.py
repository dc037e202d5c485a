"""The service as real processes against the connectors' local sandboxes.

``Stack`` starts the Shopify, WooCommerce and Amazon sandboxes in this process, writes a config
that points at them, and runs the service's parts (`autofulfill run`, or `web`, `worker`,
`scheduler` separately) as subprocesses. `autofulfill demo`, the integration tests and the
benchmark all stand on it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TextIO

import requests

from connectors.amazon_mcf.sandbox import AmazonSandbox
from connectors.easypost.sandbox import EasyPostSandbox
from connectors.sandbox_server import LoopbackServer
from connectors.shopify.sandbox import ShopifySandbox
from connectors.woocommerce.sandbox import WooSandbox
from worker.app import App
from worker.config import load_config
from worker.ledger.migrate import ensure_schema
from worker.ledger.models import OrderRow, ShipmentRow
from worker.service.bootstrap import bootstrap

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
{extra_service}
[alerts]
webhook_url = "{alert_url}"   # the demo's stand-in for a Slack incoming webhook

# The sandboxes' fixed, public credentials; a real config reads secrets with "env:NAME".
[amazon.us]
region = "na"
marketplace_id = "ATVPDKIKX0DER"
client_id = "sandbox-client"
client_secret = "sandbox-secret"
refresh_token = "sandbox-refresh"
endpoint = "{amazon_url}"
token_url = "{amazon_token_url}"

[labels.main]
provider = "easypost"
api_key = "EZTKsandbox"
endpoint = "{easypost_url}"
choose = "cheapest"
from_address = {{ name = "Acme Goods", street1 = "1 Main St", city = "Austin", state = "TX", zip = "78701", country = "US", phone = "5125550100" }}
default_parcel = {{ length_in = 10, width_in = 8, height_in = 4, weight_oz = 16 }}

[stores.demo]
platform = "shopify"
labels = "main"
parcels = {{ "POSTER-A2" = {{ length_in = 24, width_in = 3, height_in = 3, weight_oz = 9 }} }}
shop_url = "{shop_url}"
access_token = "sandbox-token"
webhook_secret = "sandbox-secret"
api_version = "2026-01"
amazon = "us"
order_prefix = "DEMO"
notify_customer = true
{extra_demo}
[stores.demo.routing]
default = "self_ship"
sku_map = {{ {sku_map} }}
speeds = {{ "Standard" = "Standard", "Express" = "Expedited", "Overnight" = "Priority" }}
fba_countries = ["US"]
split = true
features = []
{extra_demo_routing}
[stores.bolt]
platform = "woocommerce"
shop_url = "{woo_url}"
consumer_key = "ck_sandbox"
consumer_secret = "cs_sandbox"
webhook_secret = "sandbox-woo-secret"
amazon = "us"
order_prefix = "BOLT"
complete_on_ship = true
{extra_bolt}
[stores.bolt.routing]
sku_map = {{ {sku_map} }}
speeds = {{ "Flat rate" = "Standard", "Express" = "Expedited" }}
{extra_bolt_routing}"""
EXTRA_TABLES = ("service", "demo", "demo_routing", "bolt", "bolt_routing")


class AlertSink(LoopbackServer):
    """Receives alerts as a Slack incoming webhook would: POST {"text": ...} → 200 "ok"."""

    thread_name = "alert-sink"

    def __init__(self) -> None:
        super().__init__()
        self.received: list[str] = []

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    sink.received.append(str(json.loads(body)["text"]))
                    code = 200
                except (ValueError, KeyError, TypeError):
                    code = 400
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
                pass

        return Handler


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
                 woo_tracking_extension: str | None = None, buy_delay_s: float = 0.0,
                 output: TextIO | None = None, extra: dict[str, str] | None = None) -> None:
        """``extra``: TOML lines added to a table, keyed "service", "demo", "demo_routing", "bolt" or
        "bolt_routing" (e.g. ``{"bolt": "hold_minutes = 0.25"}``, ``{"service": "lease_s = 6"}``)."""
        unknown = set(extra or {}) - set(EXTRA_TABLES)
        if unknown:
            raise ValueError(f"Stack extra: unknown table(s) {sorted(unknown)}; use {EXTRA_TABLES}")
        self.extra = {f"extra_{name}": (extra or {}).get(name, "") for name in EXTRA_TABLES}
        self.workdir = workdir
        self.shop = ShopifySandbox()
        self.woo = WooSandbox(tracking_extension=woo_tracking_extension)
        self.easypost = EasyPostSandbox(buy_delay_s=buy_delay_s)
        self.alerts = AlertSink()
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

    @property
    def woo_webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/woocommerce/bolt"

    def start_sandboxes(self) -> None:
        self.shop.start()
        self.woo.start()
        with self.woo.state.lock:  # the store's webhooks deliver to this stack's receiver
            for hook in self.woo.state.webhooks.values():
                hook["delivery_url"] = self.woo_webhook_url
        self.amazon.start()
        self.easypost.start()
        self.alerts.start()
        sku_map = ", ".join(f'"{k}" = "{v}"' for k, v in SKU_MAP.items())
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(CONFIG.format(
            port=self.port, shop_url=self.shop.url, woo_url=self.woo.url, amazon_url=self.amazon.url,
            easypost_url=self.easypost.endpoint, alert_url=self.alerts.url + "/hook",
            amazon_token_url=self.amazon.token_url, sku_map=sku_map, **self.settings, **self.extra))
        config = load_config(self.config_path, env=self.env)
        config.data_dir.mkdir(parents=True, exist_ok=True)
        self.app = bootstrap(config, publisher=lambda *_: None)
        ensure_schema(self.app.sessions.kw["bind"])

    def start(self, *parts: str) -> None:
        """Start `autofulfill <part>` for each part; "worker#2" names a second worker process."""
        for part in parts:
            command = part.split("#", 1)[0]
            proc = subprocess.Popen(
                [sys.executable, "-m", "worker", command, "--config", str(self.config_path)],
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
        self.stop_parts()
        self.shop.stop()
        self.woo.stop()
        self.amazon.stop()
        self.easypost.stop()
        self.alerts.stop()
        if self.app is not None:
            self.app.sessions.kw["bind"].dispose()

    def stop_parts(self) -> None:
        """Stop the service's processes (SIGTERM, then SIGKILL after 20 s); the sandboxes stay up."""
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
