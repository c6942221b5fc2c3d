"""What MLflow should show of a run, read from its files: params, tags, step logs, metrics, artifacts."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from labkit.jsonl import read_jsonl

FIGURES = (".png", ".pdf", ".svg")
TABLES = (".csv", ".tex", ".md", ".txt")
# JSON files whose numbers are a run's final metrics: metrics.json, summary.json, eval_metrics.json,
# and any JSON file in a metrics/ or results/ folder.
METRIC_STEMS = ("metrics", "summary", "results")
# A log line's step is its `step` field (training logs, heartbeats), else its position in the log: other
# counters (update, episode, epoch) repeat within a log whose lines interleave environments or episodes.
STEP_KEY = "step"
# The MLflow status of a run record's status: a paused run is KILLED until it resumes.
STATUS = {
    "started": "RUNNING",
    "running": "RUNNING",
    "paused": "KILLED",
    "interrupted": "KILLED",
    "complete": "FINISHED",
    "failed": "FAILED",
}


@dataclass
class RunView:
    """One run as MLflow should show it; `record` is the JSON file that keeps the mirror's state."""

    experiment: str
    name: str
    record: Path
    status: str
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    metric_files: list[Path] = field(default_factory=list)
    artifacts: list[Path] = field(default_factory=list)
    root: Path | None = None  # artifacts keep their path relative to it


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dot.key, leaf) pairs of nested mappings; lists are leaves."""
    if isinstance(value, Mapping):
        for key, sub in value.items():
            yield from flatten(sub, f"{prefix}.{key}" if prefix else str(key))
    elif prefix:
        yield prefix, value


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`."""
    return json.loads(path.read_text(encoding="utf-8"))


def _files(root: Path, suffixes: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in suffixes and p.is_file())


def _metric_files(root: Path) -> list[Path]:
    return [
        p
        for p in _files(root, (".json",))
        if not p.stem.endswith("_progress")  # a resumable phase's bookkeeping, not a result
        and (
            any(p.stem == s or p.stem.endswith(f"_{s}") for s in METRIC_STEMS)
            or any(part in METRIC_STEMS for part in p.relative_to(root).parts[:-1])
        )
    ]


def _heartbeat_line(beat: Mapping[str, Any]) -> dict[str, Any]:
    # A heartbeat's own fields (pid, total, ETA) are bookkeeping; its metrics and speed are the news.
    return {
        "step": beat.get("step"),
        "throughput_steps_per_s": beat.get("throughput_steps_per_s"),
        **(beat.get("metrics") or {}),
    }


def _jsonl_logs(root: Path) -> dict[str, list[dict[str, Any]]]:
    logs = {}
    for path in sorted(root.rglob("*.jsonl")):
        records = read_jsonl(path).records
        if path.stem.endswith("_heartbeat"):
            records = [_heartbeat_line(r) for r in records]
        logs[path.relative_to(root).with_suffix("").as_posix()] = records
    return logs


def _common_tags(record: Mapping[str, Any], system: str) -> dict[str, Any]:
    git = record.get("git") or {}
    tags = {
        "system": system,
        "git_commit": git.get("commit"),
        "git_dirty": git.get("dirty"),
        "mlflow.source.git.commit": git.get("commit"),
        "rehearsal": record.get("rehearsal"),
        "weights_sha256": next(
            (v for k, v in flatten(record) if k.endswith("weights_sha256") and v), None
        ),
    }
    for key, seed in (record.get("seeds") or {}).items():
        tags[f"seed.{key}"] = seed
    return tags


def _folder_view(path: Path, system: str, status: str, tags: dict[str, Any]) -> RunView:
    # A run folder with run_record.json and config_resolved.yaml beside its logs, metrics and figures.
    config = yaml.safe_load((path / "config_resolved.yaml").read_text(encoding="utf-8"))
    return RunView(
        experiment=system,
        name=path.name,
        record=path / "run_record.json",
        status=STATUS[status],
        params=dict(flatten(config)),
        tags=tags,
        steps=_jsonl_logs(path),
        metric_files=_metric_files(path),
        artifacts=[
            *_files(path, FIGURES + TABLES),
            path / "config_resolved.yaml",
            path / "run_record.json",
        ],
        root=path,
    )


