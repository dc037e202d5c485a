"""Fault injection: the real service under a stream of orders while a killer SIGKILLs its parts.

``run_chaos(settings, workdir)`` starts the sandboxes and the service as processes
(``worker.sandbox.stack.Stack``) in one of two shapes:

- ``split``: web receiver, scheduler and two workers on a private Redis broker and (by default)
  a private PostgreSQL ledger; Redis and PostgreSQL are each crashed and restarted once mid-run;
- ``run``: ``autofulfill run`` on the embedded defaults (SQLite ledger, SQLite broker).

Meanwhile ``Load`` feeds Shopify and WooCommerce orders (FBA lines, label lines, split orders
with both), delivers their signed webhooks (dropping some), and cancels or partly refunds some of
them at random moments (their webhooks dropped sometimes, too); ``Faults`` kills a random part
(or all of them) with SIGKILL at random moments and restarts it after a short random delay;
``LeaseWatch`` times how long the leases a killed process held stay unclaimed. At the end, once
every order is final (or a timeout passed), ``check`` judges every order against the sandboxes'
own records — Amazon's orders, EasyPost's labels and refunds, Shopify's fulfillments, WooCommerce's
notes — and ``Report`` counts lost orders, duplicates and wrong final states.

``bench/chaos.py`` is the command; ``tests/integration/e2e/test_chaos.py`` runs a short version.
"""

from __future__ import annotations

import heapq
import json
import os
import random
import statistics
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TextIO

import requests
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from worker.ledger.models import CursorRow, EventRow, OrderRow, ShipmentRow
from worker.sandbox.infra import PrivatePostgres, PrivateRedis
from worker.sandbox.stack import SKU_MAP, Stack

Mode = Literal["split", "run"]
FBA_SKUS = tuple(SKU_MAP)
LABEL_SKUS = ("POSTER-A2", "BOOK-PB", "SOCK-GRN")  # not mapped to Amazon: a bought label each
FINAL = ("done", "cancelled", "attention")
FINAL_SHIPMENT = ("pushed", "cancelled", "attention")
SPLIT_PARTS = ("web", "worker", "worker#2", "scheduler")
RUN_EXIT_S = 10.0  # `autofulfill run` stops its other parts and exits well within this when one dies
# What a person can act on: the package left although the store cancelled or refunded it.
ACTIONABLE = ("shipped although cancelled in the store", "shipped although refunded in the store",
              "cancel too late, intercept manually")
ORDER_REASONS = ("cancelled in the store; some shipments could not be undone", "a shipment needs a person",
                 "every line is parked")


@dataclass
class ChaosSettings:
    mode: Mode = "split"
    db: Literal["postgresql", "sqlite"] = "postgresql"
    kills: int = 100
    seed: int | None = None
    order_every_s: float = 1.0  # mean gap between new orders (exponential)
    kill_every_s: tuple[float, float] = (2.0, 8.0)  # gap before each kill (uniform)
    restart_after_s: tuple[float, float] = (0.2, 4.0)  # how long a killed part stays dead (uniform)
    drop_rate: float = 0.3  # share of webhooks never delivered (the poll must find the change)
    duplicate_rate: float = 0.1  # share of delivered webhooks delivered twice
    cancel_rate: float = 0.15
    refund_rate: float = 0.15
    change_within_s: float = 25.0  # a cancellation or refund comes within this of the order
    ship_after_s: float = 10.0  # Amazon ships an MCF order this long after its create
    lease_s: float = 6.0
    redrive_after_s: float = 10.0
    poll_interval_s: float = 2.0
    # Short, like the poll interval: with the default 120 s every 2 s pass re-reads two minutes of
    # orders, which Shopify's cost bucket (50 points/s) cannot sustain here (finding B3).
    poll_overlap_s: float = 10.0
    tracking_interval_s: float = 2.0
    task_time_limit_s: float = 30.0
    restart_infra: bool = True  # crash and restart the private Redis and PostgreSQL once each (split)
    quiesce_timeout_s: float = 300.0
    warmup_s: float = 3.0
    # Use these instead of private ones (never restarted): e.g. the shared PostgreSQL in a test.
    database_url: str = ""
    broker_url: str = ""

    @classmethod
    def for_mode(cls, mode: Mode, **kw: Any) -> ChaosSettings:
        """Defaults that suit the mode. The embedded SQLite broker hands out about two tasks a
        second (each of the two worker threads polls it about once a second), and `run` is down
        for seconds at each kill, so `run` gets fewer orders and slower periodic passes: the same
        faults without a backlog that outgrows the run (at an order every 2 s and passes every
        5 s it did)."""
        if mode == "run":
            base: dict[str, Any] = {"db": "sqlite", "order_every_s": 10.0, "poll_interval_s": 10.0,
                                    "tracking_interval_s": 10.0}
        else:
            base = {"db": "postgresql"}
        return cls(mode=mode, **{**base, **kw})


# --- what the store did ---------------------------------------------------------------------------

@dataclass
class StoreOrder:
    store: str  # "demo" (Shopify) or "bolt" (WooCommerce)
    oid: str
    kind: str  # fba | label | split
    lines: dict[str, tuple[str, int]]  # line id -> (sku, quantity ordered)
    created_at: float
    cancelled_at: float | None = None
    refunds: list[tuple[float, str, int]] = field(default_factory=list)  # (at, line id, units)
    # (at, topic, HTTP code; -1: dropped, 0: nobody answered)
    deliveries: list[tuple[float, str, int]] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return ("DEMO-" if self.store == "demo" else "BOLT-") + self.oid + "-"

    def refunded(self, line_id: str) -> int:
        return sum(n for _, li, n in self.refunds if li == line_id)

    def wanted(self, line_id: str) -> int:
        return 0 if self.cancelled_at is not None else self.lines[line_id][1] - self.refunded(line_id)

    @property
    def last_change(self) -> float:
        return max([self.created_at, self.cancelled_at or 0.0, *(t for t, _, _ in self.refunds)])


