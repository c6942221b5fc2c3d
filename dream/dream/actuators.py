"""Put a genome into effect: shadow by default; real sysfs/sysctl writes only behind every safety gate."""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dream.genome import Gene, GenomeSpec, Setting
from dream.host import HostInfo
from labkit.atomic import atomic_write_json
from labkit.errors import ConfigError, LabkitError

ROLLBACK_SCHEMA = "dream_rollback.v1"
MODES = ("shadow", "real")


class ActuationError(LabkitError):
    """A real setting could not be restored, or a rollback record cannot be read."""


class WriteRefused(ActuationError):
    """The kernel refused a write; everything written before it was restored."""


class RollbackRefused(ConfigError):
    """A rollback record this actuation may not replay (shadow mode or a path off the allowlist)."""


@dataclass(frozen=True)
class Change:
    """One file write: where, what was there, what was written."""

    path: str
    old: str
    new: str


def setting_text(g: Gene, value: float) -> str:
    """The text a gene value is written as."""
    s = g.setting
    assert s is not None
    if s.encode == "choice":
        return g.choices[int(value)]
    if s.encode == "bool01":
        return "1" if value else "0"
    if s.encode == "inverted01":
        return "0" if value else "1"
    if s.encode == "onoff":
        return "on" if value else "off"
    return str(round(value * s.scale))


def setting_value(g: Gene, text: str) -> float:
    """The gene value a setting's text stands for (inverse of `setting_text`)."""
    s = g.setting
    assert s is not None
    if s.encode == "choice":
        if text not in g.choices:
            raise ValueError(f"{text!r} is not one of {list(g.choices)}")
        return float(g.choices.index(text))
    if s.encode in ("bool01", "inverted01", "onoff"):
        on = {"bool01": "1", "inverted01": "0", "onoff": "on"}[s.encode]
        off = {"bool01": "0", "inverted01": "1", "onoff": "off"}[s.encode]
        if text not in (on, off):
            raise ValueError(f"{text!r} is neither {on!r} nor {off!r}")
        return 1.0 if text == on else 0.0
    return float(text) / s.scale


def read_setting(path: Path, bracketed: bool) -> str:
    """Current value of a setting file (`a [b] c` -> `b` for option lists)."""
    text = path.read_text().strip()
    if bracketed:
        m = re.search(r"\[([^\]]+)\]", text)
        if not m:
            raise ActuationError(f"{path}: no [current] option in {text!r}")
        return m.group(1)
    return text


