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

    taken: list[str] = []
    with app.connection_for_read() as conn:
        # The worker's own consumer settings: the transport options make the lists be read in order.
        consumer_queue = app.amqp.queues[queue]
        with conn.Consumer([consumer_queue], accept=["json"],
                           callbacks=[lambda body, msg: (taken.append(msg.headers["task"]), msg.ack())]):
            while len(taken) < 24:
                conn.drain_events(timeout=5)
    assert taken[:2] == [names.PUSH, names.CANCEL] or taken[:2] == [names.CANCEL, names.PUSH]
    assert taken[2:4] == [names.SUBMIT, names.TRACK]
    assert taken[4:] == [names.RELEASE] * 20
    assert sum(int(app.connection_for_read().default_channel.client.llen(key))
               for key in tasks.queue_keys(queue)) == 0
