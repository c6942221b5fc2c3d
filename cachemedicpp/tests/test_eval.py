import json
import math
import shutil
from types import SimpleNamespace

import pytest
import torch
import yaml
from torch.nn import functional as F
from transformers import GPT2LMHeadModel

from cachemedicpp.config import resolve, schema
from cachemedicpp.eval import Evaluator, build_parser, eval_run, main
from cachemedicpp.eval_metrics import _ci, subset_values, unit_key
from cachemedicpp.heuristics import Heuristic
from cachemedicpp.intervention import intervene
from cachemedicpp.modeling import load_model
from cachemedicpp.phase_run import require_trained
from cachemedicpp.rescore import prepare_from_run
from cachemedicpp.task_auc import Axis, recovery, task_auc, type_auc
from cachemedicpp.tasks import (
    LABELS,
    _compare,
    clean_reference,
    label_reads,
    ppl_examples,
    score_ppl,
    score_sst2,
    sst2_examples,
)
from cachemedicpp.train import train_run
from labkit.cli import run_cli
from labkit.config import validate
from labkit.control import request_pause
from labkit.errors import ConfigError, MissingInputError, Paused, RunExistsError
from labkit.jsonl import read_jsonl
from labkit.zoo import load_dataset, weights_digest

EVAL = {
    "tasks": ["wikitext2_ppl", "sst2_prompted", "needle_long_context"],
    "corruption_eval": ["gaussian", "dropout_zero"],
    "eps": [0.0, 0.08],
    "use_calibrated_grid": False,
    "wikitext2_ppl": {
        "dataset": "local:stories@test",
        "dataset_config": None,
        "split": "test",
        "window": 64,
        "stride": 32,
        "max_windows": 3,
    },
    "sst2_prompted": {"dataset": "local:sentiment", "dataset_config": None, "n": 6},
    "needle_long_context": {"dataset": "local:needle", "n": 2, "max_tokens": 250},
    "bootstrap": {"n_resamples": 200},
}


def config(model_dir, **eval_over):
    raw = {
        "seed": 7,
        "threads": 1,
        "model": {"name": str(model_dir)},
        "data": {"dataset": "local:stories@test", "prefix_tokens": 48},
        "corruption": {"axes": {"head_mode": "all", "n_recent": 8}},
        "repair": {"rank": 4, "protect_layers": [0, 1]},
        "loss": {"kd_positions": 16},
        "train": {"steps": 2, "log_every": 1, "checkpoint_every": 2, "lr": 0.01},
        "eval": {**EVAL, **eval_over},
    }
    return resolve(raw)


@pytest.fixture(scope="module")
def trained(model_dir, tmp_path_factory):
    run = tmp_path_factory.mktemp("trained") / "run"
    train_run(config(model_dir), run)
    return run


def copy_run(src, dst):
    shutil.copytree(src, dst)
    return dst


def strip_timing(metrics):
    for cell in metrics["cells"]:
        for key in ("tokens_per_s", "throughput_ratio", "peak_memory_mb"):
            cell.pop(key)
    return metrics


def test_ppl_cell_equals_manual_nll(model_dir):
    cfg = config(model_dir)
    model, tok = load_model(cfg)
    examples = ppl_examples(tok, cfg["eval"]["wikitext2_ppl"])
    rows = [score_ppl(model, ex, None, None) for ex in examples]
    ppl = math.exp(sum(r["nll"] for r in rows) / sum(r["n"] for r in rows))
    nll, count = 0.0, 0
    for ex in examples:
        logits = model(ex.ids).logits[0, ex.score_from - 1 : -1]
        nll += F.cross_entropy(logits, ex.ids[0, ex.score_from :], reduction="sum").item()
        count += ex.ids.shape[1] - ex.score_from
    assert ppl == pytest.approx(math.exp(nll / count), rel=1e-6)
    assert all(r["kl"] == pytest.approx(0, abs=1e-6) and r["top1"] == r["n"] for r in rows)


