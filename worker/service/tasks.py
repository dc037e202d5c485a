"""Celery: the app, its reliability settings, and thin tasks that take ids.

Each task binds the log context, builds (once per process) the composition root from the config
named by ``$AUTOFULFILL_CONFIG``, and calls one pipeline function. Tasks never retry through
Celery: a step that must wait writes ``next_attempt_at`` in the ledger and the scheduler re-drives
it, so nothing depends on a delayed message surviving in the broker.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Collection
from pathlib import Path
from typing import Any

from celery import Celery, Task
from celery.signals import setup_logging, worker_process_init

from worker.app import App
from worker.config import Config, load_config
from worker.errors import redact
from worker.ledger.leases import Heartbeat
from worker.ledger.outbox import Marks
from worker.logs import bind, log
from worker.pipeline import adjust as adjust_step
from worker.pipeline import cancel as cancel_step
from worker.pipeline import fulfill, labels, names, tracking
from worker.pipeline import inventory as inventory_step
from worker.pipeline import release as release_step
from worker.service import alerts, sweeper
from worker.service.bootstrap import bootstrap

celery = Celery("autofulfill")
_app: App | None = None
_lock = threading.Lock()


def celery_settings(config: Config) -> dict[str, Any]:
    svc = config.service
    return {
        "broker_url": config.broker_url,
        "broker_connection_retry_on_startup": True,
        # Redis redelivers an unacked task after visibility_timeout; the embedded SQLite broker
        # takes only engine options here.
        # Redis: a queue is one list per priority step (names.PRIORITY, "<queue>:<step>"), read in order.
        "broker_transport_options": ({} if config.embedded_broker else {
            "visibility_timeout": svc.visibility_timeout_s, "priority_steps": list(names.PRIORITY_STEPS),
            "sep": ":"}),
        "task_default_queue": svc.queue,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "task_ignore_result": True,
        "task_time_limit": svc.task_time_limit_s,
        "task_soft_time_limit": max(1.0, svc.task_time_limit_s - 5),
        "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "broker_pool_limit": max(4, svc.worker_concurrency + 2),  # each thread may publish at once
        # No task events unless asked for: they cost ~6 % of a busy worker's CPU. Flower asks (its
        # --enable_events, on by default, turns them on in every worker it sees, by remote control).
        "worker_send_task_events": False,
    }


def configure(config: Config) -> Celery:
    celery.conf.update(celery_settings(config))
    return celery


def worker_pool_size(config: Config) -> int:
    """A worker's database connections: one per thread, and its lease heartbeats."""
    return config.service.worker_concurrency + 2


def celery_publisher(name: str, args: list[Any], task_id: str) -> None:
    # add_to_parent off: Celery would keep every task a running task sends (a sweep's thousands of
    # pushes) in that task's request.children until it ends.
    celery.send_task(name, args=args, task_id=f"{task_id}@{os.urandom(3).hex()}",
                     priority=names.priority(name, task_id), add_to_parent=False)


def queue_keys(queue: str) -> list[str]:
    """The Redis lists that hold a queue's waiting tasks, one per priority step."""
    return [queue if step == names.PRIORITY_STEPS[0] else f"{queue}:{step}" for step in names.PRIORITY_STEPS]


def current_app() -> App:
    """The composition root of this process, built on first use from $AUTOFULFILL_CONFIG."""
    global _app
    with _lock:
        if _app is None:
            config = load_config(Path(os.environ["AUTOFULFILL_CONFIG"]))
            configure(config)
            _app = bootstrap(config, celery_publisher, pool_size=worker_pool_size(config))
            _app.marks = Marks(_app.sessions, _app.clock)  # a worker's: published rows marked in batches
        return _app


def install(app: App) -> None:
    """Use an already-built App in this process (the CLI builds one before starting the worker)."""
    global _app
    with _lock:
        _app = app


@setup_logging.connect
def _keep_our_logging(**_: Any) -> None:
    """Connected, so Celery leaves logging as `worker.logs.setup` made it (JSON or text lines)."""


@worker_process_init.connect
def _after_fork(**_: Any) -> None:
    """A prefork child must not share the parent's database connections."""
    if _app is not None:
        _app.sessions.kw["bind"].dispose(close=False)


class TaskFailed(Exception):
    """What Celery sees of a failed step: the redacted error, without the chain of causes (a
    library's exception can carry a raw answer, and Celery logs the whole chain)."""


