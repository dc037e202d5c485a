"""WooCommerce failure types; each is one of the shared classes, so the worker needs no Woo knowledge.

    PermanentError
    ├── WooAuthError        401/403 from the REST API: the key, its permissions (Read/Write), or a
    │                       host that strips the Authorization header (``query_string_auth``)
    ├── WooNotJsonError     an HTML page (or a redirect) where REST JSON was expected: plain
    │                       permalinks, a firewall or security plugin, PHP notices, a wrong shop_url
    ├── WooPayloadError     a webhook body or API answer we cannot read
    └── NotFound
        └── WooNoRoute      ``rest_no_route``: no such REST route here (e.g. a tracking extension
                            that is not installed)
"""

from __future__ import annotations

from worker.errors import NotFound, PermanentError


class WooAuthError(PermanentError):
    """The REST key was refused or may not do this (Read vs Read/Write)."""


class WooNotJsonError(PermanentError):
    """Something other than the WooCommerce REST API answered (HTML page, redirect)."""


class WooPayloadError(PermanentError):
    """A payload (webhook body or API answer) is missing something we need."""


class WooNoRoute(NotFound):
    """``rest_no_route``: the REST route does not exist on this shop (its plugin is not active)."""
