"""The ledger: orders, lines, shipments, their event timeline, webhook receipts, the outbox and
poll cursors (SQLAlchemy 2; SQLite by default, PostgreSQL by URL).

Uniqueness is idempotency: one order per (store, platform order id), one receipt per webhook
event, one outbox row per dedupe key, one shipment per (order, n) and per external id.
"""

from __future__ import annotations

import functools
import time
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Dialect, Engine, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker

from worker.app import utcnow


class UTCDateTime(TypeDecorator[datetime]):
    """Stored as naive UTC (SQLite has no zones), always handed out timezone-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the ledger")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


class OrderRow(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("store", "platform_order_id", name="uq_orders_store_platform_id"),
        Index("ix_orders_status_hold", "status", "hold_until"),
    )
    # status: waiting (not eligible yet) | held (until hold_until; also the retry time of a failed
    # release) | routed | adjusting (a refund; until hold_until) | cancelling (until hold_until) |
    # done | cancelled | attention
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store: Mapped[str] = mapped_column(String(64))
    platform_order_id: Mapped[str] = mapped_column(String(64))
    number: Mapped[str] = mapped_column(String(255), index=True)  # store mappings refuse longer ones
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text, default="")
    hold_until: Mapped[datetime | None]
    payload: Mapped[dict[str, Any]]  # the normalized order, full address included (never logged)
    lease_token: Mapped[str] = mapped_column(String(64), default="")
    lease_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    # Store-side changes seen after routing (a refund, a lowered quantity): a running adjust
    # checks this did not move before it writes its result.
    changes: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    lines: Mapped[list[LineRow]] = relationship(back_populates="order", cascade="all, delete-orphan",
                                                order_by="LineRow.id")
    shipments: Mapped[list[ShipmentRow]] = relationship(back_populates="order", order_by="ShipmentRow.n")

    @property
    def next_n(self) -> int:
        """The number the order's next shipment gets (its external id ends with it)."""
        return max((s.n for s in self.shipments), default=0) + 1


