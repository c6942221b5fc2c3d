"""`python -m dream doctor|baseline|evaluate|service|approvals|promote|rollback|report|dashboard`."""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from dream.config import DEFAULT_CAPS, DEFAULT_REGIMES, DreamConfig, load_config
from labkit.cli import bounded_int, run_cli
from labkit.errors import ConfigError, MissingInputError
from labkit.tables import add_json_flag, print_json, table_console
from labkit.tracking import note as note_for_tracking

if TYPE_CHECKING:
    from optuna.storages import RDBStorage

    from dream.baseline import BaselineStore
    from dream.evaluator import EvalContext
    from dream.fleet import WorkerOptions

_CAND_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")
# Each subcommand imports what it needs when it runs: optuna, scipy and matplotlib together take
# seconds to load, which `doctor` and `approvals list` should not pay.
COMMANDS = (
    "doctor",
    "baseline",
    "evaluate",
    "service",
    "worker",
    "approvals",
    "promote",
    "rollback",
    "report",
    "dashboard",
)


def _domains(text: str) -> tuple[str, ...]:
    names = tuple(x.strip() for x in text.split(",") if x.strip())
    if not names:
        raise argparse.ArgumentTypeError("give at least one domain")
    return names


def _cand_id(text: str) -> str:
    # A pack's file name: checked while parsing, so a bad one is refused before any measuring.
    if not _CAND_ID.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a pack name (letters, digits, '_', '-', '.'; at most 64; not starting with '.')"
        )
    return text


