from __future__ import annotations

import os
from pathlib import Path

import pytest

from worker.ledger import calls

ROOT = Path(__file__).resolve().parents[1]
calls.STRICT = True  # a ledger write transaction open across an external call fails the test


def _find_specs() -> Path:
    """$AUTOFULFILL_SPECS, else ``shared/specs`` beside this checkout, else beside the checkout it
    was cloned from (a CI clone into a temporary folder has no ``../shared`` of its own)."""
    if os.environ.get("AUTOFULFILL_SPECS"):
        return Path(os.environ["AUTOFULFILL_SPECS"])
    beside = ROOT.parent / "shared" / "specs"
    if beside.is_dir():
        return beside
    import subprocess

    origin = subprocess.run(["git", "-C", str(ROOT), "config", "--get", "remote.origin.url"],
                            capture_output=True, text=True, check=False).stdout.strip()
    if origin and "://" not in origin and ":" not in origin.split("/", 1)[0]:  # a local path
        cloned_from = Path(origin).resolve().parent / "shared" / "specs"
        if cloned_from.is_dir():
            return cloned_from
    return beside


SPECS = _find_specs()


@pytest.fixture(scope="session")
def specs_dir() -> Path:
    assert SPECS.is_dir(), f"official specs not found at {SPECS} (set AUTOFULFILL_SPECS)"
    return SPECS

import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402

PG_ADMIN_URL = os.environ.get("AUTOFULFILL_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("AUTOFULFILL_TEST_REDIS", "redis://127.0.0.1:6379")
IN_CI = bool(os.environ.get("CI"))


def need(service: str, reachable: bool) -> None:
    """Integration tests skip on a laptop without the service, and fail in CI."""
    if reachable:
        return
    if IN_CI:
        pytest.fail(f"{service} is not reachable (CI must start it)")
    pytest.skip(f"{service} is not reachable")


def redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"autofulfill_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError:
        need("PostgreSQL at " + PG_ADMIN_URL, False)
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_fresh(pg_url: str) -> str:
    """The session's PostgreSQL database with an empty schema, for one test."""
    from sqlalchemy import create_engine, text

    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    return pg_url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test against SQLite and against the PostgreSQL server (schema reset per test)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return str(request.getfixturevalue("pg_fresh"))
