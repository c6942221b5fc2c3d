"""The approvals dashboard in a real browser (Debian's Chromium via Playwright) over a fixture out_root.

The out_root is written by the product's own code (stock baselines, evaluator packs, the approvals
queue, promote and rollback); only the workloads are synthetic, as in the service tests.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect

from dream import baseline, evaluator
from dream.approvals import Approvals
from dream.baseline import BaselineStore, ensure_baselines
from dream.config import load_config
from dream.dashboard.app import bind_server, create_app, cross_origin, dashboard_token
from dream.evaluator import Block, EvalContext, TrialSeries
from dream.promotion import promote, rollback
from dream.runner import TrialOutcome
from dream.sensors import Sensors
from labkit.errors import ConfigError

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "fixture-token-0123456789"
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "dashboard_pack.png"
# Per candidate: perf gain over stock and the peak temperature of every trial (None: unmeasured).
CANDIDATES = {
    "gen0_00": (1.08, None),  # approved and promoted, then rolled back: the history
    "gen0_01": (1.06, None),  # approved in the browser with the token
    "gen0_02": (1.05, None),  # refused without the token
    "gen0_03": (1.07, None),  # tampered on disk after queueing
    "gen0_04": (1.06, 95.0),  # over the temperature cap: never queued
}


def _outcome(i: int, perf: float, temp: float | None) -> TrialOutcome:
    metrics = {"perf": perf, "p95_ms": 2.0 + 0.01 * (i % 2), "watts": None, "temp_peak_c": temp}
    metrics |= {"errors": 0.0, "oom": 0.0}
    reasons = {k: "not measurable on this test host" for k, v in metrics.items() if v is None}
    return TrialOutcome(i, True, 1, 0.01, metrics, reasons)


def _stock_perf(i: int) -> float:
    return 100.0 * (1 + 0.01 * (i % 3 - 1))


class Workloads:
    """Synthetic trials: stock perf near 100, a candidate's perf its gain times the paired stock trial."""

    gain, temp = 1.0, None

    def plain(self, ctx, domain, regime, genome, policy) -> TrialSeries:
        n = max(policy.min_trials, policy.min_successful_trials)
        return TrialSeries([_outcome(i, _stock_perf(i), None) for i in range(n)], "synthetic")

    def paired(self, ctx, domain, regime, genome, policy) -> TrialSeries:
        n = max(policy.min_trials, policy.min_successful_trials)
        noise = [1.004, 1 / 1.004, 1.002, 1 / 1.002, 1.0] * n
        stock = [_outcome(i, _stock_perf(i) * noise[i], None) for i in range(n)]
        cand = [_outcome(i, _stock_perf(i) * self.gain, self.temp) for i in range(n)]
        series = TrialSeries(cand, "synthetic", stock=stock)
        series.blocks = [Block("AB" if k % 2 == 0 else "BA", k, k) for k in range(n)]
        return series


@pytest.fixture(scope="module")
def out_root(tmp_path_factory) -> Path:
    """Baselines, five cpu packs, the queue, one promotion rolled back, one pack tampered with."""
    root = tmp_path_factory.mktemp("dash") / "run"
    tmp = root.parent
    cfg = load_config(profile="local")
    ctx = EvalContext(
        cfg,
        root,
        run_id="2025-01-01T00-00-00_r001",
        seed=11,
        sensors=Sensors(tmp / "nosys", temperatures=dict, sampling_ms=50),
        sleep=lambda s: None,
    )
    work = Workloads()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(baseline, "measure_regime", work.plain)
        mp.setattr(evaluator, "measure_paired", work.paired)
        base = ensure_baselines(ctx, BaselineStore(ctx.artifacts / "baselines.json"), "cpu")
        queue = Approvals(ctx.artifacts, max_pending=cfg.max_pending_approvals)
        for cid, (gain, temp) in CANDIDATES.items():
            work.gain, work.temp = gain, temp
            genome = {**ctx.spec("cpu").stock(), "thread_count": 1}
            pack = evaluator.evaluate_candidate(
                ctx, "cpu", genome, generation=0, cand_id=cid, stage="full", baselines=base
            )
            queue.offer(pack.to_dict())
            if cid == "gen0_00":
                queue.decide("cpu", cid, "approve", who="ada")
    promote(cfg, ctx.artifacts, "cpu", "gen0_00", who="ada")
    rollback(cfg, ctx.artifacts, "cpu", who="ada")
    pending = {e["cand_id"] for e in queue.entries("cpu", "pending")}
    assert pending == {"gen0_01", "gen0_02", "gen0_03"}, "the fixture must queue three packs"
    path = ctx.artifacts / "candidates/cpu/gen0_03.json"
    doc = json.loads(path.read_text())
    doc["regimes"][0]["kpis"]["perf"][0] *= 2  # still a valid pack; only its checksum tells
    path.write_text(json.dumps(doc))
    return root