class Load:
    """New orders at random, each maybe cancelled or partly refunded later; webhooks maybe dropped."""

    def __init__(self, stack: Stack, settings: ChaosSettings, rng: random.Random) -> None:
        self.stack = stack
        self.settings = settings
        self.rng = rng
        self.orders: list[StoreOrder] = []
        self.errors: list[str] = []
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._seq = 0
        self._http = requests.Session()
        self.lock = threading.Lock()

    def run(self, stop_creating: threading.Event, stop: threading.Event) -> None:
        next_order = time.monotonic()
        while not stop.is_set():
            now = time.monotonic()
            if not stop_creating.is_set() and now >= next_order:
                self._guarded(self.new_order)
                next_order = now + self.rng.expovariate(1 / self.settings.order_every_s)
            while self._heap and self._heap[0][0] <= now:
                _, _, action = heapq.heappop(self._heap)
                self._guarded(action)
            if stop_creating.is_set() and not self._heap:
                return
            time.sleep(0.05)

    def _guarded(self, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception:  # the load goes on; the error is reported
            self.errors.append(traceback.format_exc(limit=3))

    def _later(self, delay_s: float, action: Callable[[], None]) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (time.monotonic() + delay_s, self._seq, action))

    def new_order(self) -> None:
        rng = self.rng
        kind = rng.choices(("fba", "label", "split"), weights=(0.45, 0.25, 0.3))[0]
        specs: list[tuple[str, int]] = []
        if kind in ("fba", "split"):
            for sku in rng.sample(FBA_SKUS, 1 if kind == "split" else rng.choice((1, 1, 2))):
                specs.append((sku, rng.choice((1, 1, 2, 3))))
        if kind in ("label", "split"):
            specs.append((rng.choice(LABEL_SKUS), rng.choice((1, 1, 2))))
        if rng.random() < 0.5:
            store = "demo"
            body = self.stack.shop.add_order(specs, shipping_title=rng.choice(("Standard", "Express")))
        else:
            store = "bolt"
            body = self.stack.woo.add_order(specs, shipping_title=rng.choice(("Flat rate", "Express")))
        lines = {str(li["id"]): (str(li["sku"]), int(li["quantity"])) for li in body["line_items"]}
        order = StoreOrder(store, str(body["id"]), kind, lines, created_at=time.time())
        with self.lock:
            self.orders.append(order)
        self.deliver(order, "orders/create" if store == "demo" else "order.created")
        roll = rng.random()
        within = self.settings.change_within_s
        if roll < self.settings.cancel_rate:
            self._later(rng.uniform(0, within), lambda: self.cancel(order))
        elif roll < self.settings.cancel_rate + self.settings.refund_rate:
            self._later(rng.uniform(0, within), lambda: self.refund(order))
            if rng.random() < 0.2:  # and then cancelled after all
                self._later(within + rng.uniform(0, 5), lambda: self.cancel(order))

    def cancel(self, order: StoreOrder) -> None:
        if order.cancelled_at is not None:
            return
        if order.store == "demo":
            self.stack.shop.cancel_order(order.oid)
        else:
            self.stack.woo.set_status(order.oid, "cancelled")
        order.cancelled_at = time.time()
        self.deliver(order, "orders/cancelled" if order.store == "demo" else "order.updated")

    def refund(self, order: StoreOrder) -> None:
        """Refund part of the order (never all of it): one unit of a line with several, else a
        whole line of an order with several lines."""
        if order.cancelled_at is not None:
            return
        several = [li for li, (_, qty) in order.lines.items() if qty - order.refunded(li) >= 2]
        if several:
            line_id, units = self.rng.choice(several), 1
        elif len(order.lines) >= 2:
            line_id = self.rng.choice(sorted(order.lines))
            units = order.lines[line_id][1] - order.refunded(line_id)
        else:
            return
        if order.store == "demo":
            self.stack.shop.refund_lines(order.oid, [(line_id, units)])
        else:
            self.stack.woo.refund_lines(order.oid, [(line_id, units)])
        order.refunds.append((time.time(), line_id, units))
        self.deliver(order, "orders/updated" if order.store == "demo" else "order.updated")

    def deliver(self, order: StoreOrder, topic: str) -> None:
        """The store's signed webhook, or nothing (dropped). A refused or unanswered delivery is
        not retried: the poll must find the change."""
        if self.rng.random() < self.settings.drop_rate:
            order.deliveries.append((time.time(), topic, -1))
            return
        if order.store == "demo":
            body, headers = self.stack.shop.signed_webhook(topic, order.oid)
            url = self.stack.webhook_url
        else:
            body, headers = self.stack.woo.signed_webhook(topic, order.oid)
            url = self.stack.woo_webhook_url
        for _ in range(2 if self.rng.random() < self.settings.duplicate_rate else 1):
            try:
                code = self._http.post(url, data=body, headers=headers, timeout=(3, 20)).status_code
            except requests.RequestException:
                code = 0
            order.deliveries.append((time.time(), topic, code))

    def close(self) -> None:
        self._http.close()


# --- leases and how long a dead holder's stay unclaimed --------------------------------------------

@dataclass
class HeldLease:
    table: str  # orders | shipments | cursors
    key: str
    token: str
    until: datetime
    state: str  # the row's status / state / cursor value at the kill: a change is work moved on
    recovered_at: float | None = None
    alive: bool = False  # renewed after the kill: a living process held it, not the killed one


