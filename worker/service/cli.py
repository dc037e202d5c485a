"""The `autofulfill` command (DESIGN.md §5). Exit codes: 0 ok, 1 runtime failure, 2 bad usage/config."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from worker.config import Config, ConfigError, config_path, load_config
from worker.logs import printable
from worker.service.example_config import EXAMPLE

F = TypeVar("F", bound=Callable[..., Any])


def config_option(fn: F) -> F:
    return click.option("--config", "config_file", metavar="F", default=None,
                        help="config file (else $AUTOFULFILL_CONFIG, else ./autofulfill.toml)")(fn)


def _load(config_file: str | None) -> tuple[Path, Config]:
    path = config_path(config_file)
    try:
        config = load_config(path)
    except ConfigError as exc:
        click.echo(f"config {path}: {len(exc.problems)} problem(s):", err=True)
        for p in exc.problems:
            click.echo(f"  {printable(p)}", err=True)
        sys.exit(2)
    except Exception as exc:  # a case the checks above do not know yet: still one line, no traceback
        click.echo(f"config {path}: cannot be used ({type(exc).__name__}: {printable(str(exc)[:300])})",
                   err=True)
        sys.exit(2)
    os.environ["AUTOFULFILL_CONFIG"] = str(path.resolve())
    from worker import logs

    logs.setup(config.service.log_format, config.service.log_level)
    return path, config


def _app(config: Config, *, schema: bool = True, pool_size: int = 5) -> Any:
    from worker.ledger.migrate import SchemaOutOfDate, ensure_schema
    from worker.service import tasks
    from worker.service.bootstrap import bootstrap

    tasks.configure(config)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    app = bootstrap(config, tasks.celery_publisher, pool_size=pool_size)
    if schema:
        try:
            ensure_schema(app.sessions.kw["bind"])
        except SchemaOutOfDate as exc:
            click.echo(str(exc), err=True)
            sys.exit(1)
    tasks.install(app)
    return app


@click.group()
def main() -> None:
    """autofulfill: ship every paid Shopify order through Amazon MCF, exactly once."""


@main.command()
@config_option
@click.option("--force", is_flag=True, help="overwrite an existing file")
def init(config_file: str | None, force: bool) -> None:
    """Write a commented example config."""
    path = config_path(config_file)
    if path.exists() and not force:
        click.echo(f"{path} exists; use --force to overwrite", err=True)
        sys.exit(2)
    path.write_text(EXAMPLE)
    click.echo(f"wrote {path}; set the env: variables it names, then `autofulfill check`")


@main.command()
@config_option
@click.option("--live", is_flag=True, help="also call each API once (and read each store's webhooks)")
@click.option("--webhook-test", is_flag=True,
              help="with --live: send each store a signed test delivery through the receiver")
@click.option("--receiver", default="", metavar="URL",
              help="the receiver's address for --webhook-test (default: http://[service].listen)")
def check(config_file: str | None, live: bool, webhook_test: bool, receiver: str) -> None:
    """Validate the config (every problem at once)."""
    path, config = _load(config_file)
    click.echo(f"{path}: ok ({len(config.stores)} store(s), {len(config.amazon)} Amazon account(s))")
    if not live:
        return
    app = _app(config, schema=False)
    failed = False
    targets: list[tuple[str, Any]] = [(f"store {n}", app.store(n)) for n in config.stores]
    targets += [(f"amazon {n}", app.fulfiller(n)) for n in config.amazon]
    targets += [(f"labels {n}", app.labeler(n)) for n in config.labels]
    for label, client in targets:
        try:
            click.echo(f"{label}: {client.check()}")
            for warning in client.warnings() if hasattr(client, "warnings") else []:
                click.echo(f"{label}: WARNING {warning}", err=True)
        except Exception as exc:
            failed = True
            click.echo(f"{label}: FAILED {exc}", err=True)
    if webhook_test:
        failed |= not _webhook_test(app, receiver or f"http://{config.service.listen}")
    sys.exit(1 if failed else 0)


def _webhook_test(app: Any, base: str) -> bool:
    """Post each store's signed test delivery to the receiver: 200 proves the receiver answers at
    ``base`` and holds the same webhook secret as this config (the platform signs with the secret
    set on its side; for WooCommerce that is the one place a wrong secret shows)."""
    import requests

    ok = True
    for name, cfg in app.config.stores.items():
        body, headers = app.store(name).signed_test_delivery()
        url = f"{base.rstrip('/')}/webhooks/{cfg.platform}/{name}"
        try:
            code = requests.post(url, data=body, headers=headers, timeout=(5, 15)).status_code
        except requests.RequestException as exc:
            click.echo(f"store {name}: webhook test FAILED: the receiver at {url} does not answer "
                       f"({type(exc).__name__}); is `autofulfill web` running there?", err=True)
            ok = False
            continue
        if code == 200:
            click.echo(f"store {name}: webhook test ok (the receiver at {url} accepts this store's secret)")
        else:
            why = {401: "it refuses the signature: the receiver runs with another webhook_secret",
                   404: "it does not know this store: is it running with this config?"}.get(code, "")
            click.echo(f"store {name}: webhook test FAILED: HTTP {code} from {url}"
                       + (f"; {why}" if why else ""), err=True)
            ok = False
    return ok


@main.command()
@config_option
def migrate(config_file: str | None) -> None:
    """Upgrade the ledger schema to this version (Alembic)."""
    from worker.ledger.migrate import current_revision, upgrade
    from worker.ledger.models import make_engine

    _, config = _load(config_file)
    engine = make_engine(config.database_url)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(engine)
    click.echo(f"ledger schema at {current_revision(engine)}")


@main.command()
@config_option
def worker(config_file: str | None) -> None:
    """Run a Celery worker (start as many as you like, on as many machines)."""
    from worker.service.tasks import worker_pool_size

    _, config = _load(config_file)
    app = _app(config, pool_size=worker_pool_size(config))
    from worker.ledger.outbox import Marks
    from worker.logs import log
    from worker.service.tasks import celery

    marks = app.marks = Marks(app.sessions, app.clock)  # published rows marked in batches

    if not config.embedded_broker:
        import redis

        from worker.service.selfcheck import broker_warnings

        client = redis.Redis.from_url(config.broker_url, socket_timeout=5, socket_connect_timeout=5)
        for warning in broker_warnings(config, client):
            log("worker.self_check", level=30, warning=warning)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        _root_said_once()
    pool = "threads" if config.embedded_broker else config.service.worker_pool
    celery.worker_main(["--quiet", "worker", "--loglevel", "WARNING", "--pool", pool,
                        "--concurrency", str(config.service.worker_concurrency), "--without-gossip",
                        "--without-mingle", "--hostname", f"autofulfill-{os.getpid()}@%h"])
    marks.flush()  # a warm shutdown: what is left is marked now, not published again


def _root_said_once() -> None:
    """Celery warns at length, in every worker, when it runs as root. Say once what it means here."""
    import warnings

    from celery.exceptions import SecurityWarning

    from worker.logs import log

    warnings.filterwarnings("ignore", category=SecurityWarning)
    log("worker.running_as_root", level=30,
        note="this worker runs as root. It accepts only JSON task messages, so a message cannot run "
             "code, but a bug or a hostile library would have the whole machine: in production run it "
             "as its own user (deploy/systemd does)")


@main.command()
@config_option
def scheduler(config_file: str | None) -> None:
    """Run the scheduler: outbox relay, releases, polls, tracking sweeps (run exactly one)."""
    from worker.service.alerts import Sender
    from worker.service.scheduler import run_forever

    path, config = _load(config_file)
    current = [_app(config)]

    def reload() -> Any:
        try:
            fresh = load_config(path)
        except ConfigError as exc:
            from worker.logs import log

            log("scheduler.reload_refused", level=40, problems=exc.problems)
            return None
        current[0] = _app(fresh)
        return current[0]

    sender = Sender(lambda: current[0])  # alerts go out from here, never from a worker slot
    sender.start()
    try:
        run_forever(current[0], reload=reload)
    finally:
        sender.stop.set()


@main.command()
@config_option
@click.option("--threads", default=32, show_default=True, help="request threads per process")
@click.option("--workers", default=min(4, os.cpu_count() or 1), show_default="the cores, at most 4",
              help="processes (more than one: metrics in Prometheus multiprocess mode)")
def web(config_file: str | None, threads: int, workers: int) -> None:
    """Run the webhook receiver (gunicorn, threads; every request has request_timeout_s to arrive
    and be answered) on [service].listen."""
    from worker.service import serve

    path, config = _load(config_file)
    if workers > 1:
        serve.multiprocess_dir(config.data_dir)  # before prometheus_client is imported
    _app(config)

    def build() -> Any:
        from worker.service.web import create_app

        # Each gunicorn worker builds the app from the config file as it is now, so
        # `kill -HUP` on the master (graceful worker restart) applies config changes.
        try:
            fresh = load_config(path)
        except ConfigError as exc:  # a bad edit must not take the receiver down
            from worker.logs import log

            log("web.reload_refused", level=40, problems=exc.problems)
            fresh = config
        return create_app(_app(fresh), broker_check=_broker_check(fresh))

    serve.serve(config.service.listen, build, workers=max(1, workers), threads=max(1, threads),
                request_timeout_s=config.service.request_timeout_s)


def _broker_check(config: Config) -> Callable[[], None]:
    def check() -> None:
        from kombu.connection import Connection

        with Connection(config.broker_url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)

    return check


@main.command()
@config_option
def run(config_file: str | None) -> None:
    """Everything in one foreground process group: web + worker + scheduler. Ctrl-C stops."""
    path, config = _load(config_file)
    _app(config)  # create / check the schema once, before the parts start
    parts = [subprocess.Popen([sys.executable, "-m", "worker", part, "--config", str(path)])
             for part in ("worker", "scheduler", "web")]

    def _stop(_signum: int, _frame: Any) -> None:
        for p in parts:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)

    stopping = [False]

    def _on_signal(signum: int, frame: Any) -> None:
        stopping[0] = True
        _stop(signum, frame)

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    # Whichever part ends first (one killed, one that failed to start), the others are stopped and
    # `run` exits non-zero, so whatever supervises it (systemd, docker) starts the whole again:
    # no worker left running without a scheduler to re-drive its work, nor a receiver alone.
    code = 0
    while parts:
        ended = next((p for p in parts if p.poll() is not None), None)
        if ended is None:
            time.sleep(0.2)
            continue
        parts.remove(ended)
        if not stopping[0] or ended.returncode not in (0, -signal.SIGTERM, -signal.SIGINT):
            code = 1
        stopping[0] = True
        _stop(0, None)
    sys.exit(code)


@main.command()
@config_option
@click.option("--live", is_flag=True, help="also ask each store about its webhooks")
def status(config_file: str | None, live: bool) -> None:
    """Health per store and account; exit 1 when a person is needed."""
    from worker.service.status import health
    from worker.service.tasks import celery, queue_keys

    _, config = _load(config_file)
    app = _app(config)

    def queue_depth() -> int | None:
        if config.embedded_broker:
            return None
        import redis

        client = redis.Redis.from_url(config.broker_url, socket_timeout=3, socket_connect_timeout=3)
        return sum(int(client.llen(key)) for key in queue_keys(config.service.queue))

    def workers() -> int | None:
        if config.embedded_broker:  # the SQLite transport has no broadcast: nobody can answer a ping
            return None
        try:
            return len(celery.control.ping(timeout=1.5) or [])
        except Exception:
            return 0

    def webhook_warnings(store: str) -> list[str] | None:
        try:
            return list(app.store(store).warnings())
        except Exception:  # the store's API is away: status says "unknown" (the poller alerts)
            return None

    result = health(app, queue_depth=queue_depth, workers=workers,
                    webhook_warnings=webhook_warnings if live else None)
    click.echo(result.text())
    sys.exit(1 if result.needs_person else 0)


@main.command()
@config_option
@click.option("--store", default=None, help="only this store")
def poll(config_file: str | None, store: str | None) -> None:
    """One reconciliation pass now."""
    from worker.service.sweeper import poll_store

    _, config = _load(config_file)
    app = _app(config)
    for name in [store] if store else list(config.stores):
        config.store(name)
        click.echo(f"{name}: {poll_store(app, name, actor='cli:poll')} order(s) seen")


@main.command()
@config_option
@click.option("--store", default=None, help="only this store (default: every store with inventory enabled)")
@click.option("--sku", "skus", multiple=True, metavar="X", help="only this store SKU (repeatable)")
@click.option("--apply", "apply_", is_flag=True, help="run one pass now (dry_run: records, writes nothing)")
def inventory(config_file: str | None, store: str | None, skus: tuple[str, ...], apply_: bool) -> None:
    """FBA stock -> store stock, per SKU: Amazon fulfillable/reserved/inbound, units not yet sent,
    buffer, the store's number now and what a pass writes. Reads only, unless --apply."""
    from worker.service.stock_view import inventory_report

    _, config = _load(config_file)
    chosen = [store] if store else [n for n, c in config.stores.items() if c.inventory.enabled]
    problems = []
    for name in chosen:
        cfg = config.stores.get(name)
        if cfg is None:
            problems.append(f"stores.{name}: no such store")
        elif cfg.amazon is None or not cfg.routing.sku_map:
            problems.append(f"stores.{name}: the inventory sync needs an amazon account and a sku_map")
        elif apply_ and not cfg.inventory.enabled:
            problems.append(f"stores.{name}.inventory: enabled = false; set it to true (dry_run = true to "
                            "try) before --apply")
        else:
            problems += [f"stores.{name}.routing.sku_map: no SKU {s!r}" for s in skus
                         if s not in cfg.routing.sku_map]
    if problems or not chosen:
        for p in problems or ["no store has [stores.<name>.inventory] enabled = true; name one with --store"]:
            click.echo(p, err=True)
        sys.exit(2)
    app = _app(config)
    ok = True
    for name in chosen:
        text, good = inventory_report(app, name, set(skus) or None, apply=apply_)
        click.echo(text)
        ok &= good
    sys.exit(0 if ok else 1)


