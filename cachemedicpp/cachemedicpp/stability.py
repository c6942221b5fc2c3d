"""`python -m cachemedicpp.stability --config Y --run_dir D [--resume|--no-resume] [key=value ...]`.

Logit stability of a trained run (§8). S is the clean KV cache of a prompt's prefix; δ perturbs
the old_only region M of `stability.layers`. The prompt's last token then reads S+δ under each
defense: Sens_D = E‖z_D(S+δ) − z_D(S)‖₂, Drift_D = E‖z_D(S+δ) − z_none(S)‖₂ over the top-k logits
of z_none(S), and γ_D(l,h) = median ‖z_D(S+δ_{l,h}) − z_D(S)‖₂ / ‖δ_{l,h}‖. One prompt is one
resumable unit (`metrics/stability_progress.json`).
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import Cache, PreTrainedModel

from cachemedicpp.cli_args import phase_parser
from cachemedicpp.config import load_run_config
from cachemedicpp.data import split_texts, token_stream
from cachemedicpp.eval import load_repair
from cachemedicpp.eval_metrics import HEURISTIC_OF_STABILITY_TASK
from cachemedicpp.families import cache_shape
from cachemedicpp.heuristics import build_heuristic, clean_median_rms
from cachemedicpp.intervention import Defense, intervene
from cachemedicpp.masks import Axes, time_mask
from cachemedicpp.modeling import load_model
from cachemedicpp.phase_run import open_phase_run, require_trained
from labkit.atomic import atomic_write_json
from labkit.cli import run_cli
from labkit.control import PauseControl
from labkit.determinism import generator, seed_everything
from labkit.errors import ConfigError, MissingInputError, Paused
from labkit.heartbeat import Heartbeat
from labkit.rundir import RunDir

PHASE = "stability"
GAMMA_DELTA_NORM = 1.0  # γ is measured at δn = 1 (in stability.delta_scale) on one (layer, head)


def prompts(cfg: Mapping[str, Any], tok: Any) -> list[torch.Tensor]:
    """`stability.prompts` consecutive [1, prompt_tokens] chunks of the eval PPL split."""
    spec, st = cfg["eval"]["wikitext2_ppl"], cfg["stability"]
    texts = split_texts(spec["dataset"], spec["dataset_config"], spec["split"], spec["text_field"])
    stream = token_stream(tok, [t for t in texts if t.strip()])
    n, length = st["prompts"], st["prompt_tokens"]
    if stream.numel() < n * length:
        raise ConfigError(
            f"stability needs {n}×{length} tokens, the {spec['split']!r} split has {stream.numel()}"
        )
    return [stream[i * length : (i + 1) * length][None] for i in range(n)]


def region_mask(cfg: Mapping[str, Any], length: int) -> torch.Tensor:
    """M over the cached prefix [T]: the corruption's time region (old_only in the configs)."""
    return time_mask(Axes.from_config(cfg["corruption"]["axes"]), length)


class Probe:
    """One prompt's clean prefix cache S and the last token's logits read under a defense."""

    def __init__(self, model: PreTrainedModel, ids: torch.Tensor, layers: list[int]):
        self.model = model
        with intervene(model):
            out = model(ids[:, :-1].to(model.device), use_cache=True)
        self.cache: Cache = out.past_key_values
        self.clean = {i: (c.keys, c.values) for i, c in enumerate(self.cache.layers)}
        self.last = ids[:, -1:].to(model.device)
        self.layers = layers

    @torch.no_grad()
    def logits(self, defense: Defense | None, delta: Mapping[int, tuple] | None = None):
        """Last-token logits [vocab] reading S (+ δ per layer) under `defense`."""
        for i, layer in enumerate(self.cache.layers):
            k, v = self.clean[i]
            if delta is not None and i in delta:
                k, v = k + delta[i][0], v + delta[i][1]
            layer.keys, layer.values = k, v
        with intervene(self.model, None, defense):
            out = self.model(self.last, past_key_values=self.cache, use_cache=True)
        return out.logits[0, -1].float()

    def direction(
        self, key: tuple, mask: torch.Tensor, head: int | None = None, layers: list | None = None
    ) -> dict:
        """Unit-norm Gaussian u over M (one head or all) per layer, scaled by ‖S_l⊙M‖ (δn = 1)."""
        out = {}
        for layer in layers or self.layers:
            k, v = self.clean[layer]
            m = mask[None, None, :, None].to(k.dtype).expand_as(k).clone()
            if head is not None:
                keep = torch.zeros(k.shape[1], dtype=k.dtype)
                keep[head] = 1
                m = m * keep[None, :, None, None]
            g = generator(*key, layer)
            u = [torch.randn(k.shape, generator=g).to(k) * m for _ in range(2)]
            norm_u = torch.sqrt(sum(x.pow(2).sum() for x in u))
            scale = torch.sqrt((k * m).pow(2).sum() + (v * m).pow(2).sum())
            out[layer] = tuple(x * (scale / norm_u.clamp_min(1e-12)) for x in u)
        return out


