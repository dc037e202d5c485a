"""The ports: what the pipeline needs from the outside world, as small Protocols.

A store (orders in, tracking out), a fulfiller (Amazon MCF), a label provider (EasyPost), the
rate limiter the clients share, and the publisher that hands a task to the queue. For the
inventory sync, the fulfiller's stock (``StockSource``) and the store's (``StoreStock``). Adapters in
``connectors/`` implement them; the pipeline sees nothing else of an adapter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from worker.domain import (
    Address,
    FbaStock,
    FulfillmentRequest,
    FulfillmentStatus,
    Label,
    LabelRequest,
    ListedUntil,
    Order,
    Preview,
    PreviewItem,
    PushRequest,
    PushResult,
    Quote,
    Rate,
    StockChange,
    StockRead,
    StockWriteResult,
    Unreadable,
    WebhookEvent,
)

# Hands one task to the queue: (task name, args, task id). Publishing twice is harmless (every
# task re-checks state under a lease); the outbox makes sure each is published at least once.
Publisher = Callable[[str, list[Any], str], None]


class PublishedMarks(Protocol):
    """Records outbox rows as published (by id and dedupe key) some time soon, in batches."""

    def add(self, sent: list[tuple[int, str]]) -> None: ...


class Limiter(Protocol):
    def acquire(self, key: str, *, rate: float, burst: float, cost: float = 1.0) -> None:
        """Block until ``cost`` tokens of bucket ``key`` are available, then take them.

        ``rate`` tokens per second refill a bucket of at most ``burst`` tokens. Shared by
        every process that uses the same Redis (or, embedded, by the threads of one process).
        """

    def pause(self, key: str, seconds: float) -> None:
        """Empty bucket ``key`` for ``seconds`` (after a 429 with no Retry-After)."""


class Store(Protocol):
    """A shop: where orders come from and where tracking goes back."""

    def fetch_order(self, order_id: str) -> Order | None:
        """The order as the store has it now; None when it does not exist. Read-only."""

    def iter_orders(self, updated_since: datetime) -> Iterator[Order | Unreadable | ListedUntil]:
        """Every order changed at or after ``updated_since``, whatever its status now (a
        cancellation or refund must be seen as surely as a payment), each at least once.

        Pages in an order the store keeps stable while orders change, so none is skipped; an
        order that cannot be mapped comes as ``Unreadable`` and the listing goes on; a store that
        lists in order of change yields ``ListedUntil`` after each page. Read-only.
        Raises TransientError/PermanentError when the listing itself fails (nothing is then
        known to be complete)."""

    def is_ping(self, body: bytes, headers: Mapping[str, str]) -> bool:
        """True for the platform's unsigned hello when a webhook is created (WooCommerce);
        answered 200 before any signature check. Shopify has none."""

    def warnings(self) -> list[str]:
        """Problems a person should fix, found by one read (e.g. a WooCommerce webhook that is
        no longer active). Empty when all is well; raises TransientError/PermanentError."""

    def verify_webhook(self, body: bytes, headers: Mapping[str, str]) -> bool:
        """True when the body is signed with this store's webhook secret (constant-time)."""

    def signed_test_delivery(self) -> tuple[bytes, dict[str, str]]:
        """A delivery of a topic nobody acts on, signed with this store's webhook secret as the
        platform signs: posted to the receiver, it proves the receiver and this config agree on
        the secret (``check --live --webhook-test``). No API call."""

    def parse_webhook(self, body: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        """Topic, event id and order from a verified delivery; no API call.

        Raises PermanentError when the body cannot be understood."""

    def push_tracking(self, request: PushRequest) -> PushResult:
        """Write tracking for these lines to the store, once (and, when ``request.final`` and the
        store is configured so, mark the order complete — also when the tracking was there).

        Reads the store's fulfillments first: a tracking number already there is not written
        again (``already_there``). Raises TransientError when the store is not ready yet
        (e.g. no fulfillment order exists right after checkout)."""


class Fulfiller(Protocol):
    """Someone who ships for us (Amazon MCF)."""

    def submit(self, request: FulfillmentRequest) -> None:
        """Create the fulfillment order. Idempotent by ``seller_fulfillment_order_id``: when the
        provider already has that id it returns normally. Raises AmbiguousOutcome when sent
        without an answer (timeout, 5xx): the caller looks it up before submitting again."""

    def lookup(self, seller_fulfillment_order_id: str) -> FulfillmentStatus | None:
        """Status and tracking of one order; None when the provider does not know the id."""

    def cancel(self, seller_fulfillment_order_id: str) -> None:
        """Ask the provider to cancel. PermanentError when it is too late."""

    def changed_since(self, since: datetime) -> Iterator[str]:
        """Ids of fulfillment orders whose status changed at or after ``since`` to one with something
        to record (``SHIPPED_STATUSES``, ``DEAD_STATUSES``) or to one the listing does not give.
        Orders the provider is still working on may be left out."""

    def preview(self, address: Address, items: Sequence[PreviewItem], speeds: Sequence[str],
                features: Sequence[str] = ()) -> tuple[Preview, ...]:
        """What the fulfiller could do, per speed (fees, unfulfillable lines), creating nothing.
        Read-only; TransientError to try again, PermanentError when the request is refused."""


class LabelProvider(Protocol):
    """Someone who sells carrier labels (EasyPost). Buying is made exactly-once by the caller:
    it records ``Quote.shipment_id`` before ``buy`` and, after an unknown outcome, calls
    ``lookup`` before buying again; the provider also refuses a second purchase of one shipment."""

    def quote(self, request: LabelRequest) -> Quote:
        """Create the provider's shipment (with our reference) and return its rates. Buys nothing.
        Raises PermanentError for address/parcel problems a person must fix (the message says what)."""

    def buy(self, shipment_id: str, rate: Rate) -> Label:
        """Buy the label for this rate. When the shipment is already bought, returns that label.
        Raises AmbiguousOutcome when sent without an answer."""

    def lookup(self, shipment_id: str) -> Label | None:
        """The shipment's label when it was bought, else None. Read-only."""

    def label_file(self, label: Label) -> bytes:
        """The label document (PDF unless configured otherwise)."""

    def refund(self, shipment_id: str) -> str:
        """Ask for a refund (void) of an unused label; returns the provider's refund status.
        PermanentError when the label cannot be refunded (used, too old)."""

    def check(self) -> str:
        """One cheap authenticated read, for `autofulfill check --live`."""


@runtime_checkable
class StockSource(Protocol):
    """Where the stock that can ship comes from (Amazon FBA); the fulfiller's adapter has it."""

    def fba_stock(self, seller_skus: Sequence[str]) -> dict[str, FbaStock]:
        """Amazon's units of these seller SKUs, by seller SKU; a SKU Amazon does not know is absent.

        Read-only, any number of SKUs (asked in chunks, every page). Raises TransientError (429
        after bounded retries, 5xx, timeout) or PermanentError: then nothing was half-read."""


@runtime_checkable
class StoreStock(Protocol):
    """A store's stock of the SKUs Amazon ships (the store's adapter has it)."""

    def read_stock(self, skus: Sequence[str]) -> StockRead:
        """What the store shows now for these SKUs. A SKU the store does not know, has twice, or
        cannot stock where configured is a problem of that SKU, not an error. Read-only; raises
        TransientError, or PermanentError when nothing can be read (e.g. an unknown location)."""

    def write_stock(self, changes: Sequence[StockChange], reference: str) -> StockWriteResult:
        """Set each SKU's number unless the store no longer shows ``expected`` (then it is
        ``stale`` and nothing is written for it). ``reference`` names the sync pass in the store's
        history where the platform keeps one. A SKU refused for its own reason is a problem of
        that SKU. Raises TransientError before anything was sent, AmbiguousOutcome when a write
        went out unanswered (calling again is safe: every write compares first)."""
