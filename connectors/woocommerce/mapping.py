"""WooCommerce REST v3 payloads <-> domain records. Pure: no I/O, no clock.

One order shape arrives, from the API and as a webhook body alike: the REST v3 ``order``. Its
``*_gmt`` dates are UTC without a zone suffix; the others are the shop's local time and are not
used. Line items carry the SKU of what was bought: for a variation, the variation's own SKU.

WooCommerce orders have no tags: ours come from configured order meta keys and, when configured,
keywords in the customer's note. A refund leaves ``line_items[].quantity`` as it was; the refunded
units are on the refunds themselves (``GET orders/<id>/refunds``): each refund line has a negative
``quantity`` and names the order's line in its ``_refunded_item_id`` meta.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlsplit

from connectors.payload import MAX_NUMBER, amount, limited
from connectors.payload import text as _s
from connectors.woocommerce.errors import WooPayloadError
from worker.domain import Address, Line, Order, Tracking

CANCELLED = frozenset({"cancelled", "refunded"})
# Statuses an order may be set ``completed`` from; others (completed, cancelled, refunded, failed,
# trash, pending, checkout-draft) are left alone: completion never moves an order backwards or revives it.
COMPLETABLE = frozenset({"processing", "on-hold"})
_COMPLETED_FROM = re.compile(r"^Order status changed from (.+?) to Completed\.?$")
_NOT_TO_COMPLETE = {"cancelled": "cancelled", "refunded": "refunded", "failed": "failed"}
PAGE_SIZE = 100  # the REST API's maximum per_page


# --- scalars ---------------------------------------------------------------------------------

def money(value: Any) -> Decimal:
    """A REST amount ("29.35", or a JSON number for line prices) -> Decimal; "" / None -> 0."""
    return amount(value, WooPayloadError)


def parse_gmt(value: Any) -> datetime:
    """A ``*_gmt`` field ("2026-11-25T10:00:00", no zone: it is UTC) -> aware UTC datetime."""
    if not isinstance(value, str) or not value:
        raise WooPayloadError(f"missing or bad timestamp: {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise WooPayloadError(f"bad timestamp: {value!r}") from exc
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def format_gmt(when: datetime) -> str:
    """Aware datetime -> the REST API's GMT form ("2026-11-25T10:00:00"); naive means UTC."""
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.replace(tzinfo=None, microsecond=0).isoformat()


def order_id_of(payload: Mapping[str, Any]) -> str:
    raw = payload.get("id")
    if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).isdigit():
        raise WooPayloadError(f"order has no usable id: {raw!r}")
    return str(int(raw))


def _number(raw: Any) -> str:
    """The store's order number without '#'; refused when longer than the ledger keeps."""
    return limited(_s(raw).removeprefix("#"), MAX_NUMBER, "order number", WooPayloadError)


# --- orders ----------------------------------------------------------------------------------

def _address(part: Mapping[str, Any], phone: str) -> Address:
    name = " ".join(p for p in (_s(part.get("first_name")).strip(), _s(part.get("last_name")).strip()) if p)
    return Address(name=name, address1=_s(part.get("address_1")), address2=_s(part.get("address_2")),
                   city=_s(part.get("city")), region=_s(part.get("state")),
                   postal_code=_s(part.get("postcode")), country=_s(part.get("country")),
                   phone=phone, company=_s(part.get("company")))


def address_from_rest(payload: Mapping[str, Any]) -> Address | None:
    """The shipping address, or the billing one when shipping is empty (no ``address_1``):
    WooCommerce leaves shipping blank when the customer ships to the billing address."""
    shipping = payload.get("shipping") or {}
    billing = payload.get("billing") or {}
    phone = _s(shipping.get("phone")) or _s(billing.get("phone"))
    if _s(shipping.get("address_1")).strip():
        return _address(shipping, phone)
    if _s(billing.get("address_1")).strip():
        return _address(billing, phone)
    return None


def lines_from_rest(items: Iterable[Mapping[str, Any]] | None) -> tuple[Line, ...]:
    lines = []
    for item in items or ():
        try:
            qty = int(item.get("quantity") or 0)
        except (TypeError, ValueError) as exc:
            raise WooPayloadError(f"line item {item.get('id')}: bad quantity "
                                  f"{item.get('quantity')!r}") from exc
        if qty <= 0:
            continue
        if item.get("id") in (None, ""):
            raise WooPayloadError("line item has no id")
        line_id = _s(item["id"]).strip()
        if not line_id or len(line_id) > 64:
            raise WooPayloadError(f"line item has no usable id: {line_id[:64]!r}")
        lines.append(Line(line_id=line_id, sku=_s(item.get("sku")).strip(), quantity=qty,
                          title=_s(item.get("name")), unit_price=money(item.get("price"))))
    return tuple(lines)


