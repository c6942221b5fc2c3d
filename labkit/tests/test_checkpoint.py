"""labkit.checkpoint: log sizes stored in a checkpoint and the rewind on resume."""

import pytest

from labkit.checkpoint import load_checkpoint, log_sizes, replace_checkpoint, rewind_logs
from labkit.errors import LabkitError


def test_rewind_logs_cuts_lines_written_after_the_checkpoint(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"i": 0}\n')
    sizes = log_sizes(tmp_path, ["a.jsonl", "b.jsonl"])
    assert sizes == {"a.jsonl": 9, "b.jsonl": 0}
    (tmp_path / "a.jsonl").write_text('{"i": 0}\n{"i": 1}\n')
    (tmp_path / "b.jsonl").write_text('{"j": 0}\n')
    rewind_logs(tmp_path, sizes)
    assert (tmp_path / "a.jsonl").read_text() == '{"i": 0}\n'
    assert (tmp_path / "b.jsonl").read_text() == ""


def test_rewind_logs_refuses_a_log_shorter_than_recorded(tmp_path):
    (tmp_path / "a.jsonl").write_text("x\n")
    with pytest.raises(LabkitError, match="shorter"):
        rewind_logs(tmp_path, {"a.jsonl": 10})


def test_replace_checkpoint_keeps_only_the_newest_matching_file(tmp_path):
    other = tmp_path / "policy.pt"
    other.write_bytes(b"kept")
    replace_checkpoint(tmp_path / "state_1.pt", {"step": 1}, "state_*.pt")
    path = replace_checkpoint(tmp_path / "state_2.pt", {"step": 2}, "state_*.pt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.pt", "state_2.pt"]
    assert load_checkpoint(path) == {"step": 2} and other.read_bytes() == b"kept"
