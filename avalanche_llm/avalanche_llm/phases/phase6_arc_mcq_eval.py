"""ARC-style multiple choice at g=1 and at every condition's g*: accuracy with CI, log-prob margin, and
the g-minus-g=1 accuracy difference with a paired CI over items and an exact McNemar p."""

from __future__ import annotations

import numpy as np
import pandas as pd

from avalanche_llm import canon
from avalanche_llm.evaluation.mcq import encode, score, summarize
from avalanche_llm.io.hashing import sha256_json
from avalanche_llm.metrics.stats import ci_seed, mcnemar_exact_p, mean_ci, paired_difference_ci
from avalanche_llm.plotting import figures
from avalanche_llm.plotting.outputs import source, write_figure, write_table
from avalanche_llm.plotting.tables import to_table_names
from avalanche_llm.runs import PhaseContext
from avalanche_llm.slices import dataset_split

STAGE = "S06ARC"
NEEDS: tuple[str, ...] = ("S02B", "S05")
PRODUCES_RUN = True
T03 = canon.output("TABLE.T03_ARC")
ITEMS = canon.output("ARC_ITEMS_PARQUET")


def _rows(ctx: PhaseContext):
    ds = ctx.cfg["datasets"]["ARC_MCQ"]
    rows = dataset_split(ds["id"], ds["config"], ds["split"], ctx.cfg["runtime"]["local_hint"])
    # take() works on saved and streamed splits alike, and fetches no item beyond max_items
    return rows if ds["max_items"] is None else rows.take(ds["max_items"])


def versus_g1(
    base: pd.DataFrame, at: pd.DataFrame, run_id: str, g: float, pipeline: dict
) -> dict[str, float]:
    """Accuracy at g minus at g=1 with a paired bootstrap CI over items, and the exact McNemar p."""
    a = base.sort_values("item_id")["correct"].to_numpy()
    b = at.sort_values("item_id")["correct"].to_numpy()
    lo, hi = paired_difference_ci(
        a,
        b,
        lambda x: x.mean(axis=-1),
        seed=ci_seed(run_id, f"g={g:g}", "arc_diff", pipeline["bootstrap_seed"]),
        reps=pipeline["bootstrap_reps"],
    )
    return {
        "accuracy_diff_vs_g1": float(b.mean() - a.mean()),
        "accuracy_diff_vs_g1_lo": lo,
        "accuracy_diff_vs_g1_hi": hi,
        "mcnemar_p_vs_g1": mcnemar_exact_p(a, b),
    }


def check(ctx: PhaseContext) -> None:
    """The model and the ARC data set resolve before a run directory exists."""
    ctx.require_inputs("ARC_MCQ")


def run(ctx: PhaseContext) -> None:
    """Score every item at each needed gain, save per-item results, then T03 and F07 from them."""
    run, p = ctx.run, ctx.pipeline
    lm = ctx.model()
    ds = ctx.cfg["datasets"]["ARC_MCQ"]
    gstar = ctx.deps["S02B"].read_json(canon.output("GSTAR_JSON"))["by_condition"]
    s05 = ctx.deps["S05"].read_parquet(canon.output("METRICS_PARQUET"))
    rho = dict(zip(s05["rate_key"], s05["rho"], strict=False))
    items = encode(list(_rows(ctx)), ds["template"], lm.tokenizer)
    digest = sha256_json([[it.item_id, it.prompt, it.targets, it.answer] for it in items])
    described = {k: ds[k] for k in ("id", "config", "split", "max_items")}
    described |= {"role": "ARC_MCQ", "n_items": len(items), "sha256": digest}
    run.update(model=lm.describe(), dataset={"ARC_MCQ": described})
    run.set_slice_hash(digest)
    gains = sorted({float(p["gain_baseline"]), *(float(v["gstar"]) for v in gstar.values())})
    per_item = []
    with ctx.heartbeat(len(gains)) as hb:
        for step, g in enumerate(gains):
            scores = score(lm, items, g, ctx.cfg["runtime"]["batch_size"])
            out = summarize(items, scores)
            per_item.append(
                pd.DataFrame(
                    {
                        "g": g,
                        "item_id": [it.item_id for it in items],
                        "answer": [it.answer for it in items],
                        "predicted": [int(np.argmax(s)) for s in scores],
                        **out,
                    }
                )
            )
            hb.beat(step + 1)
    run.write_parquet(ITEMS, pd.concat(per_item, ignore_index=True), name="ARC_ITEMS_PARQUET")
    by_gain = {g: f for g, f in run.read_parquet(ITEMS).groupby("g")}
    rows = []
    for _, v in sorted(gstar.items()):
        for label in ("g1", "gstar"):
            g = float(p["gain_baseline"]) if label == "g1" else float(v["gstar"])
            f = by_gain[g]
            lo, hi = mean_ci(
                f["correct"].to_numpy(),
                seed=ci_seed(run.run_id, f"g={g:g}", "arc", p["bootstrap_seed"]),
                reps=p["bootstrap_reps"],
            )
            paired = versus_g1(by_gain[float(p["gain_baseline"])], f, run.run_id, g, p)
            rows.append(
                {
                    "spike_def": v["spike_def"],
                    "rate_key": v["rate_key"],
                    "rho": rho[v["rate_key"]],
                    "g_label": label,
                    "g": g,
                    "gstar_status": v["status"],
                    "n_items": len(f),
                    "accuracy": float(f["correct"].mean()),
                    "accuracy_lo": lo,
                    "accuracy_hi": hi,
                    "mean_logprob_correct_minus_incorrect": float(f["margin"].mean()),
                    **paired,
                }
            )
    write_table(ctx, "T03_ARC", to_table_names(pd.DataFrame(rows)), "ARC_MCQ")
    t03 = run.read_parquet(f"{T03}.parquet")
    write_figure(ctx, "F07_ARC_MCQ", figures.f07_arc_mcq(t03), [source(run, f"{T03}.parquet")])
