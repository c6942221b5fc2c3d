"""The phase framework: resolve, find upstream runs, pick the run id, create the run, run the phase."""

from __future__ import annotations

import argparse
import contextlib
import os
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import torch

from avalanche_llm.config import ResolvedConfig
from avalanche_llm.io.artifacts import RECORD, RunArtifacts, StageRun, read_record
from avalanche_llm.io.jsonl import log_event
from avalanche_llm.run_id import make_run_id
from labkit.determinism import determinism_flags, seed_everything
from labkit.errors import ConfigError, MissingInputError, RunExistsError
from labkit.executors import Executor, LocalExecutor, executor_spec, make_executor
from labkit.heartbeat import Heartbeat
from labkit.rundir import check_creatable

if TYPE_CHECKING:
    from avalanche_llm.model.loader import LoadedModel
    from avalanche_llm.slices import Slice


@dataclass
class PhaseContext:
    """Everything a phase needs: resolved config, its run (None for dry runs/phase 0), upstream runs."""

    subcommand: str
    stage_tag: str
    config: ResolvedConfig
    run_id: str
    out_root: Path
    deps: dict[str, RunArtifacts]
    args: argparse.Namespace
    run: StageRun | None = None
    # Where the phase's independent units run (phase_tasks): in this process unless asked otherwise.
    executor: Executor = field(default_factory=LocalExecutor)

    @property
    def cfg(self) -> dict[str, Any]:
        """The resolved config as a dict."""
        return self.config.data

    @property
    def pipeline(self) -> dict[str, Any]:
        """The `pipeline` section (every CANON constant as a lower-case key)."""
        return self.cfg["pipeline"]

    @property
    def role(self) -> str:
        """The model role of this run (INSTRUCT or BASE)."""
        return self.cfg["runtime"]["model_role"]

    def const(self, name: str) -> Any:
        """Constant `NAME` as this config sets it (`pipeline.<name>`, default CANON.CONST.<NAME>)."""
        return self.pipeline[name.lower()]

    def model(self, role: str | None = None) -> LoadedModel:
        """The model of `role` (this run's by default) on the configured device and dtype, loaded once."""
        return shared_model(self.cfg, role or self.role)

    def config_for_role(self, role: str) -> ResolvedConfig:
        """This run's config resolved for another model role (same file, device, dtype, overrides).

        Its `sha256` finds that role's runs: `find_dependencies(needs, ctx.out_root, cfg.sha256, [])`.
        """
        from avalanche_llm.config import resolve_config

        rt = self.cfg["runtime"]
        return resolve_config(
            self.config.source,
            model_role=role,
            device=rt["device"],
            dtype=rt["dtype"],
            overrides=self.config.overrides,
        )

    def require_inputs(self, *dataset_roles: str) -> None:
        """Load this run's model and open the named data sets now, so a missing one fails before work."""
        from avalanche_llm.slices import dataset_split

        self.model()
        for role in dataset_roles:
            ds = self.cfg["datasets"][role]
            dataset_split(ds["id"], ds["config"], ds["split"], self.cfg["runtime"]["local_hint"])

    def drop_model(self, role: str) -> None:
        """Forget a loaded model so its memory can be freed."""
        forget_model(self.cfg, role)

    def slice(self, name: str, *, anchor: str | None = None, verify: str | None = None) -> Slice:
        """Data slice `name` (see slices.SLICES), drawn with the S01 run id as anchor.

        `verify` names a dependency stage whose recorded slice must hash alike (else exit 3).
        """
        from avalanche_llm.slices import draw_slice, verify_slice

        anchor = anchor or self.deps["S01"].run_id
        lm = self.model()
        sl = draw_slice(self.cfg, name, anchor, lm.tokenizer, lm.d_ff)
        if verify is not None:
            verify_slice(sl, self.deps[verify])
        return sl

    def log(self, event: str, **fields: Any) -> None:
        """Append an event to the run's JSONL log (no-op without a run directory)."""
        if self.run is not None:
            log_event(self.run.path, event, **fields)

    def heartbeat(self, total: int) -> Heartbeat:
        """A heartbeat for this phase in the run's logs/ (use as a context manager)."""
        assert self.run is not None, "heartbeats need a run directory"
        return Heartbeat(self.run.path, self.subcommand, total, min_interval_s=2.0)


# The models loaded in this process, shared by a phase and the tasks it runs here (one copy of a
# 7B model, not two); `execute` empties it when the phase ends.
_MODELS: dict[tuple[str, str, str], LoadedModel] = {}


def model_key(cfg: dict[str, Any], role: str) -> tuple[str, str, str]:
    """(hf_id, device, dtype) of `role`'s model under config `cfg`."""
    rt = cfg["runtime"]
    return cfg["models"][role]["hf_id"], rt["device"], rt["dtype"]


