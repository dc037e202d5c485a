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

# --- what the order already has, read before any fulfillmentCreate ---------------------------
#
# Read completely, because a line or a tracking number left unread means a push that fails or a
# number written twice. Fulfillment orders and their lines are connections: paged with cursors.
# ``Order.fulfillments`` and ``Fulfillment.trackingInfo`` are plain lists cut at ``first`` (a
# list costs first x (cost of one item), no page info): a full list may have been cut, so the
# client then reads the fulfillments through each fulfillment order's ``fulfillments``
# connection, and a fulfillment's tracking alone with ``fulfillment(id:)``.
FULFILLMENT_ORDERS = 10  # fulfillment orders per page, newest first
FO_LINES = 25  # lines of each fulfillment order on that page
FO_LINES_PAGE = 250  # lines per follow-up page of one fulfillment order (a connection's maximum)
FULFILLMENTS = 50  # the order's fulfillments in the first read; a full list may have been cut
TRACKING = 5  # tracking numbers per fulfillment in a list; a full one is read again alone
FO_FULFILLMENTS = 100  # fulfillments per page of one fulfillment order's connection
TRACKING_MAX = 250  # tracking numbers of one fulfillment read alone; a full one is an error

_FULFILLMENT_ORDER_FIELDS = """
        id
        status
        lineItems(first: $foLines) {
          pageInfo { hasNextPage endCursor }
          nodes { id remainingQuantity lineItem { id sku } }
        }"""
# A page of fulfillment orders; a line costs 2: itself and its lineItem object.
_FO_PAGE_COST = 2 + FULFILLMENT_ORDERS * (1 + 2 + FO_LINES * 2)
_TRACKING_FIELDS = "trackingInfo(first: $tracking) { number company url }"

# Newest fulfillment orders first (reverse): a split order accumulates CLOSED ones, the open
# remainder is the latest. 1 + (2 + 10 x (1 + 2 + 25 x 2)) + 50 x (1 + 5) = 833.
FULFILLMENT_STATE = Operation(
    name="FulfillmentState",
    document="""query FulfillmentState($id: ID!, $fulfillmentOrders: Int!, $foLines: Int!,
    $fulfillments: Int!, $tracking: Int!) {
  order(id: $id) {
    id
    fulfillmentOrders(first: $fulfillmentOrders, reverse: true) {
      pageInfo { hasNextPage endCursor }
      nodes {""" + _FULFILLMENT_ORDER_FIELDS + """
      }
    }
    fulfillments(first: $fulfillments) {
      id
      status
      """ + _TRACKING_FIELDS + """
    }
  }
}""",
    requested_cost=1 + _FO_PAGE_COST + FULFILLMENTS * (1 + TRACKING),
    expected_cost=20,
)

# The next page of fulfillment orders: 1 + 532 = 533.
FULFILLMENT_ORDERS_PAGE = Operation(
    name="FulfillmentOrdersPage",
    document="""query FulfillmentOrdersPage($id: ID!, $fulfillmentOrders: Int!, $after: String!,
    $foLines: Int!) {
  order(id: $id) {
    id
    fulfillmentOrders(first: $fulfillmentOrders, after: $after, reverse: true) {
      pageInfo { hasNextPage endCursor }
      nodes {""" + _FULFILLMENT_ORDER_FIELDS + """
      }
    }
  }
}""",
    requested_cost=1 + _FO_PAGE_COST,
    expected_cost=60,
)

# The next page of one fulfillment order's lines: 1 + 2 + 250 x 2 = 503.
FULFILLMENT_ORDER_LINES = Operation(
    name="FulfillmentOrderLines",
    document="""query FulfillmentOrderLines($id: ID!, $lines: Int!, $after: String!) {
  fulfillmentOrder(id: $id) {
    id
    lineItems(first: $lines, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes { id remainingQuantity lineItem { id sku } }
    }
  }
}""",
    requested_cost=1 + 2 + FO_LINES_PAGE * 2,
    expected_cost=60,
)

