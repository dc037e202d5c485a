"""Helpers for tests that run the service as processes (see worker/sandbox/stack.py)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from worker.sandbox.stack import Stack


def make_stack(tmp_path: Path, broker: str, database_url: str, **kw: Any) -> Stack:
    """A stack whose processes log JSON into memory (printed when the test ends)."""
    stack = Stack(tmp_path / "stack", broker_url=broker, database_url=database_url, output=io.StringIO(),
                  log_format="json", **kw)
    stack.start_sandboxes()
    return stack


def stop(stack: Stack) -> None:
    stack.stop()
    assert isinstance(stack.output, io.StringIO)
    print(stack.output.getvalue()[-30000:])  # pytest shows it when the test failed


def fba_shipments(stack: Stack, state: str) -> int:
    return sum(1 for _, s in stack.shipments() if s.route == "fba" and s.state == state)


def store_pushed(stack: Stack, store: str) -> int:
    return sum(1 for o, s in stack.shipments() if o.store == store and s.state == "pushed")
