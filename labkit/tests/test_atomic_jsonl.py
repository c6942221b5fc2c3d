import json
import os

import pytest

from labkit.atomic import atomic_write_bytes, atomic_write_json, atomic_write_with
from labkit.jsonl import append_jsonl, read_jsonl


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "f.json"
    atomic_write_json(p, {"a": 1})
    atomic_write_json(p, {"a": 2})
    assert json.loads(p.read_text()) == {"a": 2}
    assert os.listdir(p.parent) == ["f.json"]


def test_failed_write_keeps_old_file(tmp_path):
    p = tmp_path / "f.bin"
    atomic_write_bytes(p, b"old")

    def boom(fh):
        fh.write(b"half")
        raise RuntimeError("crash mid-write")

    with pytest.raises(RuntimeError):
        atomic_write_with(p, boom)
    assert p.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["f.bin"]


def test_strict_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "x.json", {"a": float("nan")})
    assert not (tmp_path / "x.json").exists()


def test_jsonl_torn_tail_is_skipped_and_reported(tmp_path):
    p = tmp_path / "log.jsonl"
    for i in range(3):
        append_jsonl(p, {"step": i})
    with open(p, "ab") as fh:
        fh.write(b'{"step": 3, "lo')
    read = read_jsonl(p)
    assert [r["step"] for r in read.records] == [0, 1, 2]
    assert read.torn_tail and not read.bad_lines


def test_append_after_torn_tail_does_not_fuse(tmp_path):
    p = tmp_path / "log.jsonl"
    append_jsonl(p, {"step": 0})
    with open(p, "ab") as fh:
        fh.write(b'{"step": 1, "lo')
    append_jsonl(p, {"step": 1})
    read = read_jsonl(p)
    assert [r["step"] for r in read.records] == [0, 1]
    assert not read.torn_tail and not read.bad_lines


def test_inner_bad_line_reported_or_strict(tmp_path):
    p = tmp_path / "log.jsonl"
    p.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    read = read_jsonl(p)
    assert [r["a"] for r in read.records] == [1, 2] and read.bad_lines == [2]
    with pytest.raises(ValueError, match="line 2"):
        read_jsonl(p, strict=True)


def test_missing_file_reads_empty(tmp_path):
    assert read_jsonl(tmp_path / "none.jsonl").records == []
