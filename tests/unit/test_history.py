"""Reading history records: the sale id field, records written before its rename, the columnar twin."""

from __future__ import annotations

import math
import random
from pathlib import Path

import msgspec
import pytest

from oversold.errors import BadInput
from oversold.model import history
from oversold.model.history import Op, history_order, iter_history, read_history, write_history, write_twin
from oversold.model.history_cols import cols_path, read_frames

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


# --------------------------------------------------------------------------- the columnar twin (history.cols)

def _ops(n: int, seed: int = 5) -> list[Op]:
    rnd = random.Random(seed)
    return [Op(rnd.choice(["invoke", "ok", "fail", "info"]), f"p{i}", 100 + i / 7, f"u{i % 9}", f"u{i % 9}",
               rnd.choice(["buyer", "scalper"]), rnd.choice(["order", "pay", "cancel"]), rnd.choice(["s", "t"]),
               rnd.randint(1, 3), order_id=rnd.choice([None, "o1", "o\u00e9\"2"]), key=rnd.choice([None, "k"]),
               status=rnd.choice([None, 201, 409]), code=rnd.choice([None, "sold_out"]),
               latency_ms=rnd.choice([None, 1.25, 3])) for i in range(n)]


def _json_only(path: Path) -> list[Op]:
    return list(iter_history(path))


def test_a_history_is_written_with_its_twin_and_read_from_it_as_the_json_lines_read(tmp_path, monkeypatch):
    ops = _ops(300)
    path = tmp_path / "history.jsonl"
    write_history(path, ops)
    assert cols_path(path).exists() and read_frames(path) is not None
    want = _json_only(path)
    assert sorted(want, key=lambda o: o.op_id) == sorted(ops, key=lambda o: o.op_id)
    # the twin alone gives them: the JSON lines are not read at all
    monkeypatch.setattr(history, "iter_history", lambda p: pytest.fail("read the JSON lines"))
    assert read_history(path) == want


def test_a_frame_per_batch_and_the_records_in_order_across_frames(tmp_path, monkeypatch):
    monkeypatch.setattr(history, "FRAME_RECORDS", 7)
    ops = sorted(_ops(50), key=history_order)
    path = tmp_path / "history.jsonl"
    write_history(path, ops)
    frames, records = read_frames(path)
    assert len(list(frames)) == 8 and records == 50
    assert read_history(path) == _json_only(path)


@pytest.mark.parametrize("damage", ["edit", "truncate", "append", "replace"])
def test_a_history_changed_after_it_was_written_is_read_from_its_json_lines(tmp_path, damage):
    path = tmp_path / "history.jsonl"
    write_history(path, _ops(40))
    text = path.read_bytes()
    if damage == "edit":  # same size, one byte other: only the CRC tells
        i = text.index(b'"qty":') + 6
        path.write_bytes(text[:i] + (b"2" if text[i:i + 1] != b"2" else b"3") + text[i + 1:])
    elif damage == "truncate":
        path.write_bytes(text[: text.rindex(b"\n", 0, len(text) - 1) + 1])
    elif damage == "append":
        path.write_bytes(text + text.splitlines(keepends=True)[0])
    else:
        write_history(tmp_path / "other.jsonl", _ops(40, seed=6))
        (tmp_path / "other.jsonl").replace(path)
    assert read_frames(path) is None
    assert read_history(path) == _json_only(path)


@pytest.mark.parametrize("damage", ["cut", "flip", "trailer", "empty"])
def test_a_damaged_twin_is_left_for_the_json_lines(tmp_path, damage):
    path = tmp_path / "history.jsonl"
    write_history(path, _ops(60))
    twin = cols_path(path)
    data = twin.read_bytes()
    if damage == "cut":
        twin.write_bytes(data[: len(data) // 2])
    elif damage == "flip":  # a key "k" made "j": the frame still decodes, only the frames' CRC-32 tells
        i = data.index(b"\xa1k")
        twin.write_bytes(data[:i] + b"\xa1j" + data[i + 2:])
    elif damage == "trailer":
        twin.write_bytes(data[:-6] + b"\x00" + data[-5:])
    else:
        twin.write_bytes(b"")
    assert read_history(path) == _json_only(path)


@pytest.mark.parametrize("odd", [{"latency_ms": math.nan}, {"time": math.inf}, {"user_id": ["a"]}, {"qty": "2"},
                                 {"kind": 7}, {"qty": 1 << 70}])
def test_a_record_the_twin_cannot_hold_as_json_reads_it_leaves_the_json_lines_alone(tmp_path, odd):
    ops = _ops(20)
    ops[7] = msgspec.structs.replace(ops[7], **odd)
    path = tmp_path / "history.jsonl"
    write_history(path, ops)
    assert read_history(path) == _json_only(path)
    assert not list(tmp_path.glob(".*.tmp"))


def test_rewriting_a_history_the_twin_cannot_hold_removes_its_old_twin(tmp_path):
    path = tmp_path / "history.jsonl"
    write_history(path, _ops(20))
    assert cols_path(path).exists()
    ops = _ops(20, seed=9)
    ops[3] = msgspec.structs.replace(ops[3], latency_ms=math.nan)
    write_history(path, ops)
    assert not cols_path(path).exists()
    assert read_history(path) == _json_only(path)


def test_a_twin_is_made_for_a_history_written_without_one(tmp_path, monkeypatch):
    path = tmp_path / "history.jsonl"
    ops = sorted(_ops(30), key=history_order)
    path.write_bytes(b"".join(msgspec.json.encode(o) + b"\n" for o in ops))
    assert read_frames(path) is None
    assert write_twin(path) and read_frames(path) is not None
    want = _json_only(path)
    monkeypatch.setattr(history, "iter_history", lambda p: pytest.fail("read the JSON lines"))
    assert read_history(path) == want == ops
