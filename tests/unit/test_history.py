"""Reading history records: the sale id field, and records written before its rename."""

from __future__ import annotations

import pytest

from oversold.errors import BadInput
from oversold.model.history import Op

RECORD = {"type": "invoke", "op_id": "1", "time": 0.5, "process": "p", "user_id": "u",
          "kind": "buyer", "op": "order", "qty": 1}


def test_a_record_carries_its_sale_id():
    op = Op.from_dict({**RECORD, "sale_id": "moutai"})
    assert op.sale_id == "moutai" and op.to_dict()["sale_id"] == "moutai"


def test_a_record_written_with_the_old_sku_key_still_reads():
    assert Op.from_dict({**RECORD, "sku": "moutai"}).sale_id == "moutai"


def test_a_record_without_any_sale_id_is_refused_by_name():
    with pytest.raises(BadInput, match="sale_id"):
        Op.from_dict(RECORD, where="history.jsonl:3")
