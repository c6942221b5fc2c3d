"""Evaluation statistics, tables and figures on constructed episodes with known answers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from esper.evaluate.figures import plot_evaluation
from esper.evaluate.summary import (
    action_shares,
    paired_deltas,
    paired_groups,
    summarise_episodes,
    unit_values,
)
from esper.evaluate.table import results_latex, results_markdown
from labkit.jsonl import append_jsonl

N_EPISODES = 20
MARGIN = 0.02  # nats
ACTIONS = ("WAIT", "GERMINATE_NORM", "ADVANCE", "CULL")


def episode(policy: str, unit: int | None, i: int, ret: float, **kw: Any) -> dict[str, Any]:
    """One episodes.jsonl record; episode seed 1000 + i is shared by every policy."""
    counts = kw.pop("counts", {"WAIT": 10, "GERMINATE_NORM": 1, "ADVANCE": 1, "CULL": 0})
    return {
        "policy": policy,
        "unit": unit,
        "episode": i,
        "seed": 1000 + i,
        "return": ret,
        "val_loss": kw.get("val_loss", 1.0 - 0.01 * ret),
        "val_accuracy": kw.get("val_accuracy", 0.5 + 0.001 * ret),
        "val_perplexity": None,
        "test_loss": kw.get("test_loss", 1.1 - 0.01 * ret),
        "test_accuracy": kw.get("test_accuracy", 0.45 + 0.001 * ret),
        "test_perplexity": None,
        "params_added": 100,
        "fossils": 1,
        "culls": 0,
        "action_counts": {a: counts.get(a, 0) for a in ACTIONS},
        "actions_by_stage": {"DORMANT": {a: counts.get(a, 0) for a in ACTIONS}},
    }


def scenario(unit_shift: list[float], *, heuristic_shift: float = 0.0) -> list[dict[str, Any]]:
    """Baselines with noisy returns; PPO seed u's return = random's + unit_shift[u] on each episode."""
    rng = np.random.default_rng(0)
    base = 10 + rng.normal(0, 2, N_EPISODES)
    rows = [episode("random", None, i, float(base[i])) for i in range(N_EPISODES)]
    rows += [
        episode("heuristic", None, i, float(base[i]) + heuristic_shift) for i in range(N_EPISODES)
    ]
    rows += [
        episode("static", None, i, float(base[i]) - 1, counts={"WAIT": 12})
        for i in range(N_EPISODES)
    ]
    for u, shift in enumerate(unit_shift):
        noise = rng.normal(0, 0.3, N_EPISODES)
        noise -= noise.mean()  # so the seed's mean paired delta is exactly `shift`
        rows += [episode("ppo", u, i, float(base[i] + shift + noise[i])) for i in range(N_EPISODES)]
    return rows


def test_paired_deltas_are_per_seed_means_of_episode_differences():
    shifts = [1.0, 1.2, 0.8, 1.1, 0.9]
    rows = scenario(shifts)
    deltas = paired_deltas(rows, "random", "return")
    assert list(deltas) == [0, 1, 2, 3, 4]
    assert np.allclose(list(deltas.values()), shifts)
    assert np.allclose(
        unit_values(rows, "ppo", "return") - unit_values(rows, "random", "return").mean(), shifts
    )


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return summarise_episodes(rows, seed=0, heuristic_margin_nats=MARGIN)


def test_clear_improvement_is_claimed_on_final_test_loss():
    summary = summarise(scenario([1.0, 1.2, 0.8, 1.1, 0.9]))
    ci = summary["paired"]["ppo-random"]["return"]["ci"]  # secondary: return, BCa over seeds
    assert ci["method"] == "BCa" and ci["n"] == 5
    assert 0 < ci["low"] < 1.0 < ci["high"]
    head = summary["headline"]["ppo-random"]["test_loss"]
    assert head["method"] == "hierarchical percentile" and head["n"] == 5
    assert head["high"] < 0  # a higher return here means a lower test loss
    for key in ("ppo_beats_random", "ppo_beats_static"):
        assert summary["verdicts"][key]["holds"] is True
    assert summary["policies"]["ppo"]["units"] == [0, 1, 2, 3, 4]
    assert summary["policies"]["random"]["return"]["n"] == N_EPISODES
    assert set(summary["headline"]) == {
        "ppo-static",
        "random-static",
        "heuristic-static",
        "ppo-heuristic",
        "ppo-random",
    }


def test_mixed_seeds_give_a_ci_that_includes_zero_and_no_claim():
    summary = summarise(scenario([-1.0, 1.0, -0.5, 0.5, 0.2]))
    head = summary["headline"]["ppo-random"]["test_loss"]
    assert head["low"] < 0 < head["high"]
    verdict = summary["verdicts"]["ppo_beats_random"]
    assert verdict["holds"] is False and verdict["text"].startswith("not shown")


def test_a_gain_carried_by_shared_episodes_is_not_claimed():
    # Every seed gains the same large, noisy per-episode amount: tight across seeds, wide across
    # episodes. A CI over training seeds alone excludes 0; the hierarchical one does not.
    rows = scenario([0.0] * 5)
    common = np.random.default_rng(1).normal(0.005, 0.04, N_EPISODES)
    common += 0.005 - common.mean()
    for e in rows:
        if e["policy"] == "ppo":
            e["test_loss"] -= float(common[e["episode"]])
    summary = summarise(rows)
    per_seed = [g.mean() for g in paired_groups(rows, "ppo", "random", "test_loss")]
    assert max(per_seed) < 0  # every training seed's mean delta is a gain
    head = summary["headline"]["ppo-random"]["test_loss"]
    assert head["low"] < 0 < head["high"]
    assert summary["verdicts"]["ppo_beats_random"]["holds"] is False


def test_worse_than_static_is_reported_as_worse():
    summary = summarise(scenario([-3.0, -3.2, -2.8, -3.1, -2.9]))  # static's return is base - 1
    verdict = summary["verdicts"]["ppo_beats_static"]
    assert verdict["holds"] is False and verdict["text"].startswith("PPO > static")


@pytest.mark.parametrize(("gap", "holds"), [(0.5, True), (5.0, False)])
def test_heuristic_margin_is_stated_in_nats(gap, holds):
    # The heuristic's return is `gap` higher, so its test loss is 0.01 * gap nats lower than PPO's:
    # 0.005 nats is inside the 0.02-nat margin, 0.05 is not.
    rows = scenario([-0.05, 0.05, 0.0, -0.02, 0.02], heuristic_shift=gap)
    verdict = summarise(rows)["verdicts"]["ppo_at_least_heuristic"]
    assert verdict["margin_nats"] == MARGIN
    assert verdict["holds"] is holds


def test_one_training_seed_claims_nothing():
    summary = summarise(scenario([3.0]))
    assert summary["paired"]["ppo-random"]["return"]["ci"]["low"] is None
    assert summary["verdicts"]["ppo_beats_random"]["holds"] is None


def test_wait_share_flags_collapse():
    rows = scenario([1.0, 1.0])
    static = action_shares(rows, "static")
    assert static["wait_share"] == 1.0 and static["wait_collapse"] is True
    ppo = action_shares(rows, "ppo")
    assert ppo["wait_share"] == pytest.approx(10 / 12) and ppo["wait_collapse"] is False
    assert ppo["epochs"] == 2 * N_EPISODES * 12


def test_a_training_seed_that_only_waits_is_flagged():
    rows = scenario([1.0, 1.0, 1.0])
    for e in rows:
        if e["unit"] == 2:
            e["actions_by_stage"] = {"DORMANT": {"WAIT": 12}}
    summary = _summary_for_table(rows)
    actions = summary["policies"]["ppo"]["actions"]
    assert actions["wait_share_by_unit"] == {"0": 10 / 12, "1": 10 / 12, "2": 1.0}
    assert actions["collapsed_units"] == [2]
    assert actions["wait_collapse"] is False  # pooled over seeds it is 8/9, under the flag
    assert "(seeds > 90 %: [2])" in results_markdown(summary)


def test_non_finite_losses_are_left_out_not_propagated():
    rows = scenario([1.0, 1.1])
    rows[0]["val_loss"] = "inf"
    values = unit_values(rows, "random", "val_loss")
    assert values.size == N_EPISODES - 1 and np.isfinite(values).all()
    assert math.isfinite(summarise(rows)["policies"]["random"]["val_loss"]["value"])


def _summary_for_table(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"task": "shapes10", "episodes_per_unit": N_EPISODES, **summarise(rows)}


def test_tables_hold_every_policy_delta_and_verdict():
    summary = _summary_for_table(scenario([1.0, 1.2, 0.8, 1.1, 0.9]))
    md = results_markdown(summary)
    for name in (
        "| ppo |",
        "| random |",
        "| heuristic |",
        "| static |",
        "ppo-random",
        "ppo-heuristic",
    ):
        assert name in md
    assert "100.0% (> 90 %: flagged)" in md  # static always WAITs
    assert "PPO < random on final test loss" in md and "ppo-static" in md
    assert "test accuracy" in md and "perplexity" not in md
    tex = results_latex(summary)
    assert tex.count(r"\begin{tabular}") == 3 and r"100.0\% (> 90 \%: flagged)" in tex


def _write_run(run: Path, rows: list[dict[str, Any]]) -> None:
    for r in rows:
        append_jsonl(run / "episodes.jsonl", r)
        for epoch in range(4):
            append_jsonl(
                run / "steps.jsonl",
                {
                    "policy": r["policy"],
                    "unit": r["unit"],
                    "episode": r["episode"],
                    "epoch": epoch,
                    "action": None if epoch == 0 else "WAIT",
                    "seed_stage": 3 if epoch > 1 else 1,
                    "seed_alpha": 0.0,
                    "val_loss": 2.0 - 0.1 * epoch,
                },
            )
    for unit in (0, 1):
        for k in range(30):
            append_jsonl(run / "ppo_training.jsonl", {"unit": unit, "episode": k, "return": k / 3})


def test_figures_are_drawn_from_saved_jsonl(tmp_path):
    _write_run(tmp_path, scenario([1.0, 1.2]))
    paths = plot_evaluation(tmp_path)
    names = sorted(p.name for p in paths)
    assert names == [
        "action_histograms.png",
        "learning_curves.png",
        "return_ci.png",
        "seed_timelines.png",
    ]
    for p in paths:
        assert p.parent == tmp_path / "figures" and p.stat().st_size > 5_000
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
