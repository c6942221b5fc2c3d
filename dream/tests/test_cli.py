"""The command line: doctor, listing, and bad input failing first with one line and its exit code."""

from __future__ import annotations

import json

import pytest

from dream.cli import cli


def _exit(argv, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        cli(argv)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_doctor_reports_capabilities_and_which_domains_run(tmp_path, capsys):
    code, out, _ = _exit(["doctor", "--json", "--out_root", str(tmp_path / "r")], capsys)
    assert code == 0
    report = json.loads(out)
    status = {d["domain"]: d for d in report["domains"]}
    assert len(status) == 9 and status["cpu"]["status"] == "available"
    assert status["cpu"]["active_genes"] == ["core_utilization", "thread_count", "hugepages_mb"]
    assert status["gpu"]["status"] == "unavailable" and status["gpu"]["reason"]
    assert report["host"]["tools"]["stress-ng"].startswith("stress-ng")
    assert "watts" in report["unmeasurable"]
    assert not (tmp_path / "r").exists()  # doctor writes nothing
    code, out, _ = _exit(["doctor", "--out_root", str(tmp_path / "r")], capsys)
    assert code == 0 and "domains" in out and "unavailable" in out


@pytest.mark.parametrize(
    ("argv", "code", "message"),
    [
        (["service", "--domains", "nope"], 2, "unknown domain 'nope'"),
        (["service", "--domains", "cpu,gpu"], 2, "domain gpu is unavailable on this host"),
        (["service", "--population", "1"], 2, "population must be >= 2"),
        (["service", "--generations", "0"], 2, "generations must be >= 1"),
        (["service", "--generations", "99999999"], 2, "outside [0, 10000]"),
        (["evaluate", "--domain", "cpu", "--seed", "-1"], 2, "--seed: -1 is outside"),
        (["evaluate", "--domain", "cpu", "--cand-id", "../x"], 2, "is not a pack name"),
        (
            ["evaluate", "--domain", "cpu", "--genome", '{"thread_count": "abc"}'],
            2,
            "must be a number",
        ),
        (
            ["evaluate", "--domain", "cpu", "-o", "regimes.profiles.local.durations_s.normal=1e12"],
            2,
            "maximum",
        ),
        (["service", "--actuation", "real"], 2, "add --yes-write-host"),
        (["service", "-o", "regimes.nope=1"], 2, "nope"),
        (["service", "--profile", "fast"], 2, "unknown profile 'fast'"),
        (["service", "--regimes", "missing.yaml"], 3, "config file not found: missing.yaml"),
        (["baseline", "--domain", "audio"], 2, "domain audio is unavailable"),
        (["evaluate", "--domain", "cpu", "--genome", "{oops"], 2, "--genome is not JSON"),
        (["evaluate", "--domain", "gpu"], 2, "domain gpu is unavailable"),
        (
            ["evaluate", "--domain", "cpu", "--cand-id", "../x"],
            2,
            "--cand-id: '../x' is not a pack name",
        ),
        (["evaluate", "--domain", "cpu", "--genome", '{"nope": 1}'], 2, "unknown genes ['nope']"),
        (["evaluate", "--domain", "cpu", "--genome", '{"epp_value": 0}'], 2, "epp_value is frozen"),
        (["report"], 3, "no candidate packs under"),
        (["approvals", "approve"], 2, "approvals approve needs DOMAIN CAND_ID"),
        (["promote", "cpu", "gen0_00"], 3, "cpu/gen0_00 is not in the approvals queue"),
        (["rollback", "cpu"], 3, "nothing is promoted for cpu"),
    ],
)
def test_bad_input_fails_first_with_one_line_and_its_exit_code(
    tmp_path, capsys, argv, code, message
):
    out_root = tmp_path / "r"
    got, _, err = _exit([*argv, "--out_root", str(out_root)], capsys)
    assert got == code and message in err and len(err.strip().splitlines()) == 1
    assert not (out_root / "artifacts" / "manifests").exists()  # nothing was started


def test_approvals_list_prints_an_empty_queue(tmp_path, capsys):
    code, out, _ = _exit(["approvals", "list", "--all", "--out_root", str(tmp_path)], capsys)
    assert code == 0 and "approvals (all)" in out


def test_report_aggregates_several_hosts_trees(ctx, evaluate, tmp_path, capsys):
    import shutil

    evaluate(cand_id="gen0_00")
    other = tmp_path / "hostb"
    shutil.copytree(ctx.out_root / "artifacts/candidates", other / "artifacts/candidates")
    path = other / "artifacts/candidates/cpu/gen0_00.json"
    doc = json.loads(path.read_text())
    doc["host"]["hostname"] = "hostb"
    path.write_text(json.dumps(doc))
    code, out, _ = _exit(
        ["report", "--out_root", str(ctx.out_root), "--out_root", str(other)], capsys
    )
    assert code == 0 and "fleet: full evaluations per host" in out
    assert "hostb" in out  # the second tree's host, beside this host's row
    assert (other / "artifacts/reports/gen0.txt").is_file()
    assert (ctx.out_root / "artifacts/reports/gen0.txt").is_file()


def test_a_repeated_cand_id_exits_4_and_keeps_the_pack(ctx, evaluate, capsys):
    evaluate(cand_id="c1")
    path = ctx.out_root / "artifacts/candidates/cpu/c1.json"
    before = path.read_bytes()
    argv = ["evaluate", "--domain", "cpu", "--genome", '{"thread_count": 1}', "--cand-id", "c1"]
    code, _, err = _exit([*argv, "--out_root", str(ctx.out_root)], capsys)
    assert code == 4 and "is never replaced" in err and len(err.strip().splitlines()) == 1
    assert not (ctx.out_root / "artifacts/manifests").exists()  # refused before any measuring
    assert path.read_bytes() == before
    evaluate(cand_id="c2")  # the control: a new name is written
    assert (ctx.out_root / "artifacts/candidates/cpu/c2.json").is_file()


def test_report_piped_keeps_every_column_and_offers_json(ctx, evaluate, capsys, monkeypatch):
    evaluate(cand_id="gen0_00")
    argv = ["report", "--out_root", str(ctx.out_root)]
    monkeypatch.delenv("COLUMNS", raising=False)
    code, out, _ = _exit(argv, capsys)  # stdout is not a terminal here, as in `make demo > file`
    assert code == 0 and "…" not in out and "Δ CI" in out and "passes" in out
    saved = (ctx.out_root / "artifacts/reports/gen0.txt").read_text()
    assert "…" not in saved and "passes" in saved
    monkeypatch.setenv("COLUMNS", "80")  # control: an 80-column console cuts the regime table
    code, narrow, _ = _exit(argv, capsys)
    assert code == 0 and "…" in narrow
    code, out, _ = _exit([*argv, "--json"], capsys)
    (report,) = json.loads(out)["reports"]
    candidates, regimes = report["tables"]
    assert candidates["rows"][0]["cand"] == "gen0_00" and candidates["rows"][0]["safe"] == "yes"
    assert {row["regime"] for row in regimes["rows"]} >= {"normal"}
    assert "Δ CI" in regimes["columns"] and report["table"].endswith("gen0.txt")
