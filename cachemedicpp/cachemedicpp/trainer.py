"""Self-distillation of R_phi on a frozen model, resumable bit for bit.

Every step's randomness (prefix, clean or corrupted, type, eps, masks) is derived from (seed, step),
so a resumed run needs only φ, Adam and the step to continue exactly as if never paused.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from cachemedicpp.data import train_prefix
from cachemedicpp.families import cache_shape
from cachemedicpp.intervention import Intervention, intervene
from cachemedicpp.losses import (
    LayerKV,
    contraction_loss,
    contraction_ratios,
    identity_loss,
    kd_loss,
    weight_penalty,
)
from cachemedicpp.mixture import make_event, sample_step
from cachemedicpp.repair import RepairOperator
from cachemedicpp.retrieval import RetrievalDocs
from labkit.checkpoint import load_checkpoint, rewind_logs, save_checkpoint
from labkit.control import PauseControl
from labkit.errors import Paused, RunExistsError
from labkit.heartbeat import Heartbeat
from labkit.jsonl import append_jsonl
from labkit.rundir import RunDir, utc_now

PHASE = "train"
LOSSES = ("total", "kd", "id", "contr", "w")


def _layer_kv(teacher: Intervention, student: Intervention, layer: int) -> LayerKV:
    t, s = teacher.records[layer], student.records[layer]
    return LayerKV(
        clean={"K": t.key, "V": t.value},
        corrupted={"K": s.key_read, "V": s.value_read},
        repaired=s.repaired,
        damaged=s.damaged,
    )


class Trainer:
    """The training phase of one run: R_phi, Adam, data and the bookkeeping of the run directory."""

    def __init__(
        self,
        run: RunDir,
        cfg: Mapping[str, Any],
        model: PreTrainedModel,
        stream: torch.Tensor,
        mix: Mapping[str, float],
        grids: Mapping[str, list[float]],
        donor: Mapping[int, tuple[torch.Tensor, torch.Tensor]] | None,
        tokenizer: PreTrainedTokenizerBase,
    ):
        self.run, self.cfg, self.model = run, cfg, model
        self.stream, self.mix, self.grids, self.donor = stream, mix, grids, donor
        shape = cache_shape(model.config)
        self.repair = RepairOperator.from_config(
            cfg["repair"], n_heads=shape.kv_heads, head_dim=shape.head_dim, seed=cfg["seed"]
        ).to(model.device)
        self.optimizer = torch.optim.Adam(self.repair.parameters(), lr=cfg["train"]["lr"])
        self.ckpt = run.path / "checkpoints"
        self.log = run.path / "logs" / "train.jsonl"
        self.step = 0
        self.window = self._empty_window()
        spec = cfg["loss"]["retrieval"]
        self.retrieval = (
            RetrievalDocs(tokenizer, spec, cfg["seed"], shape.positions)
            if spec["prob"] > 0
            else None
        )

    # -- one step ------------------------------------------------------------------------------
    def train_step(self, step: int) -> dict[str, Any]:
        """One optimisation step; returns its losses, contraction ratios and corruption."""
        cfg, model = self.cfg, self.model
        n_tok = cfg["data"]["prefix_tokens"]
        doc = None if self.retrieval is None else self.retrieval.draw(step)
        if doc is None:
            prefix = train_prefix(self.stream, step, n_tok, cfg["seed"]).to(model.device)
            kd, kd_weight = slice(-cfg["loss"]["kd_positions"], None), 1.0
        else:  # a needle document: KD where the answer tokens are predicted, from far back
            prefix, n_tok = doc.ids.to(model.device), doc.ids.shape[1]
            kd, kd_weight = slice(-doc.answer_tokens - 1, -1), self.retrieval.weight
        draw = sample_step(cfg, self.mix, self.grids, step)
        protect = self.repair.layers
        with torch.no_grad(), intervene(model, record=protect) as teacher:
            z_clean = model(prefix).logits[0, kd]
        event = None
        if draw is not None:
            # Training reads the damage in the prefix's own forward pass: always transient.
            event = make_event(
                cfg,
                draw[0],
                draw[1],
                (cfg["seed"], PHASE, step),
                max_len=n_tok,
                donor=self.donor,
                persistence="transient",
            )
        with intervene(model, event, self.repair, record=protect) as student:
            z_rep = model(prefix).logits[0, kd]
        layers = [_layer_kv(teacher, student, layer) for layer in protect]
        lc = cfg["loss"]
        zero = torch.zeros((), device=model.device)
        parts = {"kd": kd_weight * kd_loss(z_clean, z_rep, lc["kd_temperature"])}
        rho = torch.zeros(0)
        if draw is None:
            parts["id"] = identity_loss(layers, lc["eps0"])
            parts["contr"] = zero
        else:
            rho = contraction_ratios(layers, lc["eps0"])
            parts["id"] = zero
            parts["contr"] = contraction_loss(rho, lc["alpha_contr"])
        parts["w"] = weight_penalty(self.repair.parameters()) if lc["lambda_w"] > 0 else zero
        total = (
            parts["kd"]
            + lc["lambda_id"] * parts["id"]
            + lc["lambda_contr"] * parts["contr"]
            + lc["lambda_w"] * parts["w"]
        )
        if not torch.isfinite(total):
            raise FloatingPointError(f"training diverged at step {step}: loss {total.item()}")
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.repair.parameters(), cfg["train"]["grad_clip"]
        )
        self.optimizer.step()
        return {
            "losses": {"total": total.item(), **{k: v.item() for k, v in parts.items()}},
            "grad_norm": grad_norm.item(),
            "rho": rho.detach().tolist(),
            "corruption": {
                "type": None if draw is None else draw[0],
                "epsilon": 0.0 if draw is None else draw[1],
                "eps_realized": student.eps_realized,
            },
        }

    # -- the loop ------------------------------------------------------------------------------
    def fit(
        self, *, pause_check_s: float = 0.5, on_step: Callable[[int], None] | None = None
    ) -> dict[str, Any]:
        """Train from the latest state (or from scratch) to `train.steps`; raise Paused on request."""
        total = self.cfg["train"]["steps"]
        if self.run.resumed:
            self._resume()
        else:
            self._clear_stale()
        hb = Heartbeat(self.run.path, PHASE, total, step=self.step)
        pause = PauseControl(self.run.path, PHASE, heartbeat=hb, min_interval_s=pause_check_s)
        try:
            while self.step < total:
                t0 = time.perf_counter()
                result = self.train_step(self.step + 1)
                self.step += 1
                self._accumulate(result, time.perf_counter() - t0)
                if self.step % self.cfg["train"]["log_every"] == 0 or self.step == total:
                    self._write_log(result)
                hb.beat(self.step, metrics={"loss": result["losses"]["total"]})
                if self.step % self.cfg["train"]["checkpoint_every"] == 0 or self.step == total:
                    repair_path, state_path = self._checkpoint(periodic=True)
                    hb.beat(self.step, checkpoint=repair_path, state=state_path)
                if on_step is not None:
                    on_step(self.step)
                if self.step < total and pause.requested():
                    _, state_path = self._checkpoint(periodic=True, repair=False)
                    ack = pause.acknowledge(self.step, state_path)
                    raise Paused(
                        f"paused after step {self.step}/{total} (ack {ack}); rerun to resume"
                    )
        except Paused:
            raise
        except BaseException as exc:
            hb.set_status("failed", error=f"{type(exc).__name__}: {exc}")
            raise
        hb.set_status("complete", step=self.step)
        return self._finish()

    def _empty_window(self) -> dict[str, Any]:
        return {"steps": 0, "seconds": 0.0, "rho": [], **{k: 0.0 for k in LOSSES}}

    def _accumulate(self, result: dict[str, Any], seconds: float) -> None:
        w = self.window
        w["steps"] += 1
        w["seconds"] += seconds
        w["rho"].extend(result["rho"])
        for k in LOSSES:
            w[k] += result["losses"][k]

    def _write_log(self, result: dict[str, Any]) -> None:
        """One log record: means over the steps since the last one, the latest step's corruption."""
        w = self.window
        rho = np.asarray(w["rho"], dtype=np.float64)
        append_jsonl(
            self.log,
            {
                "run_id": self.run.record["run_id"],
                "phase": PHASE,
                "timestamp_utc": utc_now(),
                "step": self.step,
                "window_steps": w["steps"],
                "losses": {k: w[k] / w["steps"] for k in LOSSES},
                "rho_mean": float(rho.mean()) if rho.size else None,
                "rho_p95": float(np.percentile(rho, 95)) if rho.size else None,
                "grad_norm": result["grad_norm"],
                "lr": self.optimizer.param_groups[0]["lr"],
                "seconds_per_step": w["seconds"] / w["steps"],
                "corruption": result["corruption"],
            },
        )
        self.window = self._empty_window()

    # -- checkpoints ---------------------------------------------------------------------------
    def _checkpoint(self, *, periodic: bool, repair: bool = True) -> tuple[Path | None, Path]:
        """Write `repair_step_<N>.pt` (R_phi only) and the resumable train state."""
        config_hash = self.run.record["config_hash"]
        repair_path = None
        if repair:
            repair_path = save_checkpoint(
                self.ckpt / f"repair_step_{self.step}.pt",
                self.repair.checkpoint(self.step, config_hash),
            )
            self.run.register_artifact(repair_path)
        state = {
            "step": self.step,
            "sampler_position": self.step,  # the data order is a function of (seed, step)
            "phi": self.repair.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "config_hash": config_hash,
            "log_bytes": self.log.stat().st_size if self.log.exists() else 0,
            "window": self.window,
        }
        state_path = save_checkpoint(self.ckpt / "train_state_latest.pt", state)
        if periodic:
            save_checkpoint(self.ckpt / f"train_state_step_{self.step}.pt", state)
        return repair_path, state_path

    def _resume(self) -> None:
        path = self.ckpt / "train_state_latest.pt"
        log = str(self.log.relative_to(self.run.path))
        if not path.is_file():
            # Killed before the first state was saved: training starts over, and so does its log.
            rewind_logs(self.run.path, {log: 0})
            return
        state = load_checkpoint(path, map_location=str(self.model.device))
        if state["config_hash"] != self.run.record["config_hash"]:
            raise RunExistsError(
                f"{path} was saved under config hash {state['config_hash'][:12]}, "
                f"this run's is {self.run.record['config_hash'][:12]}; use a new --run_dir"
            )
        self.repair.load_state_dict(state["phi"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.window = state["step"], state["window"]
        # Steps after the state are redone, so their log lines (if a kill left any) must go.
        rewind_logs(self.run.path, {log: state["log_bytes"]})

    def _clear_stale(self) -> None:
        """A restarted phase (--no-resume) must not keep the files of the attempt it replaces."""
        for pattern in ("repair_step_*.pt", "train_state_*.pt"):
            for path in self.ckpt.glob(pattern):
                path.unlink()
        self.log.unlink(missing_ok=True)

    def _finish(self) -> dict[str, Any]:
        for name in ("logs/train.jsonl", "logs/train_heartbeat.json", "logs/train_heartbeat.jsonl"):
            self.run.register_artifact(name)
        return {
            "steps": self.step,
            "repair_params": self.repair.n_params(),
            "checkpoint": f"checkpoints/repair_step_{self.step}.pt",
        }