def _common(p: argparse.ArgumentParser, *, measuring: bool = False, many: bool = False) -> None:
    here = Path("runs") / socket.gethostname().split(".")[0]
    if many:
        p.add_argument(
            "--out_root",
            type=Path,
            action="append",
            default=None,
            help="one host's tree; repeat it to aggregate hosts (default: runs/<hostname>)",
        )
    else:
        p.add_argument(
            "--out_root",
            type=Path,
            default=here,
            help="where artifacts/ lives (default: runs/<hostname>, one agent per host)",
        )
    p.add_argument("--profile", default="local", help="regimes.yaml profile: local or full")
    p.add_argument("--regimes", type=Path, default=DEFAULT_REGIMES, help="regimes.yaml to use")
    p.add_argument("--caps", type=Path, default=DEFAULT_CAPS, help="caps.yaml to use")
    p.add_argument(
        "--override",
        "-o",
        action="append",
        default=[],
        metavar="FILE.KEY=VALUE",
        help="e.g. regimes.profiles.local.execution.trials=8 or caps.tolerance.perf_alpha=0.01",
    )
    if measuring:
        p.add_argument(
            "--seed",
            type=bounded_int(0, 2**32 - 1),
            default=0,
            help="master seed (workloads, bootstrap, search)",
        )
        p.add_argument("--actuation", choices=("shadow", "real"), default="shadow")
        p.add_argument(
            "--yes-write-host",
            action="store_true",
            help="with --actuation real: really write allowlisted sysfs/sysctl settings (root only)",
        )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    ap = argparse.ArgumentParser(prog="python -m dream", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True, metavar="|".join(COMMANDS))

    p = sub.add_parser("doctor", help="host capabilities, tools, which domains run and why not")
    _common(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")

    p = sub.add_parser("baseline", help="measure the stock genome of domains on all four regimes")
    _common(p, measuring=True)
    p.add_argument("--domain", type=_domains, required=True, help="one or more, comma-separated")
    p.add_argument("--refresh-baseline", action="store_true", help="remeasure even if current")
    add_json_flag(p)

    p = sub.add_parser("evaluate", help="evaluate one genome against the stock baselines")
    _common(p, measuring=True)
    p.add_argument("--domain", required=True)
    p.add_argument(
        "--genome", default="{}", help='JSON of genes to change from stock, e.g. {"thread_count":1}'
    )
    p.add_argument("--stage", choices=("screen", "full"), default="full")
    p.add_argument(
        "--cand-id", type=_cand_id, default="manual_00", help="pack name under candidates/<domain>/"
    )

    p = sub.add_parser("service", help="evolve genomes: generations of NSGA-II over the domains")
    _common(p, measuring=True)
    add_json_flag(p)
    p.add_argument(
        "--domains", type=_domains, default=None, help="default: every domain this host runs"
    )
    # Lower bounds are ServiceOptions' (its messages say why); the upper ones keep a run finite.
    p.add_argument("--generations", type=bounded_int(0, 10_000), default=5)
    p.add_argument("--population", type=bounded_int(0, 10_000), default=20)
    p.add_argument("--refresh-baseline", action="store_true")

    p = sub.add_parser(
        "worker", help="one fleet worker: screen trials of a study shared through RDB storage"
    )
    _common(p, measuring=True)
    p.add_argument("--domain", required=True)
    p.add_argument(
        "--storage",
        required=True,
        help="SQLAlchemy URL of the shared study, e.g. postgresql+psycopg://user@dbhost:5432/dream",
    )
    p.add_argument("--study", default=None, help="the shared study's name (default: the domain)")
    p.add_argument(
        "--n-trials",
        type=bounded_int(0, 100_000),
        required=True,
        help="evaluated trials the fleet brings the study to",
    )
    p.add_argument(
        "--population",
        type=bounded_int(0, 10_000),
        default=20,
        help="NSGA-II population (same fleet-wide)",
    )
    p.add_argument(
        "--worker",
        type=bounded_int(0, 10_000),
        default=0,
        help="this worker's index (seeds its sampler)",
    )
    p.add_argument(
        "--heartbeat-interval", type=bounded_int(0, 3600), default=5, help="seconds between beats"
    )
    p.add_argument(
        "--grace-period",
        type=bounded_int(0, 86_400),
        default=30,
        help="seconds without a beat before a trial is dead",
    )
    p.add_argument(
        "--max-retry", type=bounded_int(0, 100), default=2, help="retries of a dead worker's trial"
    )

    p = sub.add_parser("approvals", help="list, approve or reject packs waiting for a human")
    _common(p)
    add_json_flag(p)
    p.add_argument("action", choices=("list", "approve", "reject"))
    p.add_argument("domain", nargs="?")
    p.add_argument("cand_id", nargs="?")
    p.add_argument("--all", action="store_true", help="list: decided entries too")
    p.add_argument("--by", default=None, help="who decides (default: the login name)")
    p.add_argument("--note", default=None)

    p = sub.add_parser(
        "promote", help="promote an approved pack (a record; --apply-real writes it)"
    )
    _common(p)
    p.add_argument("domain")
    p.add_argument("cand_id")
    p.add_argument("--by", default=None)
    p.add_argument("--apply-real", action="store_true", help="write the genome's real settings")
    p.add_argument("--yes-write-host", action="store_true")
    p.add_argument("--accept-unchecked-caps", action="store_true")

    p = sub.add_parser("rollback", help="undo a domain's promotion (restores real settings)")
    _common(p)
    p.add_argument("domain")
    p.add_argument("--by", default=None)

    p = sub.add_parser("report", help="tables and figures of a generation's packs")
    _common(p, many=True)
    p.add_argument(
        "--generation",
        type=bounded_int(-1, 10_000),
        default=None,
        help="default: the latest; -1: fleet workers' trials",
    )
    p.add_argument("--domains", type=_domains, default=None)
    add_json_flag(p)

    p = sub.add_parser("dashboard", help="web page: approvals queue, pack evidence, promotions")
    _common(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: localhost)")
    p.add_argument("--port", type=bounded_int(0, 65_535), default=8765)
    return ap


def _config(args: argparse.Namespace) -> DreamConfig:
    for path in (args.regimes, args.caps):
        if not Path(path).is_file():
            raise MissingInputError(f"config file not found: {path}")
    return load_config(args.regimes, args.caps, profile=args.profile, overrides=args.override)


def _check_actuation(args: argparse.Namespace) -> None:
    if args.actuation == "real" and not args.yes_write_host:
        raise ConfigError("--actuation real writes host settings: add --yes-write-host")
    if args.actuation == "real" and os.geteuid() != 0:
        raise ConfigError("--actuation real needs root; without it every real gene stays at stock")


def _context(args: argparse.Namespace, cfg: DreamConfig, run_id: str) -> EvalContext:
    from dream.evaluator import EvalContext

    return EvalContext(
        cfg,
        args.out_root,
        run_id=run_id,
        seed=args.seed,
        actuation_mode=args.actuation,
        confirm_real=args.yes_write_host,
    )


def _genome_changes(text: str) -> dict[str, Any]:
    try:
        changes = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"--genome is not JSON: {exc}") from None
    if not isinstance(changes, dict):
        raise ConfigError("--genome must be a JSON object of gene: value")
    return changes


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    skip = {"command", "debug", "regimes", "caps", "out_root", "track"}  # track: where, not what
    out = {k: v for k, v in vars(args).items() if k not in skip}
    if "storage" in out:  # a manifest must not keep a database password
        from dream.search import safe_url

        out["storage"] = safe_url(out["storage"])
    return json.loads(json.dumps(out, default=str))


