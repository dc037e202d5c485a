"""``WooInventory``: ``stock_quantity`` of the products and variations holding the synced SKUs
(the ``StoreStock`` half of ``WooStore``).

WooCommerce has no compare-and-swap: a write reads its SKUs again right before the batch and
leaves alone (``stale``) any whose number moved since the caller read it, so what is left
unguarded is the moment between that read and the batch. Writes are never retried here.
"""

from __future__ import annotations

from collections.abc import Sequence

from connectors.woocommerce import inventory_mapping as im
from connectors.woocommerce.errors import WooPayloadError
from connectors.woocommerce.rest import WooRest
from worker.domain import SkuProblem, StockChange, StockLevel, StockRead, StockWriteResult


class WooInventory:
    def __init__(self, rest: WooRest) -> None:
        self._rest = rest

    def read(self, skus: Sequence[str]) -> StockRead:
        levels: list[StockLevel] = []
        problems: list[SkuProblem] = []
        for chunk in im.sku_chunks(skus):
            found, missing = im.stock_read(chunk, self._products(chunk))
            levels += found
            problems += missing
        return StockRead(tuple(levels), tuple(problems))

    def _products(self, skus: list[str]) -> list[object]:
        out: list[object] = []
        page = 1
        while True:
            answer = self._rest.get("products", {"sku": ",".join(skus), "per_page": str(im.BATCH),
                                                 "page": str(page)})
            if not isinstance(answer.data, list):
                raise WooPayloadError("woocommerce GET /products: the answer is not a list")
            out += answer.data
            try:
                pages = int(answer.headers.get("X-WP-TotalPages") or 1)
            except ValueError:
                pages = 1
            if not answer.data or page >= pages:
                return out
            page += 1

    def write(self, changes: Sequence[StockChange]) -> StockWriteResult:
        written: list[str] = []
        stale: list[str] = []
        problems: list[SkuProblem] = []
        for route, group in im.batches(changes):
            now = {level.sku: level for level in self.read([c.sku for c in group]).levels}
            ready: list[StockChange] = []
            for c in group:
                level = now.get(c.sku)
                if level is None or level.ref != c.ref or level.quantity != c.expected:
                    stale.append(c.sku)  # moved (or gone) since the caller read it
                else:
                    ready.append(c)
            if not ready:
                continue
            done, refused = im.batch_outcome(ready, self._rest.post(route, im.batch_body(ready)).data)
            written += done
            problems += refused
        return StockWriteResult(tuple(written), tuple(stale), tuple(problems))