class Actuation:
    """Shadow (default) or real actuation, with a rollback record fsynced before the first write."""

    def __init__(
        self,
        mode: str = "shadow",
        *,
        rollback_path: str | os.PathLike,
        root: str | os.PathLike = "/",
        allowlist: Iterable[str] = (),
        confirmed: bool = False,
        euid: int | None = None,
        blockdev: str | None = None,
    ) -> None:
        if mode not in MODES:
            raise ActuationError(f"actuation must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.root = Path(root)
        self.allowlist = frozenset(allowlist)
        self.confirmed = confirmed
        self.euid = os.geteuid() if euid is None else euid
        self.blockdev = blockdev
        self.rollback_path = Path(rollback_path)
        self.stock_path = self.rollback_path.parent / "host_stock.json"
        self._stock: dict[str, tuple[dict[str, float], dict[str, str]]] = {}

    def _paths(self, s: Setting) -> list[Path]:
        found: list[Path] = []
        for pattern in s.paths:
            if "{blockdev}" in pattern:
                if self.blockdev is None:
                    continue
                pattern = pattern.replace("{blockdev}", self.blockdev)
            found += [Path(p) for p in sorted(glob.glob(str(self.root / pattern)))]
        return found

    def real_unavailable(self, domain: str, g: Gene) -> str | None:
        """Why the gene's real setting cannot be written now (None when it can)."""
        if g.setting is None:
            return "no actuator (firmware setting)"
        if self.mode != "real":
            return "shadow mode: real actuation not enabled"
        if not self.confirmed:
            return "real actuation needs --yes-write-host"
        if self.euid != 0:
            return "real actuation needs root"
        if f"{domain}.{g.name}" not in self.allowlist:
            return f"{domain}.{g.name} is not in caps.yaml real_allowlist"
        paths = self._paths(g.setting)
        if not paths:
            return f"setting not present on this host ({', '.join(g.setting.paths)})"
        locked = [str(p) for p in paths if not os.access(p, os.W_OK)]
        if locked:
            return f"setting not writable: {locked[0]}"
        return None

    def available(self, domain: str, g: Gene) -> str | None:
        """Why the gene cannot move at all (None when a shadow or real actuator can move it)."""
        return None if g.workload else self.real_unavailable(domain, g)

    def frozen(self, domain: str, genes: Iterable[Gene]) -> dict[str, str]:
        """Gene name -> reason, for every gene that must stay at stock."""
        out = {}
        for g in genes:
            reason = self.available(domain, g)
            if reason is not None:
                out[g.name] = reason
        return out

    def host_stock(
        self, domain: str, genes: Iterable[Gene]
    ) -> tuple[dict[str, float], dict[str, str]]:
        """Real mode: the host's current value of every writable gene, read once before any write.

        Returns (gene -> value, gene -> why it must freeze: a host value off the gene's grid, or
        files that disagree). The values are written to `host_stock.json` beside the rollback
        record, so what "stock" meant is on disk before the first write.
        """
        if domain in self._stock:
            return self._stock[domain]
        values: dict[str, float] = {}
        why: dict[str, str] = {}
        for g in genes:
            if g.setting is None or self.real_unavailable(domain, g) is not None:
                continue
            try:
                texts = {read_setting(p, g.setting.bracketed) for p in self._paths(g.setting)}
                if len(texts) != 1:
                    raise ValueError(f"its files disagree: {sorted(texts)}")
                value = setting_value(g, texts.pop())
                g.encode(value)
            except (OSError, ValueError, ActuationError, ConfigError) as exc:
                why[g.name] = f"host value unusable as stock: {exc}"
                continue
            values[g.name] = value
        self._stock[domain] = (values, why)
        doc = json.loads(self.stock_path.read_text()) if self.stock_path.exists() else {}
        doc[domain] = {"values": values, "frozen": why}
        atomic_write_json(self.stock_path, doc)
        return values, why

    def apply(self, spec: GenomeSpec, genome: Mapping[str, Any]) -> list[Change]:
        """Write the genome's real settings (none in shadow mode); the rollback record comes first.

        A write the kernel refuses restores what was written and raises WriteRefused.
        """
        self.recover()
        self.host_stock(spec.domain, spec.genes)
        planned: list[Change] = []
        for g in spec.genes:
            if g.setting is None or self.real_unavailable(spec.domain, g) is not None:
                continue
            new = setting_text(g, genome[g.name])
            for path in self._paths(g.setting):
                try:
                    old = read_setting(path, g.setting.bracketed)
                except OSError as exc:
                    raise ActuationError(f"cannot read {path}: {exc}") from None
                planned.append(Change(str(path), old, new))
        if not planned:
            return []
        record = {"schema": ROLLBACK_SCHEMA, "changes": [asdict(c) for c in planned]}
        atomic_write_json(self.rollback_path, record)
        for c in planned:
            try:
                Path(c.path).write_text(c.new)
            except OSError as exc:
                self.restore()
                raise WriteRefused(f"cannot write {c.new!r} to {c.path}: {exc}") from None
        return planned

    def allowed_paths(self) -> set[str]:
        """Every file the real_allowlist's genes resolve to under this actuation's root."""
        from dream.domains import domain_module  # dream.domains imports this module

        host = HostInfo.detect()
        out: set[str] = set()
        for entry in self.allowlist:
            domain, _, name = entry.partition(".")
            try:
                genes = domain_module(domain).genes(host)
            except ConfigError:
                continue  # genes this host cannot even resolve (no tdp) were never written
            for g in genes:
                if g.name == name and g.setting is not None:
                    out |= {str(p) for p in self._paths(g.setting)}
        return out

    def _check_replay(self, changes: list[Change]) -> None:
        """Refuse (exit 2) a record this actuation may not replay; the record stays where it is."""
        where = f"rollback record {self.rollback_path} kept, nothing written"
        if self.mode != "real" or not self.confirmed or self.euid != 0:
            raise RollbackRefused(
                f"{where}: it can only be replayed by real actuation "
                "(--actuation real --yes-write-host, as root)"
            )
        allowed = self.allowed_paths()
        stray = [c.path for c in changes if c.path not in allowed]
        if stray:
            raise RollbackRefused(f"{where}: {stray[0]} is not a caps.yaml real_allowlist setting")

    def restore(self) -> list[Change]:
        """Write back every old value in the rollback record, newest first, then drop the record.

        Only real actuation replays a record, and only when every path in it belongs to an
        allowlisted gene; otherwise RollbackRefused (exit 2) and the record is kept.
        """
        if not self.rollback_path.exists():
            return []
        record = _read_record(self.rollback_path)
        changes = [Change(**c) for c in record["changes"]]
        self._check_replay(changes)
        failed = []
        for c in reversed(changes):
            try:
                Path(c.path).write_text(c.old)
            except OSError as exc:
                failed.append(f"{c.path}: {exc}")
        if failed:
            raise ActuationError(
                f"rollback incomplete, record kept at {self.rollback_path}: {failed[0]}"
            )
        self.rollback_path.unlink()
        _fsync_dir(self.rollback_path.parent)
        return changes

    def recover(self) -> list[Change]:
        """At start-up: undo whatever a crashed run left applied."""
        return self.restore()


def _read_record(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ActuationError(f"rollback record {path} is unreadable: {exc}") from None
    changes = record.get("changes") if isinstance(record, dict) else None
    keys = {"path", "old", "new"}
    if (
        record.get("schema") != ROLLBACK_SCHEMA
        or not isinstance(changes, list)
        or not all(
            isinstance(c, dict) and set(c) == keys and all(isinstance(v, str) for v in c.values())
            for c in changes
        )
    ):
        raise ActuationError(f"rollback record {path} is not a {ROLLBACK_SCHEMA} record")
    return record


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