def prompt_unit(
    cfg: Mapping[str, Any],
    model: PreTrainedModel,
    ids: torch.Tensor,
    index: int,
    defenses: Mapping[str, Defense | None],
    layers: list[int],
) -> dict[str, Any]:
    """Sens/Drift per (δn, defense) averaged over directions, and γ per (defense, layer, head)."""
    st, eps0 = cfg["stability"], cfg["loss"]["eps0"]
    probe = Probe(model, ids, layers)
    mask = region_mask(cfg, ids.shape[1] - 1)
    if not bool(mask.any()):
        raise ConfigError(
            f"stability.prompt_tokens {st['prompt_tokens']} leaves no old_only positions"
        )
    z_none = probe.logits(None)
    top = z_none.topk(min(st["top_k"], z_none.numel())).indices
    base = {name: probe.logits(d)[top] for name, d in defenses.items()}
    sens: dict[str, dict[str, list[float]]] = {}
    for dn in st["delta_norms"]:
        row = {name: [] for name in defenses} | {f"{n}_drift": [] for n in defenses}
        for j in range(st["directions"]):
            unit = probe.direction((cfg["seed"], "stability", index, j), mask)
            if st["delta_scale"] == "rms":
                unit = _rms_scaled(probe, unit, mask)
            delta = {i: (k * dn, v * dn) for i, (k, v) in unit.items()}
            for name, d in defenses.items():
                z = probe.logits(d, delta)[top]
                row[name].append(float((z - base[name]).norm()))
                row[f"{name}_drift"].append(float((z - z_none[top]).norm()))
        sens[repr(float(dn))] = {k: float(np.mean(v)) for k, v in row.items()}
    gamma: dict[str, list[list[list[float]]]] = {}
    heads = cache_shape(model.config).kv_heads
    for name in ("baseline", "cachemedic"):
        if name not in defenses:
            continue
        gamma[name] = []
        for layer in layers:
            per_head = []
            for h in range(heads):
                ratios = []
                for j in range(st["directions"]):
                    key = (cfg["seed"], "gamma", index, j, h)
                    unit = probe.direction(key, mask, head=h, layers=[layer])
                    if st["delta_scale"] == "rms":
                        unit = _rms_scaled(probe, unit, mask)
                    delta = {layer: tuple(x * GAMMA_DELTA_NORM for x in unit[layer])}
                    z = probe.logits(defenses[name], delta)[top]
                    size = torch.sqrt(sum(x.pow(2).sum() for x in delta[layer]))
                    ratios.append(float((z - base[name]).norm() / (size + eps0)))
                per_head.append(ratios)
            gamma[name].append(per_head)
    return {"sensitivity": sens, "gamma": gamma}


def _rms_scaled(probe: Probe, unit: dict, mask: torch.Tensor) -> dict:
    """Published scale: δn·rms_l·u_l (rms of S_l over M) instead of δn·‖S_l⊙M‖·u_l."""
    out = {}
    for layer, (k, v) in unit.items():
        sk, sv = probe.clean[layer]
        m = mask[None, None, :, None].expand_as(sk)
        rms = torch.cat([sk[m], sv[m]]).pow(2).mean().sqrt()
        norm = torch.sqrt(k.pow(2).sum() + v.pow(2).sum())
        out[layer] = (k * rms / norm, v * rms / norm)
    return out


def stability_defenses(
    run: RunDir, cfg: Mapping[str, Any], model: PreTrainedModel, first: torch.Tensor
) -> tuple[dict[str, Defense | None], str]:
    """{baseline, heuristics (eval's best on PPL, else on another task), cachemedic[, no_contr]}."""
    path = run.path / "metrics" / "task_metrics.json"
    if not path.is_file():
        raise MissingInputError(f"{path} is missing; run cachemedicpp.eval first (best heuristic)")
    per_task = json.loads(path.read_text(encoding="utf-8"))["metrics"]["best_heuristic"]
    best = per_task.get(HEURISTIC_OF_STABILITY_TASK) or next(
        (h for h in per_task.values() if h is not None), None
    )
    out: dict[str, Defense | None] = {"baseline": None}
    if best is not None:
        with intervene(model, record=cfg["repair"]["protect_layers"]) as iv:
            model(first.to(model.device))
        out["heuristics"] = build_heuristic(best, cfg, clean_median_rms(iv.records))
    out["cachemedic"] = load_repair(run.path, model.device)
    if cfg["eval"]["no_contr_run_dir"] is not None:
        out["cachemedic_no_contr"] = load_repair(cfg["eval"]["no_contr_run_dir"], model.device)
    return out, best