def test_heuristics_touch_only_their_region():
    x = torch.randn(1, 2, 5, 4)
    region = torch.zeros(1, 2, 5, 1, dtype=torch.bool)
    region[:, :, 1:3] = True
    for name in ("reset_clear", "smoothing", "masking_dropout", "clipping_renorm"):
        h = Heuristic(name, None, False, dropout_p=0.5, clip_value=0.5, target_rms=2.0, seed=1)
        for out in h(0, x, x, region):
            assert torch.equal(out[:, :, [0, 3, 4]], x[:, :, [0, 3, 4]]), name
            assert not torch.equal(out[:, :, 1:3], x[:, :, 1:3]), name
        k = h(0, x, x, region)[0]
        assert torch.equal(k, h(0, x, x, region)[0]), name  # seeded: the same read, same result
    h = Heuristic("clipping_renorm", None, False, clip_value=0.5, target_rms=2.0)
    k, _ = h(0, x, x, region)
    rms = k[:, :, 1:3].pow(2).mean(-1).sqrt()
    assert torch.allclose(rms, torch.full_like(rms, 2.0))


def test_bootstrap_confidence_sets_the_interval_level():
    rows = [{"correct": float(i % 3 == 0), "n": 1} for i in range(30)]
    width = {}
    for level in (0.5, 0.95):
        boot = {"n_resamples": 500, "confidence": level}
        ci = _ci(subset_values("sst2_prompted", rows), 30, boot, (0, "t"))
        assert ci["confidence"] == level
        width[level] = ci["high"] - ci["low"]
    # a 50 % interval is narrower than a 95 % one over the same resamples
    assert width[0.5] < width[0.95]


def test_task_auc_is_per_task_on_the_eps_over_eps_star_axis():
    ppl, acc = "wikitext2_ppl", "sst2_prompted"
    # two types whose curves match on x = eps/eps*, with eps* 0.2 and 0.8
    axis = Axis({"a": [0.1, 0.2], "b": [0.4, 0.8]}, {"a": 0.2, "b": 0.8}, calibrated=True)
    values = {(ppl, "clean", 0.0, "no_defense"): 10.0, (ppl, "clean", 0.0, "r"): 10.0}
    values |= {(acc, "clean", 0.0, "no_defense"): 0.9, (acc, "clean", 0.0, "r"): 0.9}
    for kind, (e1, e2) in (("a", (0.1, 0.2)), ("b", (0.4, 0.8))):
        values |= {(ppl, kind, e1, "no_defense"): 12.0, (ppl, kind, e1, "r"): 11.0}
        values |= {(ppl, kind, e2, "no_defense"): 14.0, (ppl, kind, e2, "r"): 11.0}
        values |= {(acc, kind, e1, "no_defense"): 0.7, (acc, kind, e1, "r"): 0.8}
        values |= {(acc, kind, e2, "no_defense"): 0.5, (acc, kind, e2, "r"): 0.8}
    # PPL: recovery 0.5 at x = 0.5 and 0.75 at x = 1: area 0.3125 over a span of 0.5
    assert type_auc(ppl, "a", "r", axis, values.__getitem__) == pytest.approx(0.625)
    # a large eps* does not weigh more: both types give the same AUC, and so does their mean
    assert type_auc(ppl, "b", "r", axis, values.__getitem__) == pytest.approx(0.625)
    assert task_auc(ppl, "r", axis, values.__getitem__) == pytest.approx(0.625)
    assert task_auc(ppl, "no_defense", axis, values.__getitem__) == pytest.approx(0.0)
    # accuracy: 0.9, 0.7, 0.5 at x = 0, 0.5, 1 -> mean height 0.7
    assert task_auc(acc, "no_defense", axis, values.__getitem__) == pytest.approx(0.7)


def test_recovery_definition():
    assert recovery("wikitext2_ppl", none=12.0, defended=11.0, clean=10.0) == pytest.approx(0.5)
    assert recovery("wikitext2_ppl", none=10.05, defended=10.0, clean=10.0) is None
    assert recovery("sst2_prompted", none=0.5, defended=0.7, clean=0.9) == pytest.approx(0.5)


