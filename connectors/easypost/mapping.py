"""EasyPost v2 JSON <-> the domain (Address, Parcel, Rate, Label): pure, no I/O, no clock.

Shipments come in as plain dicts (``EasyPostObject.to_dict()``), shaped like EasyPost's answers:
``rates[]`` with ``id/carrier/service/rate/currency/delivery_days``, ``messages[]`` with carriers'
rating errors, and after a purchase ``selected_rate``, ``postage_label`` and ``tracker``.
Parcels are in inches and ounces, as EasyPost wants them (DESIGN.md §7); so are customs items,
whose ``value`` and ``weight`` are totals of the line (unit × quantity), as EasyPost defines them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Protocol

from connectors.easypost.errors import EasyPostAddressError, NoRateFits
from worker.domain import Address, CustomsInfo, CustomsItem, Label, LabelRequest, Parcel, Rate, Tracking

# EasyPost takes dimensions and weight to one decimal place; we round up so a parcel is never
# declared lighter or smaller than it is (carriers bill the difference afterwards).
_TENTH = Decimal("0.1")
_THOUSANDTH = Decimal("0.001")
_CENT = Decimal("0.01")
_PO_BOX = re.compile(r"\b(p\.?\s*o\.?\s*box|post\s+office\s+box|pobox)\b", re.IGNORECASE)
_FORMAT_URL = {"PDF": "label_pdf_url", "ZPL": "label_zpl_url", "EPL2": "label_epl2_url"}
_FILE_TYPES = {"application/pdf": "PDF", "image/png": "PNG", "application/zpl": "ZPL",
               "application/epl2": "EPL2"}


class AddressLike(Protocol):
    """A sender address, as ``[labels.*].from_address`` gives it."""

    @property
    def name(self) -> str: ...
    @property
    def street1(self) -> str: ...
    @property
    def street2(self) -> str: ...
    @property
    def city(self) -> str: ...
    @property
    def state(self) -> str: ...
    @property
    def zip(self) -> str: ...
    @property
    def country(self) -> str: ...
    @property
    def phone(self) -> str: ...
    @property
    def company(self) -> str: ...


class ParcelLike(Protocol):
    """A parcel in inches and ounces, as ``[labels.*].default_parcel`` gives it."""

    @property
    def length_in(self) -> Decimal: ...
    @property
    def width_in(self) -> Decimal: ...
    @property
    def height_in(self) -> Decimal: ...
    @property
    def weight_oz(self) -> Decimal: ...


# --- requests ----------------------------------------------------------------------------------

def to_easypost_address(address: Address, email: str = "") -> dict[str, str]:
    """An EasyPost Address object (empty fields left out)."""
    fields = {"name": address.name, "company": address.company, "street1": address.address1,
              "street2": address.address2, "city": address.city, "state": address.region,
              "zip": address.postal_code, "country": address.country.upper(), "phone": address.phone,
              "email": email}
    return {k: v.strip() for k, v in fields.items() if v and v.strip()}


def _tenth_up(value: Decimal) -> float:
    return float(Decimal(value).quantize(_TENTH, rounding=ROUND_CEILING))


def parcel_dict(parcel: Parcel) -> dict[str, float]:
    """An EasyPost Parcel: length/width/height in inches, weight in ounces, each rounded *up* to
    one decimal (floats: the SDK sends JSON, which has no Decimal)."""
    return {"length": _tenth_up(parcel.length_in), "width": _tenth_up(parcel.width_in),
            "height": _tenth_up(parcel.height_in), "weight": _tenth_up(parcel.weight_oz)}


def _thousandth_down(value: Decimal) -> float:
    # EasyPost keeps customs weights to 0.001 oz (truncating); rounding down keeps the items'
    # sum within the parcel's weight (carriers refuse contents heavier than the parcel), and
    # 0.001 is the least an item may weigh.
    return float(max(Decimal(value).quantize(_THOUSANDTH, rounding=ROUND_DOWN), _THOUSANDTH))


def customs_item_dict(item: CustomsItem) -> dict[str, Any]:
    """An EasyPost CustomsItem: ``value`` is the line's total in ``currency`` (to the cent),
    ``weight`` the line's total in ounces; an empty HS code or SKU is left out."""
    out: dict[str, Any] = {"description": item.description.strip(), "quantity": item.quantity,
                           "value": float(item.value.quantize(_CENT, rounding=ROUND_HALF_UP)),
                           "currency": item.currency.upper() or "USD",
                           "weight": _thousandth_down(item.weight_oz),
                           "origin_country": item.origin_country.upper()}
    if item.hs_tariff_number:
        out["hs_tariff_number"] = item.hs_tariff_number
    if item.code:
        out["code"] = item.code
    return out


def customs_info_dict(customs: CustomsInfo) -> dict[str, Any]:
    """An EasyPost CustomsInfo, certified electronically by the signer (``customs_certify``)."""
    out: dict[str, Any] = {"customs_certify": True, "customs_signer": customs.signer,
                           "contents_type": customs.contents_type, "eel_pfc": customs.eel_pfc,
                           "non_delivery_option": customs.non_delivery_option,
                           "restriction_type": customs.restriction_type,
                           "customs_items": [customs_item_dict(i) for i in customs.items]}
    if customs.contents_explanation:
        out["contents_explanation"] = customs.contents_explanation
    if customs.restriction_comments:
        out["restriction_comments"] = customs.restriction_comments
    return out


