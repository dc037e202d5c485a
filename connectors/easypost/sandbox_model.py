"""What the EasyPost sandbox answers, as pure functions: rates per carrier, tracking codes, the
label PDF and EasyPost-shaped JSON objects. Deterministic except for object ids and times."""

from __future__ import annotations

import math
import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

# carrier -> [(service, base amount, per extra pound, delivery days)]; domestic, then international.
DOMESTIC: dict[str, list[tuple[str, str, str, int]]] = {
    "USPS": [("GroundAdvantage", "5.93", "0.55", 3), ("Priority", "8.95", "1.20", 2)],
    "UPS": [("Ground", "9.85", "0.85", 3), ("2ndDayAir", "21.40", "2.10", 2),
            ("NextDayAir", "38.50", "3.40", 1)],
    "FedEx": [("FEDEX_GROUND", "9.85", "0.85", 3), ("FEDEX_2_DAY", "22.10", "2.20", 2),
              ("STANDARD_OVERNIGHT", "41.20", "3.60", 1)],
}
INTERNATIONAL: dict[str, list[tuple[str, str, str, int]]] = {
    "USPS": [("PriorityMailInternational", "44.50", "3.25", 6),
             ("ExpressMailInternational", "62.75", "4.10", 4)],
    "UPS": [("Expedited", "71.30", "5.20", 5), ("UPSSaver", "88.90", "6.10", 3)],
    "FedEx": [("INTERNATIONAL_ECONOMY", "69.80", "5.00", 5), ("INTERNATIONAL_PRIORITY", "91.40", "6.40", 3)],
}
PO_BOX_REFUSERS = {"UPS": "UPS does not deliver to PO Boxes; a street address is required.",
                   "FedEx": "FedEx cannot deliver to a P.O. Box. Please provide a street address."}
PHONE_REQUIRED = "Recipient phone number is required for international shipments."
_PO_BOX = re.compile(r"\b(p\.?\s*o\.?\s*box|post\s+office\s+box|pobox)\b", re.IGNORECASE)
_REQUIRED_ADDRESS = ("street1", "city", "zip", "country")


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def error(code: str, message: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "errors": errors or []}}


def invalid_params(body: Any) -> list[dict[str, Any]]:
    """Field errors of a ``POST /shipments`` body (empty when it can be rated)."""
    shipment = body.get("shipment") if isinstance(body, dict) else None
    if not isinstance(shipment, dict):
        return [{"field": "shipment", "message": "is required", "suggestion": None}]
    out = []
    for side in ("to_address", "from_address"):
        addr = shipment.get(side)
        if not isinstance(addr, dict):
            out.append({"field": side, "message": "is required", "suggestion": None})
            continue
        out += [{"field": f"{side}.{f}", "message": "cannot be blank", "suggestion": None}
                for f in _REQUIRED_ADDRESS if not str(addr.get(f) or "").strip()]
    parcel = shipment.get("parcel")
    weight = parcel.get("weight") if isinstance(parcel, dict) else None
    if not _positive(weight):
        out.append({"field": "parcel.weight", "message": "must be greater than 0", "suggestion": None})
    return out + customs_problems(shipment.get("customs_info"))


CUSTOMS_REQUIRED = ("SHIPMENT.CUSTOMS_INFO.REQUIRED",
                    "Unable to proceed, 'customs_info' is required for international shipments, shipments "
                    "bound for US military bases, or US territories.")
_CHOICES = {"contents_type": ("documents", "gift", "merchandise", "returned_goods", "sample",
                              "dangerous_goods", "humanitarian_donation", "other"),
            "non_delivery_option": ("return", "abandon"),
            "restriction_type": ("none", "other", "quarantine", "sanitary_phytosanitary_inspection")}


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def _text(raw: dict[str, Any], key: str) -> str:
    return str(raw.get(key) or "").strip()


def _problem(field: str, message: str) -> dict[str, Any]:
    return {"field": f"customs_info.{field}", "message": message, "suggestion": None}


