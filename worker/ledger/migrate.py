"""Alembic, driven from code: `autofulfill migrate`, and the start-up schema check."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).with_name("migrations")


class SchemaOutOfDate(Exception):
    pass


def _alembic(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


# Any fixed number: the PostgreSQL advisory lock that makes schema changes one at a time.
_MIGRATION_LOCK = 0x6175746F66756C

def upgrade(engine: Engine) -> None:
    """Bring the ledger to the newest schema (idempotent). Processes started together on a new
    database take turns: the first creates the schema, the others then find it at head."""
    cfg = _alembic(engine)
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        elif engine.dialect.name == "sqlite":  # the write lock before Alembic reads its version
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(_alembic(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def ensure_schema(engine: Engine) -> None:
    """A new, empty database is created; an out-of-date one is refused (run `autofulfill migrate`)."""
    if not inspect(engine).get_table_names():
        upgrade(engine)
        return
    current, head = current_revision(engine), head_revision(engine)
    if current != head:
        raise SchemaOutOfDate(f"the ledger schema is at {current or 'no revision'}, this version needs "
                              f"{head}: run `autofulfill migrate` first")