def _measure(args: argparse.Namespace, console: Console) -> dict[str, Any]:
    from dream.actuators import Actuation
    from dream.baseline import BaselineStore, ensure_baselines
    from dream.candidate_pack import new_pack_path
    from dream.domains import genome_spec, require_available
    from dream.evaluator import evaluate_candidate
    from dream.host import HostInfo
    from dream.manifest import (
        Manifest,
        capabilities,
        exclusive,
        new_run_id,
        recover_interrupted,
    )
    from dream.reaper import PIDFILE, sweep
    from dream.service import ServiceOptions, run_service

    cfg = _config(args)
    _check_actuation(args)
    if args.command == "worker":
        from dream.fleet import WorkerOptions
        from dream.search import fleet_storage

        fleet = WorkerOptions(
            args.domain,
            args.storage,
            args.study or args.domain,
            args.n_trials,
            args.population,
            args.worker,
            args.heartbeat_interval,
            args.grace_period,
            args.max_retry,
        )
        require_available([args.domain], HostInfo.detect())
        # The shared study must answer before this host measures anything.
        storage = fleet_storage(
            fleet.storage,
            heartbeat_interval=fleet.heartbeat_interval,
            grace_period=fleet.grace_period,
            max_retry=fleet.max_retry,
        )
    elif args.command == "service":
        opts = ServiceOptions(
            args.domains, args.generations, args.population, args.refresh_baseline
        )
        require_available(args.domains or (), HostInfo.detect())
    elif args.command == "baseline":
        require_available(args.domain, HostInfo.detect())
    else:
        host = HostInfo.detect()
        require_available([args.domain], host)
        # Checked against the same actuation the run will use, before anything is written.
        gate = Actuation(
            args.actuation,
            rollback_path=Path(args.out_root) / "artifacts/rollback/actuation.json",
            allowlist=cfg.real_allowlist,
            confirmed=args.yes_write_host,
        )
        genome = genome_spec(args.domain, host, gate).check(_genome_changes(args.genome))
    artifacts = Path(args.out_root) / "artifacts"
    if args.command == "evaluate":
        new_pack_path(artifacts, args.domain, args.cand_id)
    with exclusive(artifacts):
        if args.command == "evaluate":  # again under the lock: another command may have written it
            new_pack_path(artifacts, args.domain, args.cand_id)
        killed = sweep(Path(args.out_root) / "scratch" / PIDFILE)
        if killed:
            console.print(f"killed {len(killed)} workload processes a dead run left: {killed}")
        interrupted = recover_interrupted(args.out_root)
        ctx = _context(args, cfg, new_run_id(artifacts))
        manifest = Manifest(ctx, args.command, _settings(args))
        manifest.doc.update(capabilities=capabilities(ctx), resumes=interrupted)
        with manifest.running():
            console.print(f"run {ctx.run_id} → {manifest.path}")
            if args.command == "service":
                return run_service(ctx, opts, manifest)
            store = BaselineStore(artifacts / "baselines.json")
            if args.command == "worker":
                return _work(ctx, store, fleet, storage)
            if args.command == "baseline":
                return {
                    d: ensure_baselines(ctx, store, d, refresh=args.refresh_baseline)
                    for d in args.domain
                }
            baselines = ensure_baselines(ctx, store, args.domain)
            pack = evaluate_candidate(
                ctx,
                args.domain,
                genome,
                generation=-1,
                cand_id=args.cand_id,
                stage=args.stage,
                baselines=baselines,
            )
            return pack.to_dict()