def order_from_rest(payload: Mapping[str, Any], *, tag_meta_keys: Iterable[str] = (),
                    note_keywords: Iterable[str] = ()) -> Order:
    """A REST v3 order (an API answer or a webhook body) -> Order.

    ``lines`` are the quantities as ordered: refunds are not subtracted here (see ``apply_refunds``)."""
    if not isinstance(payload, Mapping):
        raise WooPayloadError("order payload is not a JSON object")
    order_id = order_id_of(payload)
    status = _s(payload.get("status")).lower()
    shipping = payload.get("shipping_lines") or []
    modified = payload.get("date_modified_gmt")
    refunds = payload.get("refunds")
    return Order(
        platform_order_id=order_id,
        number=_number(payload.get("number") or order_id),
        created_at=parse_gmt(payload.get("date_created_gmt")),
        financial_status=status.upper(),
        lines=lines_from_rest(payload.get("line_items")),
        address=address_from_rest(payload),
        cancelled=status in CANCELLED,
        fulfilled=status == "completed",
        shipping_title=_s(shipping[0].get("method_title")) if shipping else "",
        email=_s((payload.get("billing") or {}).get("email")),
        tags=tags_from_rest(payload, tag_meta_keys=tag_meta_keys, note_keywords=note_keywords),
        currency=_s(payload.get("currency")),
        total=money(payload.get("total")),
        updated_at=parse_gmt(modified) if modified else None,
        refunds=len(refunds) if isinstance(refunds, list) else 0,
    )


# --- tags --------------------------------------------------------------------------------------