def customs_problems(raw: Any) -> list[dict[str, Any]]:
    """Field errors of a shipment's ``customs_info`` (none when absent or empty: EasyPost then
    creates the shipment without one). The rules of EasyPost's CustomsInfo / CustomsItem docs."""
    if raw is None or raw == {}:
        return []
    if not isinstance(raw, dict):
        return [{"field": "customs_info", "message": "must be an object", "suggestion": None}]
    out = [_problem(k, f"must be one of {', '.join(v)}") for k, v in _CHOICES.items()
           if raw.get(k) is not None and raw.get(k) not in v]
    if raw.get("customs_certify") and not _text(raw, "customs_signer"):
        out.append(_problem("customs_signer", "is required when customs_certify is true"))
    if raw.get("contents_type") == "other" and not _text(raw, "contents_explanation"):
        out.append(_problem("contents_explanation", "is required when contents_type is other"))
    if raw.get("restriction_type") not in (None, "none") and not _text(raw, "restriction_comments"):
        out.append(_problem("restriction_comments", "is required when restriction_type is not none"))
    items = raw.get("customs_items")
    if items is None:
        return out
    if not isinstance(items, list):
        return out + [_problem("customs_items", "must be a list")]
    for n, item in enumerate(items):
        at = f"customs_items.{n}"
        if not isinstance(item, dict):
            out.append(_problem(at, "must be an object"))
            continue
        if not _text(item, "description"):
            out.append(_problem(f"{at}.description", "cannot be blank"))
        out += [_problem(f"{at}.{f}", "must be greater than 0") for f in ("quantity", "value", "weight")
                if not _positive(item.get(f))]
        if not re.fullmatch(r"[A-Za-z]{2}", str(item.get("origin_country") or "")):
            out.append(_problem(f"{at}.origin_country", "must be a two-character country code"))
        if item.get("currency") is not None and not re.fullmatch(r"[A-Za-z]{3}", str(item["currency"])):
            out.append(_problem(f"{at}.currency", "must be a three-character currency code"))
    return out


def is_international(shipment: dict[str, Any]) -> bool:
    """To another country than the from_address's (EasyPost then wants customs_info)."""
    countries = {str((shipment.get(side) or {}).get("country") or "").strip().upper()
                 for side in ("to_address", "from_address")}
    return len(countries) == 2


def has_customs(shipment: dict[str, Any]) -> bool:
    """The shipment carries a customs declaration with at least one item."""
    info = shipment.get("customs_info")
    return isinstance(info, dict) and bool(info.get("customs_items"))


def customs_info_json(raw: Any) -> dict[str, Any] | None:
    """The CustomsInfo EasyPost stores with a shipment (None for an absent or empty one)."""
    if not isinstance(raw, dict) or not raw:
        return None
    at = now_iso()
    fields = ("contents_type", "contents_explanation", "customs_certify", "customs_signer", "eel_pfc",
              "non_delivery_option", "restriction_type", "restriction_comments")
    out: dict[str, Any] = {"id": new_id("cstinfo"), "object": "CustomsInfo", "created_at": at,
                           "updated_at": at, "mode": "test", "declaration": None}
    out.update({f: raw.get(f) for f in fields})
    out["customs_certify"] = bool(out["customs_certify"])
    out["non_delivery_option"] = out["non_delivery_option"] or "return"
    item_fields = ("description", "quantity", "value", "weight", "hs_tariff_number", "origin_country",
                   "currency", "code", "manufacturer", "eccn", "printed_commodity_identifier")
    out["customs_items"] = [
        {"id": new_id("cstitem"), "object": "CustomsItem", "created_at": at, "updated_at": at, "mode": "test",
         **{f: item.get(f) for f in item_fields}, "value": str(item.get("value"))}
        for item in raw.get("customs_items") or ()]
    return out


def is_po_box(address: dict[str, Any]) -> bool:
    return any(_PO_BOX.search(str(address.get(k) or "")) for k in ("street1", "street2"))


def rate_shop(shipment_id: str, to: dict[str, Any], frm: dict[str, Any], parcel: dict[str, Any],
              carriers: tuple[str, ...], accounts: dict[str, str]) -> tuple[list[dict[str, Any]],
                                                                            list[dict[str, Any]]]:
    """(rates, messages) as EasyPost's rating would give them for these carriers."""
    international = str(to.get("country", "")).upper() != str(frm.get("country", "")).upper()
    table = INTERNATIONAL if international else DOMESTIC
    pounds = max(1, math.ceil(float(parcel.get("weight") or 0) / 16))
    rates: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for carrier in carriers:
        refusal = ""
        if international and not str(to.get("phone") or "").strip():
            refusal = PHONE_REQUIRED
        elif carrier in PO_BOX_REFUSERS and is_po_box(to):
            refusal = PO_BOX_REFUSERS[carrier]
        if refusal:
            messages.append({"carrier": carrier, "carrier_account_id": accounts[carrier],
                             "type": "rate_error", "message": refusal})
            continue
        for service, base, per_lb, days in table.get(carrier, []):
            amount = Decimal(base) + Decimal(per_lb) * (pounds - 1)
            rates.append(rate_json(shipment_id, carrier, service, amount, days, accounts[carrier]))
    return rates, messages


