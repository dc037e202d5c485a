"""Shopify Admin GraphQL connector: ``ShopifyStore`` (client), pure mapping, webhooks, a sandbox."""
