"""Known-answer validation: phase 5's signature panel and rule on synthetic rasters of the
configured lattice (model layers x seq_len_tokens), where the right verdict is known.

- `iid`: Poisson counts at each configured events-per-site lambda, no structure: never
  quasi-critical, whatever the rate does to b_tot.
- `branching`: a driven branching process with planted m (CONTROLS_M_VALUES) at the largest lambda:
  m_MR must recover m within 0.05.

Sequences: CONTROLS_N_SEQUENCES (not the pipeline's window count: at 16 windows m_MR scatters by
about +-0.1, too much to check a planted m to 0.05).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from avalanche_llm import canon
from avalanche_llm.analysis.controls import Panel, quasi_critical
from avalanche_llm.analysis.summarize import row_nulls
from avalanche_llm.conditions import rate_targets
from avalanche_llm.metrics.stats import ci_seed
from avalanche_llm.raster.synthetic import branching_raster
from avalanche_llm.runs import PhaseContext

STAGE = "S05CTL"
NEEDS: tuple[str, ...] = ()
PRODUCES_RUN = True


def check(ctx: PhaseContext) -> None:
    """The model (for its layer count and MLP width) resolves before a run directory exists."""
    ctx.model()


def synthetic_rows(
    run_id: str, pipeline: dict[str, Any], n_layers: int, lambdas: list[float]
) -> list[dict[str, Any]]:
    """One row per synthetic raster: its signatures, their statuses and the quasi-critical verdict."""
    shape = (pipeline["controls_n_sequences"], n_layers, pipeline["seq_len_tokens"])
    seed = pipeline["bootstrap_seed"]
    cases = [("iid", None, lam) for lam in lambdas]
    cases += [("branching", float(m), max(lambdas)) for m in pipeline["controls_m_values"]]
    rows = []
    for i, (kind, m, lam) in enumerate(cases):
        tag = f"controls:{kind}:{m}:{lam:g}"
        raster_seed = ci_seed(run_id, tag, "raster", seed)
        if kind == "iid":
            A = np.random.default_rng(raster_seed).poisson(lam, size=shape).astype(np.uint16)
        else:
            A = branching_raster(m, shape, lam, raster_seed)
        controls = row_nulls(A, run_id, i, np.arange(shape[0]), seed)
        panel = Panel(A, controls, run_id=run_id, cond=tag, pipeline=pipeline, fits=True)
        side, verdicts = panel.rows()
        status = {v["signature"]: v["status"] for v in verdicts}
        row: dict[str, Any] = {"control": kind, "m_true": m, "lambda": lam}
        for r in side:
            if r["source"] != "real":
                continue
            name = r["signature"]
            row |= {name: r["value"], f"{name}_lo": r["lo"], f"{name}_hi": r["hi"]}
            row[f"{name}_status"] = status[name]
        row["quasi_critical"] = quasi_critical(status, pipeline["quasi_critical_min_signatures"])
        row["evidence"] = sorted(k for k, s in status.items() if s == "evidence")
        row["uninformative"] = sorted(k for k, s in status.items() if s == "uninformative")
        row["controls"] = sorted(controls)
        row |= panel.extras()
        rows.append({k: _json_value(v) for k, v in row.items()})
    return rows


def _json_value(v: Any) -> Any:
    """NaN (an undefined fit) as JSON null; numpy scalars as Python ones."""
    if isinstance(v, (float, np.floating)):
        return None if not np.isfinite(v) else float(v)
    if isinstance(v, np.integer | np.bool_):
        return v.item()
    return v


def run(ctx: PhaseContext) -> None:
    """Write results/controls.json ({"rows": [...]}) and print one line per control."""
    lm = ctx.model()
    lambdas = [t.rho * lm.d_ff for t in rate_targets(ctx.pipeline, lm.d_ff)]
    ctx.run.update(model=lm.describe())
    rows = synthetic_rows(ctx.run.run_id, ctx.pipeline, lm.n_layers, lambdas)
    ctx.run.write_json(canon.output("CONTROLS_JSON"), {"rows": rows}, name="CONTROLS_JSON")
    for r in rows:
        print(
            f"  {r['control']:9s} m={r['m_true']} lambda={r['lambda']:g}: "
            f"m_MR {r['m_mr']} [{r['m_mr_lo']}, {r['m_mr_hi']}], "
            f"b_tot {r['b_tot']}, quasi_critical={r['quasi_critical']}, "
            f"evidence={','.join(r['evidence']) or '-'}, "
            f"uninformative={','.join(r['uninformative']) or '-'}"
        )
