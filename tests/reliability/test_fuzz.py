"""Fuzz every system's config and command line with bad input; each must be refused cleanly.

A refusal is clean when the exit code is 2 (bad input) or 3 (missing input), stderr is exactly one
line with no traceback, and the command left no file behind (no run dir, lock or manifest).
The cases run in-process (each CLI's entry point, SystemExit caught) so hundreds of them fit in
`make test`; a few subprocess cases prove that the real `python -m` entry points behave the same.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = 8  # per system and kind: at most 5 x 9 x 8 = 360 generated bad inputs
NAME = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12)
HUGE = st.integers(min_value=10**10, max_value=10**30)  # above every schema maximum (< 2**32)
# Values that no integer or number field accepts (null is left out: several are nullable).
WRONG = st.one_of(
    NAME.map(lambda s: f"x_{s}"),
    st.just("[1, 2]"),
    st.just("{a: 1}"),
    st.just("true"),
)


def _int_leaves(node: Any, prefix: tuple[str, ...] = ()) -> Iterator[str]:
    """Dotted paths of every integer in a config (list items included)."""
    if isinstance(node, bool):
        return
    if isinstance(node, int):
        yield ".".join(prefix)
    elif isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and "." not in key and "=" not in key:
                yield from _int_leaves(value, (*prefix, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _int_leaves(value, (*prefix, str(i)))


@dataclass
class System:
    """One system's entry point and how to hand it a config, an output path and overrides."""

    name: str
    run: Callable[[list[str]], Any]  # the CLI's entry point; exits through SystemExit
    config: Callable[[Path], Path]  # writes (or names) a valid base config, returns its path
    argv: Callable[[Path, Path, list[str]], list[str]]  # (config, output path, overrides) -> argv
    leaves: Callable[[Path], list[str]]  # the integer keys an override may name
    flags: list[tuple[list[str], int]] = field(default_factory=list)  # bad flags, expected exit


def _raw_leaves(path: Path) -> list[str]:
    return list(_int_leaves(yaml.safe_load(path.read_text(encoding="utf-8"))))


def _labkit() -> System:
    from labkit import selfcheck
    from labkit.cli import run_cli

    def config(tmp: Path) -> Path:
        path = tmp / "selfcheck.yaml"
        path.write_text(yaml.safe_dump(selfcheck.DEFAULT_CONFIG), encoding="utf-8")
        return path

    return System(
        "labkit",
        lambda argv: run_cli(selfcheck.build_parser(), selfcheck.main, argv),
        config,
        lambda cfg, out, ov: ["--config", str(cfg), "--run_dir", str(out), *ov],
        _raw_leaves,
        flags=[
            (["--steps", "99999999999999999999"], 2),
            (["--steps", "0"], 2),
            (["--seed", "-1"], 2),
            (["--pause_at", "x"], 2),
        ],
    )


def _cachemedicpp() -> System:
    from cachemedicpp import train
    from labkit.cli import run_cli

    return System(
        "cachemedicpp",
        lambda argv: run_cli(train.build_parser(), train.main, argv),
        lambda tmp: REPO / "cachemedicpp/configs/mve_local.yaml",
        lambda cfg, out, ov: ["--config", str(cfg), "--run_dir", str(out), *ov],
        _raw_leaves,
        flags=[(["repair.rank=1000000000"], 2), (["train.steps=99999999999999999999"], 2)],
    )


def _esper() -> System:
    from esper.cli import main

    return System(
        "esper",
        main,
        lambda tmp: REPO / "esper/configs/cifar10_local.yaml",
        lambda cfg, out, ov: ["train-host", "--config", str(cfg), "--run_dir", str(out), *ov],
        _raw_leaves,
        flags=[
            (["--seed", "-1"], 2),
            (["--episodes", "99999999999999999999"], 2),
            (["host.widths=[8,16,100000000]"], 2),
            (["task.max_epochs=99999999999999999999"], 2),
            (["--policy", "/nonexistent/policy.pt"], 3),
        ],
    )


def _avalanche() -> System:
    from avalanche_llm.cli import cli
    from avalanche_llm.config import resolve_config

    def config(tmp: Path) -> Path:
        return REPO / "avalanche_llm/configs/pipeline_local.yaml"

    def argv(cfg: Path, out: Path, ov: list[str]) -> list[str]:
        sets = [
            a for o in ov for a in (("--set", o) if "=" in o and not o.startswith("-") else (o,))
        ]
        return ["phase1_calibrate", "--config", str(cfg), "--out_root", str(out), *sets]

    return System(
        "avalanche",
        cli,
        config,
        argv,
        lambda cfg: list(_int_leaves(resolve_config(cfg).data)),
        flags=[
            (["pipeline.seq_len_tokens=99999999999"], 2),
            (["--device", "tpu"], 2),
            (["--run_id_mode", "x"], 2),
        ],
    )


