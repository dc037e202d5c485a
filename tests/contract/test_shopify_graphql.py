"""Every GraphQL document the Shopify client sends is valid against the official 2026-01 schema."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import GraphQLSchema, OperationDefinitionNode, build_schema, parse, specified_rules, validate
from graphql.validation import NoDeprecatedCustomRule

from connectors.shopify.queries import ALL_DOCUMENTS, ALL_OPERATIONS, Operation


@pytest.fixture(scope="session")
def schema_2026_01(specs_dir: Path) -> GraphQLSchema:
    return build_schema((specs_dir / "shopify" / "admin-graphql-2026-01.schema.graphql").read_text())


def test_every_operation_is_listed() -> None:
    assert len(ALL_DOCUMENTS) == len(ALL_OPERATIONS) >= 5
    assert len({op.name for op in ALL_OPERATIONS}) == len(ALL_OPERATIONS)


@pytest.mark.parametrize("document", ALL_DOCUMENTS)
def test_document_validates(schema_2026_01: GraphQLSchema, document: str) -> None:
    errors = validate(schema_2026_01, parse(document), [*specified_rules, NoDeprecatedCustomRule])
    assert errors == []


@pytest.mark.parametrize("op", ALL_OPERATIONS, ids=lambda op: op.name)
def test_operation_name_matches_document(op: Operation) -> None:
    [definition] = parse(op.document).definitions
    assert isinstance(definition, OperationDefinitionNode)
    assert definition.name is not None and definition.name.value == op.name
    assert (definition.operation.value == "mutation") == op.mutation


@pytest.mark.parametrize("op", ALL_OPERATIONS, ids=lambda op: op.name)
def test_requested_cost_below_the_single_query_maximum(op: Operation) -> None:
    assert 0 < op.expected_cost <= op.requested_cost < 1000


def test_never_the_deprecated_create() -> None:
    assert not any("fulfillmentCreateV2" in d for d in ALL_DOCUMENTS)
    assert any("fulfillmentCreate(" in d for d in ALL_DOCUMENTS)


def test_deprecated_rule_is_active(schema_2026_01: GraphQLSchema) -> None:
    bad = ("mutation X($f: FulfillmentV2Input!) "
           "{ fulfillmentCreateV2(fulfillment: $f) { userErrors { message } } }")
    errors = validate(schema_2026_01, parse(bad), [*specified_rules, NoDeprecatedCustomRule])
    assert any("deprecated" in e.message for e in errors)