def test_eval_writes_metrics_and_resume_mid_grid_is_identical(model_dir, trained, tmp_path):
    cfg = config(model_dir)
    straight = copy_run(trained, tmp_path / "straight")
    record = eval_run(cfg, straight)
    validate(record, schema("metric_record"))
    cells = record["metrics"]["cells"]
    defenses = {
        "no_defense",
        "reset_clear",
        "smoothing",
        "masking_dropout",
        "clipping_renorm",
        "cachemedic",
    }
    assert {c["defense"] for c in cells} == defenses
    assert len(cells) == 3 * 6 * 3  # 3 tasks x 6 defenses x (clean + 2 types at eps .08)
    clean = [c for c in cells if c["type"] == "clean" and c["defense"] == "no_defense"]
    assert all(c["ci"]["low"] <= c["value"] <= c["ci"]["high"] for c in clean)
    none_reg = record["metrics"]["clean_regression"]["wikitext2_ppl"]["no_defense"]
    assert none_reg == 0
    gate = record["metrics"]["needle_gate"]
    assert gate["passed"] == (gate["clean_accuracy"] >= 0.9)
    assert (gate["passed"]) == ("needle_long_context" in record["metrics"]["aggregated_tasks"])
    m = record["metrics"]
    # per task only: no number averages PPL with accuracies
    assert not {"mean_auc", "mean_score"} & set(m)
    assert set(m["task_auc"]) == set(m["best_heuristic"]) == set(EVAL["tasks"])
    assert m["auc_axis"]["reference"] == "largest eps of the grid"
    for task, best in m["best_heuristic"].items():
        heuristics = ("reset_clear", "smoothing", "masking_dropout", "clipping_renorm")
        scored = {
            h: m["task_auc"][task][h] for h in heuristics if m["task_auc"][task][h] is not None
        }
        fallback = min(heuristics, key=m["clean_regression"][task].get)
        assert best == (max(scored, key=scored.get) if scored else fallback)
    gain = m["auc_gain"]["sst2_prompted"]["cachemedic_vs_no_defense"]
    assert gain["value"] == pytest.approx(
        m["task_auc"]["sst2_prompted"]["cachemedic"] - m["task_auc"]["sst2_prompted"]["no_defense"]
    )
    for name in (
        "metrics/task_metrics.json",
        "metrics/eval_progress.json",
        "logs/eval.jsonl",
        "logs/eval_heartbeat.json",
    ):
        assert (straight / name).is_file(), name
    assert len(read_jsonl(straight / "logs" / "eval.jsonl").records) == len(cells)
    indexed = {
        a["relative_path"]
        for a in json.loads((straight / "run_record.json").read_text())["artifact_index"]
    }
    assert "metrics/task_metrics.json" in indexed

    paused = copy_run(trained, tmp_path / "paused")
    request_pause(paused)
    with pytest.raises(Paused):
        eval_run(cfg, paused, pause_check_s=0)
    progress = json.loads((paused / "metrics" / "eval_progress.json").read_text())
    assert 0 < len(progress["units"]) < len(cells)
    resumed = eval_run(cfg, paused)
    assert strip_timing(resumed["metrics"]) == strip_timing(record["metrics"])
    assert len(read_jsonl(paused / "logs" / "eval.jsonl").records) == len(cells)
    key = unit_key(("wikitext2_ppl", "clean", 0.0, "no_defense"))
    assert key in progress["units"]


def test_cached_clean_references_change_no_row(model_dir, trained):
    model, tok = load_model(config(model_dir))
    units = [
        ("wikitext2_ppl", "gaussian", 0.08, "cachemedic"),
        ("sst2_prompted", "clean", 0.0, "smoothing"),
    ]
    results = {}
    for budget in (1024, 0):
        ev = Evaluator(
            SimpleNamespace(path=trained), config(model_dir, clean_cache_mb=budget), model, tok
        )
        results[budget] = [ev.run_unit(u)["rows"] for u in units for _ in range(2)]
        assert (len(ev._clean) > 0) == (budget > 0)
    assert results[1024] == results[0]
    memory = ev.run_unit(units[0])
    assert memory["peak_memory_mb"] > 0 and memory["peak_memory_scope"] == "process"


def test_eval_refuses_an_untrained_run(model_dir, tmp_path):
    with pytest.raises(MissingInputError):
        eval_run(config(model_dir), tmp_path / "nothing")


def test_eval_refuses_other_weights_than_training_used(model_dir, trained, tmp_path):
    other = tmp_path / "rebuilt"
    shutil.copytree(model_dir, other)
    model = GPT2LMHeadModel.from_pretrained(other)
    with torch.no_grad():
        model.lm_head.weight.add_(0.01)
    model.save_pretrained(other)  # what a zoo rebuild under the same name would do
    before = (trained / "run_record.json").read_bytes()
    with pytest.raises(RunExistsError, match="was trained on weights"):
        eval_run(config(other), trained)
    assert (trained / "run_record.json").read_bytes() == before
    record = json.loads(before)
    assert record["model"]["path"] == str(model_dir)
    assert record["model"]["weights_sha256"] == weights_digest(model_dir)
    own = tmp_path / "own"
    train_run(config(other), own)
    paired = config(other, no_contr_run_dir=str(trained))
    require_trained(config(other), own, load_model(paired)[0])
    with pytest.raises(RunExistsError, match=f"{trained} was trained on weights"):
        require_trained(paired, own, load_model(paired)[0])


