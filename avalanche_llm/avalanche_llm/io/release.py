"""Release pack: the run closure of a phase 7 run, a sha256 manifest, a deterministic zip, re-verified."""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from avalanche_llm.io.artifacts import RunArtifacts
from labkit.errors import ConfigError, MissingInputError
from labkit.rundir import sha256_file

_EPOCH = (1980, 1, 1, 0, 0, 0)


def run_closure(start: RunArtifacts, out_root: Path) -> list[RunArtifacts]:
    """`start` and every run it depends on, transitively, sorted by run id."""
    seen: dict[str, RunArtifacts] = {start.run_id: start}
    todo = [start]
    while todo:
        for dep in todo.pop().record["dependencies"]:
            if dep["run_id"] not in seen:
                path = out_root / dep["relative_path"]
                if not path.is_dir():
                    raise MissingInputError(
                        f"dependency {dep['run_id']} is missing under {out_root}"
                    )
                seen[dep["run_id"]] = RunArtifacts(path)
                todo.append(seen[dep["run_id"]])
    return [seen[k] for k in sorted(seen)]


def verify_run(run: RunArtifacts) -> None:
    """Exit 2 unless the run is complete and every indexed artifact still has its recorded sha256."""
    if run.record["stage_status"] != "complete":
        raise ConfigError(f"{run.run_id} is {run.record['stage_status']}, not complete")
    for entry in run.record["artifact_index"]:
        run.artifact(entry["relative_path"])


def pack_files(root: Path, folders: Iterable[str], runs: Iterable[RunArtifacts]) -> dict[str, Path]:
    """Pack path -> file: every file under `folders` of `root`, and every file of each run."""
    files = {}
    for folder in folders:
        for p in sorted((root / folder).rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                files[p.relative_to(root).as_posix()] = p
    for run in runs:
        for p in sorted(run.path.rglob("*")):
            if p.is_file():
                files[f"runs/{run.run_id}/{p.relative_to(run.path).as_posix()}"] = p
    return dict(sorted(files.items()))


def manifest_text(files: dict[str, Path]) -> str:
    """`<sha256>  <path>` lines (sha256sum format), sorted by path."""
    return "".join(f"{sha256_file(p)}  {name}\n" for name, p in files.items())


def write_zip(fh: BinaryIO, files: dict[str, Path], manifest: str, manifest_name: str) -> None:
    """A zip of the manifest and every file, fixed timestamps and order: same files, same bytes."""
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in [(manifest_name, manifest.encode())] + [
            (n, p.read_bytes()) for n, p in files.items()
        ]:
            info = zipfile.ZipInfo(name, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)


def verify_zip(path: Path, manifest_name: str) -> int:
    """Exit 2 unless every manifest line matches its member in the zip; returns the member count."""
    with zipfile.ZipFile(path) as zf:
        lines = zf.read(manifest_name).decode().splitlines()
        for line in lines:
            digest, name = line.split("  ", 1)
            if hashlib.sha256(zf.read(name)).hexdigest() != digest:
                raise ConfigError(f"{path.name}: {name} does not match its manifest hash")
        extra = set(zf.namelist()) - {manifest_name} - {ln.split("  ", 1)[1] for ln in lines}
    if extra:
        raise ConfigError(f"{path.name} holds files the manifest does not list: {sorted(extra)}")
    return len(lines)
