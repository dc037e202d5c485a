"""What EasyPost's refusals mean for the worker.

    TransientError
    └── EasyPostThrottled       429: nothing was done, try again later
    PermanentError
    ├── EasyPostAuthError       401/403: the api_key is wrong, inactive or of the wrong kind
    └── EasyPostRejected        another 4xx, with EasyPost's ``code`` and message
        ├── EasyPostAddressError  an address, parcel or customs declaration a person must fix
        │                         (invalid or undeliverable address, missing phone for an
        │                         international shipment, a PO box for carriers that refuse them,
        │                         bad parcel dimensions, missing or invalid customs_info)
        └── NoRateFits          no rate offered fits the ``choose`` rule (or none was offered)

Messages say what to do next and carry EasyPost's code; never the API key, never a full address
(a city/region/country at most).
"""

from __future__ import annotations

from worker.errors import PermanentError, TransientError


class EasyPostThrottled(TransientError):
    """EasyPost answered 429; the request was not executed."""


class EasyPostAuthError(PermanentError):
    """EasyPost refused the API key. Test keys start with EZTK, production keys with EZAK."""


class EasyPostRejected(PermanentError):
    """EasyPost refused the request; ``code`` is its machine-readable error code (may be "")."""

    def __init__(self, message: str, *, code: str = "", request_id: str = "",
                 status: int | None = None) -> None:
        super().__init__(message, request_id=request_id, status=status)
        self.code = code


class EasyPostAddressError(EasyPostRejected):
    """The destination (or origin, parcel or customs declaration) cannot be shipped as given; a
    person must fix it."""


class NoRateFits(EasyPostRejected):
    """No carrier offered a rate the ``choose`` rule allows; the message names the rule and the offer."""
