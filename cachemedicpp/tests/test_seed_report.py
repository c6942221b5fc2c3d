import json

import pytest

from cachemedicpp.config import PROJECT, load_run_config
from cachemedicpp.seed_report import build_parser, main, write_report
from cachemedicpp.sweep import ablation
from labkit.cli import run_cli


def fake_result(seed, gain):
    """A run's headline with a known contr − no_contr AUC gain."""
    return {
        "seed": seed,
        "task_auc": {
            "wikitext2_ppl": {"cachemedic": 0.5 + gain, "cachemedic_no_contr": 0.5, "no_defense": 0}
        },
        "clean_regression": {"wikitext2_ppl": {"cachemedic": 0.5, "cachemedic_no_contr": 0.7}},
        "sensitivity_at_max_delta": {
            "cachemedic": 1.0,
            "cachemedic_no_contr": 1.0 + gain,
            "baseline": 2.0,
        },
    }


def write_sweep(root, gains):
    """A finished five-seed sweep's two summaries, as cachemedicpp.sweep writes them."""
    results = {}
    for i, gain in enumerate(gains):
        results[f"s{i}_contr"] = fake_result(100 + i, gain)
    runs = [
        {
            "name": name,
            "status": "complete",
            "result": r,
            "wall_s": 60.0,
            "started_utc": f"2026-01-01T00:0{i}:00Z",
            "finished_utc": f"2026-01-01T00:0{i}:59Z",
        }
        for i, (name, r) in enumerate(results.items())
    ]
    summary = {"n_runs": len(runs), "counts": {"complete": len(runs)}, "runs": runs}
    (root / "rep").mkdir(parents=True)
    (root / "rep_summary.json").write_text(json.dumps(summary))
    abl = ablation(results, load_run_config(PROJECT / "configs" / "mve_local.yaml", []))
    (root / "rep" / "ablation_summary.json").write_text(json.dumps(abl))
    return abl


def test_report_tables_the_sweeps_own_paired_claims_and_draws_the_pairs(tmp_path):
    clear = write_sweep(tmp_path / "a", [0.10, 0.11, 0.12, 0.13, 0.14])
    md, png = write_report(tmp_path / "a", "rep", tmp_path / "out")
    text = md.read_text()
    row = next(line for line in text.splitlines() if "AUC gain, wikitext2_ppl" in line)
    assert "+0.1000 / +0.1100 / +0.1200 / +0.1300 / +0.1400" in row
    ci = clear["auc_gain"]["wikitext2_ppl"]["ci"]
    assert f"[{ci['low']:+.4f}, {ci['high']:+.4f}]" in row and row.endswith("| 5 | yes |")
    assert text.count("| 10") == 5  # one per-seed row for each of seeds 100-104
    assert "summed wall time 5.0 min" in text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the same table says "no" when the seeds disagree: the verdict is the sweep's, not assumed
    write_sweep(tmp_path / "b", [-0.1, 0.1, -0.05, 0.06, 0.02])
    md, _ = write_report(tmp_path / "b", "rep", tmp_path / "out_b")
    row = next(line for line in md.read_text().splitlines() if "AUC gain, wikitext2_ppl" in line)
    assert row.endswith("| 5 | no |")


def test_report_of_a_sweep_that_has_not_run_exits_3(tmp_path):
    argv = ["--out_root", str(tmp_path), "--out_dir", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exit_:
        run_cli(build_parser(), main, argv)
    assert exit_.value.code == 3 and not (tmp_path / "out").exists()
