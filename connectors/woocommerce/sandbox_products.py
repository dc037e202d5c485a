"""The WooCommerce sandbox's products and variations with their stock, and the REST routes the
stock sync uses: ``GET /products`` (``sku`` = comma-separated exact SKUs, variations included,
as WooCommerce does), ``GET /products/<id>``, ``GET /products/<id>/variations``, and the batch
updates ``POST /products/batch`` and ``POST /products/<id>/variations/batch`` (at most 100
objects; ``stock_quantity`` is kept only while ``manage_stock`` is on). Used by
``sandbox_state.WooState`` under its lock.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Reply = tuple[int, Any, dict[str, str]]
BATCH_LIMIT = 100


def _error(status: int, code: str, message: str) -> Reply:
    return status, {"code": code, "message": message, "data": {"status": status}}, {}


@dataclass
class ProductBook:
    new_id: Callable[[], int]
    products: dict[int, dict[str, Any]] = field(default_factory=dict)  # id -> product or variation
    batches: list[tuple[str, int]] = field(default_factory=list)  # (route, objects) of every batch call

    # --- helpers behind WooSandbox ----------------------------------------------------------------

    def add(self, sku: str, stock: int | None, *, parent: int = 0, name: str = "") -> dict[str, Any]:
        pid = self.new_id()
        managed = stock is not None
        self.products[pid] = {
            "id": pid, "name": name or f"Product {sku}", "type": "variation" if parent else "simple",
            "parent_id": parent, "status": "publish", "sku": sku, "price": "10.00",
            "manage_stock": managed, "stock_quantity": stock if managed else None,
            "stock_status": "instock" if not managed or (stock or 0) > 0 else "outofstock",
            "backorders": "no", "variations": []}
        if parent:
            self.products[parent]["variations"].append(pid)
        return self.products[pid]

    def add_variable(self, sku: str, name: str = "") -> dict[str, Any]:
        product = self.add(sku, None, name=name)
        product["type"] = "variable"
        return product

    def with_sku(self, sku: str) -> list[dict[str, Any]]:
        return [p for p in self.products.values() if p["sku"] == sku]

    def take(self, sku: str, quantity: int) -> None:
        """A paid order reduces the stock of the (first) product with the SKU, if it manages stock."""
        for p in self.with_sku(sku)[:1]:
            if p["manage_stock"] and p["stock_quantity"] is not None:
                self._set_stock(p, p["stock_quantity"] - quantity)

    def _set_stock(self, p: dict[str, Any], quantity: int) -> None:
        p["stock_quantity"] = quantity
        p["stock_status"] = "instock" if quantity > 0 else "outofstock"

    # --- REST routes --------------------------------------------------------------------------------

    def handle(self, method: str, route: str, query: dict[str, str], body: Any) -> Reply | None:
        """``route`` below ``/wc/v3``; None when it is not a product route."""
        if route == "/products" and method == "GET":
            return self._list(query)
        if route == "/products/batch" and method in ("POST", "PUT", "PATCH"):
            return self._batch(None, body, route)
        if m := re.fullmatch(r"/products/(\d+)", route):
            p = self.products.get(int(m.group(1)))
            if p is None or p["type"] == "variation" or method != "GET":
                return _error(404, "woocommerce_rest_product_invalid_id", "Invalid ID.")
            return 200, self._shape(p), {}
        if m := re.fullmatch(r"/products/(\d+)/variations(/batch)?", route):
            parent = self.products.get(int(m.group(1)))
            if parent is None or parent["type"] != "variable":
                return _error(404, "woocommerce_rest_product_invalid_id", "Invalid ID.")
            if m.group(2) and method in ("POST", "PUT", "PATCH"):
                return self._batch(parent["id"], body, route)
            if not m.group(2) and method == "GET":
                return self._page([self._shape(self.products[v]) for v in parent["variations"]], query)
        return None

    def _shape(self, p: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in p.items() if k != "variations" or p["type"] == "variable"}

    def _list(self, query: dict[str, str]) -> Reply:
        if query.get("sku"):
            skus = query["sku"].split(",")
            if len(skus) > 1:
                skus.append(query["sku"])  # WooCommerce also tries the whole value as one SKU
            found = [p for p in self.products.values() if p["sku"] in skus]
        else:
            found = [p for p in self.products.values() if p["type"] != "variation"]
        return self._page([self._shape(p) for p in sorted(found, key=lambda p: -int(p["id"]))], query)

    def _page(self, items: list[dict[str, Any]], query: dict[str, str]) -> Reply:
        try:
            per_page, page = int(query.get("per_page", "10")), int(query.get("page", "1"))
        except ValueError:
            return _error(400, "rest_invalid_param", "Invalid parameter(s): per_page, page")
        if not 1 <= per_page <= 100 or page < 1:
            return _error(400, "rest_invalid_param", "Invalid parameter(s): per_page, page")
        chunk = items[(page - 1) * per_page: page * per_page]
        return 200, chunk, {"X-WP-Total": str(len(items)),
                            "X-WP-TotalPages": str(math.ceil(len(items) / per_page))}

    def _batch(self, parent: int | None, body: Any, route: str) -> Reply:
        if not isinstance(body, dict):
            return _error(400, "rest_invalid_json", "Invalid JSON body passed.")
        updates = body.get("update") or []
        if not isinstance(updates, list) or len(updates) + len(body.get("create") or []) > BATCH_LIMIT:
            return _error(413, "woocommerce_rest_request_entity_too_large",
                          f"Unable to accept more than {BATCH_LIMIT} items for this request.")
        self.batches.append((route, len(updates)))
        out: list[dict[str, Any]] = []
        for u in updates:
            p = self.products.get(int(u.get("id", 0))) if isinstance(u, dict) else None
            if p is None or (p["type"] == "variation") != (parent is not None) or (
                    parent is not None and p["parent_id"] != parent):
                out.append({"id": u.get("id") if isinstance(u, dict) else None, "error": {
                    "code": "woocommerce_rest_product_invalid_id", "message": "Invalid ID.",
                    "data": {"status": 400}}})
                continue
            if "manage_stock" in u:
                p["manage_stock"] = bool(u["manage_stock"])
            if "stock_quantity" in u and p["manage_stock"]:
                self._set_stock(p, int(u["stock_quantity"]))
            out.append(self._shape(p))
        return 200, {"update": out}, {}
