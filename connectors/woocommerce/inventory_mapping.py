"""WooCommerce product payloads <-> domain records, for the FBA stock sync. Pure: no I/O.

``GET /products?sku=A,B`` matches SKUs exactly and lists variations too (WooCommerce's products
controller widens the query to ``product_variation`` when a SKU is asked for); each is written
with ``stock_quantity`` (and ``manage_stock = true`` when stock management was off) through
``products/batch`` or ``products/<parent>/variations/batch``, at most 100 a call.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from worker.domain import SkuProblem, StockChange, StockLevel

SKUS_PER_READ = 50  # SKUs in one ``sku=`` filter (the URL stays short)
BATCH = 100  # WooCommerce's limit of objects per batch request


def ref(product: Mapping[str, Any]) -> str:
    """``"<id>"`` for a product, ``"<parent id>/<id>"`` for a variation."""
    parent = product.get("parent_id")
    if str(product.get("type", "")) == "variation" and isinstance(parent, int) and parent > 0:
        return f"{parent}/{product['id']}"
    return str(product["id"])


def sku_chunks(skus: Sequence[str]) -> Iterator[list[str]]:
    """SKUs in reads of at most 50; one holding a comma alone (the filter splits on commas, and
    WooCommerce then also tries the whole value)."""
    plain: list[str] = []
    for sku in dict.fromkeys(s for s in skus if s):
        if "," in sku:
            yield [sku]
        else:
            plain.append(sku)
    for start in range(0, len(plain), SKUS_PER_READ):
        yield plain[start:start + SKUS_PER_READ]


def stock_read(skus: Sequence[str], products: Iterable[Any]) -> tuple[list[StockLevel], list[SkuProblem]]:
    """What the shop shows for each SKU, from the products and variations listed for them."""
    found: dict[str, list[Mapping[str, Any]]] = {}
    for p in products:
        if isinstance(p, Mapping) and isinstance(p.get("id"), int) and str(p.get("sku") or "") in skus:
            found.setdefault(str(p["sku"]), []).append(p)
    levels: list[StockLevel] = []
    problems: list[SkuProblem] = []
    for sku in dict.fromkeys(skus):
        matches = found.get(sku, [])
        if not matches:
            problems.append(SkuProblem(sku, f"WooCommerce has no product or variation with SKU {sku!r}: set "
                                            "that SKU on it, or remove it from sku_map"))
        elif len(matches) > 1:
            ids = ", ".join(ref(p) for p in matches)
            problems.append(SkuProblem(sku, f"SKU {sku!r} is on {len(matches)} WooCommerce products "
                                            f"({ids}): give each its own SKU (the sync cannot tell "
                                            "which one FBA stocks)"))
        else:
            p = matches[0]
            qty = p.get("stock_quantity")
            managed = p.get("manage_stock") is True
            levels.append(StockLevel(sku=sku, quantity=int(qty) if isinstance(qty, int) and managed else 0,
                                     ref=ref(p), managed=managed))
    return levels, problems


def batches(changes: Sequence[StockChange]) -> Iterator[tuple[str, list[StockChange]]]:
    """(the batch route, its changes): products together, each parent's variations together,
    at most 100 a call."""
    routes: dict[str, list[StockChange]] = {}
    for c in changes:
        parent, _, _ = c.ref.rpartition("/")
        routes.setdefault(f"products/{parent}/variations/batch" if parent else "products/batch", []).append(c)
    for route, group in routes.items():
        for start in range(0, len(group), BATCH):
            yield route, group[start:start + BATCH]


def batch_body(changes: Sequence[StockChange]) -> dict[str, Any]:
    def one(c: StockChange) -> dict[str, Any]:
        body: dict[str, Any] = {"id": int(c.ref.rpartition("/")[2]), "stock_quantity": c.quantity}
        if c.manage:
            body["manage_stock"] = True
        return body
    return {"update": [one(c) for c in changes]}


def batch_outcome(changes: Sequence[StockChange], answer: Any) -> tuple[list[str], list[SkuProblem]]:
    """(SKUs written, SKUs refused) from a batch answer ``{"update": [object | {id, error}]}``."""
    by_id = {int(c.ref.rpartition("/")[2]): c for c in changes}
    done: list[str] = []
    refused: list[SkuProblem] = []
    items = answer.get("update") if isinstance(answer, Mapping) else None
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping) or not isinstance(item.get("id"), int):
            continue
        change = by_id.pop(item["id"], None)
        if change is None:
            continue
        error = item.get("error")
        if isinstance(error, Mapping):
            refused.append(SkuProblem(change.sku, f"WooCommerce refused {change.sku!r}: "
                                                  f"{error.get('code', '')}: {error.get('message', '')}"))
        elif item.get("stock_quantity") == change.quantity:
            done.append(change.sku)
        else:
            kept = item.get("stock_quantity")
            refused.append(SkuProblem(change.sku, f"WooCommerce kept {change.sku!r} at {kept!r} "
                                                  f"(asked {change.quantity})"))
    refused += [SkuProblem(c.sku, f"WooCommerce's batch answer does not mention {c.sku!r}")
                for c in by_id.values()]
    return done, refused
