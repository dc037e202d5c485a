"""The Alembic migrations build exactly the schema the models describe (SQLite and PostgreSQL),
and an out-of-date ledger is refused with a clear next step."""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from worker.ledger.migrate import SchemaOutOfDate, _alembic, ensure_schema, upgrade
from worker.ledger.models import Base, make_engine


def test_migrations_match_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    upgrade(engine)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_an_old_schema_is_refused_until_migrate(db_url: str) -> None:
    engine = make_engine(db_url)
    cfg = _alembic(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    with pytest.raises(SchemaOutOfDate, match="run `autofulfill migrate`"):
        ensure_schema(engine)
    upgrade(engine)
    ensure_schema(engine)
    engine.dispose()


def _start_up(url: str, ready: Any, go: Any, errors: Any) -> None:
    ready.release()
    go.wait(30)
    try:
        engine = make_engine(url)
        ensure_schema(engine)
        engine.dispose()
    except Exception as exc:
        errors.put(f"{type(exc).__name__}: {exc}"[:300])


def test_services_started_together_on_a_new_ledger_all_come_up(db_url: str) -> None:
    """web, worker and scheduler started at once (systemd, `docker compose up`, the benchmark) each
    find the new database empty and create the schema: one creates it, the others wait and find it
    done — none fails with 'table already exists'."""
    ctx = multiprocessing.get_context("spawn")
    ready, go, errors = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_start_up, args=(db_url, ready, go, errors)) for _ in range(4)]
    for proc in procs:
        proc.start()
    for _ in procs:
        assert ready.acquire(timeout=60)
    go.set()
    for proc in procs:
        proc.join(90)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert found == []
    assert [proc.exitcode for proc in procs] == [0, 0, 0, 0]
    engine = make_engine(db_url)
    ensure_schema(engine)  # at head
    engine.dispose()
