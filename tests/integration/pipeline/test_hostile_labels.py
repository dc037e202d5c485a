"""Hostile store data and failures after a purchase (issue 13, item 1), on a real ledger: label
files are named by what we control, a label bought but not saved parks with the label kept, and
an attempt limit always ends in a park (and so an alert)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.fakes import FakeLabels, make_order
from tests.ledger_support import Env, drain, make_env
from worker.ledger import state
from worker.ledger.models import OutboxRow, ShipmentRow
from worker.pipeline import fulfill, intake, names, release
from worker.service import alerts, sweeper
from worker.service.operations import retry_order

HOOK = "https://hooks.example/services/T000/B000/XXXX"


@pytest.fixture
def labels() -> FakeLabels:
    return FakeLabels()


@pytest.fixture
def env(db_url: str, tmp_path: Path, labels: FakeLabels) -> Iterator[Env]:
    yield from make_env(db_url, tmp_path, labels=labels, alerts={"webhook_url": HOOK})


def self_ship(app: Any) -> ShipmentRow:
    with app.sessions() as s:
        row = s.scalar(select(ShipmentRow).where(ShipmentRow.route == "self_ship"))
        assert row is not None
        return row


@pytest.mark.parametrize("number", ["../../x", "/tmp/x", "2026/0042", "a\nb", "..", "a\\b", "C:\\x"])
def test_label_files_are_named_by_the_shipment_not_by_the_order_number(env: Env, labels: FakeLabels,
                                                                       number: str) -> None:
    app, store, _, published, _ = env
    store.orders["6101"] = make_order("6101", lines=(("POSTER", 1),), number=number)
    intake.ingest_and_publish(app, "acme", store.orders["6101"], source="webhook")
    drain(app, published)
    row = self_ship(app)
    assert row.state == "pushed", row.reason
    path = Path(row.label["path"])
    assert path == app.config.data_dir / "labels" / "acme" / "ACME-6101-1.pdf"
    assert path.read_bytes().startswith(b"%PDF")
    assert labels.buys == 1


def test_a_label_bought_but_not_saved_parks_with_the_label_kept(env: Env, labels: FakeLabels) -> None:
    app, store, _, published, clock = env
    folder = app.config.data_dir / "labels" / "acme"
    folder.parent.mkdir(parents=True)
    folder.write_text("not a folder")  # saving the file fails after the purchase
    store.orders["6102"] = make_order("6102", lines=(("POSTER", 1),))
    intake.ingest_and_publish(app, "acme", store.orders["6102"], source="webhook")
    drain(app, published)
    row = self_ship(app)
    assert row.state == "attention" and row.parked_from == "submitting"
    assert row.reason.startswith("label bought (USPS 9400") and "could not be saved" in row.reason
    assert row.label["shipment_id"] == "shp_1" and row.label["tracking"].startswith("9400")
    assert alerts.scan_parked(app) == 1
    for _ in range(4):  # no retry loop: nothing is re-driven, nothing bought again
        clock.advance(3600)
        assert sweeper.redrive_due(app) == 0
    assert labels.buys == 1
    with app.sessions() as s:
        (text,) = [row.args[0] for row in s.scalars(select(OutboxRow).where(OutboxRow.task == names.ALERT))]
    assert "label bought" in text and "autofulfill retry acme 6102" in text
    published.clear()
    folder.unlink()  # the operator fixes the disk, then retries: the label is looked up, not bought
    assert "shipment 1 -> submitting" in retry_order(app, "acme", "6102")
    drain(app, published)
    row = self_ship(app)
    assert row.state == "pushed" and labels.buys == 1
    assert Path(row.label["path"]).read_bytes().startswith(b"%PDF")


def test_unexpected_failures_count_toward_the_attempt_limit_and_end_parked(env: Env) -> None:
    """A step that fails with something no branch expects (or whose worker dies) is re-driven by
    the sweeper; after max_retries + 1 attempts it is parked and announced, never looped."""
    app, store, amazon, published, clock = env
    amazon.fail_submit.extend(RuntimeError("unexpected") for _ in range(20))
    store.orders["6103"] = make_order("6103")  # a mapped SKU: an MCF shipment
    intake.ingest_and_publish(app, "acme", store.orders["6103"], source="webhook")
    (_, args), = published
    published.clear()
    release.release(app, *args)
    (_, (pk,)), = published
    for _ in range(10):  # the sweeper re-drives it until it is parked
        try:
            fulfill.submit(app, pk)
        except RuntimeError:
            pass
        if _shipment(app, pk).state == "attention":
            break
        clock.advance(app.lease_s + 1)
    row = _shipment(app, pk)
    assert row.state == "attention" and row.reason.startswith("gave up after 3 attempts")
    assert amazon.submits == app.config.service.max_retries + 1
    assert alerts.scan_parked(app) == 1


def test_a_worker_that_dies_on_every_attempt_ends_parked(env: Env) -> None:
    app, store, amazon, published, clock = env
    store.orders["6104"] = make_order("6104")
    intake.ingest_and_publish(app, "acme", store.orders["6104"], source="webhook")
    (_, args), = published
    published.clear()
    release.release(app, *args)
    (_, (pk,)), = published
    for _ in range(app.config.service.max_retries + 1):  # each worker takes it and dies (kill -9)
        with app.sessions() as s:
            claim = state.claim_shipment(s, pk, ("pending", "submitting"), now=clock.now, lease_s=app.lease_s)
            assert isinstance(claim, state.Claim)
            claim.row.state = "submitting"
            s.commit()
        clock.advance(app.lease_s + 1)
    assert fulfill.submit(app, pk) == "attention"
    assert amazon.submits == 0
    row = _shipment(app, pk)
    assert row.reason.startswith("gave up after 3 attempts") and "looks it up" in row.reason


def _shipment(app: Any, pk: int) -> ShipmentRow:
    with app.sessions() as s:
        row = s.get(ShipmentRow, pk)
        assert row is not None
        return row