@pytest.fixture(scope="module")
def dash_url(out_root) -> Iterator[str]:
    """One dashboard server for the module, on a free localhost port."""
    app = create_app(out_root, load_config(profile="local"), TOKEN, "127.0.0.1")
    server = bind_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args) -> dict:
    """Debian's Chromium: no browser download is possible here; CI must not silently skip."""
    if not os.access(CHROMIUM, os.X_OK):
        why = f"{CHROMIUM} missing: `make setup` installs Debian's chromium"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM)}


def _log(out_root: Path) -> list[dict]:
    return [
        json.loads(x) for x in (out_root / "artifacts/approvals/log.jsonl").read_text().splitlines()
    ]


def _status(out_root: Path, cid: str) -> str:
    queue = Approvals(out_root / "artifacts", max_pending=3)
    return next(e["status"] for e in queue.entries("cpu") if e["cand_id"] == cid)


def test_the_queue_lists_every_pack_with_its_safety(page, dash_url):
    page.goto(dash_url)
    rows = page.locator("#queue tr[data-pack]")
    assert rows.count() == 4
    assert "rolled_back by ada" in page.locator('#queue tr[data-pack="cpu/gen0_00"]').inner_text()
    row = page.locator('#queue tr[data-pack="cpu/gen0_02"]').inner_text()
    assert "thread_count=" in row and "idle" in row and "mixed" in row and "safe" in row
    unsafe = page.locator('#unqueued tr[data-pack="cpu/gen0_04"]').inner_text()
    assert "UNSAFE" in unsafe and "not in the approvals queue: unsafe" in unsafe


def test_a_pack_page_shows_kpi_cis_caps_host_and_its_figure(page, dash_url):
    page.goto(dash_url)
    page.click('#queue tr[data-pack="cpu/gen0_02"] a')
    assert page.locator("h1").inner_text() == "cpu/gen0_02"
    regimes = page.locator("#regimes").inner_text()
    assert all(r in regimes for r in ("idle", "normal", "stress", "mixed"))
    assert "×1.05 [1.05, 1.05]" in regimes  # the synthetic 5 % gain, paired against stock
    assert "temp_peak_c" in page.locator("#caps").inner_text()
    assert "hostname" in page.locator("#host").inner_text()
    assert page.locator("#approve").is_visible() and page.locator("#reject").is_visible()
    img = page.locator("img.figure")
    expect(img).to_have_js_property("complete", True)
    assert img.evaluate("i => i.naturalWidth") > 300  # a PNG, not a broken image
    page.set_viewport_size({"width": 1100, "height": 900})
    shot = page.screenshot(full_page=False)
    assert shot.startswith(b"\x89PNG")
    # The committed README figure; rewritten only on request, so a test run leaves the tree clean.
    if os.environ.get("DREAM_UPDATE_SCREENSHOT") == "1" or not SCREENSHOT.exists():
        SCREENSHOT.write_bytes(shot)