def _meta_tags(value: Any) -> list[str]:
    """One meta value -> tags: "no-fba, BLOCK_AMZL", a JSON list of strings, or a string holding
    one ('["no-fba"]', as a plugin that json_encodes its value stores it); anything else: none."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                value = text.split(",")
        else:
            value = text.split(",")
    if not isinstance(value, list):
        return []
    return [v.strip() for v in value if isinstance(v, str) and v.strip()]


def _keyword_in(keyword: str, note: str) -> bool:
    # A whole word: not part of a longer word, where '-' and '_' join words ("no-fba", "on_hold").
    return re.search(rf"(?<![\w-]){re.escape(keyword)}(?![\w-])", note, re.IGNORECASE) is not None


def tags_from_rest(payload: Mapping[str, Any], *, tag_meta_keys: Iterable[str] = (),
                   note_keywords: Iterable[str] = ()) -> tuple[str, ...]:
    """The order's tags: values of its ``meta_data`` entries whose key is in ``tag_meta_keys``,
    then each of ``note_keywords`` (as configured) found as a whole word, in any case, in its
    ``customer_note``. First spelling kept, repeats (in any case) dropped. Meta entries that are
    not objects, and a ``meta_data`` that is not a list, are skipped."""
    keys = set(tag_meta_keys)
    found: list[str] = []
    meta = payload.get("meta_data")
    if keys and isinstance(meta, list):
        for entry in meta:
            if isinstance(entry, Mapping) and entry.get("key") in keys:
                found += _meta_tags(entry.get("value"))
    note = payload.get("customer_note")
    if isinstance(note, str) and note:
        found += [k.strip() for k in note_keywords if k.strip() and _keyword_in(k.strip(), note)]
    seen: set[str] = set()
    tags = []
    for tag in found:
        if tag.lower() not in seen:
            seen.add(tag.lower())
            tags.append(tag)
    return tuple(tags)


# --- refunds -----------------------------------------------------------------------------------

def refunded_quantities(refunds: Any) -> dict[str, int]:
    """The answer of ``GET orders/<id>/refunds`` (all pages) -> {order line item id: units refunded}.

    Each refund line's ``quantity`` is negative (-1 for one unit); a refund of money only has 0 and
    counts nothing. Raises WooPayloadError when the answer is not a list, or a refund line with a
    quantity has a bad quantity or does not say which line it refunds: shipping those units is
    not a guess to make."""
    if not isinstance(refunds, list):
        raise WooPayloadError("order refunds answer is not a list")
    out: dict[str, int] = {}
    for refund in refunds:
        if not isinstance(refund, Mapping) or not isinstance(refund.get("line_items"), list):
            continue
        for item in refund["line_items"]:
            if not isinstance(item, Mapping):
                continue
            try:
                qty = abs(int(item.get("quantity") or 0))
            except (TypeError, ValueError) as exc:
                raise WooPayloadError(f"refund {refund.get('id')}: bad quantity "
                                      f"{item.get('quantity')!r}") from exc
            if qty == 0:
                continue
            line_id = _refunded_item_id(item.get("meta_data"))
            if line_id is None:
                raise WooPayloadError(f"refund {refund.get('id')}: line {item.get('id')} does not say which "
                                      "order line it refunds (no _refunded_item_id)")
            out[line_id] = out.get(line_id, 0) + qty
    return out


def _refunded_item_id(meta: Any) -> str | None:
    for entry in meta if isinstance(meta, list) else ():
        if isinstance(entry, Mapping) and entry.get("key") == "_refunded_item_id":
            raw = entry.get("value")
            if not isinstance(raw, bool) and isinstance(raw, int | str) and str(raw).strip().isdigit():
                return str(int(raw))
    return None


def apply_refunds(order: Order, refunded: Mapping[str, int]) -> Order:
    """The order with each line lowered by its refunded units; a line with none left is dropped."""
    lines = []
    for line in order.lines:
        left = line.quantity - refunded.get(line.line_id, 0)
        if left > 0:
            lines.append(line if left == line.quantity else replace(line, quantity=left))
    return replace(order, lines=tuple(lines))


def orders_params(updated_since: datetime, page: int) -> dict[str, str]:
    """Query of ``GET /orders`` for the poller: every status but trash (ingest decides what a
    status means), modified after the time in GMT, by id (a stable order), full pages."""
    return {"status": "any", "modified_after": format_gmt(updated_since), "dates_are_gmt": "true",
            "orderby": "id", "order": "asc", "per_page": str(PAGE_SIZE), "page": str(page)}


_OUR_PATH = re.compile(r"/webhooks/woocommerce/([^/?#]+)/?$")
WANTED_TOPICS = ("order.created", "order.updated")
_WHERE = "WooCommerce > Settings > Advanced > Webhooks"


def status_completed_over(notes: Any) -> str:
    """The status our ``completed`` overwrote, when that was one an order must keep (cancelled,
    refunded, failed): read from the newest system note of a change to Completed, else ""."""
    for note in notes if isinstance(notes, list) else ():
        found = _COMPLETED_FROM.match(_s(note.get("note")).strip()) if isinstance(note, Mapping) else None
        if found:
            return _NOT_TO_COMPLETE.get(found.group(1).strip().lower(), "")
    return ""


def webhook_warnings(hooks: Iterable[Mapping[str, Any]], store: str) -> list[str]:
    """What is wrong with the webhooks that deliver to autofulfill (``.../webhooks/woocommerce/<store>``)
    for ``store``, one message each; other integrations' webhooks are not judged. A store needs an
    active v3 webhook for each of order.created and order.updated, delivering to its own URL and
    signed with its webhook_secret (that last one is proven by ``check --live --webhook-test``:
    WooCommerce never shows a secret). WooCommerce disables a webhook after repeated delivery
    failures and never retries a delivery: until fixed, only the poll finds orders, later."""
    out: list[str] = []
    working: set[str] = set()
    for hook in hooks:
        url = _s(hook.get("delivery_url"))
        found = _OUR_PATH.search(urlsplit(url).path) if url else None
        if found is None:
            continue
        topic, status, api = _s(hook.get("topic")), _s(hook.get("status")), _s(hook.get("api_version"))
        label = f"webhook {hook.get('id')} ({_s(hook.get('name'))!r}, topic {topic or '?'})"
        if found.group(1) != store:
            out.append(f"{label} delivers to {url}: that is autofulfill's address for a store named "
                       f"{found.group(1)!r}, not {store!r}; use .../webhooks/woocommerce/{store}")
            continue
        problems = []
        if status != "active":
            problems.append(f"is {status or 'not active'}: WooCommerce delivers nothing through it; set it "
                            f"Active under {_WHERE}")
        if topic not in WANTED_TOPICS:
            problems.append(f"has a topic autofulfill does not act on; use {' and '.join(WANTED_TOPICS)}")
        if api and api != "wp_api_v3":
            problems.append(f"uses API version {api}; choose \"WP REST API Integration v3\" (other "
                            "bodies are not understood)")
        out += [f"{label} {p}" for p in problems]
        if not problems:
            working.add(topic)
    for topic in WANTED_TOPICS:
        if topic not in working:
            out.append(f"no active v3 webhook for {topic} delivers to .../webhooks/woocommerce/{store}: add "
                       f"one under {_WHERE} with this store's webhook_secret (until then only the poll finds "
                       "orders, later)")
    return out


# --- carriers and tracking -------------------------------------------------------------------

def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", (name or "").lower())


# key -> (name shown to people, provider name in both tracking extensions' lists or None, link).
# Only carriers every version of both lists carries get a provider name; for the others
# (DHL's US entry comes and goes, Amazon is in neither) a custom provider with our own link is
# what reliably shows the customer a working link. The extensions match names by slug, so
# "Fedex" (their spelling) and "FedEx" are the same provider.
_CARRIERS: dict[str, tuple[str, str | None, str]] = {
    "ups": ("UPS", "UPS", "https://www.ups.com/track?tracknum={n}"),
    "usps": ("USPS", "USPS", "https://tools.usps.com/go/TrackConfirmAction?tLabels={n}"),
    "fedex": ("FedEx", "Fedex", "https://www.fedex.com/fedextrack/?trknbr={n}"),
    "dhl": ("DHL", None, "https://www.dhl.com/global-en/home/tracking.html?tracking-id={n}"),
    "amazon": ("Amazon Logistics", None, "https://track.amazon.com/tracking/{n}"),
}
_ALIASES = {"dhlexpress": "dhl", "dhlecommerce": "dhl", "fedexground": "fedex", "unitedparcelservice": "ups",
            "amazonlogistics": "amazon", "amzl": "amazon"}


def _carrier(carrier: str) -> tuple[str, str | None, str] | None:
    key = _key(carrier)
    if key.startswith("amzn"):  # MCF's Amazon Logistics codes: AMZN_US, AMZN_UK, ...
        key = "amazon"
    return _CARRIERS.get(_ALIASES.get(key, key))


def tracking_provider(carrier: str) -> str | None:
    """A carrier code or name -> the provider name the Shipment Tracking extensions list; None when
    the tracking item should use a custom provider and link instead."""
    known = _carrier(carrier)
    return known[1] if known else None


def carrier_name(carrier: str) -> str:
    """The carrier as a person reads it: "UPS", "FedEx", "Amazon Logistics", else the raw code."""
    known = _carrier(carrier)
    return known[0] if known else (carrier or "").strip() or "the carrier"


def tracking_link(tracking: Tracking) -> str:
    """The package's own link when the fulfiller gave one, else the carrier's page; "" if unknown."""
    if tracking.url:
        return tracking.url
    known = _carrier(tracking.carrier)
    return known[2].format(n=quote(tracking.number.strip(), safe="")) if known else ""


def note_text(tracking: Sequence[Tracking]) -> str:
    """The customer note written when no tracking extension is installed: carrier, number, link."""
    if not tracking:
        raise WooPayloadError("no tracking number to write")
    parts = []
    for t in tracking:
        link = tracking_link(t)
        parts.append(f"{carrier_name(t.carrier)} tracking number {t.number.strip()}"
                     + (f": {link}" if link else ""))
    head = "Your order has shipped." if len(parts) == 1 else f"Your order has shipped in {len(parts)} parts."
    return "\n".join([head, *parts])


def tracking_item(tracking: Tracking, *, ast: bool) -> dict[str, Any]:
    """POST body of one tracking item. Advanced Shipment Tracking is told ``status_shipped: 0``:
    it must not change the order status itself; we complete the order after the tracking is in."""
    body: dict[str, Any] = {"tracking_number": tracking.number.strip()}
    provider = tracking_provider(tracking.carrier)
    if provider is not None:
        body["tracking_provider"] = provider
    else:
        body["custom_tracking_provider"] = carrier_name(tracking.carrier)
        body["custom_tracking_link"] = tracking_link(tracking)
    if ast:
        body["status_shipped"] = 0
    return body


def normalise_number(number: str) -> str:
    return re.sub(r"\s+", "", number or "").upper()


def numbers_in_trackings(items: Any) -> dict[str, str]:
    """Existing tracking items -> {normalised number: tracking_id}."""
    if not isinstance(items, list):
        raise WooPayloadError("shipment-trackings answer is not a list")
    out: dict[str, str] = {}
    for item in items:
        if isinstance(item, Mapping) and item.get("tracking_number"):
            out.setdefault(normalise_number(_s(item["tracking_number"])), _s(item.get("tracking_id")))
    return out


def numbers_in_notes(notes: Any, numbers: Iterable[str]) -> dict[str, str]:
    """Which of ``numbers`` an order note already mentions -> {normalised number: note id}."""
    if not isinstance(notes, list):
        raise WooPayloadError("order notes answer is not a list")
    texts = [(normalise_number(_s(n.get("note"))), _s(n.get("id"))) for n in notes if isinstance(n, Mapping)]
    out: dict[str, str] = {}
    for number in numbers:
        wanted = normalise_number(number)
        for text, note_id in texts:
            if wanted and wanted in text:
                out[wanted] = note_id
                break
    return out
