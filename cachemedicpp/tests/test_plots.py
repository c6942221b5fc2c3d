import json

import pytest

from cachemedicpp.config import resolve, schema
from cachemedicpp.eval import eval_run
from cachemedicpp.plots import FIGURES, TABLES, make_plots
from cachemedicpp.stability import stability_run
from cachemedicpp.train import train_run
from labkit.config import validate
from labkit.errors import MissingInputError
from labkit.jsonl import read_jsonl

# Every JSONL file a phase writes, by name, and the schema its lines follow.
JSONL_SCHEMAS = {
    "train.jsonl": "log_record",
    "eval.jsonl": "log_record",
    "train_heartbeat.jsonl": "heartbeat_record",
    "eval_heartbeat.jsonl": "heartbeat_record",
    "stability_heartbeat.jsonl": "heartbeat_record",
}


def run_config(model_dir):
    raw = {
        "seed": 3,
        "threads": 1,
        "model": {"name": str(model_dir)},
        "data": {"dataset": "local:stories@test", "prefix_tokens": 48},
        "corruption": {"axes": {"head_mode": "all", "n_recent": 8}},
        "repair": {"rank": 4, "protect_layers": [0, 1]},
        "loss": {"kd_positions": 16},
        "train": {"steps": 2, "log_every": 1, "checkpoint_every": 2},
        "eval": {
            "tasks": ["wikitext2_ppl", "sst2_prompted"],
            "corruption_eval": ["gaussian", "quant_noise"],
            "eps": [0.0, 0.04, 0.16],
            "use_calibrated_grid": False,
            "wikitext2_ppl": {
                "dataset": "local:stories@test",
                "dataset_config": None,
                "window": 64,
                "stride": 32,
                "max_windows": 2,
            },
            "sst2_prompted": {"dataset": "local:sentiment", "dataset_config": None, "n": 4},
            "bootstrap": {"n_resamples": 100},
        },
        "stability": {
            "prompts": 2,
            "prompt_tokens": 40,
            "delta_norms": [0.0, 1.0],
            "directions": 2,
            "top_k": 20,
        },
    }
    return resolve(raw)


def test_plots_write_the_locked_files_from_saved_metrics(model_dir, tmp_path):
    cfg, run = run_config(model_dir), tmp_path / "run"
    train_run(cfg, run)
    eval_run(cfg, run)
    with pytest.raises(MissingInputError):
        make_plots(run)  # stability has not run
    stability_run(cfg, run)
    paths = make_plots(run)
    assert sorted(p.name for p in paths) == sorted(FIGURES + TABLES)
    for name in FIGURES:
        data = (run / "paper" / "figures" / name).read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000
    index = {
        a["relative_path"]
        for a in json.loads((run / "run_record.json").read_text())["artifact_index"]
    }
    assert {f"paper/figures/{n}" for n in FIGURES} | {f"paper/tables/{n}" for n in TABLES} <= index
    table = (run / "paper" / "tables" / "table_main_results.tex").read_text()
    assert "cachemedic" in table and "gaussian at eps*=0.16" in table
    assert "no paired run" in (run / "paper" / "tables" / "table_ablation_summary.tex").read_text()

    # Every JSONL line train, eval and stability wrote validates; no JSONL file lacks a schema.
    written = sorted(run.rglob("*.jsonl"))
    assert {p.name for p in written} == set(JSONL_SCHEMAS)
    for path in written:
        lines = read_jsonl(path, strict=True).records
        assert lines, path
        for line in lines:
            validate(line, schema(JSONL_SCHEMAS[path.name]), what=str(path))
    cells = read_jsonl(run / "logs" / "eval.jsonl").records
    assert len(cells) == len(
        json.loads((run / "metrics" / "task_metrics.json").read_text())["metrics"]["cells"]
    )
    assert all(c["scores"]["value"] > 0 for c in cells)

    # A calibration that missed its target is labelled a fallback, not eps*.
    metrics_path = run / "metrics" / "task_metrics.json"
    record = json.loads(metrics_path.read_text())
    record["settings"]["calibration"] = {
        "gaussian": {"eps_star": 0.16, "reached": False, "ppl_increase": 0.05}
    }
    metrics_path.write_text(json.dumps(record))
    make_plots(run)
    table = (run / "paper" / "tables" / "table_main_results.tex").read_text()
    assert "FALLBACK eps=0.16" in table and "mathrm{fallback}" in table

    # Saved metrics only: an edited value shows up in the table, no model or checkpoint is needed.
    metrics_path = run / "metrics" / "task_metrics.json"
    record = json.loads(metrics_path.read_text())
    for cell in record["metrics"]["cells"]:
        if cell["task"] == "wikitext2_ppl" and cell["type"] == "clean":
            cell["value"] = 123.456
    metrics_path.write_text(json.dumps(record))
    for ckpt in (run / "checkpoints").iterdir():
        ckpt.unlink()
    make_plots(run)
    assert "123.456" in (run / "paper" / "tables" / "table_main_results.tex").read_text()