def summarize(
    cfg: Mapping[str, Any], units: list[dict[str, Any]], layers: list[int], heads: int
) -> dict[str, Any]:
    """`stability.logit_sensitivity` and `stability.amplification_map` over all prompts."""
    curves = []
    for dn in cfg["stability"]["delta_norms"]:
        key = repr(float(dn))
        names = units[0]["sensitivity"][key]
        curves.append(
            {"delta_norm": dn}
            | {n: float(np.mean([u["sensitivity"][key][n] for u in units])) for n in names}
        )
    amp = {"layers": layers, "heads": list(range(heads))}
    for name in units[0]["gamma"]:
        ratios = np.asarray([u["gamma"][name] for u in units])  # prompts × layers × heads × dirs
        amp[name] = np.median(np.moveaxis(ratios, 0, -1).reshape(*ratios.shape[1:3], -1), -1)
        amp[name] = amp[name].tolist()
    return {"logit_sensitivity": curves, "amplification_map": amp}


def stability_run(
    cfg: Mapping[str, Any],
    run_dir: str | os.PathLike,
    *,
    resume: bool = True,
    config_path: str | os.PathLike | None = None,
    pause_check_s: float = 0.5,
) -> dict[str, Any]:
    """Run (or resume) the stability phase of an evaluated run; return its metrics record."""
    flags = seed_everything(cfg["seed"])
    model, tok = load_model(cfg)
    require_trained(cfg, run_dir, model)
    run = open_phase_run(cfg, run_dir, PHASE, flags, resume=resume, config_path=config_path)
    layers = list(cfg["stability"]["layers"] or cfg["repair"]["protect_layers"])
    progress_path = run.path / "metrics" / "stability_progress.json"
    with run.running():
        texts = prompts(cfg, tok)
        defenses, best = stability_defenses(run, cfg, model, texts[0])
        done: dict[str, Any] = {}
        if run.resumed and progress_path.is_file():
            done = json.loads(progress_path.read_text(encoding="utf-8"))["prompts"]
        hb = Heartbeat(run.path, PHASE, len(texts), step=len(done))
        pause = PauseControl(run.path, PHASE, heartbeat=hb, min_interval_s=pause_check_s)
        try:
            for i, ids in enumerate(texts):
                if str(i) in done:
                    continue
                done[str(i)] = prompt_unit(cfg, model, ids, i, defenses, layers)
                state = {"config_hash": run.record["config_hash"], "prompts": done}
                atomic_write_json(progress_path, state)
                hb.beat(len(done))
                if len(done) < len(texts) and pause.requested():
                    ack = pause.acknowledge(len(done), progress_path)
                    raise Paused(f"paused after {len(done)}/{len(texts)} prompts (ack {ack})")
        except Paused:
            raise
        except BaseException as exc:
            hb.set_status("failed", error=f"{type(exc).__name__}: {exc}")
            raise
        units = [done[str(i)] for i in range(len(texts))]
        metrics = summarize(cfg, units, layers, cache_shape(model.config).kv_heads)
        record = {
            "run_id": run.record["run_id"],
            "config_hash": run.record["config_hash"],
            "metrics": {"stability": metrics},
            "settings": {
                **cfg["stability"],
                "layers": layers,
                "heuristic": best,
                "defenses": list(defenses),
                "region": cfg["corruption"]["axes"]["time_mode"],
                "gamma_delta_norm": GAMMA_DELTA_NORM,
            },
        }
        atomic_write_json(run.file("metrics", "stability_metrics.json"), record)
        hb.set_status("complete", step=len(done))
        for name in (
            "metrics/stability_metrics.json",
            "metrics/stability_progress.json",
            "logs/stability_heartbeat.json",
            "logs/stability_heartbeat.jsonl",
        ):
            run.register_artifact(name)
    return record


def main(args: argparse.Namespace) -> int:
    """Load and resolve the config, then measure stability."""
    cfg = load_run_config(args.config, args.overrides)
    stability_run(cfg, args.run_dir, resume=args.resume, config_path=args.config)
    print(f"cachemedicpp.stability: -> {Path(args.run_dir) / 'metrics/stability_metrics.json'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m cachemedicpp.stability`."""
    return phase_parser(
        "stability",
        "Logit sensitivity and amplification maps of a trained CacheMedic++ run.",
        "the trained and evaluated run directory",
    )


if __name__ == "__main__":
    run_cli(build_parser(), main)
