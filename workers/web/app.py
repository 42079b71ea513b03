"""The review app's routes: each turns a request into a ``workers.review``
call and a page. Every page needs a login when one is configured (HTML pages
redirect to it, everything else answers 401); every POST needs the session's
CSRF token (403 without); media are served only by keys found in the
database (no request path ever reaches the filesystem); Jinja2 escapes every
string it prints."""

from __future__ import annotations

import secrets
from functools import wraps
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from workers.durations import parse_since
from workers.errors import TrackerError
from workers.media import store_from_settings
from workers.media.store import MediaMissing, check_key
from workers.review import service
from workers.sanitize import sanitize
from workers.settings import Settings
from workers.storage.db import session_scope
from workers.storage.models import Detection, FrameScore, ReviewVerdict
from workers.targets.bundle import list_targets
from workers.web import auth
from workers.web.timeline import timeline_svg

HERE = Path(__file__).parent
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
    return env


class ReviewApp:
    """The routes over one settings object (tests make one per temporary database)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db_url = settings.resolved_database_url
        self.store = store_from_settings(settings)
        self.env = _templates()

    # --- helpers -----------------------------------------------------------------------

    def render(self, request: Request, name: str, status_code: int = 200, **context) -> HTMLResponse:
        context.update(
            request=request,
            user=auth.current_user(request, self.settings),
            login_enabled=auth.auth_required(self.settings),
            csrf=auth.csrf_token(request),
        )
        html = self.env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status_code, headers=SECURITY_HEADERS)

    def page(self, handler):
        """A GET route that needs a login (HTML: redirect to it; media and others: 401)."""

        @wraps(handler)
        async def guarded(request: Request) -> Response:
            if auth.current_user(request, self.settings) is None:
                if request.url.path.startswith("/media/"):
                    return PlainTextResponse("login required", status_code=401, headers=SECURITY_HEADERS)
                target = quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""), safe="")
                return RedirectResponse(f"/login?next={target}", status_code=303)
            return await handler(request)

        return guarded

    def action(self, handler, login: bool = True):
        """A POST route: CSRF token checked first (403), then the login (401)."""

        @wraps(handler)
        async def guarded(request: Request) -> Response:
            form = await request.form()
            if not auth.csrf_ok(request, form):
                return PlainTextResponse("missing or wrong CSRF token: reload the page", status_code=403, headers=SECURITY_HEADERS)
            user = auth.current_user(request, self.settings)
            if login and user is None:
                return PlainTextResponse("login required", status_code=401, headers=SECURITY_HEADERS)
            try:
                return await handler(request, form, user)
            except TrackerError as exc:
                return self.render(request, "error.html", status_code=400, message=str(exc))

        return guarded

    @staticmethod
    def back(form, default: str = "/") -> RedirectResponse:
        return RedirectResponse(auth.local_path(form.get("back"), default), status_code=303)

    # --- pages -------------------------------------------------------------------------

    async def inbox(self, request: Request) -> Response:
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
            )
            error = None
        except TrackerError as exc:
            flt, error = service.InboxFilter(), str(exc)
        with session_scope(self.db_url) as s:
            items = service.inbox(s, flt)
            targets = sorted({i.detection.target_name for i in items} | set(list_targets(self.settings.models_dir)))
            return self.render(
                request,
                "inbox.html",
                items=items,
                flt=flt,
                error=error,
                targets=targets,
                review_states=service.REVIEW_STATES,
                query=request.url.query,
            )

    async def video(self, request: Request) -> Response:
        with session_scope(self.db_url) as s:
            view = service.video_view(self.settings, s, request.path_params["video_id"])
            if view is None:
                return self.render(request, "error.html", status_code=404, message="no such video")
            return self.render(request, "video.html", view=view, ReviewVerdict=ReviewVerdict)

    async def targets(self, request: Request) -> Response:
        with session_scope(self.db_url) as s:
            return self.render(request, "targets.html", targets=service.targets_view(self.settings, s))

    async def pipeline(self, request: Request) -> Response:
        with session_scope(self.db_url) as s:
            view = service.pipeline_view(self.settings, s, self.settings.flower_url or None)
            return self.render(request, "pipeline.html", view=view)

    async def media(self, request: Request) -> Response:
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

    async def login_page(self, request: Request) -> Response:
        return self.render(request, "login.html", next=auth.local_path(request.query_params.get("next")), failed=False)

    async def login(self, request: Request, form, _user) -> Response:
        target = auth.local_path(form.get("next"))
        if not auth.check_password(self.settings, str(form.get("password", ""))):
            return self.render(request, "login.html", status_code=401, next=target, failed=True)
        request.session.clear()  # a fresh session (and CSRF token) after login
        request.session["user"] = self.settings.web_user
        return RedirectResponse(target, status_code=303)

    async def logout(self, request: Request, _form, _user) -> Response:
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    # --- actions ----------------------------------------------------------------------

    async def review(self, request: Request, form, user) -> Response:
        detection_id = request.path_params["detection_id"]
        service.review_detection(self.settings, detection_id, str(form.get("verdict", "")), user)
        return self.back(form)

    async def mark(self, request: Request, form, user) -> Response:
        detection_id = request.path_params["detection_id"]
        frames = [int(v) for v in form.getlist("frame") if str(v).lstrip("-").isdigit()]
        result = service.mark_frames(self.settings, detection_id, frames, str(form.get("verdict", "")), user)
        if result.problems:
            return self.render(
                request, "error.html", status_code=200, message="; ".join(result.problems), back=auth.local_path(form.get("back"))
            )
        return self.back(form)

    async def rescan(self, request: Request, form, _user) -> Response:
        from starlette.concurrency import run_in_threadpool

        from workers.review.corrections import queue_rescan, rescan

        name = request.path_params["name"]
        since = parse_since(form["since"]) if form.get("since") else None
        run = queue_rescan if self.settings.broker_url else rescan  # with a broker: the workers rescore, not this process
        await run_in_threadpool(run, self.settings, name, since, bool(form.get("all_frames")))
        return self.back(form, "/targets")

    async def retrain(self, request: Request, form, _user) -> Response:
        from workers.review.training import start_retrain

        start_retrain(self.settings, request.path_params["name"])
        return self.back(form, "/targets")

    def routes(self) -> list:
        return [
            Route("/", self.page(self.inbox)),
            Route("/videos/{video_id:int}", self.page(self.video)),
            Route("/targets", self.page(self.targets)),
            Route("/pipeline", self.page(self.pipeline)),
            Route("/media/{key:path}", self.page(self.media)),
            Route("/login", self.login_page, methods=["GET"]),
            Route("/login", self.action(self.login, login=False), methods=["POST"]),
            Route("/logout", self.action(self.logout, login=False), methods=["POST"]),
            Route("/detections/{detection_id:int}/review", self.action(self.review), methods=["POST"]),
            Route("/detections/{detection_id:int}/frames", self.action(self.mark), methods=["POST"]),
            Route("/targets/{name}/rescan", self.action(self.rescan), methods=["POST"]),
            Route("/targets/{name}/train", self.action(self.retrain), methods=["POST"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]


def create_app(settings: Settings) -> Starlette:
    secret = settings.web_secret.get_secret_value() if settings.web_secret else secrets.token_hex(32)
    review = ReviewApp(settings)
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
    auth.check_bind(host, settings)
    uvicorn.run(create_app(settings), host=host, port=port or settings.web_port, log_level="info", server_header=False)