@dataclass
class Kill:
    n: int
    target: str
    at: float
    restarted_at: float | None = None
    leases: list[HeldLease] = field(default_factory=list)
    note: str = ""

    @property
    def dead_leases(self) -> list[HeldLease]:
        return [h for h in self.leases if not h.alive]

    def recovery_s(self) -> tuple[float | None, float | None]:
        """(longest time from the kill, from the restart) until a dead lease was taken over or
        let go; None when the killed process held nothing. inf: never."""
        dead = self.dead_leases
        if not dead:
            return None, None
        if any(h.recovered_at is None for h in dead):
            return float("inf"), float("inf")
        last = max(h.recovered_at or 0.0 for h in dead)
        return last - self.at, max(0.0, last - (self.restarted_at or self.at))


_LEASED: dict[str, Any] = {"orders": OrderRow, "shipments": ShipmentRow, "cursors": CursorRow}


def _key_column(table: str) -> Any:
    return CursorRow.name if table == "cursors" else _LEASED[table].id


def _state_column(table: str) -> Any:
    return {"orders": OrderRow.status, "shipments": ShipmentRow.state, "cursors": CursorRow.value}[table]


class LeaseWatch:
    """At a kill, notes every lease held; then watches each until its token changes (taken over
    or let go). A lease renewed after the kill belonged to a living process and is dropped."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.pending: list[HeldLease] = []
        self.lock = threading.Lock()

    def snapshot(self, kill: Kill) -> None:
        assert self.stack.app is not None
        now = datetime.now(UTC)
        with self.lock:
            known = {(h.table, h.key, h.token) for h in self.pending}
        try:
            with self.stack.app.sessions() as session:
                for table, model in _LEASED.items():
                    rows = session.execute(select(_key_column(table), model.lease_token, model.lease_until,
                                                  _state_column(table))
                                           .where(model.lease_token != "", model.lease_until > now)).all()
                    for key, token, until, state in rows:
                        if (table, str(key), token) not in known:
                            kill.leases.append(HeldLease(table, str(key), token, until, str(state)))
        except SQLAlchemyError as exc:
            kill.note = f"leases not read: {type(exc).__name__}"
        with self.lock:
            self.pending.extend(kill.leases)

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(0.5):
            self.check()

    def check(self) -> None:
        assert self.stack.app is not None
        with self.lock:
            pending = list(self.pending)
        if not pending:
            return
        now = time.time()
        try:
            with self.stack.app.sessions() as session:
                for h in pending:
                    model = _LEASED[h.table]
                    key: Any = h.key if h.table == "cursors" else int(h.key)
                    row = session.execute(select(model.lease_token, model.lease_until, _state_column(h.table))
                                          .where(_key_column(h.table) == key)).first()
                    if row is None or row[0] != h.token or str(row[2]) != h.state:
                        h.recovered_at = now  # taken over, let go, or its work moved on
                    elif row[1] is not None and row[1] > h.until:
                        h.alive = True
        except SQLAlchemyError:
            return  # the database is restarting: look again
        with self.lock:
            self.pending = [h for h in self.pending if h.recovered_at is None and not h.alive]


# --- the killer -----------------------------------------------------------------------------------

@dataclass
class InfraRestart:
    what: str
    at: float
    down_s: float


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def part_child(pid: int, part: str) -> int | None:
    """The pid of `autofulfill run`'s child that runs ``part`` (python -m worker <part> ...)."""
    for child in _descendants(pid):
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if argv[1:4] == [b"-m", b"worker", part.encode()]:
            return child
    return None


