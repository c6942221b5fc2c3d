"""ARC-style multiple choice at g=1 and at every condition's g*: accuracy with CI and log-prob margin."""

from __future__ import annotations

import numpy as np
import pandas as pd

from avalanche_llm import canon
from avalanche_llm.evaluation.mcq import encode, score, summarize
from avalanche_llm.io.hashing import sha256_json
from avalanche_llm.metrics.stats import ci_seed, mean_ci
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
    return rows if ds["max_items"] is None else rows.select(range(min(ds["max_items"], len(rows))))


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
                seed=ci_seed(run.run_id, f"g={g:g}", "arc"),
                reps=p["bootstrap_reps"],
            )
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
                }
            )
    write_table(ctx, "T03_ARC", to_table_names(pd.DataFrame(rows)), "ARC_MCQ")
    t03 = run.read_parquet(f"{T03}.parquet")
    write_figure(ctx, "F07_ARC_MCQ", figures.f07_arc_mcq(t03), [source(run, f"{T03}.parquet")])