def shared_model(cfg: dict[str, Any], role: str) -> LoadedModel:
    """`role`'s model on the configured device and dtype, loaded once per process."""
    from avalanche_llm.model.loader import load_model

    key = model_key(cfg, role)
    if key not in _MODELS:
        _MODELS[key] = load_model(*key, cfg["runtime"]["local_hint"])
    return _MODELS[key]


def forget_model(cfg: dict[str, Any], role: str) -> None:
    """Let this process's copy of `role`'s model go, so its memory can be freed."""
    _MODELS.pop(model_key(cfg, role), None)


def is_loaded(cfg: dict[str, Any], role: str) -> bool:
    """Whether this process holds `role`'s model already."""
    return model_key(cfg, role) in _MODELS


def setup_determinism(cfg: dict[str, Any]) -> dict[str, Any]:
    """Seed everything from BOOTSTRAP_SEED, force deterministic kernels, no TF32; return the flags."""
    pipeline, runtime = cfg["pipeline"], cfg["runtime"]
    os.environ["CUBLAS_WORKSPACE_CONFIG"] = pipeline["cublas_workspace_config"]
    if runtime["torch_threads"]:
        torch.set_num_threads(runtime["torch_threads"])
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    seed_everything(pipeline["bootstrap_seed"], deterministic=True)
    return {
        **determinism_flags(pipeline["bootstrap_seed"]),
        "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
    }


def check_environment(cfg: dict[str, Any]) -> dict[str, Any]:
    """The transformers pin (fatal when STRICT_GATES) and the device; returns what was found."""
    import transformers

    pin = cfg["pipeline"]["transformers_version_pin"]
    ok = transformers.__version__ == pin
    if not ok and cfg["pipeline"]["strict_gates"]:
        raise ConfigError(
            f"transformers {transformers.__version__} installed, pipeline pins {pin} "
            "(STRICT_GATES; set pipeline.strict_gates=false to record it instead)"
        )
    if cfg["runtime"]["device"] == "cuda" and not torch.cuda.is_available():
        raise MissingInputError("--device cuda but no CUDA device is available (use --device cpu)")
    return {"transformers": transformers.__version__, "pin": pin, "pin_ok": ok}


def _candidates(out_root: Path) -> list[Path]:
    return sorted(p for p in out_root.glob("RUN_*") if (p / RECORD).is_file())


def find_dependencies(
    needs: Sequence[str], out_root: Path, config_sha256: str, explicit: Sequence[str]
) -> dict[str, RunArtifacts]:
    """Upstream runs by stage tag: `--dep` ids first, else the one complete run with this config hash."""
    deps: dict[str, RunArtifacts] = {}
    for run_id in explicit:
        path = out_root / run_id
        if not (path / RECORD).is_file():
            raise MissingInputError(f"--dep {run_id}: no run directory {path}")
        dep = RunArtifacts(path)
        if dep.stage_tag not in needs:
            raise ConfigError(f"--dep {run_id} is a {dep.stage_tag} run; this phase needs {needs}")
        if dep.record["stage_status"] != "complete":
            raise MissingInputError(f"--dep {run_id} is {dep.record['stage_status']}, not complete")
        if dep.stage_tag in deps:
            raise ConfigError(f"two --dep runs given for stage {dep.stage_tag}")
        deps[dep.stage_tag] = dep
    for tag in needs:
        if tag in deps:
            continue
        matches = [
            p
            for p in _candidates(out_root)
            if (rec := read_record(p))["stage_tag"] == tag
            and rec["hashes"]["config_sha256"] == config_sha256
            and rec["stage_status"] == "complete"
        ]
        if not matches:
            raise MissingInputError(
                f"no complete {tag} run with config hash {config_sha256[:12]} under {out_root}; "
                f"run that phase first (or name one with --dep)"
            )
        if len(matches) > 1:
            names = ", ".join(p.name for p in matches)
            raise ConfigError(f"several complete {tag} runs match ({names}); pick one with --dep")
        deps[tag] = RunArtifacts(matches[0])
    return deps


def check_upstream_weights(deps: dict[str, RunArtifacts], cfg: dict[str, Any]) -> None:
    """Refuse upstream runs that measured other weights than this config's model now resolves to.

    Same config hash means the same model name, not the same bytes: a zoo rebuild or a moved hub
    snapshot would otherwise join two models' results in one pipeline.
    """
    from labkit.zoo import resolve_model, weights_digest

    rt = cfg["runtime"]
    for dep in deps.values():
        measured = dep.record.get("model", {})
        if "weights_sha256" not in measured:
            continue
        path = resolve_model(measured["hf_id"], local_hint=rt["local_hint"])
        if weights_digest(path) != measured["weights_sha256"]:
            raise ConfigError(
                f"upstream {dep.path.name} measured {measured['hf_id']} with weights "
                f"{measured['weights_sha256'][:12]}; it now resolves to {weights_digest(path)[:12]} "
                f"({path}): rerun the pipeline into a new --out_root"
            )