@main.command()
@config_option
@click.option("--store", default=None)
@click.option("--status", default=None, help="order status or shipment state")
def orders(config_file: str | None, store: str | None, status: str | None) -> None:
    """Table of orders and their state."""
    from worker.service.views import orders_table

    _, config = _load(config_file)
    app = _app(config)
    with app.sessions() as session:
        click.echo(orders_table(session, store, status))


@main.command()
@config_option
@click.argument("store")
@click.argument("order")
def show(config_file: str | None, store: str, order: str) -> None:
    """The order's whole timeline."""
    from worker.service.views import find_order, timeline

    _, config = _load(config_file)
    app = _app(config)
    with app.sessions() as session:
        row = find_order(session, store, order)
        if row is None:
            click.echo(f"no order {order} in store {store}", err=True)
            sys.exit(1)
        click.echo(timeline(session, row))


@main.command()
@config_option
@click.argument("store")
@click.argument("order")
def retry(config_file: str | None, store: str, order: str) -> None:
    """Re-drive a parked order from where it stopped."""
    from worker.errors import TransientError
    from worker.service.operations import retry_order

    _, config = _load(config_file)
    app = _app(config)
    try:
        click.echo(retry_order(app, store, order))
    except TransientError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@config_option
@click.argument("store")
@click.argument("order")
def plan(config_file: str | None, store: str, order: str) -> None:
    """Print the routing plan and its reasons, sending nothing."""
    from worker.pipeline import routing
    from worker.pipeline.availability import ask_amazon, describe, weigh_costs
    from worker.service.views import find_order

    _, config = _load(config_file)
    app = _app(config)
    ref = order
    with app.sessions() as session:
        row = find_order(session, store, order)
        if row is not None:
            ref = row.platform_order_id
    fresh = app.store(store).fetch_order(ref)
    if fresh is None:
        click.echo(f"store {store} has no order {order}", err=True)
        sys.exit(1)
    cfg = config.store(store)
    ok, why = routing.eligible(fresh, cfg)
    click.echo(f"order {fresh.number}: {'ships' if ok else 'does not ship'} ({why})")
    answer = ask_amazon(app, fresh, cfg)  # read-only, like everything here
    click.echo(f"  {describe(answer)}")
    compared = weigh_costs(app, store, fresh, answer)  # a quote buys nothing
    if compared.choice:
        click.echo(f"  prefer = cheapest: FBA {compared.fba} vs label {compared.label} -> {compared.choice}")
    result = routing.plan(fresh, cfg, unavailable=answer.unavailable,
                          label_is_cheaper=compared.label_is_cheaper)
    for reason in result.reasons:
        click.echo(f"  - {reason}")
    for n, s in enumerate(result.shipments, 1):
        lines = ", ".join(f"{pl.line.sku} x{pl.line.quantity}" for pl in s.lines)
        click.echo(f"  shipment {n}: {s.route} {s.speed} [{lines}] {s.parked_reason}".rstrip())


@main.command()
@config_option
@click.option("--dir", "workdir", default=None, help="keep the demo's files here (default: a temp dir)")
@click.option("--orders", "count", default=5, show_default=True, help="how many sample orders")
def demo(config_file: str | None, workdir: str | None, count: int) -> None:
    """The whole pipeline against built-in local simulators; no accounts needed."""
    from worker.sandbox.demo import run_demo

    sys.exit(run_demo(workdir, count))


if __name__ == "__main__":
    main()
