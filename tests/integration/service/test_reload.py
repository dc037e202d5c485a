"""SIGHUP: the scheduler takes up a changed config (a new store is polled) and refuses a broken one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ledger_support import Env, make_env
from worker.app import App
from worker.pipeline import names
from worker.service.scheduler import run_forever


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    yield from make_env(db_url, tmp_path)


def test_scheduler_reload_polls_a_new_store_and_keeps_running_on_a_bad_config(env: Env) -> None:
    app, _, _, published, _ = env
    acme = app.config.stores["acme"]
    bigger = App(config=app.config.model_copy(update={"stores": {
        "acme": acme, "zeta": acme.model_copy(update={"order_prefix": "ZETA"})}}),
        sessions=app.sessions, publisher=app.publisher, limiter=app.limiter, clock=app.clock)
    answers: list[App | None] = [None, bigger]  # first a config that does not validate, then a good one
    stop, hup = threading.Event(), threading.Event()
    thread = threading.Thread(target=run_forever, args=(app,), kwargs=dict(
        tick_s=0.05, stop=stop, reload=lambda: answers.pop(0), reload_requested=hup))
    thread.start()
    try:
        hup.set()
        for _ in range(100):
            if not hup.is_set() and not answers:
                break
            if not hup.is_set():
                hup.set()
            stop.wait(0.05)
        for _ in range(100):
            if (names.POLL, ["zeta"]) in published:
                break
            stop.wait(0.05)
    finally:
        stop.set()
        thread.join(10)
    assert (names.POLL, ["acme"]) in published
    assert (names.POLL, ["zeta"]) in published
    assert answers == []