def _work(
    ctx: EvalContext, store: BaselineStore, opts: WorkerOptions, storage: RDBStorage
) -> dict[str, Any]:
    """A fleet worker: this host's stock on `normal`, then trials of the shared study."""
    from dream.baseline import ensure_baselines
    from dream.evaluator import stage_plan
    from dream.fleet import STAGE, run_worker
    from dream.search import SearchEngine
    from labkit.control import PauseControl
    from labkit.heartbeat import Heartbeat

    assert ctx.sensors is not None
    engine = SearchEngine(
        ctx.artifacts / "studies",
        ctx.spec(opts.domain),
        population=opts.population,
        seed=ctx.seed,
        watts="watts" not in ctx.sensors.unmeasurable(),
        storage=storage,
        study_name=opts.study,
    )
    # Baselines are this host's own; a screen pack needs only its regimes'.
    regimes, _ = stage_plan(ctx.cfg, STAGE)
    baselines = ensure_baselines(ctx, store, opts.domain, regimes=regimes)
    with Heartbeat(ctx.artifacts, "worker", total=opts.n_trials) as hb:
        return run_worker(
            ctx,
            engine,
            opts,
            baselines,
            lambda done, last: hb.beat(done, metrics={"last": last}),
            PauseControl(ctx.artifacts, "worker", heartbeat=hb),
        )


def _print_baselines(result: dict[str, Any], console: Console) -> None:
    t = Table(title="stock baselines", title_justify="left")
    for col in ("domain", "regime", "baseline_id", "ok/run", "perf", "p95_ms", "watts"):
        t.add_column(col)
    for d, regimes in result.items():
        for r, rec in regimes.items():
            k = rec["kpis"]
            t.add_row(
                d,
                r,
                rec["baseline_id"],
                f"{rec['trials_ok']}/{rec['trials']}",
                *("—" if k[x] is None else f"{k[x]:.4g}" for x in ("perf", "p95_ms", "watts")),
            )
    console.print(t)


def _approvals(args: argparse.Namespace, console: Console) -> None:
    from dream.approvals import Approvals, current_user

    cfg = _config(args)
    queue = Approvals(Path(args.out_root) / "artifacts", max_pending=cfg.max_pending_approvals)
    if args.action == "list":
        entries = queue.entries(args.domain, None if args.all else "pending")
        t = Table(title=f"approvals ({'all' if args.all else 'pending'})", title_justify="left")
        for col in ("domain", "cand", "gen", "score_v2", "status", "by", "when", "pack sha256"):
            t.add_column(col)
        for e in entries:
            t.add_row(
                e["domain"],
                e["cand_id"],
                str(e["generation"]),
                f"{e['score_v2']:.4f}",
                e["status"],
                e["decided_by"] or "",
                e["decided_utc"] or e["queued_utc"],
                e["pack_sha256"][:12],
            )
        if args.json:
            print_json(entries)
        else:
            console.print(t)
        return
    if not (args.domain and args.cand_id):
        raise ConfigError(f"approvals {args.action} needs DOMAIN CAND_ID")
    entry = queue.decide(
        args.domain, args.cand_id, args.action, who=args.by or current_user(), note=args.note
    )
    console.print(
        f"{entry['domain']}/{entry['cand_id']} {entry['status']} by {entry['decided_by']} "
        f"at {entry['decided_utc']} (pack sha256 {entry['pack_sha256']})"
    )


