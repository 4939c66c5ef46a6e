"""The aiohttp application: widget assets, the visitor socket and the small HTTP API."""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from typing import Any

from aiohttp import WSCloseCode, web

from bridge.config import Config, normalize_origin
from bridge.core.colors import text_on
from bridge.core.protocol import LANG_RE, ProtocolError, load_json, parse_offline
from bridge.i18n import pick_language, text_direction, visitor_strings
from bridge.store import Store
from bridge.tickets import Flooded, Tickets
from bridge.web import client_address, stats, uploads
from bridge.web.assets import served
from bridge.web.desk import VisitorDesk
from bridge.web.uploads import FileDesk
from bridge.web.ws import handle_ws, origin_allowed

log = logging.getLogger(__name__)

CONFIG = web.AppKey("config", Config)
TICKETS = web.AppKey("tickets", Tickets)
SOCKETS = web.AppKey("sockets", weakref.WeakSet[web.WebSocketResponse])
# Where `/` redirects (the demo: its shop page); unset, `/` names the widget tag.
HOME = web.AppKey("home", str)

# What the loader needs before the panel loads: the launcher's label, its badge, the
# invitation bubble's close button, and a word for a panel that failed to load.
LOADER_STRINGS = ("chat", "leave", "unread", "dismiss", "error")
MAX_LANG_LIST = 200  # `?lang=`: the browser's languages, best first


@dataclass(frozen=True)
class VisitorSide:
    """What the web layer serves visitors from: the desk for chats, the public status, and
    transcripts by token."""

    desk: VisitorDesk
    status: Callable[[str], dict[str, Any]]
    transcript_for_token: Callable[[str], str | None]
    files: FileDesk


VISITORS = web.AppKey("visitors", VisitorSide)


def create_app(config: Config, visitors: VisitorSide, tickets: Tickets, store: Store,
               clock: Callable[[], float]) -> web.Application:
    app = web.Application(client_max_size=64 * 1024)
    app[VISITORS] = visitors
    app[TICKETS] = tickets
    app[CONFIG] = config
    app[SOCKETS] = weakref.WeakSet()
    client_address.install(app, config)  # the per-address counters of [limits]
    app.router.add_get("/v1/ws", _ws)
    app.router.add_get("/v1/config", _widget_config)
    app.router.add_get("/v1/status", _status)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/v1/transcript", _transcript)
    app.router.add_post("/v1/offline", _offline)
    app.router.add_route("OPTIONS", "/v1/offline", _preflight)
    app.router.add_route("OPTIONS", "/v1/transcript", _preflight)
    app.router.add_get("/widget.js", _static_file("widget.js", "application/javascript"))
    app.router.add_get("/panel.js", _static_file("panel.js", "application/javascript"))
    app.router.add_get("/demo", _static_file("demo.html", "text/html"))
    app.router.add_get("/", _home)
    stats.register(app, config.server.admin_token, store, clock)
    uploads.register(app, config, visitors.files)
    app.on_shutdown.append(_close_sockets)
    return app


async def _ws(request: web.Request) -> web.StreamResponse:
    app = request.app
    return await handle_ws(request, app[VISITORS].desk, app[CONFIG].server, app[SOCKETS])


def _cors(request: web.Request, response: web.Response, config: Config) -> web.Response:
    """Let the configured sites read the public, visitor-independent answers."""
    origin = request.headers.get("Origin", "")
    if origin and normalize_origin(origin) in config.server.origins:
        response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Vary"] = "Origin"
    return response


def _json(request: web.Request, body: dict[str, Any], max_age: int) -> web.Response:
    response = web.json_response(body, dumps=lambda o: json.dumps(o, ensure_ascii=False))
    response.headers["Cache-Control"] = f"public, max-age={max_age}"
    return _cors(request, response, request.app[CONFIG])


def _lang(request: web.Request) -> str:
    """`?lang=de-AT,de,en-US` (the visitor's languages, best first; a part of the URL, so
    each list is cached on its own): the first the widget speaks, else the default. Tags
    that are not language tags are passed over."""
    tags = request.query.get("lang", "")[:MAX_LANG_LIST].split(",")
    accepted = ",".join(tag for tag in tags if LANG_RE.fullmatch(tag.strip()))
    return pick_language(accepted, request.app[CONFIG])


