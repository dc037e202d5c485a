"""Failure types every connector raises; the worker decides retry / park / look-up from the class.

    ConnectorError
    ├── TransientError     timeouts, connection resets, 429, 5xx: retry with backoff and jitter,
    │                      honour ``retry_after`` when the API sent one
    ├── PermanentError     validation and other 4xx: park the order with ``str(exc)`` as the reason;
    │   └── NotFound       the thing asked for does not exist (404)
    └── AmbiguousOutcome   the request was sent but no answer came: look it up before any retry

Messages never carry secrets, tokens or full addresses. Library exceptions are translated at
the boundary with ``raise ... from exc``.
"""

from __future__ import annotations


class ConnectorError(Exception):
    def __init__(self, message: str, *, request_id: str = "", status: int | None = None) -> None:
        super().__init__(message)
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
