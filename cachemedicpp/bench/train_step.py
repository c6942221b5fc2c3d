"""Train step time of R_phi vs one teacher forward on the same prefix, as a ratio in one run.

    python bench/train_step.py --config configs/mve_local.yaml --steps 30

A train step is a teacher forward, a student forward with C and R_phi, the losses and an Adam
update of φ; its cost is reported in units of a plain clean forward of the same prefix.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch

from cachemedicpp.config import PROJECT, load_run_config
from cachemedicpp.data import split_stream, train_prefix
from cachemedicpp.mixture import donor_cache, train_mix
from cachemedicpp.modeling import load_model
from cachemedicpp.train import donor_length
from cachemedicpp.trainer import Trainer
from labkit.rundir import RunDir


def measure(cfg: dict, steps: int) -> dict:
    """Median seconds of a train step and of a teacher forward, interleaved, and their ratio."""
    model, tok = load_model(cfg)
    stream = split_stream(cfg, tok, "train_split")
    mix = train_mix(cfg)
    grids = {t: list(cfg["corruption"]["eps_grid"]) for t in mix}
    donor = donor_cache(
        model,
        tok,
        cfg["corruption"]["params"]["donor_prompt"],
        donor_length(cfg, model.config.max_position_embeddings),
    )
    with tempfile.TemporaryDirectory() as tmp:
        run = RunDir.create(f"{tmp}/run", cfg, phase="bench")
        trainer = Trainer(run, cfg, model, stream, mix, grids, donor, tok)
        step_s, fwd_s = [], []
        trainer.train_step(1)  # warm-up
        for step in range(2, steps + 2):
            prefix = train_prefix(stream, step, cfg["data"]["prefix_tokens"], cfg["seed"])
            t0 = time.perf_counter()
            with torch.no_grad():
                model(prefix.to(model.device))
            fwd_s.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            trainer.train_step(step)
            step_s.append(time.perf_counter() - t0)
    step_med, fwd_med = statistics.median(step_s), statistics.median(fwd_s)
    return {
        "steps": steps,
        "threads": torch.get_num_threads(),
        "train_step_s": step_med,
        "teacher_forward_s": fwd_med,
        "ratio_step_to_forward": step_med / fwd_med,
    }


def main() -> None:
    """Time `--steps` train steps and as many teacher forwards; print one JSON line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/mve_local.yaml")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("overrides", nargs="*", help="dot-key overrides, e.g. model.name=DIR")
    args = p.parse_args()
    cfg = load_run_config(PROJECT / args.config, args.overrides)
    print(json.dumps({"config": args.config, **measure(cfg, args.steps)}))


if __name__ == "__main__":
    main()
