"""Fault injection: the real service under a stream of orders while a killer SIGKILLs its parts.

    .venv/bin/python bench/chaos.py --kills 100 [--mode split|run] [--db postgresql|sqlite]
                                    [--trials N] [--seed S] [--json FILE] [--log FILE]

mode split: web + scheduler + two workers on a private Redis and (--db postgresql, the default for
split) a private PostgreSQL, both crashed and restarted once mid-run; mode run: `autofulfill run`
on the embedded defaults (SQLite ledger and broker; --db sqlite is its default). Shopify and
WooCommerce orders (FBA, labels, split) arrive by signed webhook (some dropped), some are
cancelled or partly refunded at random moments, and a random part (or all of them) is killed
with SIGKILL every few seconds and restarted after a short delay. At the end every order is
checked against the sandboxes' records. The machine's shared Redis and PostgreSQL are never used.

Prints the figures as a table (and --json FILE); exit status 1 when anything was lost,
duplicated or left in a wrong state. Not part of the test suite (tests/integration/e2e/
test_chaos.py runs a short version); the harness is worker/sandbox/chaos.py.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.sandbox.chaos import ChaosSettings, Report, run_chaos, table, write_json  # noqa: E402


def _stop(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwind: the service, Redis and PostgreSQL are stopped on the way out


def main() -> int:
    signal.signal(signal.SIGTERM, _stop)
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--mode", choices=["split", "run"], default="split")
    parser.add_argument("--db", choices=["postgresql", "sqlite"], default=None,
                        help="the ledger (default: postgresql for split, sqlite for run)")
    parser.add_argument("--trials", type=int, default=1)
    parser.add_argument("--seed", type=int, default=None, help="the first trial's seed (then +1 each)")
    parser.add_argument("--order-every", type=float, default=None,
                        help="mean seconds between new orders (default 1 for split, 10 for run)")
    parser.add_argument("--kill-every", type=float, nargs=2, default=(2.0, 8.0), metavar=("MIN", "MAX"))
    parser.add_argument("--poll-overlap", type=float, default=None,
                        help="poll_overlap_s (default 10; the product's 120 reproduces finding B3)")
    parser.add_argument("--no-infra-restarts", action="store_true",
                        help="do not crash the private Redis and PostgreSQL")
    parser.add_argument("--quiesce-timeout", type=float, default=300.0)
    parser.add_argument("--json", type=Path, default=None, help="write the figures here as JSON")
    parser.add_argument("--log", type=Path, default=None,
                        help="the service's output (default: in the work dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    reports: list[Report] = []
    for trial in range(args.trials):
        chosen = {k: v for k, v in (("db", args.db), ("order_every_s", args.order_every),
                                    ("poll_overlap_s", args.poll_overlap)) if v is not None}
        settings = ChaosSettings.for_mode(
            args.mode, kills=args.kills, seed=None if args.seed is None else args.seed + trial,
            kill_every_s=tuple(args.kill_every), restart_infra=not args.no_infra_restarts,
            quiesce_timeout_s=args.quiesce_timeout, **chosen)
        work = Path(tempfile.mkdtemp(prefix="autofulfill-chaos-"))
        log_path = args.log or work / "service.log"
        with open(log_path, "a") as log:
            report = run_chaos(settings, work, service_log=log)
        print(f"trial {trial + 1}: service log {log_path}")
        for problem in report.problems[:10]:
            print(f"\n{problem['kind']}: {problem['store']} {problem['order']}: {problem['detail']}\n"
                  f"{problem['timeline']}")
        for error in report.harness_errors[:5]:
            print(f"harness error: {error}")
        reports.append(report)
        if not args.keep and report.ok and args.log is None:
            import shutil

            shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(reports))
    if args.json:
        write_json(reports, args.json)
        print(f"\nfigures written to {args.json}")
    else:
        print(json.dumps({"trials": len(reports), "kills": sum(r.kills for r in reports),
                          "orders": sum(r.orders for r in reports), "lost": sum(r.lost for r in reports),
                          "ok": all(r.ok for r in reports)}))
    return 0 if all(r.ok for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
