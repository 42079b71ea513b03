"""The review app's routes: each turns a request into a ``workers.review``
call and a page. Every page needs a login when one is configured (HTML pages
redirect to it, everything else answers 401); every POST needs the session's
CSRF token (403 without); media are served only by keys found in the
database (no request path ever reaches the filesystem); Jinja2 escapes every
string it prints. Who may do what: ``workers.accounts`` (roles, the failed-login limiter,
the idle rule) and ``auth`` (sessions, proxy header, CSRF)."""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import cast
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from workers import accounts as roles
from workers.durations import parse_since
from workers.errors import TrackerError
from workers.media import store_from_settings
from workers.media.store import MediaMissing, check_key
from workers.review import service
from workers.sanitize import sanitize
from workers.settings import Settings
from workers.storage import accounts
from workers.storage.db import session_scope
from workers.storage.models import Detection, FrameScore, ReviewVerdict
from workers.targets.bundle import list_targets
from workers.web import auth
from workers.web.charts import backlog_svg, finished_per_hour_svg, stage_times_svg
from workers.web.timeline import timeline_svg

HERE = Path(__file__).parent
log = logging.getLogger("workers.web")  # logins (with the address) and who started what
SESSION_COOKIE = "tt_session"
SECURITY_HEADERS = {
    # Nothing but the app itself: no inline script runs even if some markup got through.
    "Content-Security-Policy": "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'; img-src 'self'; style-src 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def _templates() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True))
    env.filters["clean"] = lambda value, limit=500: sanitize(value, limit)
    env.filters["urlquote"] = lambda value: quote(str(value), safe="")
    env.globals["timeline_svg"] = timeline_svg
    env.globals.update(finished_per_hour_svg=finished_per_hour_svg, backlog_svg=backlog_svg, stage_times_svg=stage_times_svg)
    return env


def inbox_link(query, direction: str | None, cursor: service.Cursor | None) -> str | None:
    """The inbox with the same filters, paged ``direction`` ("older"/"newer") from ``cursor``
    (None direction: its newest page); None when there is no such page."""
    if direction is not None and cursor is None:
        return None
    kept = [(k, v) for k, v in query.multi_items() if k not in ("older", "newer")]
    if direction is not None and cursor is not None:
        kept.append((direction, cursor.token))
    return "/" + ("?" + urlencode(kept) if kept else "")


class ReviewApp:
    """The routes over one settings object (tests make one per temporary database)."""

    def __init__(self, settings: Settings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.db_url = settings.resolved_database_url
        self.store = store_from_settings(settings)
        self.env = _templates()
        self.clock = clock
        # In this process: `tiktok-tracker web` runs one uvicorn process (README, "Review in a browser").
        self.limiter = roles.LoginLimiter(roles.parse_limits(settings.web_failed_login_limit), clock)
        self._attempts = threading.Lock()

    # --- who is asking ------------------------------------------------------------------

    def has_accounts(self) -> bool:
        with session_scope(self.db_url) as s:
            return accounts.any_accounts(s)

    def login_required(self, request: Request) -> bool:
        """Cached on the request: asked again while a handler holds its database session, it
        must not take a second connection (threads x 2 connections would drain the pool)."""
        state = request.scope.setdefault("state", {})
        if "login_required" not in state:
            state["login_required"] = auth.auth_required(self.settings) or self.has_accounts()
        return state["login_required"]

    def limited_attempt(self, keys: tuple[str, ...], attempt: Callable[[], object]) -> tuple[int, object]:
        """(seconds to wait, None) while ``keys`` are limited; else (0, ``attempt()``), a None
        result counted as a failure. One attempt at a time in this process: guesses sent in
        parallel threads cannot all pass the check before the first failure is counted."""
        with self._attempts:
            wait = self.limiter.retry_after(keys)
            if wait:
                return wait, None
            result = attempt()
            if result is None:
                self.limiter.failed(keys)
            return 0, result

    def current_user(self, request: Request) -> auth.User | None:
        """The request's user (cached on it); None when not logged in, or when its session idled
        out, or its account is gone or changed its password since."""
        if "user" in request.scope.get("state", {}):
            return request.state.user
        user = self._resolve_user(request)
        request.state.user = user
        return user

    def _resolve_user(self, request: Request) -> auth.User | None:
        proxied = auth.proxy_user(request, self.settings)
        if proxied is not None:
            return proxied
        if not self.login_required(request):
            return auth.User("local", roles.ADMIN)
        name = request.session.get("user")
        if not name:
            return None
        now = self.clock()
        if roles.idle_expired(request.session.get("seen"), now, self.settings.web_session_idle_seconds):
            request.session.clear()
            return None
        epoch = request.session.get("epoch")
        if epoch is None:  # the web_password admin
            user = auth.User(name, roles.ADMIN) if auth.password_of(self.settings) and name == self.settings.web_user else None
        else:
            with session_scope(self.db_url) as s:
                account = accounts.get(s, name)
                ok = account is not None and account.session_epoch == epoch
                user = auth.User(name, account.role, account=True) if ok and account else None
        if user is None:
            request.session.clear()
            return None
        request.session["seen"] = now
        return user

    # --- helpers -----------------------------------------------------------------------

    def render(self, request: Request, name: str, status_code: int = 200, **context) -> HTMLResponse:
        user = self.current_user(request)
        context.update(
            request=request,
            user=user.name if user else None,
            role=user.role if user else None,
            account=bool(user and user.account),
            can_review=bool(user and roles.allows(user.role, roles.REVIEWER)),
            can_admin=bool(user and roles.allows(user.role, roles.ADMIN)),
            login_enabled=self.login_required(request),
            csrf=auth.csrf_token(request),
        )
        html = self.env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)

    def page(self, handler):
        """A GET route that needs a login (HTML: redirect to it; media and others: 401). Handlers
        are plain functions, run in the thread pool: none blocks the event loop."""

        def checked(request: Request) -> Response:
            if self.current_user(request) is None:
                if request.url.path.startswith("/media/"):
                    return PlainTextResponse("login required", status_code=401, headers=SECURITY_HEADERS)
                target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""), safe="")
                return RedirectResponse(f"/login?next={target}", status_code=303)
            return handler(request)

        @wraps(handler)
        async def guarded(request: Request) -> Response:
            return await run_in_threadpool(checked, request)  # database and media-store calls block

        return guarded

    def action(self, handler, login: bool = True, role: str = roles.VIEWER):
        """A POST route: CSRF token checked first (403), then the login (401), then the role
        (403, one line naming the role it needs)."""

        def checked(request: Request, form) -> Response:
            if not auth.csrf_ok(request, form):
                return PlainTextResponse("missing or wrong CSRF token: reload the page", status_code=403, headers=SECURITY_HEADERS)
            user = self.current_user(request)
            if login and user is None:
                return PlainTextResponse("login required", status_code=401, headers=SECURITY_HEADERS)
            if login and user and not roles.allows(user.role, role):
                return PlainTextResponse(roles.refusal(role), status_code=403, headers=SECURITY_HEADERS)
            try:
                return handler(request, form, user.name if user else None)
            except TrackerError as exc:
                return self.render(request, "error.html", status_code=400, message=str(exc))

        @wraps(handler)
        async def guarded(request: Request) -> Response:
            form = await request.form()
            return await run_in_threadpool(checked, request, form)  # database and media-store calls block

        return guarded

    @staticmethod
    def back(form, default: str = "/") -> RedirectResponse:
        return RedirectResponse(auth.local_path(form.get("back"), default), status_code=303)

    # --- pages -------------------------------------------------------------------------

    def inbox(self, request: Request) -> Response:
        q = request.query_params
        try:
            flt = service.InboxFilter(
                target=q.get("target") or None,
                # Positives unless the filter says otherwise ("any": negatives too).
                verdict=(q.get("verdict") if q.get("verdict") in ("positive", "negative") else None) if "verdict" in q else "positive",
                review=q.get("review") if q.get("review") in service.REVIEW_STATES else None,
                watch=int(q["watch"]) if q.get("watch", "").isdigit() else None,
                source=q.get("source") or None,
                since=parse_since(q["since"]) if q.get("since") else None,
                history=q.get("history") == "1",  # superseded verdicts too, marked
                older_than=service.Cursor.parse(q["older"]) if q.get("older") else None,
                newer_than=service.Cursor.parse(q["newer"]) if q.get("newer") else None,
            )
            error = None
        except TrackerError as exc:
            flt, error = service.InboxFilter(), str(exc)
        with session_scope(self.db_url) as s:
            page = service.inbox_page(s, flt)
            targets = sorted({i.detection.target_name for i in page.items} | set(list_targets(self.settings.models_dir)))
            return self.render(
                request,
                "inbox.html",
                items=page.items,
                flt=flt,
                error=error,
                targets=targets,
                review_states=service.REVIEW_STATES,
                query=request.url.query,
                older_url=inbox_link(q, "older", page.older),
                newer_url=inbox_link(q, "newer", page.newer),
                newest_url=inbox_link(q, None, None) if flt.older_than or flt.newer_than else None,
            )

    def video(self, request: Request) -> Response:
        with session_scope(self.db_url) as s:
            view = service.video_view(self.settings, s, request.path_params["video_id"])
            if view is None:
                return self.render(request, "error.html", status_code=404, message="no such video")
            return self.render(request, "video.html", view=view, ReviewVerdict=ReviewVerdict)

    def targets(self, request: Request) -> Response:
        with session_scope(self.db_url) as s:
            return self.render(request, "targets.html", targets=service.targets_view(self.settings, s))

    def pipeline(self, request: Request) -> Response:
        """The health checks of ``tiktok-tracker health`` (the workers' last answer: not waited
        for), videos per status, queues, recent failures."""
        from workers.services import health

        snap = health.take_snapshot(self.settings, ask_workers=False)
        past = health.history(self.settings, snap)
        with session_scope(self.db_url) as s:
            view = service.pipeline_view(self.settings, s, snap, health.checks(snap, self.settings), self.settings.flower_url or None)
            return self.render(request, "pipeline.html", view=view, history=past)

    def watches(self, request: Request) -> Response:
        """The watches and how their last run went; admins add, switch and remove them here."""
        from workers.durations import format_duration
        from workers.storage import watches

        with session_scope(self.db_url) as s:
            rows = watches.all_watches(s)
            return self.render(
                request,
                "watches.html",
                watches=rows,
                every={w.id: format_duration(w.every_seconds) for w in rows},
                targets=list_targets(self.settings.models_dir),
            )

    def media(self, request: Request) -> Response:
        """An evidence image, by a key that a detection or frame row holds; 404 for anything else."""
        key = request.path_params["key"]
        try:
            check_key(key)
        except ValueError:
            return PlainTextResponse("not found", status_code=404)
        with session_scope(self.db_url) as s:
            known = s.scalar(select(Detection.evidence_key).where(Detection.evidence_key == key).limit(1)) or s.scalar(
                select(FrameScore.evidence_key).where(FrameScore.evidence_key == key).limit(1)
            )
        if not known:
            return PlainTextResponse("not found", status_code=404)
        try:
            data = self.store.get(known)
        except MediaMissing:
            return PlainTextResponse("not found", status_code=404)
        return Response(data, media_type="image/jpeg", headers={**SECURITY_HEADERS, "Cache-Control": "private, max-age=3600"})

    # --- login ------------------------------------------------------------------------

    def login_page(self, request: Request) -> Response:
        return self.render(request, "login.html", next=auth.local_path(request.query_params.get("next")), failed=False)

    def login(self, request: Request, form, _user) -> Response:
        """Name and password; failures are limited per address and per name (429 + Retry-After),
        checked before the password so that a right one is refused too while limited."""
        target = auth.local_path(form.get("next"))
        name = str(form.get("name", "")).strip()[:64]
        password = str(form.get("password", ""))
        address = auth.client_address(request)
        keys = (f"addr:{address}", f"user:{(name or self.settings.web_user).lower()}")
        wait, found = self.limited_attempt(keys, lambda: self.check_login(name, password))
        if wait:
            log.warning("login refused (rate limited, %d s): name %r from %s", wait, name, address)
            headers = {**SECURITY_HEADERS, "Retry-After": str(wait)}
            html = self.env.get_template("login.html").render(
                request=request, user=None, login_enabled=True, csrf=auth.csrf_token(request), next=target, login_name=name, wait=wait
            )
            return HTMLResponse(html, status_code=429, headers=headers)
        user = cast(auth.User | None, found)
        if user is None:
            log.warning("login failed: name %r from %s", name, address)
            return self.render(request, "login.html", status_code=401, next=target, login_name=name, failed=True)
        log.info("login: %s (%s) from %s", user.name, user.role, address)
        request.session.clear()  # a fresh session (and CSRF token) after login
        request.session.update(user=user.name, seen=self.clock())
        if user.account:
            with session_scope(self.db_url) as s:
                request.session["epoch"] = accounts.existing(s, user.name).session_epoch
        return RedirectResponse(target, status_code=303)

    def check_login(self, name: str, password: str) -> auth.User | None:
        with session_scope(self.db_url) as s:
            if name and accounts.get(s, name) is not None:
                account = accounts.authenticate(s, name, password)
                return auth.User(account.name, account.role, account=True) if account else None
        if (not name or name == self.settings.web_user) and auth.check_password(self.settings, password):
            return auth.User(self.settings.web_user, roles.ADMIN)
        roles.dummy_verify(password)  # an unknown name costs as much time as a known one
        return None

    def logout(self, request: Request, _form, _user) -> Response:
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    def account_page(self, request: Request) -> Response:
        return self.render(request, "account.html", changed=request.query_params.get("changed") == "1", problem=None)

    def change_password(self, request: Request, form, _name) -> Response:
        """An account's own password change: this session goes on, every other one ends."""
        user = self.current_user(request)
        if user is None or not user.account:
            return PlainTextResponse("only accounts made with `tiktok-tracker user add` change their password here", status_code=400)
        key = (f"user:{user.name.lower()}",)
        wait, current = self.limited_attempt(key, lambda: self.check_login(user.name, str(form.get("current", ""))))
        if wait or current is None:
            log.warning("password change refused (wrong current password): %s from %s", user.name, auth.client_address(request))
            return self.render(request, "account.html", status_code=403, changed=False, problem="wrong current password")
        if form.get("new") != form.get("repeat"):
            return self.render(request, "account.html", status_code=400, changed=False, problem="the two new passwords differ")
        with session_scope(self.db_url) as s:
            account = accounts.set_password(s, user.name, str(form.get("new", "")))
            request.session["epoch"] = account.session_epoch
        log.info("password changed: %s from %s", user.name, auth.client_address(request))
        return RedirectResponse("/account?changed=1", status_code=303)

    # --- actions ----------------------------------------------------------------------

    def review(self, request: Request, form, user) -> Response:
        detection_id = request.path_params["detection_id"]
        service.review_detection(self.settings, detection_id, str(form.get("verdict", "")), user)
        return self.back(form)

    def mark(self, request: Request, form, user) -> Response:
        detection_id = request.path_params["detection_id"]
        frames = [int(v) for v in form.getlist("frame") if str(v).lstrip("-").isdigit()]
        result = service.mark_frames(self.settings, detection_id, frames, str(form.get("verdict", "")), user)
        if result.problems:
            return self.render(
                request, "error.html", status_code=200, message="; ".join(result.problems), back=auth.local_path(form.get("back"))
            )
        return self.back(form)

    def rescan(self, request: Request, form, user) -> Response:
        from workers.review.corrections import queue_rescan, rescan

        name = request.path_params["name"]
        since = parse_since(form["since"]) if form.get("since") else None
        run = queue_rescan if self.settings.broker_url else rescan  # with a broker: the workers rescore, not this process
        log.info("rescan of target %s by %s from %s", name, user, auth.client_address(request))
        run(self.settings, name, since, bool(form.get("all_frames")))
        return self.back(form, "/targets")

    def retrain(self, request: Request, form, user) -> Response:
        from workers.review.training import start_retrain

        log.info("retrain of target %s by %s from %s", request.path_params["name"], user, auth.client_address(request))
        start_retrain(self.settings, request.path_params["name"])
        return self.back(form, "/targets")

    def add_watch(self, request: Request, form, user) -> Response:
        from workers.durations import parse_duration
        from workers.pipeline.submit import resolve_targets
        from workers.sources import canonical_spec
        from workers.storage import watches
        from workers.storage.models import utcnow

        spec = canonical_spec(str(form.get("source", "")).strip())
        names = resolve_targets(self.settings, [str(t) for t in form.getlist("target") if t])
        with session_scope(self.db_url) as s:
            watch = watches.add(
                s, spec, names, parse_duration(str(form.get("every") or "15m")), utcnow(), bool(form.get("all_frames")), by=user
            )
            log.info("watch %d (%s) added by %s", watch.id, spec, user)
        return self.back(form, "/watches")

    def switch_watch(self, request: Request, form, user) -> Response:
        from workers.storage import watches

        watch_id, enabled = request.path_params["watch_id"], form.get("enabled") == "1"
        with session_scope(self.db_url) as s:
            watches.set_enabled(s, watch_id, enabled, by=user)
        log.info("watch %d %s by %s", watch_id, "enabled" if enabled else "disabled", user)
        return self.back(form, "/watches")

    def remove_watch(self, request: Request, form, user) -> Response:
        from workers.storage import watches

        with session_scope(self.db_url) as s:
            watches.remove(s, request.path_params["watch_id"])
        log.info("watch %d removed by %s", request.path_params["watch_id"], user)
        return self.back(form, "/watches")

    def routes(self) -> list:
        return [
            Route("/", self.page(self.inbox)),
            Route("/videos/{video_id:int}", self.page(self.video)),
            Route("/targets", self.page(self.targets)),
            Route("/pipeline", self.page(self.pipeline)),
            Route("/watches", self.page(self.watches)),
            Route("/watches", self.action(self.add_watch, role=roles.ADMIN), methods=["POST"]),
            Route("/watches/{watch_id:int}/enabled", self.action(self.switch_watch, role=roles.ADMIN), methods=["POST"]),
            Route("/watches/{watch_id:int}/remove", self.action(self.remove_watch, role=roles.ADMIN), methods=["POST"]),
            Route("/media/{key:path}", self.page(self.media)),
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.action(self.login, login=False), methods=["POST"]),
            Route("/logout", self.action(self.logout, login=False), methods=["POST"]),
            Route("/account", self.page(self.account_page)),
            Route("/account/password", self.action(self.change_password), methods=["POST"]),
            Route("/detections/{detection_id:int}/review", self.action(self.review, role=roles.REVIEWER), methods=["POST"]),
            Route("/detections/{detection_id:int}/frames", self.action(self.mark, role=roles.REVIEWER), methods=["POST"]),
            Route("/targets/{name}/rescan", self.action(self.rescan, role=roles.ADMIN), methods=["POST"]),
            Route("/targets/{name}/train", self.action(self.retrain, role=roles.ADMIN), methods=["POST"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]


def create_app(settings: Settings, clock: Callable[[], float] = time.time) -> Starlette:
    """The app; ``clock`` (seconds) drives the failed-login windows and session idle time."""
    secret = settings.web_secret.get_secret_value() if settings.web_secret else secrets.token_hex(32)
    review = ReviewApp(settings, clock)
    return Starlette(
        routes=review.routes(),
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=secret,
                session_cookie=SESSION_COOKIE,
                same_site="lax",
                https_only=settings.web_secure_cookies,
                max_age=14 * 24 * 3600,
            )
        ],
    )


def serve(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    """Run the app under uvicorn (refused beyond loopback without a login: ``auth.check_bind``)."""
    import uvicorn

    host = host or settings.web_host
    auth.check_bind(host, settings, ReviewApp(settings).has_accounts())
    if not log.handlers:  # logins and failed logins, with the address, next to uvicorn's own log
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
    uvicorn.run(create_app(settings), host=host, port=port or settings.web_port, log_level="info", server_header=False)
