"""Shopify failure types; each is one of the shared classes, so the worker needs no Shopify knowledge.

    TransientError
    ├── ShopifyThrottled       the cost bucket stayed empty after our bounded retries
    └── ShopifyNotReady        no OPEN fulfillment order for the lines yet (right after checkout,
                               or on hold / scheduled): try again later
    PermanentError
    ├── ShopifyAuthError       401/403, or the client-credentials grant refused: fix the token/scopes
    ├── ShopifyGraphQLError    top-level GraphQL ``errors`` other than THROTTLED
    ├── ShopifyUserError       a mutation's ``userErrors`` (e.g. quantity above what remains)
    ├── ShopifyAlreadyFulfilled the lines have nothing left to fulfill (someone else shipped them)
    ├── ShopifyReadIncomplete  the order holds more than can be read completely, so nothing is
    │                          written (a number left unread could be written twice)
    ├── ShopifyUnknownLocation the inventory location the config names is not in the shop
    └── ShopifyPayloadError    a webhook body or API answer we cannot read
"""

from __future__ import annotations

from worker.errors import PermanentError, TransientError


class ShopifyThrottled(TransientError):
    """Shopify's query-cost bucket stayed exhausted; ``retry_after`` says when it has refilled."""


class ShopifyNotReady(TransientError):
    """The order has no fulfillment order that can be fulfilled yet; retry later."""


class ShopifyAuthError(PermanentError):
    """The access token (or client id/secret) was refused or lacks a scope."""


class ShopifyGraphQLError(PermanentError):
    """Shopify answered with top-level GraphQL errors; the message lists them."""


class ShopifyUserError(PermanentError):
    """A mutation was refused with ``userErrors``; the message lists field and message of each."""


class ShopifyAlreadyFulfilled(PermanentError):
    """The requested lines have no remaining quantity: fulfilled outside autofulfill."""


class ShopifyReadIncomplete(PermanentError):
    """Part of the order's fulfillment state is beyond what can be read; the message names the limit."""


class ShopifyPayloadError(PermanentError):
    """A payload (webhook body or API answer) is missing something we need."""


class ShopifyUnknownLocation(PermanentError):
    """``[stores.<name>.inventory] location`` names no active location of the shop."""