def _run(task: Task, step: str, fn: Any, *args: Any) -> Any:
    tid = task.request.id or ""
    app = current_app()
    with bind(task_id=tid, step=step), Heartbeat(app.sessions, app.clock, app.lease_s,
                                                 app.config.service.task_time_limit_s):
        try:
            return fn(app, *args, actor=tid)
        except Exception as exc:  # the ledger back-stop re-drives the step; make the failure visible
            log("task.failed", level=40, error=f"{type(exc).__name__}: {str(exc)[:300]}")
            if type(exc).__module__.startswith(("celery.", "billiard.")):
                raise  # Celery's own signals (time limits, retry, reject) stay what they are
            raise TaskFailed(redact(f"{type(exc).__name__}: {str(exc)[:300]}")) from None


@celery.task(name=names.RELEASE, bind=True)
def release(self: Task, order_pk: int) -> str:
    """Route a held order whose hold is over. Idempotent (order lease + status check)."""
    return str(_run(self, "release", release_step.release, order_pk))


@celery.task(name=names.SUBMIT, bind=True)
def submit(self: Task, shipment_pk: int) -> str:
    """Submit one shipment to its fulfiller. Idempotent (lease; lookup before any re-create)."""
    return str(_run(self, "submit", fulfill.submit, shipment_pk))


@celery.task(name=names.PUSH, bind=True)
def push(self: Task, shipment_pk: int) -> str:
    """Push one shipment's tracking to its store. Idempotent (lease; the store is read first)."""
    return str(_run(self, "push", tracking.push, shipment_pk))


@celery.task(name=names.LOOKUP, bind=True)
def lookup(self: Task, shipment_pk: int) -> str:
    """Look a submitted MCF order up by id (the back-stop of the tracking sweep). Idempotent."""
    return str(_run(self, "lookup", tracking.check, shipment_pk))


@celery.task(name=names.CANCEL, bind=True)
def cancel(self: Task, order_pk: int) -> str:
    """Undo a cancelled order's shipments (MCF cancel, label refund). Idempotent (leases)."""
    return str(_run(self, "cancel", cancel_step.cancel_order, order_pk))


@celery.task(name=names.ADJUST, bind=True)
def adjust(self: Task, order_pk: int) -> str:
    """Bring a refunded order's unshipped shipments down to what is still wanted. Idempotent."""
    return str(_run(self, "adjust", adjust_step.adjust_order, order_pk))


@celery.task(name=names.SCANS, bind=True)
def scans(self: Task, account: str) -> int:
    """Push the tracking of first_scan labels the carrier has scanned. Idempotent."""
    return int(_run(self, "scans", labels.scan_sweep, account))


@celery.task(name=names.ALERT, bind=True)
def alert(self: Task, text: str, channel: str | None = None) -> None:
    """Send one alert. Alerts are delivered by the scheduler's sender now; this task only takes
    messages an older version queued."""
    _run(self, "alert", lambda app, text, channel, actor: alerts.send(app, text, channel), text, channel)


@celery.task(name=names.POLL, bind=True)
def poll(self: Task, store: str) -> int:
    """One reconciliation pass over a store. Idempotent (ingest dedupes)."""
    return int(_run(self, "poll", sweeper.poll_store, store))


@celery.task(name=names.INVENTORY, bind=True)
def inventory(self: Task, store: str, mode: str = "all") -> str:
    """One FBA stock -> store stock pass over a store ("due": only its SKUs flagged for an early
    refresh). Idempotent: one pass per store at a time, and every write compares first."""
    result: inventory_step.PassResult = _run(self, "inventory", inventory_pass, store, mode)
    return result.summary()


def inventory_pass(app: App, store: str, mode: str = "all", *, only: Collection[str] | None = None,
                   actor: str = "") -> inventory_step.PassResult:
    """The pass, then its alerts (the task's body; `autofulfill inventory --apply` too)."""
    result = inventory_step.sync_store(app, store, refresh=mode == "due", only=only, actor=actor)
    alerts.inventory_pass(app, result)
    return result


@celery.task(name=names.TRACK, bind=True)
def track(self: Task, account: str) -> int:
    """One tracking sweep over an Amazon account. Idempotent (only `submitted` shipments move)."""
    return int(_run(self, "track", tracking.sweep, account))