def shipment_params(request: LabelRequest, label_format: str) -> dict[str, Any]:
    """The body of ``POST /shipments`` (the SDK wraps it in ``{"shipment": ...}``), with the
    ``customs_info`` of an international shipment."""
    params: dict[str, Any] = {"to_address": to_easypost_address(request.to_address, request.email),
                              "from_address": to_easypost_address(request.from_address),
                              "parcel": parcel_dict(request.parcel),
                              "reference": request.reference,
                              "options": {"label_format": label_format}}
    if request.customs is not None:
        params["customs_info"] = customs_info_dict(request.customs)
    return params


# --- answers -----------------------------------------------------------------------------------

def _decimal(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)


def _days(raw: Mapping[str, Any]) -> int | None:
    for key in ("delivery_days", "est_delivery_days"):
        value = raw.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return int(value)
    return None


def rate_from_json(raw: Mapping[str, Any]) -> Rate:
    return Rate(rate_id=str(raw.get("id") or ""), carrier=str(raw.get("carrier") or ""),
                service=str(raw.get("service") or ""), amount=_decimal(raw.get("rate")),
                currency=str(raw.get("currency") or "USD"), delivery_days=_days(raw))


def rates_from_shipment(obj: Mapping[str, Any]) -> tuple[Rate, ...]:
    """Every rate the carriers offered for this shipment, in EasyPost's order."""
    return tuple(rate_from_json(r) for r in obj.get("rates") or () if isinstance(r, Mapping) and r.get("id"))


def messages_from_shipment(obj: Mapping[str, Any]) -> tuple[str, ...]:
    """Carriers' rating errors as "Carrier: message" (for the timeline and for park reasons)."""
    out: list[str] = []
    for m in obj.get("messages") or ():
        if isinstance(m, Mapping):
            text = " ".join(str(m.get("message") or "").split())
            line = f"{m.get('carrier') or 'carrier'}: {text}" if text else ""
            if line and line not in out:
                out.append(line)
    return tuple(out)


def label_from_shipment(obj: Mapping[str, Any]) -> Label | None:
    """The bought label, or None when the shipment has no ``postage_label`` yet.

    Tracking is ``tracking_code`` (else the tracker's) with the tracker's ``public_url``; the
    carrier is the selected rate's, as EasyPost names it ("USPS", "UPS", "FedEx", ...)."""
    label = obj.get("postage_label")
    if not isinstance(label, Mapping):
        return None
    rate = rate_from_json(obj.get("selected_rate") or {})
    raw_tracker = obj.get("tracker")
    tracker: Mapping[str, Any] = raw_tracker if isinstance(raw_tracker, Mapping) else {}
    number = str(obj.get("tracking_code") or tracker.get("tracking_code") or "")
    carrier = rate.carrier or str(tracker.get("carrier") or "")
    fmt = _FILE_TYPES.get(str(label.get("label_file_type") or "").lower(), "")
    if not fmt:
        fmt = str((obj.get("options") or {}).get("label_format") or "PNG").upper()
    url = str(label.get(_FORMAT_URL.get(fmt, "label_url")) or label.get("label_url") or "")
    return Label(shipment_id=str(obj.get("id") or ""),
                 tracking=Tracking(carrier=carrier, number=number, url=str(tracker.get("public_url") or "")),
                 rate=rate, label_url=url, label_format=fmt,
                 carrier_status=str(tracker.get("status") or ""))


def refund_status(obj: Mapping[str, Any]) -> str:
    """``submitted`` | ``refunded`` | ``rejected`` | ``not_applicable`` | "" (never asked)."""
    return str(obj.get("refund_status") or "")


# --- address problems --------------------------------------------------------------------------

def is_po_box(address: Address) -> bool:
    return bool(_PO_BOX.search(address.address1) or _PO_BOX.search(address.address2))


def is_international(request: LabelRequest) -> bool:
    frm, to = request.from_address.country.upper(), request.to_address.country.upper()
    return bool(frm and to and frm != to)


def no_rates_error(request: LabelRequest, messages: Sequence[str]) -> EasyPostAddressError | NoRateFits:
    """Why no carrier rated this shipment, said so a person can act on it."""
    where = request.to_address.redacted() or "the destination"
    said = "; ".join(messages) if messages else "no carrier gave a reason"
    hints: list[str] = []
    if is_international(request) and not request.to_address.phone.strip():
        hints.append("add the recipient's phone number: carriers require it for international shipments")
    if is_po_box(request.to_address):
        hints.append("the address is a PO box, which UPS and FedEx do not deliver to: ask the customer "
                     "for a street address or allow USPS in [labels] choose")
    if hints:
        return EasyPostAddressError(f"no carrier can ship {request.reference} to {where}: "
                                    + "; ".join(hints) + f" (carriers said: {said})", code="NO_RATES")
    return NoRateFits(f"no carrier offered a rate for {request.reference} to {where}: {said}",
                      code="NO_RATES")
