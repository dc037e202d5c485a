"""Failure types every connector raises; the worker decides retry / park / look-up from the class.

    ConnectorError
    ├── TransientError     timeouts, connection resets, 429, 5xx: retry with backoff and jitter,
    │                      honour ``retry_after`` when the API sent one
    ├── PermanentError     validation and other 4xx: park the order with ``str(exc)`` as the reason;
    │   └── NotFound       the thing asked for does not exist (404)
    └── AmbiguousOutcome   the request was sent but no answer came: look it up before any retry

Messages never carry secrets, tokens or full addresses: a connector puts the provider's error
code and message in them, never a raw body, and every message goes through ``redact`` when the
error is made — the one place that masks what a provider may echo back. Logs, alerts and the CLI
apply the same function to what they print. Library exceptions are translated at the boundary
with ``raise ... from exc``.
"""

from __future__ import annotations

import re

# Token shapes: Login with Amazon access/refresh tokens, Shopify access tokens, EasyPost keys,
# WooCommerce REST keys, and whatever follows "Bearer"/"Basic" or an auth header's name.
_TOKENS = [
    (re.compile(r"\b(Atz[ar])\|[^\s\"',;}&]+"), r"\1|[redacted]"),
    (re.compile(r"\b(shp(?:at|ca|pa|ss|ua|ut))_[A-Za-z0-9]+"), r"\1_[redacted]"),
    (re.compile(r"\b(EZ[AT]K)[A-Za-z0-9]{8,}"), r"\1[redacted]"),
    (re.compile(r"\b(c[ks])_[A-Fa-f0-9]{20,}"), r"\1_[redacted]"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=|-]{6,}"), r"\1 [redacted]"),
    (re.compile(r"(?i)([\"']?(?:authorization|x-amz-access-token|x-shopify-access-token|access_token|"
                r"refresh_token|client_secret|api_key|password)[\"']?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;}&]+)"),
     r"\1[redacted]"),
]
# Address and contact fields as a provider echoes them back ("street1": "1 Main St", phone=...),
# and e-mail addresses anywhere.
_CONTACT_KEYS = (r"street[12]?|address[123]?|address_[12]|address_?line_?[123]|addressLine[123]|line[123]|"
                 r"phone(?:_?number)?|phoneNumber|e-?mail(?:_?address)?|emailAddress|postal_?code|zip|"
                 r"postcode|(?:first_|last_)?name|company")
# A quoted key ("street1": ...) or key=value; not "street1: is required", a provider's field error.
_CONTACT = re.compile(r"(?i)((?:[\"'](?:" + _CONTACT_KEYS + r")[\"']\s*[:=]|\b(?:" + _CONTACT_KEYS
                      + r")=)\s*)(\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s,;}&)]+)")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def redact(text: str) -> str:
    """``text`` with token shapes, address/contact fields and e-mail addresses masked."""
    for pattern, replacement in _TOKENS:
        text = pattern.sub(replacement, text)
    text = _CONTACT.sub(lambda m: m.group(1) + "[redacted]", text)
    return _EMAIL.sub("[email]", text)


class ConnectorError(Exception):
    def __init__(self, message: str, *, request_id: str = "", status: int | None = None) -> None:
        super().__init__(redact(message))
        self.request_id = request_id
        self.status = status


class TransientError(ConnectorError):
    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        request_id: str = "",
        status: int | None = None,
    ) -> None:
        super().__init__(message, request_id=request_id, status=status)
        self.retry_after = retry_after


class PermanentError(ConnectorError):
    pass


class NotFound(PermanentError):
    pass


class AmbiguousOutcome(ConnectorError):
    pass
