"""Every GraphQL document the Shopify client sends, in one place.

A contract test validates each document in ``ALL_DOCUMENTS`` against the official 2026-01 schema
(no deprecated fields), and the sandbox dispatches on each operation's name. Nested page sizes
are variables so the requested query cost stays below Shopify's single-query maximum (1000) and
both sides can estimate it: a connection costs 2 + first x (cost of one node), an object 1.
Shopify needs the requested cost available but charges the actual cost (what was returned).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Operation:
    name: str  # the operationName sent with every request; must match the document
    document: str
    requested_cost: float  # what Shopify will check is available (must stay below 1000)
    expected_cost: float  # what a typical call draws (its actual cost): the Limiter's first guess
    mutation: bool = False


# Poll pages: 50 orders x (order 1 + address 1 + shipping line 1 + total 2 + lines 2 + 10) = 852.
ORDERS_PAGE_SIZE = 50
POLL_LINES = 10
# One order with its line prices: 2 + 100 x 3 per page of lines.
ORDER_LINES = 100
# Refunds counted on one order (a new one makes a routed order be read again): 1 each.
REFUNDS = 25

_ORDER_FIELDS = """
    id
    name
    email
    createdAt
    updatedAt
    cancelledAt
    displayFinancialStatus
    displayFulfillmentStatus
    tags
    shippingAddress { name address1 address2 city provinceCode zip countryCodeV2 phone company }
    shippingLine { title }
    totalPriceSet { shopMoney { amount currencyCode } }"""

SHOP_NAME = Operation(
    name="ShopName",
    document="query ShopName { shop { name } }",
    requested_cost=1,
    expected_cost=1,
)

GET_ORDER = Operation(
    name="GetOrder",
    document="""query GetOrder($id: ID!, $lines: Int!, $linesAfter: String, $refunds: Int!) {
  order(id: $id) {""" + _ORDER_FIELDS + """
    lineItems(first: $lines, after: $linesAfter) {
      pageInfo { hasNextPage endCursor }
      nodes {
        id sku title quantity currentQuantity
        originalUnitPriceSet { shopMoney { amount } }
      }
    }
    refunds(first: $refunds) { id }
  }
}""",
    requested_cost=5 + 2 + ORDER_LINES * 3 + REFUNDS,
    expected_cost=20,
)

LIST_ORDERS = Operation(
    name="ListOrders",
    document="""query ListOrders($first: Int!, $after: String, $query: String, $lines: Int!) {
  orders(first: $first, after: $after, sortKey: UPDATED_AT, query: $query) {
    pageInfo { hasNextPage endCursor }
    nodes {""" + _ORDER_FIELDS + """
      lineItems(first: $lines) {
        pageInfo { hasNextPage }
        nodes { id sku title quantity currentQuantity }
      }
    }
  }
}""",
    requested_cost=2 + ORDERS_PAGE_SIZE * (5 + 2 + POLL_LINES),
    expected_cost=100,
)

# Newest fulfillment orders first (reverse): a split order accumulates CLOSED ones, the open
# remainder is the latest. 1 + (2 + 10 x (1 + 2 + 25 x 2)) + 30 x (1 + 3) = 653.
FULFILLMENT_STATE = Operation(
    name="FulfillmentState",
    document="""query FulfillmentState($id: ID!) {
  order(id: $id) {
    id
    fulfillmentOrders(first: 10, reverse: true) {
      nodes {
        id
        status
        lineItems(first: 25) {
          nodes { id remainingQuantity lineItem { id sku } }
        }
      }
    }
    fulfillments(first: 30) {
      id
      status
      trackingInfo(first: 3) { number company url }
    }
  }
}""",
    requested_cost=653,
    expected_cost=20,
)

# fulfillmentCreate, never the deprecated fulfillmentCreateV2.
CREATE_FULFILLMENT = Operation(
    name="CreateFulfillment",
    document="""mutation CreateFulfillment($fulfillment: FulfillmentInput!, $message: String) {
  fulfillmentCreate(fulfillment: $fulfillment, message: $message) {
    fulfillment {
      id
      status
      trackingInfo(first: 3) { number company url }
    }
    userErrors { field message }
  }
}""",
    requested_cost=10,
    expected_cost=10,
    mutation=True,
)

ALL_OPERATIONS: tuple[Operation, ...] = (SHOP_NAME, GET_ORDER, LIST_ORDERS, FULFILLMENT_STATE,
                                         CREATE_FULFILLMENT)
ALL_DOCUMENTS: tuple[str, ...] = tuple(op.document for op in ALL_OPERATIONS)
