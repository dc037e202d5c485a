"""EasyPost carrier labels (API v2, through the ``easypost`` SDK).

``client.EasyPostLabels`` is the ``LabelProvider``; ``mapping`` translates payloads and chooses
rates; ``sandbox.EasyPostSandbox`` is a local stand-in for EasyPost used by tests and the demo.
"""

from connectors.easypost.client import EasyPostLabels
from connectors.easypost.errors import (
    EasyPostAddressError,
    EasyPostAuthError,
    EasyPostRejected,
    EasyPostThrottled,
    NoRateFits,
)

__all__ = ["EasyPostAddressError", "EasyPostAuthError", "EasyPostLabels", "EasyPostRejected",
           "EasyPostThrottled", "NoRateFits"]