def test_filler_needles_fit_their_budget_and_hold_the_answer(model_dir):
    from transformers import AutoTokenizer

    from cachemedicpp.tasks import needle_examples

    tok = AutoTokenizer.from_pretrained(model_dir)
    spec = {"dataset": None, "n": 3, "max_tokens": 120, "depth": 0.35}
    ppl = {
        "dataset": "local:stories@test",
        "dataset_config": None,
        "split": "test",
        "text_field": "text",
    }
    first = needle_examples(tok, spec, 256, ppl)
    again = needle_examples(tok, spec, 256, ppl)
    for ex, ex2 in zip(first, again, strict=True):
        answer = tok(ex.answer).input_ids
        assert ex.ids.shape[1] + len(answer) <= 120
        assert torch.equal(ex.ids, ex2.ids) and ex.answer == ex2.answer  # seeded
        text = ex.ids[0].tolist()
        assert any(text[i : i + len(answer)] == answer for i in range(len(text)))
    assert len({ex.answer for ex in first}) == 3


def test_units_cover_the_grid_once_and_ood_evaluates_the_held_out_type(model_dir):
    from cachemedicpp.eval import eval_types, plan_units

    cfg = config(model_dir)
    grids = {"gaussian": [0.0, 0.08], "dropout_zero": [0.0, 0.08]}
    units = plan_units(cfg, grids, ["no_defense", "cachemedic"])
    assert len(units) == len(set(units)) == 3 * 2 * 3
    assert sum(u[1] == "clean" for u in units) == 3 * 2  # eps 0 once per (task, defense)
    ood = resolve(cfg, ["eval.ood_protocol=loto_holdout_gaussian"])
    assert eval_types(ood) == ["gaussian"]


def test_from_run_scores_a_trained_operator_under_a_new_eval_config(model_dir, trained, tmp_path):
    new_cfg = config(model_dir, eps=[0.0, 0.16], bootstrap={"n_resamples": 100})
    new = tmp_path / "rescored"
    prepare_from_run(new_cfg, trained, new)
    record = eval_run(new_cfg, new)
    assert {c["eps"] for c in record["metrics"]["cells"]} == {0.0, 0.16}
    run = json.loads((new / "run_record.json").read_text())
    trained_record = json.loads((trained / "run_record.json").read_text())
    source = run["from_run"]
    assert source["run_dir"] == str(trained.resolve())
    assert source["weights_sha256"] == trained_record["model"]["weights_sha256"]
    assert source["config_hash"] == trained_record["config_hash"] != run["config_hash"]
    ckpt = trained / "checkpoints" / source["repair_checkpoint"]
    assert (new / "checkpoints" / ckpt.name).read_bytes() == ckpt.read_bytes()
    # a rerun of the same command resumes instead of refusing
    prepare_from_run(new_cfg, trained, new)
    # the operator's own sections may not change: that would need retraining
    other = resolve(new_cfg, ["repair.rank=2"])
    with pytest.raises(ConfigError, match="repair differ"):
        prepare_from_run(other, trained, tmp_path / "other")
    assert not (tmp_path / "other").exists()
    with pytest.raises(ConfigError, match="new directory"):
        prepare_from_run(new_cfg, trained, trained)


def test_from_run_cli_refuses_another_repair_with_exit_2(model_dir, trained, tmp_path):
    path = tmp_path / "new.yaml"
    path.write_text(yaml.safe_dump(config(model_dir)))
    argv = ["--config", str(path), "--run_dir", str(tmp_path / "n"), "--from_run", str(trained)]
    with pytest.raises(SystemExit) as exit_:
        run_cli(build_parser(), main, [*argv, "repair.rank=2"])
    assert exit_.value.code == 2 and not (tmp_path / "n").exists()