async def _widget_config(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    lang = _lang(request)
    strings = visitor_strings(config, lang)
    body = {
        "lang": lang,
        "dir": text_direction(lang),
        "title": strings["title"],
        "max_text": config.server.max_text,
        # How long the visitor may edit or delete their last line (0: never).
        "edit_seconds": config.chats.visitor_edit_seconds,
        "mail": config.smtp is not None,  # whether "Email it to me" can work at all
        "sound": config.widget.sound,
        "consent": strings.get("consent", ""),  # a required checkbox in the pre-chat form
        "files": {"max_bytes": config.files.max_bytes, "types": sorted(config.files.types)}
        if config.files.enabled else None,
        "queues": [{"id": q.id, "name": q.text("name", lang), "topic": q.text("topic", lang),
                    "peek": q.peek} for q in config.queues],
        "strings": strings,
    }
    return _json(request, body, max_age=300)


async def _status(request: web.Request) -> web.Response:
    config = request.app[CONFIG]
    lang = _lang(request)
    strings = visitor_strings(config, lang)
    widget = config.widget
    look = {
        "lang": lang,
        "dir": text_direction(lang),
        "color": widget.color,
        "text_color": text_on(widget.color),
        "position": widget.position,
        "strings": {key: strings[key] for key in LOADER_STRINGS},
        "invitations": [{"text": i.text_in(lang), "pages": i.pages, "exclude": i.exclude,
                         "delay": i.delay_seconds, "queue": i.queue}
                        for i in widget.invitations],
    }
    return _json(request, {**request.app[VISITORS].status(lang), **look}, max_age=10)


TOKEN_HEADER = "X-Livechat-Token"


async def _transcript(request: web.Request) -> web.Response:
    """The visitor's own transcript as a text file; the token (in a header, never in the URL
    where logs and referrers would keep it) is the only key."""
    token = request.headers.get(TOKEN_HEADER, "")
    found = request.app[VISITORS].transcript_for_token
    text = found(token) if 0 < len(token) <= 128 else None
    if text is None:
        response = web.json_response(
            {"error": {"code": "bad_token", "message": "unknown conversation token"}},
            status=401)
    else:
        response = web.Response(text=text, content_type="text/plain", charset="utf-8")
        response.headers["Content-Disposition"] = 'attachment; filename="chat-transcript.txt"'
    response.headers["Cache-Control"] = "no-store"
    return _cors(request, response, request.app[CONFIG])


async def _offline(request: web.Request) -> web.Response:
    """An offline message becomes a ticket: 201 {"ticket", "helpdesk", "routes"}, 400 bad
    input, 429 flooded."""
    config = request.app[CONFIG]
    if not origin_allowed(request, config.server):
        return _error(request, 403, "origin", "origin not allowed")
    try:
        # JSON is UTF-8 whatever charset the Content-Type claims; load_json refuses what
        # json.loads would choke on (deep nesting, NaN, huge numbers) with a 400 code.
        body = load_json(await request.read(), what="the body")
        message = parse_offline(body, max_text=config.server.max_text)
        ticket = request.app[TICKETS].submit(message, client_address.request_address(request),
                                             time.time())
    except ProtocolError as exc:
        return _error(request, 400, exc.code, exc.message)
    except Flooded:
        return _error(request, 429, "rate_limited", "too many messages; try again later")
    routes = request.app[TICKETS].routes(ticket.queue_id)
    response = web.json_response({"ticket": ticket.id, "helpdesk": routes.helpdesk,
                                  "routes": routes.names()}, status=201)
    return _cors(request, response, config)


def _error(request: web.Request, status: int, code: str, message: str) -> web.Response:
    response = web.json_response({"error": {"code": code, "message": message}}, status=status)
    return _cors(request, response, request.app[CONFIG])


async def _preflight(request: web.Request) -> web.Response:
    response = web.Response(status=204)
    response.headers["Access-Control-Allow-Headers"] = f"{TOKEN_HEADER}, Content-Type"
    response.headers["Access-Control-Allow-Methods"] = "GET, POST"
    response.headers["Access-Control-Max-Age"] = "600"
    return _cors(request, response, request.app[CONFIG])


async def _home(request: web.Request) -> web.Response:
    """Whoever opens the bridge's own address learns the one tag that embeds the widget."""
    if target := request.app.get(HOME):
        raise web.HTTPFound(target)
    tag = f'<script src="{request.app[CONFIG].server.public_url}/widget.js" async></script>'
    page = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<title>livechat-bridge</title></head><body><h1>livechat-bridge</h1>"
            "<p>Put the chat on your pages with this tag:</p>"
            f"<pre><code>{escape(tag)}</code></pre></body></html>")
    response = web.Response(text=page, content_type="text/html", charset="utf-8")
    response.headers["Content-Security-Policy"] = "default-src 'none'"
    return response


async def _healthz(request: web.Request) -> web.Response:
    return web.json_response({"ok": True})


def _static_file(name: str, content_type: str) -> Any:
    async def serve(request: web.Request) -> web.Response:
        response = web.Response(body=served(name), content_type=content_type, charset="utf-8")
        response.headers["Cache-Control"] = "public, max-age=300"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.enable_compression()
        if name.endswith(".html"):
            response.headers["Content-Security-Policy"] = (
                "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:"
            )
        return response

    return serve


async def _close_sockets(app: web.Application) -> None:
    """Tell widgets we are going away, so they reconnect (and resume) at once."""
    sockets: weakref.WeakSet[web.WebSocketResponse] = app[SOCKETS]
    for ws in list(sockets):
        await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")