# One page of one fulfillment order's fulfillments (when the order's list came back full):
# 1 + 2 + 100 x (1 + 5) = 603.
FULFILLMENT_ORDER_FULFILLMENTS = Operation(
    name="FulfillmentOrderFulfillments",
    document="""query FulfillmentOrderFulfillments($id: ID!, $first: Int!, $after: String,
    $tracking: Int!) {
  fulfillmentOrder(id: $id) {
    id
    fulfillments(first: $first, after: $after) {
      pageInfo { hasNextPage endCursor }
      nodes {
        id
        status
        """ + _TRACKING_FIELDS + """
      }
    }
  }
}""",
    requested_cost=1 + 2 + FO_FULFILLMENTS * (1 + TRACKING),
    expected_cost=100,
)

# One fulfillment's tracking (when its list came back full): 1 + 250 = 251.
FULFILLMENT_TRACKING = Operation(
    name="FulfillmentTracking",
    document="""query FulfillmentTracking($id: ID!, $tracking: Int!) {
  fulfillment(id: $id) {
    id
    status
    """ + _TRACKING_FIELDS + """
  }
}""",
    requested_cost=1 + TRACKING_MAX,
    expected_cost=10,
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

# --- inventory: FBA stock -> `available` at the FBA location (connectors/shopify/inventory.py) ---
#
# A SKU is resolved to its inventory item once (by search, exact match checked here) and then
# read by id. ``duplicateSkuCount`` tells a SKU held by two items apart even when cached. A level
# costs 1 and its one quantity 1: an item with its level is 3.
LOCATIONS_PAGE = 100
SKUS_PER_SEARCH = 50  # SKUs OR-ed into one inventoryItems search
ITEMS_PAGE = 100  # search results per page (a search may also match longer SKUs)
LEVELS_PAGE = 200  # inventory items read by id in one call
SET_QUANTITIES = 250  # quantities in one inventorySetQuantities

_ITEM_FIELDS = """
      id
      sku
      tracked
      duplicateSkuCount
      inventoryLevel(locationId: $location) { quantities(names: ["available"]) { name quantity } }"""

INVENTORY_LOCATIONS = Operation(
    name="InventoryLocations",
    document="""query InventoryLocations($first: Int!, $after: String) {
  locations(first: $first, after: $after, includeInactive: false) {
    pageInfo { hasNextPage endCursor }
    nodes { id name isActive }
  }
}""",
    requested_cost=2 + LOCATIONS_PAGE,
    expected_cost=5,
)

INVENTORY_ITEMS_BY_SKU = Operation(
    name="InventoryItemsBySku",
    document="""query InventoryItemsBySku($first: Int!, $after: String, $query: String!, $location: ID!) {
  inventoryItems(first: $first, after: $after, query: $query) {
    pageInfo { hasNextPage endCursor }
    nodes {""" + _ITEM_FIELDS + """
    }
  }
}""",
    requested_cost=2 + ITEMS_PAGE * 3,
    expected_cost=2 + SKUS_PER_SEARCH * 3,
)

INVENTORY_LEVELS = Operation(
    name="InventoryLevels",
    document="""query InventoryLevels($ids: [ID!]!, $location: ID!) {
  nodes(ids: $ids) {
    ... on InventoryItem {""" + _ITEM_FIELDS + """
    }
  }
}""",
    requested_cost=LEVELS_PAGE * 3,
    expected_cost=LEVELS_PAGE * 3,
)

# Compare-and-swap: each quantity carries changeFromQuantity (what was just read). The idempotency
# key (optional in 2026-01, required from 2026-04) makes a re-sent mutation a no-op.
SET_INVENTORY = Operation(
    name="SetInventory",
    document="""mutation SetInventory($input: InventorySetQuantitiesInput!, $key: String!) {
  inventorySetQuantities(input: $input) @idempotent(key: $key) {
    inventoryAdjustmentGroup { id }
    userErrors { field message code }
  }
}""",
    requested_cost=10,
    expected_cost=10,
    mutation=True,
)

ALL_OPERATIONS: tuple[Operation, ...] = (
    SHOP_NAME, GET_ORDER, LIST_ORDERS, FULFILLMENT_STATE, FULFILLMENT_ORDERS_PAGE, FULFILLMENT_ORDER_LINES,
    FULFILLMENT_ORDER_FULFILLMENTS, FULFILLMENT_TRACKING, CREATE_FULFILLMENT, INVENTORY_LOCATIONS,
    INVENTORY_ITEMS_BY_SKU, INVENTORY_LEVELS, SET_INVENTORY)
ALL_DOCUMENTS: tuple[str, ...] = tuple(op.document for op in ALL_OPERATIONS)
