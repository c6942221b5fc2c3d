"""The rehearsal profile (size caps, rehearsing only) and the REHEARSAL stamp on figures and tables."""

from __future__ import annotations

import pytest
from matplotlib.figure import Figure

from labkit.config import apply_overrides
from labkit.errors import ConfigError
from labkit.rehearsal import ENV, PROFILE_FILE, applied_profile, with_profile
from labkit.rundir import RunDir
from labkit.stamp import rehearsed, save_figure, stamp_table, stamped

CONFIG = {"train": {"steps": 12000}, "eval": {"n": 872, "layers": [8, 9]}, "device": "cuda"}


@pytest.fixture
def configs(tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    (folder / "paper.yaml").write_text("train: {steps: 12000}\n", encoding="utf-8")
    (folder / PROFILE_FILE).write_text(
        "paper.yaml:\n  train.steps: 4\n  eval.n: 8\n  eval.layers: [9]\nother.yaml: {}\n",
        encoding="utf-8",
    )
    return folder


def test_the_profile_caps_only_a_rehearsal_and_user_overrides_win(configs, monkeypatch, capsys):
    paper = configs / "paper.yaml"
    assert with_profile(paper, ["device=cpu"]) == ["device=cpu"]  # switch off: nothing changes
    assert applied_profile() == {} and capsys.readouterr().err == ""
    monkeypatch.setenv(ENV, "1")
    overrides = with_profile(paper, ["device=cpu", "eval.n=2"])
    cfg = apply_overrides(CONFIG, overrides)
    assert cfg == {"train": {"steps": 4}, "eval": {"n": 2, "layers": [9]}, "device": "cpu"}
    assert "rehearsal profile for" in capsys.readouterr().err  # printed at start
    assert applied_profile() == {str(paper): ["train.steps=4", "eval.n=8", "eval.layers=[9]"]}
    # a config with no section (or no profile file beside it) runs uncapped, and says so
    assert with_profile(configs / "local.yaml") == []
    assert "none" in capsys.readouterr().err


def test_run_records_keep_the_caps_of_a_rehearsal(configs, tmp_path, monkeypatch):
    real = RunDir.create(tmp_path / "real", CONFIG, phase="p")
    assert real.record["rehearsal_profile"] == {}
    monkeypatch.setenv(ENV, "1")
    cfg = apply_overrides(CONFIG, with_profile(configs / "paper.yaml"))
    record = RunDir.create(tmp_path / "rehearsed", cfg, phase="p").record
    assert record["rehearsal"] is True
    assert record["rehearsal_profile"][str(configs / "paper.yaml")][0] == "train.steps=4"


def test_a_malformed_profile_section_is_bad_input(configs, monkeypatch):
    monkeypatch.setenv(ENV, "1")
    (configs / PROFILE_FILE).write_text("paper.yaml: [train.steps=4]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="must map dotted config keys"):
        with_profile(configs / "paper.yaml")


def _figure() -> Figure:
    fig = Figure(figsize=(2, 2))
    fig.subplots().plot([0, 1], [1, 0])
    return fig


@pytest.mark.parametrize("rehearsal", [True, False])
def test_figures_and_tables_of_a_rehearsal_run_and_only_those_are_stamped(
    tmp_path, monkeypatch, rehearsal
):
    monkeypatch.setenv(ENV, "1" if rehearsal else "0")
    run = RunDir.create(tmp_path / "run", CONFIG, phase="p")
    assert rehearsed(run.path) is rehearsal
    png = save_figure(_figure(), run.path / "fig.png", rehearsal=rehearsed(run.path))
    assert stamped(png) is rehearsal
    for fmt, table in (
        ("md", "| a |\n|---|\n| 1 |\n"),
        ("tex", "\\begin{tabular}{l}\n"),
        ("csv", "a\n1\n"),
    ):
        path = run.path / f"table.{fmt}"
        path.write_text(stamp_table(table, fmt, rehearsal=rehearsed(run.path)), encoding="utf-8")
        assert stamped(path) is rehearsal
        assert path.read_text(encoding="utf-8").endswith(table)
    with pytest.raises(ConfigError, match="table format"):
        stamp_table("x", "html", rehearsal=True)


def test_a_stamped_figure_is_the_same_bytes_twice(tmp_path):
    a = save_figure(_figure(), tmp_path / "a.png", rehearsal=True).read_bytes()
    assert a == save_figure(_figure(), tmp_path / "b.png", rehearsal=True).read_bytes()
    assert a != save_figure(_figure(), tmp_path / "c.png", rehearsal=False).read_bytes()
