"""The order a worker takes queued tasks in, on the real Redis broker: work on orders already under
way (a push, a cancel, an MCF create) goes ahead of a backlog of new orders waiting for release."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worker.config import parse_config
from worker.pipeline import names
from worker.service import tasks


def _configure(redis_url: str, queue: str, tmp_path: Path) -> Any:
    from celery import Celery

    config = parse_config({"service": {"broker_url": redis_url, "queue": queue,
                                       "database_url": f"sqlite:///{tmp_path / 'l.db'}"}}, tmp_path, env={})
    app = Celery("order-test")
    app.conf.update(tasks.celery_settings(config))
    return app


def _take(app: Any, queue: str, n: int, what: Any) -> list[Any]:
    """The first ``n`` messages a worker's consumer takes from ``queue``, as ``what(message)``."""
    taken: list[Any] = []
    with app.connection_for_read() as conn:
        # The worker's own consumer settings: the transport options make the lists be read in order.
        consumer_queue = app.amqp.queues[queue]
        with conn.Consumer([consumer_queue], accept=["json"],
                           callbacks=[lambda body, msg: (taken.append(what(msg)), msg.ack())]):
            while len(taken) < n:
                conn.drain_events(timeout=5)
    return taken


def test_a_backlog_of_releases_does_not_hold_up_what_is_under_way(redis_db: str, monkeypatch: Any,
                                                                    tmp_path: Path) -> None:
    queue = "order-test"
    app = _configure(redis_db, queue, tmp_path)
    monkeypatch.setattr(tasks, "celery", app)
    for i in range(20):  # a burst: twenty new orders waiting to be released
        tasks.celery_publisher(names.RELEASE, [i], f"release:{i}")
    tasks.celery_publisher(names.TRACK, ["us"], "track:us")
    tasks.celery_publisher(names.SUBMIT, [7], "submit:7")
    tasks.celery_publisher(names.PUSH, [3], "push:3")
    tasks.celery_publisher(names.CANCEL, [5], "cancel:5")

    taken = _take(app, queue, 24, lambda msg: str(msg.headers["task"]))
    assert taken[:2] == [names.PUSH, names.CANCEL] or taken[:2] == [names.CANCEL, names.PUSH]
    assert taken[2:4] == [names.SUBMIT, names.TRACK]
    assert taken[4:] == [names.RELEASE] * 20
    assert sum(int(app.connection_for_read().default_channel.client.llen(key))
               for key in tasks.queue_keys(queue)) == 0


def test_a_new_orders_release_goes_before_the_back_stops_resends_of_a_burst(
        redis_db: str, monkeypatch: Any, tmp_path: Path) -> None:
    """After a 10,000-order burst the scheduler's back-stop had sent 9,000 releases again (each still
    queued when its 120 s were up; each is a no-op when it comes); a new order's release queued behind
    them and waited 19-26 s (bench/throughput.py, PostgreSQL). The receiver's release of a new order
    goes one step before the scheduler's releases; periodic sweeps still go before both."""
    queue = "order-test-again"
    app = _configure(redis_db, queue, tmp_path)
    monkeypatch.setattr(tasks, "celery", app)
    for i in range(20):  # the back-stop's re-sends of a burst's queued releases
        tasks.celery_publisher(names.RELEASE, [i], f"held:{i}:0:20261207233909761165")
    tasks.celery_publisher(names.RELEASE, [100], "release:100")  # a new order, just in
    tasks.celery_publisher(names.TRACK, ["us"], "track:us")
    taken = _take(app, queue, 22, lambda msg: msg.headers["id"].split("@")[0])
    assert taken[:2] == ["track:us", "release:100"], taken[:3]
    assert len(taken) == 22


def test_a_task_that_sends_tasks_keeps_nothing_of_them(redis_db: str, monkeypatch: Any,
                                                       tmp_path: Path) -> None:
    """Celery keeps every task a running task sends in its ``request.children`` (for result
    chains we never use). A tracking sweep sends one push per shipped order: after a 10,000-order
    burst it held thousands of AsyncResults to its end — the worker's RSS rose ~15 MB while the
    pushes went out (tracemalloc: AsyncResult, promise, WeakMethod growing by ~900 a snapshot)."""
    from celery._state import _task_stack

    queue = "order-test-children"
    app = _configure(redis_db, queue, tmp_path)
    monkeypatch.setattr(tasks, "celery", app)
    running = tasks.track
    running.push_request(id="sweep-1", called_directly=False)
    _task_stack.push(running)
    try:
        for i in range(5):
            tasks.celery_publisher(names.PUSH, [i], f"push:{i}:0")
        assert list(running.request.children or []) == []
    finally:
        _task_stack.pop()
        running.pop_request()
    assert len(_take(app, queue, 5, lambda msg: msg.headers["task"])) == 5  # all sent