def rate_json(shipment_id: str, carrier: str, service: str, amount: Decimal, days: int,
              account: str) -> dict[str, Any]:
    at = now_iso()
    retail = (amount * Decimal("1.3")).quantize(Decimal("0.01"))
    return {"id": new_id("rate"), "object": "Rate", "created_at": at, "updated_at": at, "mode": "test",
            "service": service, "carrier": carrier, "rate": f"{amount:.2f}", "currency": "USD",
            "retail_rate": f"{retail:.2f}", "retail_currency": "USD", "list_rate": f"{amount:.2f}",
            "list_currency": "USD", "billing_type": "easypost", "delivery_days": days, "delivery_date": None,
            "delivery_date_guaranteed": False, "est_delivery_days": days, "shipment_id": shipment_id,
            "carrier_account_id": account}


def address_json(raw: dict[str, Any]) -> dict[str, Any]:
    at = now_iso()
    fields = ("name", "company", "street1", "street2", "city", "state", "zip", "country", "phone", "email")
    out: dict[str, Any] = {"id": new_id("adr"), "object": "Address", "created_at": at, "updated_at": at}
    out.update({f: raw.get(f) or None for f in fields})
    out.update({"mode": "test", "carrier_facility": None, "residential": None, "federal_tax_id": None,
                "state_tax_id": None, "verifications": {}})
    return out


def parcel_json(raw: dict[str, Any]) -> dict[str, Any]:
    at = now_iso()
    return {"id": new_id("prcl"), "object": "Parcel", "created_at": at, "updated_at": at,
            "length": raw.get("length"), "width": raw.get("width"), "height": raw.get("height"),
            "predefined_package": None, "weight": raw.get("weight"), "mode": "test"}


def tracking_code(carrier: str, seq: int) -> str:
    """Numbers shaped like each carrier's: USPS 22 digits (94001...), UPS 1Z + 16, FedEx 12 digits."""
    if carrier == "USPS":
        return f"94001{seq:017d}"
    if carrier == "UPS":
        return f"1Z999AA1{seq:010d}"
    if carrier == "FedEx":
        return f"7{seq:011d}"
    return f"EZ{seq:010d}"


def postage_label_json(url: str, label_format: str) -> dict[str, Any]:
    at = now_iso()
    fmt = label_format.upper()
    file_type = {"PDF": "application/pdf", "ZPL": "application/zpl"}.get(fmt, "image/png")
    return {"object": "PostageLabel", "id": new_id("pl"), "created_at": at, "updated_at": at,
            "date_advance": 0, "integrated_form": "none", "label_date": at, "label_resolution": 300,
            "label_size": "4x6", "label_type": "default", "label_file_type": file_type, "label_url": url,
            "label_pdf_url": url if fmt == "PDF" else None, "label_zpl_url": url if fmt == "ZPL" else None,
            "label_epl2_url": None, "label_file": None}


def tracker_json(shipment_id: str, carrier: str, code: str, public_url: str,
                 tracker_id: str) -> dict[str, Any]:
    at = now_iso()
    return {"id": tracker_id, "object": "Tracker", "mode": "test", "tracking_code": code,
            "status": "pre_transit", "status_detail": "label_created", "created_at": at, "updated_at": at,
            "signed_by": None, "weight": None, "est_delivery_date": None, "shipment_id": shipment_id,
            "carrier": carrier, "tracking_details": [], "fees": [], "carrier_detail": None,
            "public_url": public_url}


def label_pdf(lines: list[str]) -> bytes:
    """A small, valid one-page PDF (4x6 in) printing ``lines``."""
    def esc(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
    text = "BT /F1 14 Tf 24 400 Td 18 TL " + " ".join(f"({esc(t)}) '" for t in lines) + " ET"
    stream = text.encode("latin-1", "replace")
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 288 432] /Contents 4 0 R "
               b"/Resources << /Font << /F1 5 0 R >> >> >>",
               b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{n} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
