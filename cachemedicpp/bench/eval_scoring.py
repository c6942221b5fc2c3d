"""Eval scoring paths before and after the demo speed-up, as ratios measured in one run.

    python bench/eval_scoring.py --config configs/mve_local.yaml --n 40

Three paths, each timed against the one it replaced and checked to give the same bits:
SST-2 scoring with one forward per label vs one shared forward (`tasks.label_reads`), the
quant_noise matched fit recomputing per-head max and norm at every bisection step vs once
(`corruption.head_amax`, `change_from`), and the eval progress file written indented vs compact.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import torch
from torch.nn import functional as F

from cachemedicpp.config import PROJECT, load_run_config
from cachemedicpp.corruption import _QUANT_BITS, bisect, change_from, head_amax, quantize
from cachemedicpp.intervention import intervene
from cachemedicpp.masks import Axes, time_mask
from cachemedicpp.mixture import make_event
from cachemedicpp.modeling import load_model
from cachemedicpp.tasks import LABELS, _compare, clean_reference, score_sst2, sst2_examples
from labkit.atomic import dumps_json


@torch.no_grad()
def sst2_per_label(model, ex, event, defense, label_ids, clean) -> dict[str, float]:
    """The replaced SST-2 scorer: one forward of prompt + label for each label."""
    n = ex.ids.shape[1]
    scores, last = [], None
    for lab in label_ids:
        ids = torch.cat([ex.ids, lab[None]], dim=1).to(model.device)
        with intervene(model, event, defense) as iv:
            logits = model(ids).logits[0]
        logp = F.log_softmax(logits[n - 1 : -1].float(), -1)
        scores.append(logp.gather(1, ids[0, n:, None]).sum().item())
        last = logits[n - 1 : n]
    kl, agree = _compare(clean, last)
    correct = float(int(scores[1] > scores[0]) == ex.label)
    return {"correct": correct, "n": 1, "kl": kl, "top1": agree, "eps_realized": iv.eps_realized}


def quant_fit_recomputing(x: torch.Tensor, mask: torch.Tensor, eps: float) -> float:
    """The replaced quant_noise fit: per-head max and ‖x‖ recomputed at each bisection step."""

    def change(bits: float) -> float:
        amax = head_amax(x, mask)
        m = mask.to(torch.float32)
        den = (x.float() * m).pow(2).sum()
        if den == 0:
            return 0.0
        y = quantize(x, amax, bits)
        return ((y.float() - x.float()) * m).pow(2).sum().div(den).sqrt().item()

    return bisect(change, *_QUANT_BITS, eps, rising=False)


def quant_fit(x: torch.Tensor, mask: torch.Tensor, eps: float) -> float:
    """The quant_noise fit as `corruption.EventState` runs it."""
    amax, change = head_amax(x, mask), change_from(x, mask)
    return bisect(lambda b: change(quantize(x, amax, b)), *_QUANT_BITS, eps, rising=False)


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """fn(*args, **kwargs) and its wall seconds."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def bench_sst2(cfg: dict, n: int, repeats: int) -> dict[str, Any]:
    """Seconds of both SST-2 scorers over n prompts under gaussian and quant damage, interleaved."""
    model, tok = load_model(cfg)
    examples = sst2_examples(tok, {**cfg["eval"]["sst2_prompted"], "n": n})
    label_ids = tuple(torch.tensor(tok(lab).input_ids) for lab in LABELS)
    clean = [clean_reference(model, "sst2_prompted", ex) for ex in examples]
    old_s = new_s = 0.0
    same = True
    for r in range(repeats):
        for kind in ("gaussian", "quant_noise"):
            for i, ex in enumerate(examples):
                length = ex.ids.shape[1] + max(lab.numel() for lab in label_ids)
                event = make_event(cfg, kind, 0.5, (r, kind, i), max_len=length)
                args = (model, ex, event, None, label_ids, clean[i])
                old, dt_old = timed(sst2_per_label, *args)
                new, dt_new = timed(score_sst2, *args)
                old_s, new_s, same = old_s + dt_old, new_s + dt_new, same and old == new
    return {"prompts": n, "old_s": old_s, "new_s": new_s, "speedup": old_s / new_s, "same": same}


def bench_quant_fit(fits: int) -> dict[str, Any]:
    """Seconds of both quant_noise fits on random K [1,4,128,32] under an old_only mask."""
    mask = time_mask(Axes(time_mode="old_only", n_recent=16), 128)[None, None, :, None]
    mask = mask.expand(1, 4, 128, 1)
    old_s = new_s = 0.0
    same = True
    for i in range(fits):
        x = torch.randn(1, 4, 128, 32, generator=torch.Generator().manual_seed(i))
        old, dt_old = timed(quant_fit_recomputing, x, mask, 0.5)
        new, dt_new = timed(quant_fit, x, mask, 0.5)
        old_s, new_s, same = old_s + dt_old, new_s + dt_new, same and old == new
    return {"fits": fits, "old_s": old_s, "new_s": new_s, "speedup": old_s / new_s, "same": same}


def bench_progress(units: int) -> dict[str, Any]:
    """Seconds to serialise the demo eval's progress after each of `units` units, indented vs compact."""
    g = torch.Generator().manual_seed(0)
    done: dict[str, Any] = {}
    old_s = new_s = 0.0
    for u in range(units):
        rows = [
            {"correct": 1.0, "n": 1, "kl": float(v), "top1": 1.0, "eps_realized": float(v)}
            for v in torch.rand(100, generator=g)
        ]
        done[str(u)] = {"rows": rows, "seconds": 1.0, "tokens": 100}
        state = {"config_hash": "0" * 64, "units": done}
        old, dt_old = timed(dumps_json, state)
        new, dt_new = timed(json.dumps, state, allow_nan=False)
        old_s, new_s = old_s + dt_old, new_s + dt_new
    same = json.loads(old) == json.loads(new)
    return {"units": units, "old_s": old_s, "new_s": new_s, "speedup": old_s / new_s, "same": same}


def main() -> None:
    """Run the three comparisons; print one JSON line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/mve_local.yaml")
    p.add_argument("--n", type=int, default=40, help="SST-2 prompts per damage type")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--fits", type=int, default=100)
    p.add_argument("--units", type=int, default=150, help="eval units of 100 rows serialised")
    p.add_argument("overrides", nargs="*", help="dot-key overrides, e.g. model.name=DIR")
    args = p.parse_args()
    cfg = load_run_config(PROJECT / args.config, args.overrides)
    sst2 = bench_sst2(cfg, args.n, args.repeats)  # loads the model: sets the config's threads
    out = {
        "config": args.config,
        "threads": torch.get_num_threads(),
        "sst2": sst2,
        "quant_fit": bench_quant_fit(args.fits),
        "progress": bench_progress(args.units),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
