"""Fixtures the Amazon client tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from connectors.amazon_mcf.client import AmazonMCF


@pytest.fixture
def fresh_amazon_tokens() -> Iterator[None]:
    """No LWA token cached from another test (the cache is per process)."""
    AmazonMCF.clear_token_cache()
    yield
    AmazonMCF.clear_token_cache()


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s