def labkit_view(path: Path, system: str) -> RunView:
    """A labkit RunDir: one MLflow run for all its phases, each phase's status a tag."""
    record = read_json(path / "run_record.json")
    phases = record.get("phases", {})
    tags = _common_tags(record, system)
    tags.update(config_hash=record.get("config_hash"), device=record.get("device"))
    if phases:
        tags["phase"] = max(phases, key=lambda p: phases[p]["updated_utc"])
    tags.update({f"phase.{name}": p["status"] for name, p in phases.items()})
    return _folder_view(path, system, record["status"], tags)


def avalanche_view(path: Path, system: str) -> RunView:
    """An AvalancheLLM stage run (one folder per phase, its own run record format)."""
    record = read_json(path / "run_record.json")
    tags = _common_tags(record, system)
    tags.update(
        phase=record.get("phase_id"),
        stage=record.get("stage_tag"),
        config_hash=record.get("hashes", {}).get("config_sha256"),
        model_role=record.get("model", {}).get("role"),
    )
    return _folder_view(path, system, record["stage_status"], tags)


def dream_view(manifest: Path, system: str) -> RunView:
    """A D-REAM run: its manifest, the candidate packs it wrote (one trial each) and its generations."""
    record = read_json(manifest)
    run_id = record["run_id"]
    artifacts = manifest.parent.parent
    packs = {
        path: pack
        for path, pack in ((p, read_json(p)) for p in sorted(artifacts.glob("candidates/*/*.json")))
        if pack.get("run_id") == run_id
    }
    steps: dict[str, list[dict[str, Any]]] = {}
    for pack in sorted(packs.values(), key=lambda p: (p["generation"], p["cand_id"])):
        trials = steps.setdefault(f"trials/{pack['domain']}", [])
        trials.append({"generation": pack["generation"], **pack["aggregate"]})
    for log in sorted(artifacts.glob("domain_evolution/*.jsonl")):
        lines = [r for r in read_jsonl(log).records if r.get("run_id") == run_id]
        if lines:
            steps[f"generations/{log.stem.removesuffix('_evolution')}"] = lines
    tags = _common_tags(record, system)
    tags.update(
        phase=record.get("command"),
        config_hash=record.get("config_sha256"),
        profile=record["profile"],
    )
    return RunView(
        experiment=system,
        name=run_id,
        record=manifest,
        status=STATUS[record["status"]],
        params={"profile": record["profile"], **dict(flatten(record.get("settings", {})))},
        tags=tags,
        steps=steps,
        artifacts=[
            *sorted(artifacts.glob("reports/*.png")),
            *sorted(artifacts.glob("reports/*.txt")),
            *packs,
            manifest,
        ],
        root=artifacts,
    )


def sweep_view(summary: Path, system: str) -> tuple[RunView, list[Path]]:
    """A sweep's parent run (its summary) and the run folders of its children."""
    doc = read_json(summary)
    counts = doc.get("counts", {})
    view = RunView(
        experiment=system,
        name=doc["sweep_name"],
        record=summary,
        status=STATUS[doc["status"]],
        params={"entry": doc.get("entry"), "n_runs": doc.get("n_runs")},
        tags={"system": system, "phase": "sweep", "config_hash": doc.get("spec_hash")},
        steps={},
        metric_files=[],
        artifacts=[summary],
        root=summary.parent,
    )
    view.tags.update({f"runs.{k}": v for k, v in counts.items()})
    children = [summary.parent / r["run_dir"] for r in doc.get("runs", [])]
    return view, [c for c in children if (c / "run_record.json").is_file()]