def _dream() -> System:
    from dream.cli import cli
    from dream.config import DEFAULT_REGIMES

    def argv(cfg: Path, out: Path, ov: list[str]) -> list[str]:
        base = ["evaluate", "--domain", "cpu", "--stage", "screen", "--regimes", str(cfg)]
        sets = [
            a
            for o in ov
            for a in (("-o", f"regimes.{o}") if "=" in o and not o.startswith("-") else (o,))
        ]
        return [*base, "--out_root", str(out), *sets]

    return System(
        "dream",
        cli,
        lambda tmp: DEFAULT_REGIMES,
        argv,
        _raw_leaves,
        flags=[
            (["--seed", "-1"], 2),
            (["--cand-id", "../escape"], 2),
            (["--genome", '{"thread_count":"abc"}'], 2),
            (["--genome", "not json"], 2),
            (["--genome", "[1]"], 2),
            (["profiles.local.durations_s.normal=1e12"], 2),
        ],
    )


SYSTEMS = {
    s: f
    for s, f in [
        ("labkit", _labkit),
        ("cachemedicpp", _cachemedicpp),
        ("esper", _esper),
        ("avalanche", _avalanche),
        ("dream", _dream),
    ]
}


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def invoke(system: System, argv: list[str], cwd: Path) -> tuple[int, str]:
    """Call the CLI in-process in `cwd`; return its exit code and stderr."""
    err, out = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            system.run(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        else:
            code = 0
    return code, err.getvalue()


def check_refusal(
    tally: Counter[str], system: System, kind: str, argv: list[str], tmp: Path, expect: set[int]
) -> None:
    """Run one bad input and assert a clean refusal with one of the `expect`ed codes."""
    before = _files(tmp)
    code, err = invoke(system, argv, tmp)
    left = sorted(_files(tmp) - before)
    tally["fuzz cases"] += 1
    tally[f"fuzz cases {system.name}"] += 1
    tally[f"fuzz kind {kind}"] += 1
    tally[f"fuzz exit {code}"] += 1
    where = f"{system.name} {kind}: {argv}\nexit {code}, stderr:\n{err}"
    assert "Traceback" not in err, where
    assert code in expect, where
    assert len(err.strip().splitlines()) == 1, where
    assert not left, f"{where}\nleft behind: {left}"
    tally["fuzz clean refusals"] += 1


KINDS = (
    "non_utf8",
    "malformed",
    "not_mapping",
    "missing",
    "unknown_key",
    "wrong_type",
    "out_of_range",
    "flag",
    "out_path",
)


@st.composite
def bad_case(draw: st.DrawFn, system: System, leaves: list[str], kind: str) -> tuple[Any, set[int]]:
    """One bad input of `kind`: (how to build it, the exit codes allowed)."""
    if kind == "non_utf8":
        tail = draw(st.binary(max_size=40))
        return ("file", b"\xff\xfe" + tail), {2}
    if kind == "malformed":
        body = draw(st.text(alphabet="abc: -,[]'\"\t", max_size=30))
        return ("file", f"{{a: [{body}\n  - : :\n".encode()), {2}
    if kind == "not_mapping":
        doc = draw(st.sampled_from(["- 1\n- 2\n", "42\n", "just text\n", "[a, b]\n"]))
        return ("file", doc.encode()), {2}
    if kind == "missing":
        return ("missing", draw(NAME)), {3}
    if kind == "unknown_key":
        parent = draw(
            st.sampled_from(["", *{k.rsplit(".", 1)[0] + "." for k in leaves if "." in k}])
        )
        return ("overrides", [f"{parent}zz_{draw(NAME)}=1"]), {2}
    if kind == "wrong_type":
        return ("overrides", [f"{draw(st.sampled_from(leaves))}={draw(WRONG)}"]), {2}
    if kind == "out_of_range":
        return ("overrides", [f"{draw(st.sampled_from(leaves))}={draw(HUGE)}"]), {2}
    if kind == "flag":
        flags, code = draw(st.sampled_from(system.flags))
        return ("overrides", flags), {code}
    return ("out_path", draw(st.lists(NAME, max_size=3))), {2}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(SYSTEMS))
