"""Structured logs: one JSON object per line (or text), with context bound per task.

``bind(store=..., order=...)`` sets context for everything logged in the current task or request;
``log(event, **fields)`` writes one line. Tests read the records' ``event`` and fields.

Every text field goes through ``worker.errors.redact`` when it is formatted (ours and libraries'
records alike), and the text format escapes control characters (``printable``), so a newline in a
store's order name cannot forge a line and an escape sequence never reaches a terminal.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from worker.errors import redact

LOGGER = logging.getLogger("autofulfill")
_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "autofulfill_log", default=None)
_FIELDS = ("store", "order", "shipment", "task_id", "route", "request_id")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_SECRET_WORDS = ("token", "secret", "password", "hmac", "authorization", "address")


@contextlib.contextmanager
def bind(**fields: Any) -> Iterator[None]:
    given = {k: v for k, v in fields.items() if v not in (None, "")}
    reset = _context.set({**(_context.get() or {}), **given})
    try:
        yield
    finally:
        _context.reset(reset)


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(value: object) -> str:
    """``str(value)`` with control characters (line breaks, escape sequences, bidi overrides)
    written as escapes: one line, shown as it is."""
    text = str(value)
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(lambda m: _ESCAPES.get(m.group(), f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                                               else f"\\u{ord(m.group()):04x}"), text)


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """Our bound fields, or, for a library's record, what it passed as ``extra=``; redacted."""
    ours = getattr(record, "af_fields", None)
    if ours is None:
        ours = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
    return {k: _clean(v) for k, v in ours.items()}


def _event(record: logging.LogRecord) -> str:
    return str(getattr(record, "af_event", None) or redact(record.getMessage()))


def log(event: str, level: int = logging.INFO, **fields: Any) -> None:
    safe = {k: ("[redacted]" if any(w in k.lower() for w in _SECRET_WORDS) else v)
            for k, v in fields.items() if v is not None}
    LOGGER.log(level, event, extra={"af_event": event, "af_fields": {**(_context.get() or {}), **safe}})


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "event": _event(record),
        }
        out.update(_fields(record))
        if record.exc_info and record.exc_info[0] is not None:
            out["error"] = redact(f"{record.exc_info[0].__name__}: {record.exc_info[1]}")
        if not hasattr(record, "af_event"):
            out["logger"] = record.name
        return json.dumps(out, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = _fields(record)
        if record.exc_info and record.exc_info[0] is not None:
            fields["error"] = redact(f"{record.exc_info[0].__name__}: {record.exc_info[1]}")
        head = " ".join(f"{k}={printable(fields.pop(k))}" for k in _FIELDS if k in fields)
        rest = " ".join(f"{printable(k)}={printable(v)}" for k, v in fields.items())
        when = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S")
        event = printable(_event(record))
        return " ".join(p for p in (when, record.levelname.lower().ljust(7), event, head, rest) if p)


def setup(fmt: str = "json", level: str = "INFO", stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.set_name("autofulfill")
    root = logging.getLogger()
    for h in list(root.handlers):
        if h.get_name() == "autofulfill":  # ours from an earlier setup; others stay (pytest's)
            root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in ("urllib3", "kombu", "celery", "amqp", "werkzeug", "alembic", "gunicorn"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
