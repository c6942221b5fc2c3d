"""CANON registry and config resolution: recursive, stable, complete, and strict about bad input."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from avalanche_llm import canon
from avalanche_llm.cli import build_parser
from avalanche_llm.config import resolve_config
from avalanche_llm.phases import SUBCOMMANDS
from labkit.config import canonical_yaml, parse_yaml
from labkit.errors import ConfigError, MissingInputError, SchemaError

CONFIGS = canon.ROOT / "configs"
PAPER, LOCAL = CONFIGS / "pipeline.yaml", CONFIGS / "pipeline_local.yaml"


def test_registry_sections_and_stage_tags():
    reg = canon.registry()
    for section in ("ID", "PATH", "CLI", "ENUM", "CONST", "DATASET", "MODEL", "OUTPUT", "EXAMPLE"):
        assert section in reg
    assert canon.stage_tag("phase1_calibrate") == "S01"
    assert canon.stage_tag("phase6_arc_mcq_eval") == "S06ARC"
    assert set(reg["ID"]["NEEDS"]) == set(SUBCOMMANDS) == set(reg["CLI"]["HELP"])
    assert canon.output("METRICS_PARQUET") == "results/metrics.parquet"
    assert canon.output("PACK_ZIP") == f"{reg['ID']['PACK_NAME']}.zip"


def test_every_canonical_command_parses():
    parser = build_parser()
    cmds = canon.registry()["CLI"]["CMD"]
    assert {c.split()[3] for c in cmds.values()} == set(SUBCOMMANDS)
    for name, cmd in cmds.items():
        argv = shlex.split(cmd)
        assert argv[:3] == ["python", "-m", "avalanche_llm"]
        args = parser.parse_args(argv[3:])
        assert args.device == "cuda" and args.dtype == "bf16" and args.run_id_mode == "content_hash"
        assert args.model_role == ("BASE" if name.endswith("_BASE") else "INSTRUCT")


def test_resolution_is_recursive_and_catches_cycles_and_unknowns():
    reg = {"A": {"B": "CANON.C"}, "C": ["CANON.D", 2], "D": 1, "E": "CANON.F", "F": "CANON.E"}
    assert canon.resolve({"x": "CANON.A.B", "y": ["CANON.D", "plain"]}, reg) == {
        "x": [1, 2],
        "y": [1, "plain"],
    }
    with pytest.raises(ConfigError, match="cycle"):
        canon.lookup("CANON.E", reg)
    with pytest.raises(ConfigError, match="no key 'Z'"):
        canon.lookup("CANON.A.Z", reg)
    assert canon.leftover_refs({"a": [1, {"b": "CANON.X"}]}) == ["a[1].b"]


@pytest.mark.parametrize("path", [PAPER, LOCAL])
def test_resolving_twice_gives_the_same_bytes_and_hash(path):
    a, b = resolve_config(path), resolve_config(path)
    assert a.text == b.text and a.sha256 == b.sha256
    assert canon.leftover_refs(a.data) == []
    # What is written to config_resolved.yaml reads back to the very same bytes.
    assert canonical_yaml(parse_yaml(a.text)) == a.text


def test_constants_filled_and_overridden_by_profiles():
    paper = resolve_config(PAPER).data
    local = resolve_config(LOCAL, model_role="BASE").data
    for name, value in canon.registry()["CONST"].items():
        assert paper["pipeline"][name.lower()] == value
    assert local["pipeline"]["seq_len_tokens"] == 64 and local["pipeline"]["strict_gates"] is False
    assert local["runtime"]["model_role"] == "BASE" and local["runtime"]["device"] == "cpu"
    assert paper["models"]["INSTRUCT"]["hf_id"] == "Qwen/Qwen2.5-7B-Instruct"  # from models.yaml
    assert paper["budgets"]["gpu_hours_max"] == 24  # from budgets.yaml
    assert resolve_config(LOCAL).sha256 != resolve_config(LOCAL, model_role="BASE").sha256
    assert resolve_config(PAPER, device="cpu").data["runtime"]["device"] == "cpu"


def test_siblings_fill_only_missing_keys(tmp_path: Path):
    (tmp_path / "models.yaml").write_text(
        "models:\n  INSTRUCT: {hf_id: from-sibling}\n  BASE: {hf_id: base-sibling}\n"
    )
    text = LOCAL.read_text().replace("budgets:", "sibling_defaults: [models.yaml]\nbudgets:", 1)
    text = text.replace("    hf_id: local:tiny-gpt2\n", "", 1).replace(
        "  BASE:\n", "  BASE: {}\n", 1
    )
    (tmp_path / "p.yaml").write_text(text)
    models = resolve_config(tmp_path / "p.yaml").data["models"]
    assert models == {"INSTRUCT": {"hf_id": "local:tiny-llama"}, "BASE": {"hf_id": "base-sibling"}}


@pytest.mark.parametrize(
    ("overrides", "error", "match"),
    [
        (["pipeline.no_such_key=1"], ConfigError, "unknown config key"),
        (["pipeline.gain_grid=CANON.CONST.NO_SUCH"], ConfigError, "unresolved CANON"),
        (["pipeline.adjacency=ADJ_6N"], SchemaError, "adjacency"),
        (["pipeline.spike_defs=[SPIKE_ODD]"], SchemaError, "spike_defs"),
        (["pipeline.target_layer_rates=[1.0e-5]"], ConfigError, "exactly one"),
        (["pipeline.seq_len_tokens=0"], SchemaError, "seq_len_tokens"),
    ],
)
def test_bad_values_fail_before_work(overrides, error, match):
    with pytest.raises(error, match=match):
        resolve_config(LOCAL, overrides=overrides)


def test_leftover_reference_in_a_file_and_missing_file(tmp_path: Path):
    (tmp_path / "p.yaml").write_text(
        LOCAL.read_text().replace("CANON.ID.PROJECT_ID", "CANON.ID.NOPE")
    )
    with pytest.raises(ConfigError, match=r"CANON\.ID\.NOPE"):
        resolve_config(tmp_path / "p.yaml")
    with pytest.raises(MissingInputError):
        resolve_config(tmp_path / "missing.yaml")


def test_config_for_another_role_keeps_everything_but_the_role():
    from avalanche_llm.runs import PhaseContext

    mine = resolve_config(LOCAL, model_role="BASE", dtype="fp32", overrides=["pipeline.eps=1.0e-7"])
    ctx = PhaseContext(
        "phase7_paper_export", "S07", mine, "RUN_S07_000000000000", Path("."), {}, None
    )
    other = ctx.config_for_role("INSTRUCT")
    assert (
        other.data["runtime"]["model_role"] == "INSTRUCT" and other.data["pipeline"]["eps"] == 1e-7
    )
    assert other.sha256 == resolve_config(LOCAL, overrides=["pipeline.eps=1.0e-7"]).sha256