class LineRow(Base):
    __tablename__ = "order_lines"
    __table_args__ = (UniqueConstraint("order_id", "line_id", name="uq_lines_order_line"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    line_id: Mapped[str] = mapped_column(String(64))
    sku: Mapped[str] = mapped_column(Text)  # Shopify allows 255 characters, WooCommerce more
    quantity: Mapped[int]
    title: Mapped[str] = mapped_column(Text, default="")
    order: Mapped[OrderRow] = relationship(back_populates="lines")


class ShipmentRow(Base):
    __tablename__ = "shipments"
    __table_args__ = (UniqueConstraint("order_id", "n", name="uq_shipments_order_n"),
                      Index("ix_shipments_state", "state"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    n: Mapped[int]
    route: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64), unique=True)  # MCF id / label reference
    account: Mapped[str] = mapped_column(String(64), default="")  # amazon account or labels name
    speed: Mapped[str] = mapped_column(String(32), default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    parked_from: Mapped[str] = mapped_column(String(16), default="")
    lease_token: Mapped[str] = mapped_column(String(64), default="")
    lease_until: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None] = mapped_column(index=True)  # when the sweeper looks again
    # When the create (MCF) or the purchase (label) last went out: an answer that did not come may
    # still take effect for a while (Amazon's reads lag its writes; a purchase in progress), so
    # "not found" soon after it is not "never sent". Also how long a shipment waits for tracking.
    sent_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    request_id: Mapped[str] = mapped_column(String(255), default="")
    tracking: Mapped[list[Any]] = mapped_column(default=list)  # [{carrier, number, url}]
    store_fulfillment_id: Mapped[str] = mapped_column(String(128), default="")
    # self-ship: {"shipment_id", "rate": {...}, "path", "cost", "currency", "refund"}; the provider's
    # shipment id is written here before the purchase, so an unknown outcome is looked up there.
    label: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    order: Mapped[OrderRow] = relationship(back_populates="shipments")
    lines: Mapped[list[ShipmentLineRow]] = relationship(cascade="all, delete-orphan",
                                                        order_by="ShipmentLineRow.id")


class ShipmentLineRow(Base):
    __tablename__ = "shipment_lines"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipments.id"), index=True)
    line_id: Mapped[str] = mapped_column(String(64))
    sku: Mapped[str] = mapped_column(Text)
    seller_sku: Mapped[str] = mapped_column(Text, default="")
    quantity: Mapped[int]


class EventRow(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    shipment_id: Mapped[int | None] = mapped_column(ForeignKey("shipments.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(128), default="")
    kind: Mapped[str] = mapped_column(String(48))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class WebhookReceiptRow(Base):
    __tablename__ = "webhook_receipts"
    __table_args__ = (UniqueConstraint("store", "dedupe_key", name="uq_receipts_store_key"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store: Mapped[str] = mapped_column(String(64))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    topic: Mapped[str] = mapped_column(String(64))
    platform_order_id: Mapped[str] = mapped_column(String(64), default="")
    outcome: Mapped[str] = mapped_column(String(64), default="")
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxRow(Base):
    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    task: Mapped[str] = mapped_column(String(128))
    args: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(index=True)


class CursorRow(Base):
    """Where a periodic pass (store poll, tracking sweep) got to; its lease keeps passes single."""

    __tablename__ = "cursors"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[datetime | None]  # None: never completed a pass
    lease_token: Mapped[str] = mapped_column(String(64), default="")
    lease_until: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class InventoryPassRow(Base):
    """One FBA stock -> store stock pass of one store: what it read, changed, skipped, and why."""

    __tablename__ = "inventory_passes"
    __table_args__ = (Index("ix_inventory_passes_store_started", "store", "started_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # running | ok | failed
    dry_run: Mapped[bool] = mapped_column(default=False)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    actor: Mapped[str] = mapped_column(String(128), default="")
    read: Mapped[int] = mapped_column(default=0)  # store SKUs looked at
    changed: Mapped[int] = mapped_column(default=0)  # written (or, in a dry run, would be)
    skipped: Mapped[int] = mapped_column(default=0)  # already right
    errors: Mapped[int] = mapped_column(default=0)  # SKUs with a problem, or the whole pass
    # {"error": why the pass failed, "problems": ["SKU: ..."], "skus": [...] when limited, ...}
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class InventorySkuRow(Base):
    """The sync's last word on one store SKU: Amazon's units, what was computed and written."""

    __tablename__ = "inventory_skus"
    __table_args__ = (UniqueConstraint("store", "sku", name="uq_inventory_skus_store_sku"),
                      Index("ix_inventory_skus_account_seller", "account", "seller_sku"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store: Mapped[str] = mapped_column(String(64))
    sku: Mapped[str] = mapped_column(String(128))
    account: Mapped[str] = mapped_column(String(64))
    seller_sku: Mapped[str] = mapped_column(String(128))
    fulfillable: Mapped[int | None]
    reserved: Mapped[int] = mapped_column(default=0)
    inbound: Mapped[int] = mapped_column(default=0)
    not_sent: Mapped[int] = mapped_column(default=0)  # units of paid orders not yet at Amazon
    buffer: Mapped[int] = mapped_column(default=0)
    store_qty: Mapped[int | None]  # what the store showed when last read
    target: Mapped[int | None]  # what the formula gave
    written_qty: Mapped[int | None]
    written_at: Mapped[datetime | None]
    checked_at: Mapped[datetime | None]
    problem: Mapped[str] = mapped_column(Text, default="")
    zero_since: Mapped[datetime | None]  # the formula has given 0 since then
    # Set by an MCF cancel or an unfulfillable order (any store on the account): sync this SKU early.
    refresh_after: Mapped[datetime | None] = mapped_column(index=True)


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "SAVEPOINT", "CREATE", "DROP", "ALTER")


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """``pool_size`` connections kept, as many again when busy: a worker's threads and their lease
    heartbeats each hold one while they write."""
    if url.startswith("sqlite"):
        in_memory = make_url(url).database in (None, "", ":memory:")  # one connection, SQLAlchemy's pool
        engine = create_engine(url, connect_args={"timeout": 30}, **(
            {} if in_memory else {"pool_size": pool_size, "max_overflow": pool_size}))

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # pysqlite's own transaction handling begins a transaction only before INSERT/UPDATE/
            # DELETE, not before SAVEPOINT: a savepoint then opens and commits a transaction of its
            # own, and a rollback afterwards cannot undo it. We take it over (SQLAlchemy's
            # documented pysqlite fix) and begin below.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "before_cursor_execute")
        def _begin_before_writing(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
            # BEGIN IMMEDIATE right before the transaction's first write (a savepoint included):
            # it waits for the write lock (busy_timeout) instead of failing later, and reads before
            # it see the newest data, as with pysqlite's own handling. A session's commit or
            # rollback then ends exactly this transaction.
            if not cursor.connection.in_transaction and statement.lstrip()[:9].upper().startswith(_WRITES):
                cursor.execute("BEGIN IMMEDIATE")

        return engine
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size)
    _ping_when_idle(engine)
    return engine


PING_AFTER_IDLE_S = 2.0


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection before use when it sat idle ``PING_AFTER_IDLE_S`` or more (a
    database restart, a firewall that forgot it): a dead one is replaced, as with SQLAlchemy's
    ``pool_pre_ping``. A connection in steady use is not pinged — pre_ping's round trip on every
    checkout was one more statement for every transaction. When the database goes away while a
    connection is busy, its statement fails, SQLAlchemy drops the whole pool, and the step is
    re-driven from the ledger (which pre_ping could not prevent either)."""

    @event.listens_for(engine, "connect")
    @event.listens_for(engine, "checkin")
    def _used(_dbapi_conn: Any, record: Any) -> None:
        if record is not None:
            record.info["used_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get("used_at", float("-inf")) < PING_AFTER_IDLE_S:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:  # the pool discards this connection and takes (or makes) another
            raise DisconnectionError(f"connection failed its check: {type(exc).__name__}") from exc
        record.info["used_at"] = time.monotonic()


def make_sessions(engine: Engine) -> sessionmaker[Any]:
    return sessionmaker(engine, expire_on_commit=False)


def insert_new(session: Any, model: type[Base], **values: Any) -> int | None:
    """``INSERT … ON CONFLICT DO NOTHING RETURNING id`` in the caller's transaction: the new row's
    id, or None when a row with the same unique key exists (one statement: no savepoint, no
    exception to catch). SQLite and PostgreSQL both speak it. The statement is built once per table
    and the values go in as parameters (building it with ``.values()`` on every call was a sixth of
    the webhook receiver's CPU in a burst, py-spy)."""
    statement = _insert_new_statement(session.get_bind().dialect.name, model)
    new_id = session.scalar(statement, values)
    return None if new_id is None else int(new_id)


@functools.cache
def _insert_new_statement(dialect: str, model: type[Base]) -> Any:
    from sqlalchemy.dialects.postgresql import insert as pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    insert = sqlite_insert if dialect == "sqlite" else pg_insert
    table: Any = model.__table__
    return insert(table).on_conflict_do_nothing().returning(table.c.id)