def test_fuzz_bad_inputs_are_refused_cleanly(
    name: str, kind: str, tally: Counter[str], tmp_path_factory
):
    system = SYSTEMS[name]()
    base_dir = tmp_path_factory.mktemp(f"{name}-base")
    base = system.config(base_dir)
    leaves = system.leaves(base)
    assert leaves, f"{name}: the base config has no integer to fuzz"

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,  # the same cases on every run: CI must not flake
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(case=bad_case(system, leaves, kind))
    def fuzz(case: tuple[Any, set[int]]) -> None:
        (how, payload), expect = case
        tmp = Path(tmp_path_factory.mktemp(name, numbered=True))
        cfg, out, overrides = base, tmp / "out", []
        if how == "file":
            if name == "avalanche":  # its config reads sibling files (models.yaml, budgets.yaml)
                shutil.copytree(base.parent, tmp / "configs")
                cfg = tmp / "configs" / base.name
            else:
                cfg = tmp / "bad.yaml"
            cfg.write_bytes(payload)
        elif how == "missing":
            cfg = tmp / f"{payload}.yaml"
        elif how == "overrides":
            overrides = payload
        else:  # an output path at or below a regular file can never be created
            (tmp / "a_file").write_text("x", encoding="utf-8")
            out = tmp.joinpath("a_file", *payload)
        check_refusal(tally, system, kind, system.argv(cfg, out, overrides), tmp, expect)

    fuzz()


ENTRY_POINTS = {
    "labkit": ["-m", "labkit.selfcheck", "--config", "{cfg}", "--run_dir", "{out}"],
    "cachemedicpp": ["-m", "cachemedicpp.train", "--config", "{cfg}", "--run_dir", "{out}"],
    "esper": ["-m", "esper", "train-host", "--config", "{cfg}", "--run_dir", "{out}"],
    "avalanche": [
        "-m",
        "avalanche_llm",
        "phase1_calibrate",
        "--config",
        "{cfg}",
        "--out_root",
        "{out}",
    ],
    "dream": [
        "-m",
        "dream",
        "evaluate",
        "--domain",
        "cpu",
        "--regimes",
        "{cfg}",
        "--out_root",
        "{out}",
    ],
}


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_real_entry_point_refuses_non_utf8_config(name: str, tally: Counter[str], tmp_path: Path):
    cfg, out = tmp_path / "b.yaml", tmp_path / "out"
    cfg.write_bytes(b"\xff\xfe")
    argv = [a.format(cfg=cfg, out=out) for a in ENTRY_POINTS[name]]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, *argv], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300
    )
    tally["subprocess cases"] += 1
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "not UTF-8" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.yaml"]
    tally["subprocess clean refusals"] += 1


def _unbounded_integers(schema: Any, path: str = "") -> Iterator[str]:
    """Paths of integer schemas with no maximum (an enum or const bounds them too)."""
    if isinstance(schema, dict):
        kinds = schema.get("type")
        kinds = kinds if isinstance(kinds, list) else [kinds]
        bounds = {"maximum", "exclusiveMaximum", "enum", "const"}
        if "integer" in kinds and not bounds & set(schema):
            yield path or "(top level)"
        for key, value in schema.items():
            yield from _unbounded_integers(value, f"{path}/{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            yield from _unbounded_integers(value, f"{path}[{i}]")


def _config_schemas() -> dict[str, Any]:
    import json

    from esper.config import SCHEMA as ESPER
    from esper.evaluate.command import EVAL_BLOCK
    from labkit.selfcheck import SCHEMA as SELFCHECK

    files = [
        "cachemedicpp/schemas/config.schema.json",
        "cachemedicpp/schemas/sweep.schema.json",
        "avalanche_llm/spec/pipeline_config.schema.json",
        "dream/dream/schemas/regimes.schema.json",
        "dream/dream/schemas/caps.schema.json",
        "labkit/labkit/schemas/sweep.schema.json",
        "labkit/labkit/schemas/executor.schema.json",
    ]
    schemas = {f: json.loads((REPO / f).read_text(encoding="utf-8")) for f in files}
    return {**schemas, "esper.config": ESPER, "esper eval": EVAL_BLOCK, "selfcheck": SELFCHECK}


def test_every_config_integer_has_a_maximum():
    unbounded = {
        name: list(_unbounded_integers(schema)) for name, schema in _config_schemas().items()
    }
    assert not {k: v for k, v in unbounded.items() if v}, unbounded
