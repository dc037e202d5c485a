"""Readers of platform JSON that the store connectors share. Each raises the caller's payload
error class (a PermanentError), so the message and the class say which platform sent it."""

from __future__ import annotations

import json
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from worker.errors import PermanentError

MAX_NUMBER = 255  # an order number (the ledger's orders.number)
_NUL_OR_SURROGATE = re.compile("[\x00\ud800-\udfff]")


def text(value: Any) -> str:
    """A JSON scalar as text; null -> "". NUL (which PostgreSQL cannot store) is dropped and a lone
    UTF-16 surrogate (not Unicode at all) becomes U+FFFD, so store text always fits the ledger."""
    out = "" if value is None else str(value)
    if _NUL_OR_SURROGATE.search(out):
        out = _NUL_OR_SURROGATE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", out)
    return out


def limited(value: str, limit: int, what: str, error: type[PermanentError]) -> str:
    """``value`` when it has at most ``limit`` characters (what the ledger stores), else ``error``."""
    if len(value) > limit:
        raise error(f"{what} is longer than {limit} characters ({len(value)})")
    return value


def amount(value: Any, error: type[PermanentError]) -> Decimal:
    """An amount ("29.35", or a JSON number) -> Decimal; "" / null -> 0."""
    if value is None or value == "":
        return Decimal("0")
    try:
        return Decimal(str(value))
    except InvalidOperation as exc:
        raise error(f"bad amount: {value!r}") from exc


def json_object(body: bytes, what: str, error: type[PermanentError]) -> dict[str, Any]:
    """``body`` parsed, when it is a JSON object; ``what`` names it in the error."""
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise error(f"{what}: body is not valid JSON") from exc
    if not isinstance(parsed, dict):
        raise error(f"{what}: body is not a JSON object")
    try:  # JSON's \ud800 escapes decode to lone surrogates, which are no text (and no database takes)
        json.dumps(parsed, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise error(f"{what}: body has a lone UTF-16 surrogate escape (not valid Unicode)") from exc
    return parsed
