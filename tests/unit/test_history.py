"""Reading history records: the sale id field, records written before its rename, the columnar twin."""

from __future__ import annotations

import math
import random
from pathlib import Path

import msgspec
import pytest

from oversold.errors import BadInput
from oversold.model import history, history_cols
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
               latency_ms=rnd.choice([None, 1.25, 3.0])) for i in range(n)]


def _json_only(path: Path) -> list[Op]:
    return list(iter_history(path))


def _same(a: list[Op], b: list[Op]) -> bool:
    """Equal record by record, and by type too (1 == 1.0 == True, but a counterexample prints them apart)."""
    return [repr(o) for o in a] == [repr(o) for o in b]


@pytest.fixture
def json_reads(monkeypatch) -> list[Path]:
    """Every time read_history falls back to the JSON lines, the path it read."""
    seen: list[Path] = []
    real = history.iter_history

    def spy(path):
        seen.append(Path(path))
        return real(path)

    monkeypatch.setattr(history, "iter_history", spy)
    return seen


def test_a_history_is_written_with_its_twin_and_read_from_it_as_the_json_lines_read(tmp_path, json_reads):
    ops = _ops(300)
    path = tmp_path / "history.jsonl"
    write_history(path, ops)
    assert cols_path(path) == tmp_path / "history.cols" and read_frames(path) is not None
    want = _json_only(path)
    assert sorted(want, key=lambda o: o.op_id) == sorted(ops, key=lambda o: o.op_id)
    assert _same(read_history(path), want)
    assert json_reads == []  # the twin alone gave them


def test_without_its_twin_the_history_is_the_same_json_lines_and_no_twin(tmp_path):
    ops = sorted(_ops(100), key=history_order)
    both, alone = tmp_path / "both.jsonl", tmp_path / "alone.jsonl"
    assert history.write_history_stream(both, ops) == history.write_history_stream(alone, ops, with_twin=False) == 100
    assert alone.read_bytes() == both.read_bytes() and cols_path(both).exists() and not cols_path(alone).exists()


def test_a_frame_per_batch_and_the_records_in_order_across_frames(tmp_path, monkeypatch, json_reads):
    monkeypatch.setattr(history, "FRAME_RECORDS", 7)
    ops = sorted(_ops(50), key=history_order)
    path = tmp_path / "history.jsonl"
    write_history(path, ops)
    frames, records = read_frames(path)
    assert len(list(frames)) == 8 and records == 50
    assert _same(read_history(path), _json_only(path)) and _same(read_history(path), ops)
    assert json_reads == []


@pytest.mark.parametrize("damage", ["edit", "truncate", "append", "replace"])
def test_a_history_changed_after_it_was_written_is_read_from_its_json_lines(tmp_path, damage, json_reads):
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
    assert _same(read_history(path), _json_only(path)) and json_reads == [path]


@pytest.mark.parametrize("damage", ["cut", "flip", "trailer", "empty", "gone"])
def test_a_damaged_twin_is_left_for_the_json_lines(tmp_path, damage, json_reads):
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
    elif damage == "empty":
        twin.write_bytes(b"")
    else:
        twin.unlink()
    assert _same(read_history(path), _json_only(path)) and json_reads == [path]


@pytest.mark.parametrize("odd", [{"latency_ms": math.nan}, {"time": math.inf}, {"user_id": ["a"]}, {"qty": 1 << 70},
                                 {"time": 100}, {"latency_ms": 3}])
def test_a_record_the_twin_cannot_hold_as_json_reads_it_keeps_the_twin_from_being_written(tmp_path, odd):
    ops = _ops(20)
    ops[7] = msgspec.structs.replace(ops[7], **odd)
    path = tmp_path / "history.jsonl"
    write_history(path, ops)
    assert not cols_path(path).exists() and not list(tmp_path.glob(".*.tmp"))
    assert _same(read_history(path), _json_only(path))


@pytest.mark.parametrize("odd", [{"qty": "2"}, {"kind": 7}, {"qty": True}, {"status": 201.0}, {"order_id": 5}])
def test_a_record_of_another_type_fails_the_twins_typed_read_and_the_json_lines_are_read(tmp_path, odd, json_reads):
    ops = _ops(20)
    ops[7] = msgspec.structs.replace(ops[7], **odd)
    path = tmp_path / "history.jsonl"
    write_history(path, ops)
    assert _same(read_history(path), _json_only(path)) and json_reads[0] == path


def test_rewriting_a_history_the_twin_cannot_hold_removes_its_old_twin(tmp_path):
    path = tmp_path / "history.jsonl"
    write_history(path, _ops(20))
    assert cols_path(path).exists()
    ops = _ops(20, seed=9)
    ops[3] = msgspec.structs.replace(ops[3], latency_ms=math.nan)
    write_history(path, ops)
    assert not cols_path(path).exists()
    assert _same(read_history(path), _json_only(path))


def test_a_twin_is_made_for_a_history_written_without_one(tmp_path, json_reads):
    path = tmp_path / "history.jsonl"
    ops = sorted(_ops(30), key=history_order)
    path.write_bytes(b"".join(msgspec.json.encode(o) + b"\n" for o in ops))
    assert read_frames(path) is None
    assert write_twin(path) and read_frames(path) is not None
    json_reads.clear()
    assert _same(read_history(path), ops) and json_reads == []


def test_no_twin_is_made_for_a_history_whose_json_lines_read_other_types(tmp_path):
    # a legacy line sends its chunk through the checking reader, which keeps an int time an int
    path = tmp_path / "history.jsonl"
    lines = [msgspec.json.encode(o) for o in sorted(_ops(10), key=history_order)]
    lines[2] = (b'{"type":"invoke","op_id":"x","time":1,"process":"p","user_id":"u","kind":"buyer","op":"order",'
                b'"sku":"s"}')
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert not write_twin(path) and not cols_path(path).exists()
    assert type(read_history(path)[2].time) is int


def test_a_history_named_like_a_twin_keeps_its_twin_apart(tmp_path):
    path = tmp_path / "run.cols"
    write_history(path, _ops(10))
    assert cols_path(path) == tmp_path / "run.cols.cols"
    assert _same(read_history(path), _json_only(path))


def test_a_twin_that_cannot_be_written_leaves_the_history_written(tmp_path, monkeypatch):
    def full(self, payload, records):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(history_cols.ColsWriter, "add_frame", full)
    path = tmp_path / "history.jsonl"
    ops = _ops(30)
    assert write_history(path, ops) == 30
    assert not cols_path(path).exists() and not list(tmp_path.glob(".*.tmp"))
    assert sorted(read_history(path), key=lambda o: o.op_id) == sorted(ops, key=lambda o: o.op_id)
