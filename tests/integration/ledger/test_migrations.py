"""The Alembic migrations build exactly the schema the models describe (SQLite and PostgreSQL),
and an out-of-date ledger is refused with a clear next step."""

from __future__ import annotations

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
