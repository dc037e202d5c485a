"""Webhook signatures as Shopify and WooCommerce make them: base64(HMAC-SHA256(raw body, secret))."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping


def header(headers: Mapping[str, str], name: str) -> str:
    """Header value by case-insensitive name; "" when absent."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return ""


def sign(body: bytes, secret: str) -> str:
    """The signature header value for ``body`` (the sandboxes and tests sign with it)."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def verify(body: bytes, signature: str, secret: str) -> bool:
    """True when ``signature`` is the signature of ``body`` under ``secret`` (constant time)."""
    if not signature or not secret:
        return False
    expected = sign(body, secret).encode("ascii")
    return hmac.compare_digest(expected, signature.strip().encode("utf-8", "replace"))
