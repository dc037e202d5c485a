"""`retry` works from the store's order as it is now: the address fixed there is the one shipped to."""

from __future__ import annotations

from tests.integration.races.conftest import MakeRig
from worker.service.operations import retry_order


def test_retry_after_fixing_the_address_buys_the_label_for_the_new_address(make_rig: MakeRig) -> None:
    rig = make_rig()
    order = rig.shop.add_order([("POSTER", 1)], address={"address1": "1 Wrong Way"})
    oid, number = order["id"], order["name"].lstrip("#")
    rig.easypost.fail_next("/buy", 422)  # the carrier refuses the address at purchase
    assert rig.deliver("demo", "orders/paid", oid) == 200
    rig.drain()
    (parked,) = rig.shipments("demo", oid)
    assert parked.state == "attention" and parked.label.get("shipment_id")  # the old quote is recorded
    rig.shop.set_address(oid, address1="22 Right Road")  # the merchant fixes it in the store...
    rig.clock.advance(300)
    said = retry_order(rig.app, "demo", number)  # ...and retries (the webhook of the edit was lost)
    assert "label quote dropped for shipment 1" in said
    rig.drain()
    (row,) = rig.shipments("demo", oid)
    assert row.state in ("label_bought", "pushed")
    bought = rig.easypost.shipment(row.label["shipment_id"])
    assert bought is not None and bought["to_address"]["street1"] == "22 Right Road"
    assert row.label["shipment_id"] != parked.label["shipment_id"]
