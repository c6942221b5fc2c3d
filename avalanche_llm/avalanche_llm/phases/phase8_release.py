"""Release: re-verify every run behind the S07 run, write MANIFEST.sha256 and the pack zip, check both."""

from __future__ import annotations

from avalanche_llm import canon
from avalanche_llm.io.release import (
    manifest_text,
    pack_files,
    run_closure,
    verify_run,
    verify_zip,
    write_zip,
)
from avalanche_llm.runs import PhaseContext

STAGE = "S08"
NEEDS: tuple[str, ...] = ("S07",)
PRODUCES_RUN = True
PACKED_FOLDERS = ("configs", "spec")


def run(ctx: PhaseContext) -> None:
    """Manifest of configs/, spec/ and the run closure (both roles when S07 saw both), then the zip."""
    run = ctx.run
    runs = run_closure(ctx.deps["S07"], ctx.out_root)
    for r in runs:
        verify_run(r)
    files = pack_files(canon.ROOT, PACKED_FOLDERS, runs)
    manifest = manifest_text(files)
    name = canon.output("MANIFEST")
    run.write_bytes(name, manifest.encode(), name="MANIFEST")
    zip_name = canon.output("PACK_ZIP")
    run.write_with(zip_name, lambda fh: write_zip(fh, files, manifest, name), name="PACK_ZIP")
    n = verify_zip(run.path / zip_name, name)
    run.update(conditions=[{"run_id": r.run_id, "stage_tag": r.stage_tag} for r in runs])
    print(f"  {len(runs)} runs, {n} files verified -> {run.path / zip_name}")
