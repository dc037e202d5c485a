"""The scheduler process (run exactly one): relays the outbox and keeps the clocks.

Each tick publishes unpublished outbox rows; every ``release_interval_s`` it re-drives due work;
per store every ``poll_interval_s`` a reconciliation poll; per Amazon account every
``tracking_interval_s`` a tracking sweep; per store with ``[inventory] enabled`` a stock sync
every ``interval_s``, and sooner for SKUs flagged for an early refresh. Polls, sweeps and syncs
run as Celery tasks on the workers.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType

from worker.app import App
from worker.ledger import cursors, outbox
from worker.logs import log
from worker.pipeline import inventory_ledger, names
from worker.service import alerts, sweeper

PRUNE_EVERY_S = 3600.0
INVENTORY_DUE_SLOT_S = 15.0  # an early-refresh pass per store at most this often
LOCK = "scheduler:lock"


def lock_ttl_s(app: App) -> float:
    return max(15.0, 6 * app.config.service.release_interval_s)


def tick(app: App, last: dict[str, float], now_mono: float) -> None:
    svc = app.config.service
    outbox.relay(app.sessions, app.publisher, now=app.clock(), exclude=alerts.OWN_DELIVERY)
    if now_mono - last.get("prune", -PRUNE_EVERY_S) >= PRUNE_EVERY_S:
        last["prune"] = now_mono
        outbox.prune(app.sessions, now=app.clock())
    if now_mono - last.get("redrive", 0.0) >= svc.release_interval_s:
        last["redrive"] = now_mono
        sweeper.redrive_due(app)
        alerts.scan_parked(app)
        alerts.scan_late(app)
    if now_mono - last.get("digest", -PRUNE_EVERY_S) >= PRUNE_EVERY_S:
        last["digest"] = now_mono
        alerts.digest(app)
    for name in app.config.stores:
        key = f"poll:{name}"
        every = app.config.poll_interval(name)
        if now_mono - last.get(key, 0.0) >= every:
            last[key] = now_mono
            sweeper.enqueue_periodic(app, names.POLL, name, [name], every)
    for name, cfg in app.config.labels.items():
        key = f"scans:{name}"
        if cfg.push_tracking == "first_scan" and now_mono - last.get(key, 0.0) >= svc.tracking_interval_s:
            last[key] = now_mono
            sweeper.enqueue_periodic(app, names.SCANS, name, [name], svc.tracking_interval_s)
    syncing = {n: c.inventory for n, c in app.config.stores.items() if c.inventory.enabled}
    for name, inv in syncing.items():  # FBA stock -> store stock
        if now_mono - last.get(f"inventory:{name}", 0.0) >= inv.interval_s:
            last[f"inventory:{name}"] = now_mono
            sweeper.enqueue_periodic(app, names.INVENTORY, name, [name, "all"], inv.interval_s)
    if syncing and now_mono - last.get("inventory:due", 0.0) >= svc.release_interval_s:
        last["inventory:due"] = now_mono
        inventory_ledger.flag_sales(app, app.clock())
        for name in inventory_ledger.due_stores(app, app.clock()):
            sweeper.enqueue_periodic(app, names.INVENTORY, f"{name}:due", [name, "due"], INVENTORY_DUE_SLOT_S)
    for account in app.config.amazon:
        key = f"track:{account}"
        if now_mono - last.get(key, 0.0) >= svc.tracking_interval_s:
            last[key] = now_mono
            sweeper.enqueue_periodic(app, names.TRACK, account, [account], svc.tracking_interval_s)


def dead_here(holder: str) -> bool:
    """True when ``holder`` ("host:pid:nonce") names a process of this host that no longer runs
    (a scheduler killed and restarted here takes its lock back at once, not after its TTL)."""
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's
    return False


def run_forever(app: App, *, tick_s: float = 0.5, stop: threading.Event | None = None,
                reload: Callable[[], App | None] | None = None,
                reload_requested: threading.Event | None = None) -> None:
    """Tick until stopped (SIGTERM/SIGINT). On SIGHUP, ``reload()`` builds an App from the config
    file as it is now; a config that does not validate is refused and the old one kept."""
    stop = stop or threading.Event()
    reload_requested = reload_requested or threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log("scheduler.stopping", signal=signum)
        stop.set()

    def _hup(_signum: int, _frame: FrameType | None) -> None:
        reload_requested.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGHUP, _hup)
    log("scheduler.started", stores=list(app.config.stores), amazon=list(app.config.amazon))
    last: dict[str, float] = {}
    me = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
    active = False
    while not stop.is_set():
        if reload_requested.is_set() and reload is not None:
            reload_requested.clear()
            fresh = reload()
            if fresh is not None:
                app = fresh
                log("scheduler.reloaded", stores=list(app.config.stores), amazon=list(app.config.amazon))
        try:
            # Exactly one scheduler acts; a second one stands by and takes over when the lease
            # of the first runs out (it died or lost the database).
            if not cursors.hold(app, LOCK, me, lock_ttl_s(app), holder_is_dead=dead_here):
                if active or not last.get("standby_logged"):
                    log("scheduler.standby", reason="another scheduler holds the lock")
                    last["standby_logged"], active = 1.0, False
                stop.wait(lock_ttl_s(app) / 3)
                continue
            if not active:
                log("scheduler.active", scheduler=me)
                active = True
            tick(app, last, time.monotonic())
        except Exception as exc:  # the database or broker is away: say so, keep ticking
            log("scheduler.tick_failed", level=40, error=f"{type(exc).__name__}: {str(exc)[:300]}")
            stop.wait(min(5.0, app.config.service.release_interval_s))
        stop.wait(tick_s)
    log("scheduler.stopped")
