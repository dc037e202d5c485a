"""WooCommerce REST v3 connector: ``WooStore`` (client), REST transport, pure mapping, webhooks, a sandbox."""
