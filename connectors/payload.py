"""Readers of platform JSON that the store connectors share. Each raises the caller's payload
error class (a PermanentError), so the message and the class say which platform sent it."""

from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from typing import Any

from worker.errors import PermanentError


def text(value: Any) -> str:
    """A JSON scalar as text; null -> ""."""
    return "" if value is None else str(value)


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
    return parsed
