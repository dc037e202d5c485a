"""What every step is handed: the config, the ledger's sessions, the queue's publisher, the shared
rate limiter, the clock, and the adapters behind the ports.

Adapters are built on first use by ``connect`` (the composition root's registry,
``worker.service.bootstrap``); tests hand in fakes by filling ``stores``/``fulfillers``/``labelers``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, cast

from sqlalchemy.orm import Session, sessionmaker

from worker.config import Config
from worker.ports import (
    Fulfiller,
    LabelProvider,
    Limiter,
    PublishedMarks,
    Publisher,
    StockSource,
    Store,
    StoreStock,
)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Connect(Protocol):
    """Builds the adapter a config block names (store platform, Amazon account, label provider)."""

    def store(self, name: str, config: Config, limiter: Limiter) -> Store: ...

    def fulfiller(self, account: str, config: Config, limiter: Limiter) -> Fulfiller: ...

    def labeler(self, name: str, config: Config) -> LabelProvider: ...


P = TypeVar("P")


def _nothing() -> None:
    return None


class Calling:
    """An adapter whose every method first runs ``before`` (``App.before_call``): its methods are
    the external calls. A method that returns an iterator (a paged listing) may call out on every
    step, so ``before`` runs before each one too."""

    __slots__ = ("_port", "_before")

    def __init__(self, port: Any, before: Callable[[], None]) -> None:
        self._port = port
        self._before = before

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._port, name)
        if name.startswith("_") or not callable(attr):
            return attr
        before = self._before

        def call(*args: Any, **kwargs: Any) -> Any:
            before()
            result = attr(*args, **kwargs)
            return _stepped(result, before) if isinstance(result, Iterator) else result

        return call

    def __repr__(self) -> str:
        return f"Calling({self._port!r})"


def _stepped(items: Iterator[Any], before: Callable[[], None]) -> Iterator[Any]:
    try:
        while True:
            before()
            try:
                item = next(items)
            except StopIteration:
                return
            yield item
    finally:
        close = getattr(items, "close", None)
        if close is not None:
            close()


@dataclass
class App:
    config: Config
    sessions: sessionmaker[Session]
    publisher: Publisher
    limiter: Limiter
    clock: Callable[[], datetime] = utcnow
    connect: Connect | None = None
    # A worker's: what its steps publish is marked published in batches (None: each at once).
    marks: PublishedMarks | None = None
    stores: dict[str, Store] = field(default_factory=dict)
    fulfillers: dict[str, Fulfiller] = field(default_factory=dict)
    labelers: dict[str, LabelProvider] = field(default_factory=dict)
    # Runs before every call of an adapter's method: the composition root ends the calling
    # thread's ledger reads there (no transaction stays open across an external call).
    before_call: Callable[[], None] = _nothing

    def store(self, name: str) -> Store:
        if name not in self.stores:
            self.stores[name] = self._connect(f"store {name}").store(name, self.config, self.limiter)
        return self._calling(self.stores[name])

    def fulfiller(self, account: str) -> Fulfiller:
        if account not in self.fulfillers:
            self.fulfillers[account] = self._connect(f"Amazon account {account}").fulfiller(
                account, self.config, self.limiter)
        return self._calling(self.fulfillers[account])

    def labeler(self, name: str) -> LabelProvider:
        if name not in self.labelers:
            self.labelers[name] = self._connect(f"labels {name}").labeler(name, self.config)
        return self._calling(self.labelers[name])

    def _calling(self, port: P) -> P:
        return port if self.before_call is _nothing else cast(P, Calling(port, self.before_call))

    def stock_source(self, account: str) -> StockSource:
        """The Amazon account's stock (its fulfiller's adapter reads it)."""
        fulfiller = self.fulfiller(account)
        if not isinstance(fulfiller, StockSource):
            raise LookupError(f"the fulfiller of Amazon account {account} cannot read stock")
        return fulfiller

    def store_stock(self, name: str) -> StoreStock:
        """The store's stock of the SKUs Amazon ships (its store adapter reads and writes it)."""
        store = self.store(name)
        if not isinstance(store, StoreStock):
            raise LookupError(f"store {name} cannot read or write stock")
        return store

    def _connect(self, what: str) -> Connect:
        if self.connect is None:
            raise LookupError(f"no adapter for {what}: this App was built without a composition root")
        return self.connect

    @property
    def lease_s(self) -> float:
        """How long a step's hold lasts unless its worker renews it (``worker.ledger.leases``)."""
        return self.config.service.lease_s

    @property
    def backstop_s(self) -> float:
        """When work that was enqueued but never started is enqueued again (a lost message)."""
        return self.config.service.redrive_after_s