def test_approving_with_the_token_records_who_and_the_pack_sha256(page, dash_url, out_root):
    page.goto(f"{dash_url}/pack/cpu/gen0_01")
    page.fill("input[name=by]", "grace")
    page.fill("input[name=token]", TOKEN)
    page.fill("input[name=note]", "CIs checked")
    page.click("#approve")
    assert "approved" in page.locator("#status").inner_text()
    assert "grace" in page.locator("#status").inner_text()
    assert page.locator("#approve").count() == 0
    assert _status(out_root, "gen0_01") == "approved"
    event = _log(out_root)[-1]
    assert (event["event"], event["who"], event["cand_id"]) == ("approved", "grace", "gen0_01")
    assert len(event["pack_sha256"]) == 64


def test_approving_without_the_token_is_refused_and_logged(page, dash_url, out_root):
    page.goto(f"{dash_url}/pack/cpu/gen0_02")
    page.fill("input[name=by]", "mallory")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.click("#approve")
    assert posted.value.status == 403
    assert "refused: no valid token" in page.locator("#message").inner_text()
    assert _status(out_root, "gen0_02") == "pending"
    event = _log(out_root)[-1]
    assert (event["event"], event["who"], event["reason"]) == (
        "dashboard_refused",
        "mallory",
        "no valid token",
    )
    # With the token but from another origin: refused as well.
    form = {"decision": "approve", "by": "mallory", "token": TOKEN}
    other = page.request.post(
        f"{dash_url}/pack/cpu/gen0_02/decide", form=form, headers={"Origin": "http://evil.test"}
    )
    assert other.status == 403 and "cross-origin request from http://evil.test" in other.text()
    assert _status(out_root, "gen0_02") == "pending"


def test_a_tampered_pack_is_blocked_on_the_page_and_on_the_server(page, dash_url, out_root):
    page.goto(dash_url)
    row = page.locator('#queue tr[data-pack="cpu/gen0_03"]').inner_text()
    assert "CHANGED" in row and "blocked" in row
    page.goto(f"{dash_url}/pack/cpu/gen0_03")
    assert "changed on disk since it was queued" in page.locator("#blocked").inner_text()
    assert page.locator("#approve").count() == 0 and page.locator("#reject").count() == 0
    # A hand-made POST with the token, from this origin: the approvals code refuses it.
    form = {"decision": "approve", "by": "grace", "token": TOKEN}
    resp = page.request.post(
        f"{dash_url}/pack/cpu/gen0_03/decide", form=form, headers={"Origin": dash_url}
    )
    assert resp.status == 409 and "changed since it was queued" in resp.text()
    assert _status(out_root, "gen0_03") == "pending"
    page.goto(f"{dash_url}/pack/cpu/gen0_04")
    assert "unsafe" in page.locator("#blocked").inner_text()
    assert page.locator("#approve").count() == 0


def test_history_shows_the_promotion_and_its_rollback(page, dash_url):
    page.goto(f"{dash_url}/history")
    rows = page.locator("#promotions").inner_text()
    assert "promoted" in rows and "rolled_back" in rows and "now in effect: stock" in rows
    assert "Stock everywhere" in page.locator("body").inner_text()


def test_origin_and_token_rules_without_a_browser(monkeypatch):
    assert cross_origin({"Origin": "http://127.0.0.1:8765"}, "http", "127.0.0.1:8765") is None
    assert cross_origin({"Referer": "http://127.0.0.1:8765/x"}, "http", "127.0.0.1:8765") is None
    assert "cross-origin" in cross_origin({"Origin": "http://a.test"}, "http", "127.0.0.1:8765")
    assert cross_origin({}, "http", "127.0.0.1:8765") == "no Origin or Referer header"
    assert dashboard_token({})[1] == "generated"
    assert dashboard_token({"DREAM_DASHBOARD_TOKEN": TOKEN}) == (TOKEN, "DREAM_DASHBOARD_TOKEN")
    with pytest.raises(ConfigError, match="at least 16"):
        dashboard_token({"DREAM_DASHBOARD_TOKEN": "short"})
