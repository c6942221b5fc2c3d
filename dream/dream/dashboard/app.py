"""The dashboard's Flask app: server-rendered pages; approve and reject behind a token and a same-origin check."""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, abort, redirect, render_template, request, send_file, url_for
from rich.console import Console
from werkzeug.serving import BaseWSGIServer, make_server

from dream.approvals import Approvals
from dream.config import DreamConfig
from dream.dashboard.review import Review, history, queue_reviews, review, unqueued_full_packs
from dream.report import plot_domain
from labkit.errors import ConfigError, LabkitError, MissingInputError

TOKEN_ENV = "DREAM_DASHBOARD_TOKEN"
MIN_TOKEN_CHARS = 16
MAX_WHO_CHARS = 64
KPIS = ("perf", "p95_ms", "watts")
HEADERS = {
    # No script runs on these pages, nothing may frame them, and forms post only back here.
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def dashboard_token(environ: os._Environ[str] | dict[str, str]) -> tuple[str, str]:
    """The token approve/reject needs, and where it came from: the environment or a fresh random one."""
    given = environ.get(TOKEN_ENV)
    if given is None:
        return secrets.token_urlsafe(24), "generated"
    if len(given) < MIN_TOKEN_CHARS:
        raise ConfigError(f"{TOKEN_ENV} must be at least {MIN_TOKEN_CHARS} characters")
    return given, TOKEN_ENV


def is_loopback(host: str) -> bool:
    """Whether a bind address only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cross_origin(headers: Any, scheme: str, host: str) -> str | None:
    """Why a state-changing request is not same-origin (None when it is): Origin, else Referer, vs Host."""
    source = headers.get("Origin") or headers.get("Referer")
    if not source:
        return "no Origin or Referer header"
    parts = urlsplit(source)
    if (parts.scheme, parts.netloc) != (scheme, host):
        return f"cross-origin request from {parts.scheme}://{parts.netloc}"
    return None


def _fmt(x: float | None, digits: int = 4) -> str:
    return "—" if x is None else f"{x:.{digits}g}"


def _mean(values: list[float] | None) -> float | None:
    return None if not values else sum(values) / len(values)


def create_app(out_root: str | os.PathLike, cfg: DreamConfig, token: str, bind: str) -> Flask:
    """The app over one tree's `artifacts/`; `bind` is the listening address (loopback pins Host)."""
    artifacts = Path(out_root) / "artifacts"
    queue = Approvals(artifacts, max_pending=cfg.max_pending_approvals)
    figures = tempfile.TemporaryDirectory(prefix="dream-dashboard-")
    app = Flask(__name__)
    if is_loopback(bind):
        # A page of another site cannot reach us through a DNS name rebound to 127.0.0.1.
        app.config["TRUSTED_HOSTS"] = ["localhost", "127.0.0.1", bind]
    app.jinja_env.filters.update(fmt=_fmt, mean=_mean)
    app.jinja_env.globals.update(kpis=KPIS, out_root=str(out_root))

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers.update(HEADERS)
        return resp

    def _review(domain: str, cand_id: str) -> Review:
        try:
            return review(queue, domain, cand_id)
        except LookupError:
            abort(404)

    def _pack_page(r: Review, status: int = 200, message: str | None = None) -> tuple[str, int]:
        return render_template("pack.html", r=r, message=message), status

    @app.get("/")
    def index() -> str:
        return render_template(
            "queue.html",
            reviews=queue_reviews(queue),
            unqueued=unqueued_full_packs(queue),
            paused=queue.read()["paused"],
        )

    @app.get("/pack/<domain>/<cand_id>")
    def pack(domain: str, cand_id: str) -> tuple[str, int]:
        return _pack_page(_review(domain, cand_id))

    @app.get("/pack/<domain>/<cand_id>/figure.png")
    def figure(domain: str, cand_id: str) -> Response:
        r = _review(domain, cand_id)
        if r.pack is None:
            abort(404)
        path = Path(figures.name) / f"{domain}_{cand_id}_{r.sha256}.png"
        if not path.exists():
            base = artifacts / "baselines.json"
            baselines = json.loads(base.read_text(encoding="utf-8")) if base.exists() else {}
            if plot_domain(domain, r.pack["generation"], [r.pack], baselines, path) is None:
                abort(404)  # a screen pack: no four-regime evidence to plot
        return send_file(path, mimetype="image/png")

    @app.get("/history")
    def history_page() -> str:
        return render_template("history.html", h=history(artifacts))

    @app.post("/pack/<domain>/<cand_id>/decide")
    def decide(domain: str, cand_id: str) -> Any:
        r = _review(domain, cand_id)
        form = request.form
        decision, who = form.get("decision", ""), form.get("by", "").strip()
        attempt = {
            "domain": domain,
            "cand_id": cand_id,
            "decision": decision,
            "who": who,
            "via": "dashboard",
            "remote_addr": request.remote_addr,
        }
        why = cross_origin(request.headers, request.scheme, request.host)
        status = 403
        if why is None and not hmac.compare_digest(form.get("token", "").encode(), token.encode()):
            why = "no valid token"
        if why is None and not 0 < len(who) <= MAX_WHO_CHARS:
            why, status = f"say who decides (1 to {MAX_WHO_CHARS} characters)", 400
        if why is None:
            try:
                # Exactly the CLI's path: the queue re-reads the pack and checks its sha256 itself.
                queue.decide(domain, cand_id, decision, who=who, note=form.get("note") or None)
            except LabkitError as exc:
                why, status = str(exc), 409
        if why is not None:
            queue.record("dashboard_refused", **attempt, reason=why)
            return _pack_page(_review(domain, cand_id), status, f"refused: {why}")
        return redirect(url_for("pack", domain=r.domain, cand_id=r.cand_id), code=303)

    return app


def bind_server(app: Flask, host: str, port: int) -> BaseWSGIServer:
    """A threaded WSGI server for the app, bound (port 0: any free port); exit 2 if it cannot bind."""
    try:
        return make_server(host, port, app, threaded=True)
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


def run_dashboard(
    out_root: str | os.PathLike, cfg: DreamConfig, *, host: str, port: int, console: Console
) -> None:
    """Serve the dashboard until interrupted, printing its address and where the token comes from."""
    if not (Path(out_root) / "artifacts").is_dir():
        raise MissingInputError(f"no artifacts/ under {out_root}: run `dream service` there first")
    token, source = dashboard_token(os.environ)
    server = bind_server(create_app(out_root, cfg, token, host), host, port)
    where = f"http://{host}:{server.server_port}/"
    console.print(f"D-REAM dashboard on {where} (out_root {out_root}); Ctrl-C stops it")
    if not is_loopback(host):
        console.print(f"[yellow]listening on {host}: reachable from other machines[/yellow]")
    if source == "generated":
        console.print(f"token for approve/reject: {token}  (or set {TOKEN_ENV})", soft_wrap=True)
    else:
        console.print(f"token for approve/reject: the value of {TOKEN_ENV}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        console.print("dashboard stopped")
    finally:
        server.server_close()
