"""Amazon FBA Multi-Channel Fulfillment (SP-API Fulfillment Outbound v2020-07-01).

``client.AmazonMCF`` is the ``Fulfiller``; ``mapping`` translates payloads; ``sandbox.AmazonSandbox``
is a local stand-in for SP-API used by tests and ``autofulfill demo``.
"""

from connectors.amazon_mcf.client import AmazonMCF
from connectors.amazon_mcf.errors import AmazonRejected, AmazonThrottled

__all__ = ["AmazonMCF", "AmazonRejected", "AmazonThrottled"]
