"""What Amazon's refusals mean for the worker.

    TransientError
    └── AmazonThrottled    429 QuotaExceeded after our own bounded retries: try again later
    PermanentError
    └── AmazonRejected     a 4xx with Amazon's ``errors[]``: park with ``code: message``
        └── CancelTooLate  cancelFulfillmentOrder refused: the order is past Planning

Messages carry Amazon's error code and message (never tokens, secrets or addresses) and the
``x-amzn-RequestId`` of the call, so the ledger can record it.
"""

from __future__ import annotations

from worker.errors import PermanentError, TransientError


class AmazonThrottled(TransientError):
    """Amazon kept answering 429 (QuotaExceeded); nothing was executed."""


class AmazonRejected(PermanentError):
    """Amazon refused the request (4xx); ``code``/``amazon_message`` are from its ``errors[0]``."""

    def __init__(self, message: str, *, code: str = "", amazon_message: str = "",
                 request_id: str = "", status: int | None = None) -> None:
        super().__init__(message, request_id=request_id, status=status)
        self.code = code
        self.amazon_message = amazon_message


class CancelTooLate(AmazonRejected):
    """Amazon would not cancel: the order already left Received/Planning. A person must intercept."""
