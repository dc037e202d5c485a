"""Prometheus metrics through ``prometheus_client``: its exposition format and escaping, no
hand-written text.

Two kinds. The web receiver's own instruments live in ``Metrics``: webhook answers by platform and
code, their answer time (a histogram), and what became of each accepted one, by store. The ledger's numbers
(orders ingested, shipments submitted, tracking pushed, orders parked) are read from the database
at scrape time by ``LedgerCollector``, so every web process reports the same ones.

Every label value comes from the config or from a fixed set: store names from ``[stores.*]``,
platforms from the ones we speak, routes and answer codes from short lists. Anything else a
request could carry (an unknown ``/webhooks/<platform>/…``, an odd code) is counted under
``other``, so no request can add a series and memory stays bounded.

Several processes serving (``autofulfill web --workers N``): ``prometheus_client``'s multiprocess
mode. ``PROMETHEUS_MULTIPROC_DIR`` must name an empty folder before ``prometheus_client`` is first
imported in the serving processes (``worker.service.cli`` sets it up); each process writes its
counters there and a scrape adds them up.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from worker.app import App
from worker.ledger.models import OrderRow, ShipmentRow
from worker.service.serve import MULTIPROC_ENV

PLATFORMS = ("shopify", "woocommerce")
ROUTES = ("fba", "self_ship")
CODES = frozenset({200, 400, 401, 404, 405, 408, 413, 415, 503})
OTHER = "other"
# What a signed webhook did: the order's status after ingest, or why nothing changed.
OUTCOMES = frozenset({"new", "waiting", "held", "routed", "cancelling", "cancelled", "adjusting", "attention",
                      "done", "duplicate", "ignored", "ping", "skipped"})
# Shopify gives up after 5 s; the buckets resolve the range where an answer is fine or turning slow.
ANSWER_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class Metrics:
    """The receiver's instruments, on a registry of their own (one per app, so tests can build
    many). Label values are checked here, not by the callers."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.registry = CollectorRegistry(auto_describe=True)
        self.webhook_requests = Counter(
            "autofulfill_webhook_requests", "Webhook requests answered, by platform and HTTP code",
            ["platform", "code"], registry=self.registry)
        self.webhook_seconds = Histogram(
            "autofulfill_webhook_seconds", "Time from a webhook's arrival to its answer, by platform",
            ["platform"], buckets=ANSWER_BUCKETS, registry=self.registry)
        self.webhook_outcomes = Counter(
            "autofulfill_webhook_outcomes", "Signed webhooks accepted, by store and what became of the order",
            ["store", "outcome"], registry=self.registry)

    def webhook_answered(self, platform: str, code: int, seconds: float) -> None:
        platform = platform if platform in PLATFORMS else OTHER
        self.webhook_requests.labels(platform, str(code) if code in CODES else OTHER).inc()
        self.webhook_seconds.labels(platform).observe(seconds)

    def webhook_accepted(self, store: str, outcome: str) -> None:
        """``store`` is a configured one (the caller checked); ``outcome`` one of ``OUTCOMES``."""
        self.webhook_outcomes.labels(store, outcome if outcome in OUTCOMES else OTHER).inc()

    def exposition(self) -> tuple[bytes, str]:
        """The text a scrape gets, and its content type."""
        if multiprocess():
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # every process, added up
        else:
            registry = CollectorRegistry()
            registry.register(_Forward(self.registry))
        registry.register(LedgerCollector(self.app))
        return generate_latest(registry), CONTENT_TYPE_LATEST


class _Forward(Collector):
    """This process's instruments in a scrape's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self._registry.collect()


class LedgerCollector(Collector):
    """DESIGN §7's ledger metrics, read at scrape time; one series per configured store / route."""

    def __init__(self, app: App) -> None:
        self.app = app

    def describe(self) -> list[Metric]:
        return []  # read on each scrape, never at registration

    def collect(self) -> Iterator[Metric]:
        stores = list(self.app.config.stores)
        ingested = CounterMetricFamily("autofulfill_orders_ingested", "Orders recorded, by store",
                                       labels=["store"])
        submitted = CounterMetricFamily("autofulfill_shipments_submitted",
                                        "Shipments sent to Amazon or labelled, by route", labels=["route"])
        pushed = CounterMetricFamily("autofulfill_tracking_pushed", "Shipments whose tracking reached the "
                                     "store, by store", labels=["store"])
        parked = GaugeMetricFamily("autofulfill_orders_parked", "Orders waiting for a person, by store",
                                   labels=["store"])
        with self.app.sessions() as session:
            counts = _by(session.execute(select(OrderRow.store, func.count()).group_by(OrderRow.store)))
            for store in stores:
                ingested.add_metric([store], counts.get(store, 0))
            counts = _by(session.execute(select(ShipmentRow.route, func.count()).where(
                ShipmentRow.state.in_(["submitted", "label_bought", "shipped", "pushed"]))
                .group_by(ShipmentRow.route)))
            for route in ROUTES:
                submitted.add_metric([route], counts.get(route, 0))
            counts = _by(session.execute(select(OrderRow.store, func.count()).join(ShipmentRow)
                                         .where(ShipmentRow.state == "pushed").group_by(OrderRow.store)))
            for store in stores:
                pushed.add_metric([store], counts.get(store, 0))
            counts = _by(session.execute(
                select(OrderRow.store, func.count(func.distinct(OrderRow.id))).join(ShipmentRow, isouter=True)
                .where((OrderRow.status == "attention") | (ShipmentRow.state == "attention"))
                .group_by(OrderRow.store)))
            for store in stores:
                parked.add_metric([store], counts.get(store, 0))
        yield from (ingested, submitted, pushed, parked)


def _by(rows: Any) -> dict[str, int]:
    return {str(key): int(n) for key, n in rows}


def child_exit(_server: Any, worker: Any) -> None:
    """gunicorn hook: a worker that exits hands back its live files (multiprocess mode)."""
    if multiprocess():
        from prometheus_client import multiprocess as mp

        mp.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