@contextlib.contextmanager
def collecting_nondeterminism() -> Iterator[list[str]]:
    """Collect (into the yielded list, sorted, on exit) every op torch warns has no deterministic
    implementation; other warnings pass through unchanged."""
    ops: list[str] = []
    caught: list[warnings.WarningMessage] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield ops
    finally:
        ops[:] = sorted({str(w.message) for w in caught if "deterministic" in str(w.message)})
        others = {(str(w.message), w.category, w.filename, w.lineno): w for w in caught}
        for (text, *_), w in others.items():  # outside the catching block, each once
            if text not in ops:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


@contextlib.contextmanager
def recording_nondeterminism(run: StageRun) -> Iterator[None]:
    """Record in the run record (determinism.nondeterministic_ops) every op torch warns has no
    deterministic implementation; other warnings pass through unchanged."""
    try:
        with collecting_nondeterminism() as ops:
            yield
    finally:
        run.update(determinism={**run.record["determinism"], "nondeterministic_ops": ops})


def execute(
    subcommand: str,
    module: ModuleType,
    config: ResolvedConfig,
    args: argparse.Namespace,
    upstream_sha256: str | None = None,
) -> int:
    """Run one phase end to end with the contract's checks and exit codes; returns 0.

    Upstream runs are found by `upstream_sha256` (default: this config's hash): a phase-specific
    flag such as --arc_split changes this run's hash, not the hash its upstream runs were made with.
    """
    try:
        return _execute(subcommand, module, config, args, upstream_sha256)
    finally:
        _MODELS.clear()  # a model lives as long as its phase


def _execute(
    subcommand: str,
    module: ModuleType,
    config: ResolvedConfig,
    args: argparse.Namespace,
    upstream_sha256: str | None,
) -> int:
    started = time.monotonic()
    # A bad --executor / --ray_address is a usage error (exit 2) before any work.
    executor = make_executor(executor_spec(args), args.workers)
    out_root = Path(args.out_root)
    check_creatable(out_root)  # a file in the way or no write access: exit 2 before any work
    stage = module.STAGE
    determinism = setup_determinism(config.data)
    env = check_environment(config.data)
    deps = find_dependencies(
        module.NEEDS, out_root, upstream_sha256 or config.sha256, getattr(args, "dep", [])
    )
    check_upstream_weights(deps, config.data)
    run_id = make_run_id(args.run_id_mode, config.bytes, stage, out_root)
    ctx = PhaseContext(subcommand, stage, config, run_id, out_root, deps, args, executor=executor)
    existing = out_root / run_id
    # The contract (spec/14) reopens an existing run only with --allow_resume, and never a complete one.
    if module.PRODUCES_RUN and (existing / RECORD).is_file():
        status = read_record(existing)["stage_status"]
        if status == "complete":
            raise RunExistsError(
                f"run {existing} is complete; nothing was changed (use a new --out_root to redo it)"
            )
        if not args.allow_resume:
            raise RunExistsError(
                f"run {existing} is {status}; nothing was changed (add --allow_resume to continue it)"
            )
    elif module.PRODUCES_RUN and existing.exists():
        raise RunExistsError(f"{existing} exists and is not a run directory; nothing was changed")
    if hasattr(module, "check"):
        module.check(ctx)
    if args.dry_run or not module.PRODUCES_RUN:
        if not module.PRODUCES_RUN and not args.dry_run:
            module.run(ctx)
        plan = f"would create {out_root / run_id}" if module.PRODUCES_RUN else "no run directory"
        print(f"{subcommand}: ok ({'dry run; ' if args.dry_run else ''}{plan})")
        return 0
    out_root.mkdir(parents=True, exist_ok=True)
    run = StageRun.create(
        out_root,
        run_id,
        config=config,
        phase_id=subcommand,
        stage_tag=stage,
        dependencies=list(deps.values()),
        determinism=determinism,
        allow_resume=args.allow_resume,
        started=started,
    )
    ctx.run = run
    run.update(versions={"transformers_pin_ok": env["pin_ok"]})
    run.set_status("running")
    try:
        with recording_nondeterminism(run):
            module.run(ctx)
    except BaseException as exc:
        run.set_status("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    run.set_status("complete")
    print(f"{subcommand}: complete -> {run.path}")
    return 0