def main(args: argparse.Namespace) -> int:
    """Dispatch one subcommand."""
    console = table_console()
    if args.command == "doctor":
        from dream.doctor import diagnose, print_diagnosis

        report = diagnose(_config(args), args.out_root)
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print_diagnosis(report, console)
        return 0
    if args.command in ("baseline", "evaluate", "service", "worker"):
        result = _measure(args, console)
        if getattr(args, "json", False):
            print_json(result)
        elif args.command == "worker":
            study = result["study"]
            console.print(
                f"worker {result['worker']} ({result['wall_s']} s): evaluated "
                f"{[e['cand_id'] for e in result['evaluated_here']]} here; study "
                f"{study['study']} ({study['storage']}): {study['trials']}, pareto {study['pareto']}"
            )
        elif args.command == "baseline":
            _print_baselines(result, console)
        elif args.command == "evaluate":
            agg = result["aggregate"]
            console.print(
                f"{result['artifacts']['pack']}: safe={result['safe']} "
                f"score_v2={agg['score_v2']} ({agg['score_status']}) "
                f"improves_over_baseline={agg['improves_over_baseline']}"
            )
        else:
            _print_service(result, console)
        return 0
    if args.command == "approvals":
        _approvals(args, console)
        return 0
    if args.command in ("promote", "rollback"):
        from dream.approvals import current_user
        from dream.promotion import promote, rollback

        cfg, artifacts = _config(args), Path(args.out_root) / "artifacts"
        who = args.by or current_user()
        if args.command == "promote":
            doc = promote(
                cfg,
                artifacts,
                args.domain,
                args.cand_id,
                who=who,
                apply_real=args.apply_real,
                yes_write_host=args.yes_write_host,
                accept_unchecked_caps=args.accept_unchecked_caps,
            )
            console.print(
                f"promoted {args.domain}/{args.cand_id} ({doc['actuation']}, "
                f"{len(doc['changes'])} settings written) → promoted/{args.domain}.json"
            )
        else:
            event = rollback(cfg, artifacts, args.domain, who=who)
            console.print(
                f"rolled back {args.domain}/{event['cand_id']} ({len(event['restored'])} settings "
                f"restored); now in effect: {event['now_in_effect'] or 'stock'}"
            )
        return 0
    if args.command == "dashboard":
        from dream.dashboard.app import run_dashboard

        run_dashboard(args.out_root, _config(args), host=args.host, port=args.port, console=console)
        return 0
    from dream.report import fleet_table, render_report

    roots = args.out_root or [Path("runs") / socket.gethostname().split(".")[0]]
    shown = None if args.json else console
    reports = []
    for root in roots:
        out = render_report(root, generation=args.generation, domains=args.domains, console=shown)
        reports.append({"out_root": str(root), **out})
        # With tracking on, the tables and figures join the tree's latest run in MLflow.
        for manifest in sorted((Path(root) / "artifacts" / "manifests").glob("*.json"))[-1:]:
            note_for_tracking(manifest, "dream")
        if shown is not None:
            console.print(f"table: {out['table']}")
            for domain, path in out["figures"].items():
                console.print(f"figure ({domain}): {path}")
    fleet = fleet_table(roots, args.generation) if len(roots) > 1 else None
    if args.json:
        print_json({"reports": reports, "fleet": fleet})
    elif fleet is not None:
        console.print(fleet)
    return 0


def _print_service(result: dict[str, Any], console: Console) -> None:
    t = Table(title=f"service {result['run_id']} ({result['wall_s']} s)", title_justify="left")
    for col in ("domain", "gen", "best", "avg", "min", "valid", "unsafe", "failed", "full packs"):
        t.add_column(col)
    fmt = lambda x: "—" if x is None else f"{x:.4f}"  # noqa: E731
    for d, lines in result["domains"].items():
        for r in lines:
            t.add_row(
                d,
                str(r["generation"]),
                fmt(r["best_fitness"]),
                fmt(r["avg_fitness"]),
                fmt(r["min_fitness"]),
                str(r["valid"]),
                str(r["unsafe"]),
                str(r["failed"]),
                ", ".join(r["candidate_packs"]),
            )
    for u in result["unavailable"]:
        t.add_row(u["domain"], "—", "unavailable", u["reason"], "", "", "", "", "")
    console.print(t)


def cli(argv: Sequence[str] | None = None) -> None:
    """Entry point: parse, run, exit with the documented code."""
    run_cli(build_parser(), main, sys.argv[1:] if argv is None else argv)
