"""The real pipeline functions against the connectors' sandboxes, driven by hand.

``Rig`` starts the Shopify, WooCommerce, Amazon and EasyPost sandboxes (``Stack.start_sandboxes``),
builds the composition root on a real ledger (SQLite or PostgreSQL) with a publisher that only
records, and runs what was published through the same step functions the Celery tasks call —
in the order a test chooses. Interleavings are forced with the sandboxes' ``intercept`` hooks
(something happens in the store while a step waits for an answer) and the rig's clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import select

from tests.fakes import DrainingClient
from worker.app import App
from worker.ledger.models import EventRow, OrderRow, OutboxRow, ShipmentRow
from worker.pipeline import adjust, cancel, fulfill, labels, names, release, tracking
from worker.sandbox.stack import Stack
from worker.service import sweeper
from worker.service.bootstrap import bootstrap
from worker.service.web import create_app


class Clock:
    """Real time, moved on by ``advance`` (the sandboxes keep real time unless told otherwise)."""

    def __init__(self) -> None:
        self.offset = timedelta()

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)


class Rig:
    def __init__(self, workdir: Path, database_url: str, *, extra: dict[str, str] | None = None,
                 **stack: Any) -> None:
        self.stack = Stack(workdir, database_url=database_url, extra=extra, **stack)
        self.stack.start_sandboxes()
        assert self.stack.app is not None
        self.clock = Clock()
        self.published: list[tuple[str, list[Any]]] = []
        self._lock = threading.Lock()
        self.app: App = bootstrap(self.stack.app.config, self._publish, clock=self.clock)
        receiver = create_app(self.app)
        receiver.test_client_class = DrainingClient
        self.web: FlaskClient = receiver.test_client()
        self.steps: dict[str, Callable[..., Any]] = {
            names.RELEASE: release.release, names.SUBMIT: fulfill.submit, names.PUSH: tracking.push,
            names.CANCEL: cancel.cancel_order, names.ADJUST: adjust.adjust_order,
            names.TRACK: tracking.sweep, names.POLL: sweeper.poll_store, names.SCANS: labels.scan_sweep,
        }
        for name in ("LOOKUP",):  # steps added by later work, when present
            if hasattr(names, name):
                self.steps[getattr(names, name)] = tracking.check

    def _publish(self, name: str, args: list[Any], _task_id: str) -> None:
        with self._lock:
            self.published.append((name, list(args)))

    @property
    def shop(self) -> Any:
        return self.stack.shop

    @property
    def woo(self) -> Any:
        return self.stack.woo

    @property
    def amazon(self) -> Any:
        return self.stack.amazon

    @property
    def easypost(self) -> Any:
        return self.stack.easypost

    def close(self) -> None:
        self.stack.stop()
        self.app.sessions.kw["bind"].dispose()

    # --- the doors ------------------------------------------------------------------------------

    def deliver(self, store: str, topic: str, order_id: int | str) -> int:
        """The store's signed webhook, through the real receiver; returns the HTTP status."""
        if store == "demo":
            body, headers = self.shop.signed_webhook(topic, order_id)
            path = "/webhooks/shopify/demo"
        else:
            body, headers = self.woo.signed_webhook(topic, order_id)
            path = "/webhooks/woocommerce/bolt"
        return int(self.web.post(path, data=body, headers=headers).status_code)

    # --- the queue ------------------------------------------------------------------------------

    def take(self, name: str | None = None) -> tuple[str, list[Any]] | None:
        """Remove and return the first published task (of ``name``), or None."""
        with self._lock:
            for i, (task, _) in enumerate(self.published):
                if name is None or task == name:
                    return self.published.pop(i)
        return None

    def run(self, name: str, *args: Any) -> Any:
        return self.steps[name](self.app, *args, actor=f"rig:{name}")

    def drain(self, *, limit: int = 200, skip: tuple[str, ...] = ()) -> list[str]:
        """Run published tasks in order (and what they publish) until none is left; alerts are
        collected. ``skip``: task names left in the queue. Returns the names run."""
        ran: list[str] = []
        for _ in range(limit):
            with self._lock:
                due = next(((i, t) for i, t in enumerate(self.published) if t[0] not in skip), None)
                if due is None:
                    return ran
                i, (name, args) = due
                self.published.pop(i)
            if name == names.ALERT:  # (older versions published alerts; the scheduler sends them)
                continue
            ran.append(name)
            self.run(name, *args)
        raise AssertionError(f"the queue did not drain after {limit} tasks: {ran[-10:]}")

    @property
    def alerts(self) -> list[str]:
        """The alerts queued so far (the scheduler's sender delivers them), one per problem."""
        with self.app.sessions() as s:
            rows = s.scalars(select(OutboxRow).where(OutboxRow.task == names.ALERT).order_by(OutboxRow.id))
            return list(dict.fromkeys(str(r.args[0]) for r in rows))

    def redrive(self) -> int:
        return sweeper.redrive_due(self.app)

    # --- the ledger -----------------------------------------------------------------------------

    def order(self, store: str, platform_order_id: int | str) -> OrderRow:
        with self.app.sessions() as s:
            row = s.scalar(select(OrderRow).where(OrderRow.store == store,
                                                  OrderRow.platform_order_id == str(platform_order_id)))
            assert row is not None, f"no order {platform_order_id} in {store}"
            row.shipments  # noqa: B018 - loaded before the session closes
            for sh in row.shipments:
                sh.lines  # noqa: B018
            return row

    def shipments(self, store: str, platform_order_id: int | str) -> list[ShipmentRow]:
        return list(self.order(store, platform_order_id).shipments)

    def events(self, store: str, platform_order_id: int | str) -> list[tuple[str, dict[str, Any]]]:
        order = self.order(store, platform_order_id)
        with self.app.sessions() as s:
            return [(e.kind, e.detail) for e in s.scalars(
                select(EventRow).where(EventRow.order_id == order.id).order_by(EventRow.id))]


def graphql(operation: str) -> Callable[[str, str, bytes], bool]:
    """Matches the Shopify sandbox's GraphQL request of this operation."""
    needle = f'"operationName": "{operation}"'.encode()
    compact = f'"operationName":"{operation}"'.encode()
    return lambda method, path, body: method == "POST" and (needle in body or compact in body)


def amazon(operation_path: str, method: str = "") -> Callable[[str, str, bytes], bool]:
    """Matches an SP-API request whose path contains ``operation_path`` (and method, if given)."""
    return lambda m, path, body: operation_path in path.split("?", 1)[0] and (not method or m == method)