def test_sentiment_filler_puts_the_review_far_back(model_dir):
    _, tok = load_model(config(model_dir))
    spec = resolve(config(model_dir))["eval"]["sst2_prompted"]
    plain = sst2_examples(tok, spec)
    filled = sst2_examples(tok, {**spec, "filler_tokens": 20})
    cue = tok("\nSentiment:").input_ids
    dot = tok(" .").input_ids
    for a, b in zip(plain, filled, strict=True):
        assert b.label == a.label and b.ids.shape[1] == a.ids.shape[1] + 20
        # the review, then 20 filler tokens, then the cue: the review is > 20 tokens back
        assert b.ids[0, -len(cue) :].tolist() == cue == a.ids[0, -len(cue) :].tolist()
        assert set(b.ids[0, -len(cue) - 20 : -len(cue)].tolist()) == set(dot)
        assert torch.equal(b.ids[0, : a.ids.shape[1] - len(cue)], a.ids[0, : -len(cue)])


def test_sentiment_shots_come_first_and_leave_the_plain_prompt_last(model_dir):
    _, tok = load_model(config(model_dir))
    spec = resolve(config(model_dir))["eval"]["sst2_prompted"]
    plain = sst2_examples(tok, {**spec, "n": 4})
    one, three = (sst2_examples(tok, {**spec, "n": 4, "shots": k}) for k in (1, 3))
    train = load_dataset(spec["dataset"])[spec["shots_split"]]
    demos = {
        tuple(tok(f"Review: {r['sentence']}\nSentiment:{LABELS[r['label']]}\n").input_ids)
        for r in train
    }
    heads = []
    for a, b, c in zip(plain, one, three, strict=True):
        n = a.ids.shape[1]
        assert b.label == c.label == a.label
        assert torch.equal(b.ids[0, -n:], a.ids[0]) and torch.equal(c.ids[0, -n:], a.ids[0])
        # one labelled review of the train split, then the plain prompt; three start with it
        head = b.ids[0, :-n].tolist()
        assert tuple(head) in demos and c.ids[0, : len(head)].tolist() == head
        assert c.ids.shape[1] > b.ids.shape[1]
        heads.append(tuple(head))
    assert len(set(heads)) > 1  # seeded per example, not one shared context
    again = sst2_examples(tok, {**spec, "n": 4, "shots": 3})
    assert all(torch.equal(x.ids, y.ids) for x, y in zip(three, again, strict=True))
    with pytest.raises(ConfigError, match="shots_split"):
        sst2_examples(tok, {**spec, "shots": 3, "shots_split": spec["split"]})


def test_label_reads_share_a_forward_only_when_labels_differ_in_their_last_token():
    one_token = (torch.tensor([5]), torch.tensor([9]))
    assert label_reads(one_token) == [[0, 1]]
    # [5, 7] and [5, 9] share the logits after 5; [6, 9] and [4] need reads of their own
    mixed = (torch.tensor([5, 7]), torch.tensor([6, 9]), torch.tensor([5, 9]), torch.tensor([4]))
    assert label_reads(mixed) == [[1], [0, 2], [3]]


def test_sst2_shared_read_scores_bit_identically_to_one_read_per_label(model_dir, trained):
    cfg = config(model_dir)
    model, tok = load_model(cfg)
    ev = Evaluator(SimpleNamespace(path=trained), cfg, model, tok)
    labels = (torch.tensor([5]), torch.tensor([9]))
    for i, ex in enumerate(ev.examples["sst2_prompted"]):
        n, clean = ex.ids.shape[1], clean_reference(model, "sst2_prompted", ex)
        for kind, name in (
            ("clean", "no_defense"),
            ("gaussian", "cachemedic"),
            ("quant_noise", "smoothing"),
        ):
            event = ev.event_for("sst2_prompted", kind, 0.08, i, n + 1)
            row = score_sst2(model, ex, event, ev.defenses[name], labels, clean)
            logp, last = [], None
            for lab in labels:
                with intervene(model, event, ev.defenses[name]):
                    last = model(torch.cat([ex.ids, lab[None]], dim=1)).logits[0, n - 1 : n]
                logp.append(F.log_softmax(last.float(), -1)[0, lab[0]].item())
            kl, agree = _compare(clean, last)
            assert row["correct"] == float(int(logp[1] > logp[0]) == ex.label)
            assert (row["kl"], row["top1"]) == (kl, agree)
