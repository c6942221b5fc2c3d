"""What this host can do for D-REAM: tools, sensors, O_DIRECT, real actuation, and which domains run."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from dream.actuators import Actuation
from dream.config import DreamConfig
from dream.domains import DOMAINS, domain_module, domain_status, genome_spec
from dream.host import HostInfo, host_fingerprint
from dream.sensors import Sensors
from dream.workloads import supports_o_direct


def _existing_parent(path: Path) -> Path:
    path = path.resolve()
    while not path.exists():
        path = path.parent
    return path


def diagnose(cfg: DreamConfig, out_root: str | os.PathLike) -> dict[str, Any]:
    """Inspect the host without running any workload or writing anything outside a temp dir."""
    host = HostInfo.detect()
    with tempfile.TemporaryDirectory(dir=_existing_parent(Path(out_root))) as tmp:
        o_direct = supports_o_direct(Path(tmp))
        shadow = Actuation("shadow", rollback_path=Path(tmp) / "rb.json")
        real = Actuation(
            "real",
            rollback_path=Path(tmp) / "rb.json",
            allowlist=cfg.real_allowlist,
            confirmed=True,
        )
    domains = []
    for d in DOMAINS:
        status = domain_status(d, host)
        row: dict[str, Any] = {**status.to_dict(), "active_genes": [], "frozen_genes": 0}
        if status.available:
            spec = genome_spec(d, host, shadow)
            row["active_genes"] = [g.name for g in spec.active]
            row["frozen_genes"] = len(spec.frozen)
        domains.append(row)
    real_genes = {}
    for entry in cfg.real_allowlist:
        d, _, name = entry.partition(".")
        if not domain_status(d, host).available:
            continue
        g = next(g for g in domain_module(d).genes(host) if g.name == name)
        real_genes[entry] = real.real_unavailable(d, g) or "writable"
    return {
        "host": {**host_fingerprint(), "cpus": list(host.cpus), "tdp_w": host.tdp_w},
        "unmeasurable": Sensors(sampling_ms=cfg.sampling_ms).unmeasurable(),
        "o_direct": {"where": str(_existing_parent(Path(out_root))), "supported": o_direct},
        "real_actuation": {
            "euid": os.geteuid(),
            "root": os.geteuid() == 0,
            "allowlist": real_genes,
        },
        "domains": domains,
    }


def print_diagnosis(report: dict[str, Any], console: Console) -> None:
    """The diagnosis as three tables."""
    h = report["host"]
    t = Table(title="host", show_header=False, title_justify="left")
    t.add_row("cpu", f"{h['cpu_model']} ({h['ncpu']} usable: {h['cpus']})")
    t.add_row("kernel", f"{h['kernel']} {h['machine']}")
    for tool, version in h["tools"].items():
        t.add_row(tool, version or "[red]not installed[/red]")
    t.add_row("package power limit", "—" if h["tdp_w"] is None else f"{h['tdp_w']:g} W")
    od = report["o_direct"]
    t.add_row(
        "O_DIRECT", f"{'yes' if od['supported'] else 'no (fio runs --direct=0)'} in {od['where']}"
    )
    ra = report["real_actuation"]
    t.add_row("real actuation", "possible (root)" if ra["root"] else "shadow only: not root")
    for gene, state in ra["allowlist"].items():
        t.add_row(f"  {gene}", state)
    if not ra["allowlist"]:
        t.add_row("  allowlist", "empty (caps.yaml real_allowlist)")
    console.print(t)
    s = Table(title="unmeasurable here (reported as null + reason)", title_justify="left")
    s.add_column("metric")
    s.add_column("reason")
    for metric, why in report["unmeasurable"].items():
        s.add_row(metric, why)
    console.print(s)
    d = Table(title="domains", title_justify="left")
    for col in ("domain", "status", "genes the search moves (shadow)", "frozen", "why not"):
        d.add_column(col, overflow="fold")
    for row in report["domains"]:
        ok = row["status"] == "available"
        d.add_row(
            row["domain"],
            "[green]runs[/green]" if ok else "[yellow]unavailable[/yellow]",
            ", ".join(row["active_genes"]) if ok else "",
            str(row["frozen_genes"]) if ok else "",
            row["reason"] or "",
        )
    console.print(d)
