"""Paper export: claim-to-evidence notes per model role and the replication table T07.

The other model role's S05/S06B/S06ARC runs are found by the config hash this config resolves to for
that role. Where they are missing, T07 keeps only this role's columns and the note says so.
"""

from __future__ import annotations

from avalanche_llm import canon
from avalanche_llm.config import resolve_config
from avalanche_llm.io.artifacts import RunArtifacts
from avalanche_llm.paper.export import claims_markdown, replication_rows, role_summary
from avalanche_llm.plotting.outputs import write_table
from avalanche_llm.plotting.tables import SKELETONS
from avalanche_llm.runs import PhaseContext, find_dependencies
from labkit.errors import MissingInputError
from labkit.stamp import stamp_table

STAGE = "S07"
NEEDS: tuple[str, ...] = ("S05", "S06B", "S06ARC")
PRODUCES_RUN = True
OTHER = {"INSTRUCT": "BASE", "BASE": "INSTRUCT"}


def other_role_runs(ctx: PhaseContext) -> dict[str, RunArtifacts] | None:
    """The other role's S05, S06B and S06ARC runs for this config, or None if it was not run."""
    args = ctx.args
    other = resolve_config(
        ctx.config.source,
        model_role=OTHER[ctx.role],
        device=args.device,
        dtype=args.dtype,
        overrides=args.set,
    )
    try:
        return find_dependencies(NEEDS, ctx.out_root, other.sha256, [])
    except MissingInputError:
        return None


def run(ctx: PhaseContext) -> None:
    """Write paper/claims_<ROLE>.md for each role with runs, then T07."""
    run = ctx.run
    by_role = {ctx.role: ctx.deps}
    other = other_role_runs(ctx)
    if other is None:
        print(f"  no {OTHER[ctx.role]} runs for this config: T07 has {ctx.role} columns only")
    else:
        by_role[OTHER[ctx.role]] = other
        run.update(
            dependencies=run.record["dependencies"]
            + [
                {
                    "stage_tag": d.stage_tag,
                    "run_id": d.run_id,
                    "config_sha256": d.record["hashes"]["config_sha256"],
                    "relative_path": d.run_id,
                }
                for d in other.values()
            ]
        )
    for role, runs in sorted(by_role.items()):
        text = stamp_table(claims_markdown(role, runs), "md", rehearsal=run.record["rehearsal"])
        rel = canon.output("PAPER_CLAIMS_MD").format(ROLE=role)
        run.write_bytes(rel, text.encode("utf-8"), name=f"PAPER_CLAIMS_MD_{role}")
    summaries = {role: role_summary(runs["S05"]) for role, runs in sorted(by_role.items())}
    rows = replication_rows(summaries)
    for column in SKELETONS["T07_REPLICATION_SUMMARY"]:
        if column not in rows:
            rows[column] = None  # the role that was not run
    roles = "|".join(sorted(by_role))
    write_table(ctx, "T07_REPLICATION_SUMMARY", rows, "A", model_role=roles)