class Faults:
    """Kills a random part (or all of them) at random moments and restarts it after a random
    delay; crashes the private Redis and PostgreSQL once each; restarts a part that died by itself
    (as systemd would) and counts it."""

    def __init__(self, stack: Stack, settings: ChaosSettings, rng: random.Random, leases: LeaseWatch,
                 redis: PrivateRedis | None, pg: PrivatePostgres | None, say: Callable[[str], None]) -> None:
        self.stack = stack
        self.settings = settings
        self.rng = rng
        self.leases = leases
        self.redis = redis
        self.pg = pg
        self.say = say
        self.parts: tuple[str, ...] = SPLIT_PARTS if settings.mode == "split" else ("run",)
        self.kills: list[Kill] = []
        self.infra: list[InfraRestart] = []
        self.exits: list[tuple[float, str, int | None]] = []
        self.errors: list[str] = []
        self.done = threading.Event()

    def targets(self) -> dict[str, int]:
        if self.settings.mode == "split":
            return {"worker": 3, "worker#2": 3, "scheduler": 2, "web": 1, "all": 1}
        return {"run": 3, "run/worker": 2, "run/scheduler": 1, "run/web": 1}

    def run(self, stop: threading.Event) -> None:
        try:
            self._run(stop)
        except Exception:
            self.errors.append(traceback.format_exc(limit=5))
        finally:
            self.done.set()
        while not stop.wait(1.0):  # until the end: restart whatever dies by itself
            self._guarded_supervise()

    def _run(self, stop: threading.Event) -> None:
        s = self.settings
        if stop.wait(s.warmup_s):
            return
        names, weights = zip(*self.targets().items(), strict=True)
        for n in range(1, s.kills + 1):
            if stop.wait(self.rng.uniform(*s.kill_every_s)):
                return
            self._guarded_supervise()
            if s.restart_infra and s.mode == "split":
                if self.redis is not None and n == max(1, s.kills // 3):
                    self.restart_redis()
                if self.pg is not None and n == max(1, (2 * s.kills) // 3):
                    self.restart_postgres()
            self.kill(n, self.rng.choices(names, weights=weights)[0])

    def _guarded_supervise(self) -> None:
        try:
            self.supervise()
        except Exception:
            self.errors.append(traceback.format_exc(limit=5))

    def supervise(self) -> None:
        for part in self.parts:
            proc = self.stack.procs.get(part)
            if proc is not None and proc.poll() is None:
                continue
            rc = proc.poll() if proc is not None else None
            self.exits.append((time.time(), part, rc))
            self.say(f"{part} exited by itself (rc {rc}): restarting it")
            self._forget(part)
            self._start(part)

    def _forget(self, part: str) -> None:
        proc = self.stack.procs.pop(part, None)
        if proc is None:
            return
        try:
            os.killpg(proc.pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait(30)
        if proc.stdout is not None:
            proc.stdout.close()

    def _start(self, *parts: str) -> None:
        try:
            self.stack.start(*parts)
        except TimeoutError as exc:  # e.g. web came up while the database was restarting
            self.errors.append(f"start {parts}: {exc}")

    def kill(self, n: int, target: str) -> None:
        kill = Kill(n, target, at=0.0)
        if target == "all":
            victims = list(self.parts)
            self.rng.shuffle(victims)
            kill.at = time.time()
            for part in victims:
                self._forget(part)
        elif target.startswith("run/"):
            self._kill_run_child(kill, target.split("/", 1)[1])
            victims = ["run"]
        else:
            victims = [target]
            kill.at = time.time()
            self._forget(target)
        self.leases.snapshot(kill)
        if target.startswith("run/"):  # `run` should stop its other parts itself, then exit
            proc = self.stack.procs.get("run")
            deadline = time.monotonic() + RUN_EXIT_S
            while proc is not None and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            if proc is not None and proc.poll() is None and not kill.note:
                # B4 again (races/test_chaos_findings.py): run should have stopped and exited.
                kill.note = (f"B4: run kept running without its {target.split('/', 1)[1]}; "
                             f"killed after {RUN_EXIT_S:.0f}s")
            self._forget("run")
        time.sleep(self.rng.uniform(*self.settings.restart_after_s))
        self._start(*[p for p in self.parts if p in victims])
        kill.restarted_at = time.time()
        self.kills.append(kill)
        self.say(f"kill {n:3}: {target:13} ({len(kill.leases):2} leases held in the ledger); restarted "
                 f"after {kill.restarted_at - kill.at:4.1f}s")

    def _kill_run_child(self, kill: Kill, part: str) -> None:
        proc = self.stack.procs.get("run")
        child = part_child(proc.pid, part) if proc is not None else None
        kill.at = time.time()
        if child is None:  # not started yet, or gone: kill all of it instead
            kill.note = f"no {part} child found: killed run"
            self._forget("run")
            return
        for pid in [child, *_descendants(child)]:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass

    def restart_redis(self) -> None:
        assert self.redis is not None
        start = time.time()
        self.redis.crash()
        time.sleep(self.rng.uniform(0.5, 3.0))
        self.redis.start()
        self.infra.append(InfraRestart("redis", start, time.time() - start))
        self.say(f"redis crashed and restarted ({time.time() - start:.1f}s down): its queue is gone")

    def restart_postgres(self) -> None:
        assert self.pg is not None
        start = time.time()
        self.pg.crash()
        time.sleep(self.rng.uniform(0.5, 3.0))
        self.pg.start()
        self.infra.append(InfraRestart("postgresql", start, time.time() - start))
        self.say(f"postgresql crashed and restarted ({time.time() - start:.1f}s down)")


# --- the verdict ----------------------------------------------------------------------------------

@dataclass
class Problem:
    kind: str  # lost | duplicate_mcf | duplicate_label | duplicate_fulfillment | wrong_state
    store: str
    order: str
    detail: str
    timeline: str = ""


@dataclass
class Verdict:
    orders: int = 0
    final: Counter[str] = field(default_factory=Counter)
    parked: Counter[str] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    shipped_after_refund: int = 0  # refunded units that had already left (a refund after shipping)
    summaries: list[str] = field(default_factory=list)  # one line per order: store, ledger, Amazon, EasyPost

    def count(self, kind: str) -> int:
        return len({(p.store, p.order) for p in self.problems if p.kind == kind})


def _ledger(stack: Stack) -> tuple[dict[tuple[str, str], OrderRow], dict[str, ShipmentRow],
                                   dict[int, list[EventRow]]]:
    assert stack.app is not None
    with stack.app.sessions() as session:
        orders = {(o.store, o.platform_order_id): o for o in session.scalars(select(OrderRow))}
        shipments: dict[str, ShipmentRow] = {}
        for s in session.scalars(select(ShipmentRow)):
            _ = s.lines
            shipments[s.external_id] = s
        events: dict[int, list[EventRow]] = {}
        for e in session.scalars(select(EventRow).order_by(EventRow.id)):
            events.setdefault(e.order_id, []).append(e)
    return orders, shipments, events


def _stuck_routed(row: OrderRow, shipments: list[ShipmentRow]) -> bool:
    """B1: ``routed`` although every shipment is final and one is parked (nothing moves it on)."""
    return (row.status == "routed" and bool(shipments) and all(s.state in FINAL_SHIPMENT for s in shipments)
            and any(s.state == "attention" for s in shipments))


def _actionable(reason: str, shipments: list[ShipmentRow]) -> str:
    """"" when the parked order says what a person must do about a package that left, else why not."""
    parked = [s for s in shipments if s.state == "attention"]
    if any(r in reason for r in ACTIONABLE):
        return ""
    if not any(r in reason for r in ORDER_REASONS):
        return f"parked: {reason!r}"
    if not parked:
        return f"parked ({reason!r}) with no shipment parked"
    odd = [f"{s.external_id}: {s.reason!r}" for s in parked if not any(r in s.reason for r in ACTIONABLE)]
    return f"parked: {'; '.join(odd)}" if odd else ""


def check(stack: Stack, orders: list[StoreOrder]) -> Verdict:
    """Every order against the sandboxes' records (and the ledger's final state)."""
    verdict = Verdict(orders=len(orders))
    ledger, ledger_shipments, events = _ledger(stack)
    amazon = {oid: (o.request, stack.amazon.status(oid), o.tracking)
              for oid, o in stack.amazon.orders.items()}
    labels = [dict(s) for s in stack.easypost.shipments.values()]
    refunded_labels = set(stack.easypost.refunds)
    for so in orders:
        problems: list[tuple[str, str]] = []
        mcf = {oid: v for oid, v in amazon.items() if oid.startswith(so.prefix)}
        live_mcf = {oid: v for oid, v in mcf.items() if v[1] != "Cancelled"}
        bought = [s for s in labels if str(s.get("reference") or "").startswith(so.prefix)
                  and s.get("postage_label")]
        live_labels = [s for s in bought if s["id"] not in refunded_labels]
        # Units sent per line: MCF items carry the store's line id; a label's lines are its shipment's.
        sent: Counter[str] = Counter()
        for request, _, _ in live_mcf.values():
            for item in request["items"]:
                sent[str(item["sellerFulfillmentOrderItemId"])] += int(item["quantity"])
        label_units: Counter[str] = Counter()
        for label in live_labels:
            planned = ledger_shipments.get(str(label["reference"]))
            if planned is None:
                problems.append(("wrong_state", f"label {label['id']} ({label['reference']}) bought for a "
                                                "shipment the ledger does not know"))
                continue
            for ln in planned.lines:
                label_units[ln.line_id] += ln.quantity
        refs = Counter(str(s["reference"]) for s in bought)
        for ref, n in refs.items():
            if n > 1:
                problems.append(("duplicate_label", f"{n} labels bought for {ref}"))
        for line_id, (sku, qty) in so.lines.items():
            if sent[line_id] > qty:
                problems.append(("duplicate_mcf", f"{sku}: {sent[line_id]} units sent to Amazon, {qty} "
                                                  f"ordered ({', '.join(sorted(live_mcf))})"))
            if label_units[line_id] > qty:
                problems.append(("duplicate_label", f"{sku}: {label_units[line_id]} units on unrefunded "
                                                    f"labels, {qty} ordered"))
        # What the store shows: fulfillments (Shopify) or notes (WooCommerce) with tracking numbers.
        numbers = [str(v[2]) for v in live_mcf.values()] + [str(s["tracking_code"]) for s in live_labels]
        all_numbers = [str(v[2]) for v in mcf.values()] + [str(s["tracking_code"]) for s in bought]
        in_store: Counter[str] = Counter()
        if so.store == "demo":
            fulfilled: Counter[str] = Counter()
            for f in stack.shop.fulfillments(so.oid):
                for number in f["tracking_numbers"]:
                    in_store[str(number)] += 1
                for li in f["line_items"]:
                    fulfilled[str(li["line_item_id"])] += int(li["quantity"])
            for line_id, (sku, qty) in so.lines.items():
                if fulfilled[line_id] > qty:
                    problems.append(("duplicate_fulfillment",
                                     f"{sku}: {fulfilled[line_id]} units fulfilled in Shopify, "
                                     f"{qty} ordered"))
        else:
            texts = [str(n["note"]) for n in stack.woo.notes(so.oid)]
            texts += [str(t["tracking_number"]) for t in stack.woo.trackings(so.oid)]
            for number in all_numbers:
                in_store[number] = sum(1 for t in texts if number in t)
        for number, n in in_store.items():
            if n > 1:
                problems.append(("duplicate_fulfillment",
                                 f"tracking {number} written {n} times to the store"))
        row = ledger.get((so.store, so.oid))
        if row is None:
            if so.cancelled_at is None or live_mcf or live_labels:
                problems.append(("lost", "not in the ledger"))
            else:
                verdict.final["cancelled before it was seen"] += 1
        else:
            mine = [s for s in ledger_shipments.values() if s.order_id == row.id]
            status, reason = row.status, row.reason
            if _stuck_routed(row, mine):  # B1 again (races/test_chaos_findings.py)
                problems.append(("lost", "not final: left routed with every shipment final, one parked: "
                                 + "; ".join(s.reason for s in mine if s.state == "attention")))
            elif status not in FINAL:
                problems.append(("lost", f"not final: {row.status} ({row.reason})"))
            else:
                verdict.final[status] += 1
            if status == "attention":
                verdict.parked[reason] += 1
            open_shipments = [f"{s.external_id} {s.state}" for s in mine if s.state not in FINAL_SHIPMENT]
            if open_shipments and status in FINAL:
                problems.append(("lost", f"{row.status} but shipments not final: "
                                         f"{', '.join(open_shipments)}"))
            pushed = {str(t["number"]) for s in mine if s.state == "pushed" for t in s.tracking}
            if status in FINAL:
                problems += _judge_state(so, status, reason, mine, events.get(row.id, []), live_mcf,
                                         live_labels, sent, label_units, pushed, numbers, in_store, verdict)
        for kind, detail in problems:
            verdict.problems.append(Problem(kind, so.store, so.oid, detail))
        verdict.summaries.append(_summary(so, row, mcf, bought, refunded_labels, problems))
    return verdict


def _summary(so: StoreOrder, row: OrderRow | None, mcf: dict[str, Any], bought: list[dict[str, Any]],
             refunded: set[str], problems: list[tuple[str, str]]) -> str:
    lines = " ".join(f"{sku}x{qty}" + (f"(-{so.refunded(li)})" if so.refunded(li) else "")
                     for li, (sku, qty) in so.lines.items())
    store = "cancelled" if so.cancelled_at is not None else "open"
    ledger = "-" if row is None else row.status
    amazon = " ".join(f"{oid.rsplit('-', 1)[1]}:{v[1]}" for oid, v in sorted(mcf.items())) or "-"
    labels = " ".join(str(s["reference"]).rsplit("-", 1)[1]
                      + (":refunded" if s["id"] in refunded else ":bought") for s in bought) or "-"
    verdict = "; ".join(f"{k}: {d}" for k, d in problems) or "ok"
    return (f"{so.store} {so.oid} {so.kind} [{lines}] store={store} ledger={ledger} amazon=[{amazon}] "
            f"labels=[{labels}] -> {verdict}")


def _judge_state(so: StoreOrder, status: str, reason: str, mine: list[ShipmentRow], events: list[EventRow],
                 live_mcf: dict[str, Any], live_labels: list[dict[str, Any]], sent: Counter[str],
                 label_units: Counter[str], pushed: set[str], numbers: list[str], in_store: Counter[str],
                 verdict: Verdict) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    wrong = "wrong_state"
    for number in pushed:
        if in_store[number] == 0:
            out.append((wrong, f"tracking {number} pushed per the ledger but not in the store"))
    if so.cancelled_at is not None:
        if status == "done":
            out.append((wrong, "done although cancelled in the store"))
        if live_labels:
            out.append((wrong, "cancelled in the store but label(s) not refunded: "
                               + ", ".join(str(s["reference"]) for s in live_labels)))
        if status == "cancelled" and live_mcf:
            out.append((wrong, f"cancelled, but MCF order(s) {', '.join(sorted(live_mcf))} not cancelled"))
        if status == "attention":
            why = _actionable(reason, mine)
            if why:
                out.append((wrong, why))
            elif not live_mcf:
                out.append((wrong, "parked although nothing left the warehouse"))
        return out
    if status == "cancelled":
        return [(wrong, "cancelled in the ledger, not in the store")]
    if status == "attention" and (why := _actionable(reason, mine)):
        return [*out, (wrong, why)]
    seen_refund = next((e.at.timestamp() for e in events if e.kind == "refunded_in_store"), None)
    for line_id, (sku, _) in so.lines.items():
        shipped = sent[line_id] + label_units[line_id]
        wanted = so.wanted(line_id)
        if shipped < wanted:
            out.append((wrong, f"{sku}: {shipped} units shipped, {wanted} wanted"))
        elif shipped > wanted and status == "done":
            # Refunded units that shipped anyway: right only when they had left before the refund
            # was known (a refund seen after its shipment was shipped, or never seen: done first).
            gone = [_left_at(e) for e in events if e.kind in ("shipped", "pushed")]
            if seen_refund is not None and (not gone or min(gone) > seen_refund):
                out.append((wrong, f"{sku}: {shipped} units shipped, {wanted} wanted (the refund was "
                                   "recorded before anything shipped)"))
            else:
                verdict.shipped_after_refund += shipped - wanted
    if status == "done":
        for number in numbers:
            if in_store[number] == 0:
                out.append((wrong, f"done, but tracking {number} is not in the store"))
    return out


def _left_at(e: EventRow) -> float:
    """When a shipped or pushed shipment's units were past recall: a push from the moment it read
    the store (a refund after that read cannot stop it), else the event's time."""
    checked = e.detail.get("store_checked_at") if e.kind == "pushed" else None
    return datetime.fromisoformat(checked).timestamp() if isinstance(checked, str) else e.at.timestamp()


# --- the run --------------------------------------------------------------------------------------

@dataclass
class Report:
    mode: str
    db: str
    broker: str
    seed: int
    kills: int
    kills_by_target: dict[str, int]
    orders: int
    orders_by_kind: dict[str, int]
    cancellations: int
    refunds: int
    webhooks: dict[str, int]
    infra_restarts: list[dict[str, Any]]
    parts_exited_by_themselves: int
    load_s: float
    quiesce_s: float
    total_s: float
    quiescent: bool
    lost: int
    duplicate_mcf_orders: int
    duplicate_labels: int
    duplicate_store_fulfillments: int
    wrong_final_states: int
    known_bugs: dict[str, int]  # orders per bug found and reported (races/test_chaos_findings.py)
    final_states: dict[str, int]
    parked_reasons: dict[str, int]
    refunded_units_shipped_anyway: int
    recovery: dict[str, Any]
    problems: list[dict[str, str]]
    order_summaries: list[str]
    harness_errors: list[str]
    notes: list[str]

    @property
    def ok(self) -> bool:
        return self.quiescent and not (self.lost or self.duplicate_mcf_orders or self.duplicate_labels
                                       or self.duplicate_store_fulfillments or self.wrong_final_states)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _recovery(kills: list[Kill]) -> dict[str, Any]:
    after_kill: list[float] = []
    after_restart: list[float] = []
    never: list[str] = []
    worst: dict[str, Any] = {}
    for k in kills:
        if k.note.startswith("B4"):
            continue  # `run` went on without a part until the harness killed it: not a recovery
        from_kill, from_restart = k.recovery_s()
        if from_kill is None or from_restart is None:
            continue
        if from_kill == float("inf"):
            never += [f"kill {k.n} ({k.target}): {h.table} {h.key}"
                      for h in k.dead_leases if h.recovered_at is None]
            continue
        after_kill.append(from_kill)
        after_restart.append(from_restart)
        if from_kill >= worst.get("after_kill_s", -1.0):
            slowest = max(k.dead_leases, key=lambda h: h.recovered_at or 0.0)
            worst = {"kill": k.n, "target": k.target, "after_kill_s": round(from_kill, 1),
                     "slowest_lease": f"{slowest.table} {slowest.key}",
                     "after_restart_s": round(from_restart, 1), "dead_leases": len(k.dead_leases),
                     "down_s": round((k.restarted_at or k.at) - k.at, 1)}
    return {
        "kills_holding_leases": len(after_kill) + len({n.split(":")[0] for n in never}),
        "dead_leases": sum(len(k.dead_leases) for k in kills),
        "longest_after_kill_s": round(max(after_kill), 1) if after_kill else None,
        "longest_after_restart_s": round(max(after_restart), 1) if after_restart else None,
        "median_after_kill_s": round(statistics.median(after_kill), 1) if after_kill else None,
        "worst": worst,
        "never_recovered": never,
    }


def _timeline(stack: Stack, store: str, oid: str) -> str:
    from worker.service.views import find_order, timeline

    assert stack.app is not None
    try:
        with stack.app.sessions() as session:
            row = find_order(session, store, oid)
            return "(not in the ledger)" if row is None else timeline(session, row)
    except Exception as exc:  # a report, not a reason to fail
        return f"(timeline unavailable: {exc})"


def _settled(stack: Stack, orders: list[StoreOrder]) -> tuple[bool, str]:
    """Every order final (or cancelled before we saw it), and each store's poll has completed a
    pass that started after the store's last change (so nothing the store did is still unseen)."""
    assert stack.app is not None
    last = {store: max((o.last_change for o in orders if o.store == store), default=0.0)
            for store in ("demo", "bolt")}
    try:
        with stack.app.sessions() as session:
            for store, at in last.items():
                cursor = session.get(CursorRow, f"store:{store}:orders")
                if at and (cursor is None or cursor.value is None or cursor.value.timestamp() < at + 1.5):
                    return False, f"{store}: no poll pass since its last change"
            rows = {(o.store, o.platform_order_id): o for o in session.scalars(select(OrderRow))}
            shipments = list(session.scalars(select(ShipmentRow)))
    except SQLAlchemyError as exc:
        return False, f"ledger unavailable ({type(exc).__name__})"
    busy = {s.order_id for s in shipments if s.state not in FINAL_SHIPMENT}
    waiting = 0
    for o in orders:
        row = rows.get((o.store, o.oid))
        if row is None:
            waiting += o.cancelled_at is None
        elif row.id in busy or row.status not in FINAL:
            waiting += 1
    return waiting == 0, f"{waiting} orders not final"


@contextmanager
def _infrastructure(settings: ChaosSettings, workdir: Path, notes: list[str]) -> Iterator[
        tuple[str, str, PrivateRedis | None, PrivatePostgres | None]]:
    """(database_url, broker_url, private redis, private postgres) for this run."""
    redis: PrivateRedis | None = None
    pg: PrivatePostgres | None = None
    database_url, broker_url = settings.database_url, settings.broker_url
    try:
        if settings.mode == "split" and not broker_url:
            why = PrivateRedis.unavailable()
            if why:
                raise RuntimeError(f"a private Redis is needed for mode split: {why}")
            redis = PrivateRedis(workdir / "redis")
            redis.start()
            broker_url = redis.url
        if settings.db == "postgresql" and not database_url:
            why = PrivatePostgres.unavailable()
            if why:
                raise RuntimeError(f"a private PostgreSQL is needed for --db postgresql: {why}")
            pg = PrivatePostgres()
            pg.start()
            database_url = pg.url
        if settings.db == "sqlite" and not database_url:
            database_url = "sqlite:///var/ledger.db"
        if settings.database_url:
            notes.append("the ledger is a given database: not restarted")
        if settings.broker_url:
            notes.append("the broker is a given Redis: not restarted")
        yield database_url, broker_url, redis, pg
    finally:
        if redis is not None:
            redis.stop()
        if pg is not None:
            pg.stop()


def run_chaos(settings: ChaosSettings, workdir: Path, *, say: Callable[[str], None] = print,
              service_log: TextIO | None = None) -> Report:
    """One fault-injection run; returns its report. ``service_log`` gets every part's output."""
    seed = settings.seed if settings.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    notes: list[str] = []
    started = time.time()
    with _infrastructure(settings, workdir, notes) as (database_url, broker_url, redis, pg):
        say(f"chaos: mode {settings.mode}, ledger {database_url.split('://', 1)[0]}, broker "
            f"{broker_url or 'embedded sqlite'}, {settings.kills} kills, seed {seed}")
        stack = Stack(workdir / "stack", database_url=database_url, broker_url=broker_url,
                      ship_after_s=settings.ship_after_s, poll_interval_s=settings.poll_interval_s,
                      tracking_interval_s=settings.tracking_interval_s,
                      task_time_limit_s=settings.task_time_limit_s, log_format="json",
                      output=service_log, extra={
                          "service": f"lease_s = {settings.lease_s}\n"
                                     f"redrive_after_s = {settings.redrive_after_s}\n"
                                     f"poll_overlap_s = {settings.poll_overlap_s}",
                          "bolt": 'labels = "main"', "bolt_routing": 'default = "self_ship"'})
        load = Load(stack, settings, rng)
        leases = LeaseWatch(stack)
        faults = Faults(stack, settings, random.Random(rng.random()), leases, redis, pg, say)
        stop_creating, stop_load, stop = threading.Event(), threading.Event(), threading.Event()
        threads: list[threading.Thread] = []
        try:
            stack.start_sandboxes()
            stack.start(*faults.parts)
            threads = [threading.Thread(target=load.run, args=(stop_creating, stop_load), name="chaos-load"),
                       threading.Thread(target=faults.run, args=(stop,), name="chaos-faults"),
                       threading.Thread(target=leases.run, args=(stop,), name="chaos-leases")]
            for t in threads:
                t.start()
            load_start = time.time()
            while not faults.done.wait(10):
                say(f"  ... {len(faults.kills)} kills, {len(load.orders)} orders")
            stop_creating.set()
            threads[0].join()  # the pending cancellations and refunds are made, too
            load_s = time.time() - load_start
            say(f"load over: {len(load.orders)} orders, {len(faults.kills)} kills in {load_s:.0f}s; "
                "waiting for every order to be final")
            quiet_start = time.time()
            quiescent, why, calm = False, "", 0
            while time.time() - quiet_start < settings.quiesce_timeout_s:
                settled, why = _settled(stack, load.orders)
                calm = calm + 1 if settled else 0
                if calm >= 2:
                    quiescent = True
                    break
                time.sleep(1.0)
            quiesce_s = time.time() - quiet_start
            say(f"{'quiescent' if quiescent else 'NOT quiescent: ' + why} after {quiesce_s:.0f}s")
            # The last kill's leases may not have lapsed yet: give them their time (bounded).
            settle_until = time.time() + 3 * settings.lease_s + 30
            while time.time() < settle_until:
                leases.check()
                with leases.lock:
                    if not leases.pending:
                        break
                time.sleep(0.5)
            stop.set()
            for t in threads[1:]:
                t.join(120)
            stack.stop_parts()
            verdict = check(stack, load.orders)
            for p in verdict.problems[:25]:
                p.timeline = _timeline(stack, p.store, p.order)
        finally:
            stop_creating.set()
            stop_load.set()
            stop.set()
            for t in threads:
                t.join(120)
            load.close()
            stack.stop()
    deliveries = [d for o in load.orders for d in o.deliveries]
    report = Report(
        mode=settings.mode, db=settings.db, broker="redis" if broker_url else "embedded sqlite", seed=seed,
        kills=len(faults.kills), kills_by_target=dict(Counter(k.target for k in faults.kills)),
        orders=len(load.orders), orders_by_kind=dict(Counter(f"{o.store}/{o.kind}" for o in load.orders)),
        cancellations=sum(o.cancelled_at is not None for o in load.orders),
        refunds=sum(len(o.refunds) for o in load.orders),
        webhooks={"delivered": sum(1 for d in deliveries if 200 <= d[2] < 300),
                  "dropped": sum(1 for d in deliveries if d[2] == -1),
                  "refused_or_unanswered": sum(1 for d in deliveries if d[2] >= 0 and not 200 <= d[2] < 300)},
        infra_restarts=[{"what": r.what, "down_s": round(r.down_s, 1)} for r in faults.infra],
        parts_exited_by_themselves=len(faults.exits),
        load_s=round(load_s, 1), quiesce_s=round(quiesce_s, 1), total_s=round(time.time() - started, 1),
        quiescent=quiescent,
        lost=verdict.count("lost"), duplicate_mcf_orders=verdict.count("duplicate_mcf"),
        duplicate_labels=verdict.count("duplicate_label"),
        duplicate_store_fulfillments=verdict.count("duplicate_fulfillment"),
        wrong_final_states=verdict.count("wrong_state"),
        known_bugs={"B4 (kills)": sum(k.note.startswith("B4") for k in faults.kills)},
        final_states=dict(verdict.final), parked_reasons=dict(verdict.parked),
        refunded_units_shipped_anyway=verdict.shipped_after_refund,
        recovery=_recovery(faults.kills),
        problems=[asdict(p) for p in verdict.problems], order_summaries=verdict.summaries,
        harness_errors=load.errors + faults.errors,
        notes=notes + [f"kill {k.n} ({k.target}): {k.note}" for k in faults.kills if k.note])
    return report


def table(reports: list[Report]) -> str:
    """The figures of one or more runs (trials) as a text table."""
    def total(name: str) -> int:
        return sum(int(getattr(r, name)) for r in reports)

    def longest(key: str) -> str:
        values = [r.recovery[key] for r in reports if r.recovery.get(key) is not None]
        return f"{max(values):.1f} s" if values else "n/a (no kill held a lease)"

    never = sum(len(r.recovery["never_recovered"]) for r in reports)
    rows = [
        ("mode / ledger / broker", ", ".join(sorted({f"{r.mode} / {r.db} / {r.broker}" for r in reports}))),
        ("trials", str(len(reports))),
        ("kills", f"{total('kills')}  ({_merge(r.kills_by_target for r in reports)})"),
        ("infrastructure restarts", ", ".join(f"{i['what']} {i['down_s']}s" for r in reports
                                              for i in r.infra_restarts) or "none"),
        ("parts that died by themselves", str(total("parts_exited_by_themselves"))),
        ("orders", f"{total('orders')}  ({_merge(r.orders_by_kind for r in reports)})"),
        ("cancellations / partial refunds", f"{total('cancellations')} / {total('refunds')}"),
        ("webhooks", _merge(r.webhooks for r in reports)),
        ("final states", _merge(r.final_states for r in reports)),
        ("lost", str(total("lost"))),
        ("duplicate MCF orders", str(total("duplicate_mcf_orders"))),
        ("duplicate labels", str(total("duplicate_labels"))),
        ("duplicate store fulfillments", str(total("duplicate_store_fulfillments"))),
        ("wrong final states", str(total("wrong_final_states"))),
        ("known bugs, reported (orders)", _merge(r.known_bugs for r in reports)
         + "  (tests/integration/races/test_chaos_findings.py)"),
        ("refunded units shipped anyway",
         f"{total('refunded_units_shipped_anyway')} (refunded after they shipped)"),
        ("longest recovery after a kill", f"{longest('longest_after_kill_s')} from the kill, "
                                          f"{longest('longest_after_restart_s')} from the restart"),
        ("leases never taken over", str(never)),
        ("quiescent", "yes" if all(r.quiescent for r in reports) else "NO"),
        ("duration", " + ".join(f"{r.load_s:.0f}s load, {r.quiesce_s:.0f}s to quiesce" for r in reports)),
    ]
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{width}}  {v}" for k, v in rows)


def _merge(dicts: Iterator[dict[str, int]] | Any) -> str:
    merged: Counter[str] = Counter()
    for d in dicts:
        merged.update(d)
    return ", ".join(f"{k} {v}" for k, v in sorted(merged.items())) or "none"


def write_json(reports: list[Report], path: Path) -> None:
    data = {"machine": _machine(), "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "trials": [r.to_json() for r in reports]}
    path.write_text(json.dumps(data, indent=2, default=str))


def _machine() -> str:
    cpus = os.cpu_count()
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return f"{cpus} cores{', ' + model if model else ''}"
