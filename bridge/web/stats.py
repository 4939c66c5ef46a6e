"""The admin page `/stats`: the figures of `livechat-bridge report` as one HTML page.

Off unless `[server] admin_token` is set (404 then, like any unknown path). `GET /stats`
with `Authorization: Bearer <token>` answers the page; without that header a browser gets a
small form (401) that POSTs the token back in the field `token`. The token is compared in
constant time (hmac.compare_digest of SHA-256 digests), never read from the URL and never
written into a page, a log line or a cookie.

The page is static HTML: charts are inline SVG (drawn in stats_charts.py), there is no
JavaScript and no external resource, and the Content-Security-Policy forbids both. Every
text that comes from the database (queue ids, agent ids) or from the request goes through
`html.escape`. The figures themselves come from `bridge.report.build_overview`, the code
behind the CLI report.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from html import escape

from aiohttp import web

from bridge.report import (
    TABLE_COLUMNS,
    Overview,
    Row,
    build_overview,
    cell_text,
)
from bridge.store import Store
from bridge.web.stats_charts import day_chart, rating_chart

log = logging.getLogger(__name__)

DEFAULT_DAYS = 30
MAX_DAYS = 366
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
CHALLENGE = 'Bearer realm="livechat-bridge stats"'
PERIOD_FIELDS = ("since", "until")


# -- wiring and handlers -----------------------------------------------------------------


@dataclass(frozen=True)
class StatsSource:
    """What the page needs: the token's digest (None: the page is off; the token itself is
    not kept), the store to read, and the clock that says which UTC day is today."""

    token_digest: bytes | None
    store: Store
    clock: Callable[[], float]

    def accepts(self, token: str) -> bool:
        """True for the admin token only; the time taken does not depend on the token."""
        if self.token_digest is None:
            return False
        return hmac.compare_digest(_digest(token), self.token_digest)


STATS = web.AppKey("stats", StatsSource)


def register(app: web.Application, admin_token: str, store: Store,
             clock: Callable[[], float] = time.time) -> None:
    """Serve GET and POST /stats; an empty `admin_token` keeps the page off (404)."""
    app[STATS] = StatsSource(_digest(admin_token) if admin_token else None, store, clock)
    app.router.add_get("/stats", _get)
    app.router.add_post("/stats", _post)


def _digest(token: str) -> bytes:
    # A header's bytes that were not UTF-8 come as surrogates: a wrong token, not an error.
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


async def _get(request: web.Request) -> web.Response:
    source = request.app[STATS]
    if source.token_digest is None:
        raise web.HTTPNotFound()
    fields = _period_fields(request.query)
    token = bearer_token(request.headers.get("Authorization", ""))
    if token is None:
        hint = ("The token is never accepted in the address (it would end up in logs and "
                "history); enter it here." if "token" in request.query else "")
        return _login(fields, hint, status=401)
    return _answer(request, source, token, fields)


async def _post(request: web.Request) -> web.Response:
    source = request.app[STATS]
    if source.token_digest is None:
        raise web.HTTPNotFound()
    form = await request.post()
    posted = {name: value for name, value in form.items() if isinstance(value, str)}
    fields = {**_period_fields(request.query), **_period_fields(posted)}
    token = posted.get("token", "")
    if not token:
        return _login(fields, "Enter the admin token.", status=401)
    return _answer(request, source, token, fields)


def _answer(request: web.Request, source: StatsSource, token: str,
            fields: Mapping[str, str]) -> web.Response:
    if not source.accepts(token):
        log.warning("/stats: wrong admin token from %s", request.remote)
        return _login(fields, "Wrong token.", status=401, invalid=True)
    now = source.clock()
    try:
        period = parse_period(fields.get("since", ""), fields.get("until", ""), _day_of(now))
    except PeriodError as exc:
        return _login(fields, f"Bad period: {exc}.", status=400)
    chats, tickets = source.store.report_records(*period.bounds)
    overview = build_overview(chats, tickets, period.days())
    log.info("/stats opened from %s (%s to %s)", request.remote, period.since, period.until)
    return _html(render_page(overview, period, datetime.fromtimestamp(now, UTC)), 200)


def bearer_token(header: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None for anything else."""
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _period_fields(values: Mapping[str, str]) -> dict[str, str]:
    return {name: values[name] for name in PERIOD_FIELDS if name in values}


def _login(fields: Mapping[str, str], message: str, *, status: int,
           invalid: bool = False) -> web.Response:
    response = _html(render_login(fields, message), status)
    if status == 401:
        response.headers["WWW-Authenticate"] = (
            f'{CHALLENGE}, error="invalid_token"' if invalid else CHALLENGE)
    return response


def _html(text: str, status: int) -> web.Response:
    response = web.Response(text=text, status=status, content_type="text/html",
                            charset="utf-8")
    response.headers.update(SECURITY_HEADERS)
    return response


# -- the period ----------------------------------------------------------------------------


class PeriodError(ValueError):
    """`since`/`until` do not make a usable period; the message says why."""


@dataclass(frozen=True)
class Period:
    """UTC days from `since` (included) to `until` (not included), as in the CLI report."""

    since: date
    until: date

    @property
    def bounds(self) -> tuple[float, float]:
        return _midnight(self.since), _midnight(self.until)

    def days(self) -> list[str]:
        return [(self.since + timedelta(days=n)).isoformat()
                for n in range((self.until - self.since).days)]


def parse_period(since: str, until: str, today: date) -> Period:
    """Blank `until`: tomorrow (so today is in); blank `since`: DEFAULT_DAYS before `until`.
    Raises PeriodError for a text that is not YYYY-MM-DD, an empty or too long period."""
    try:
        end = _parse_day("until", until) or today + timedelta(days=1)
        start = _parse_day("since", since) or end - timedelta(days=DEFAULT_DAYS)
    except OverflowError:
        raise PeriodError("the dates are out of range") from None
    if end <= start:
        raise PeriodError(f"until {end} must be a later day than since {start} "
                          "(until is not included)")
    if (end - start).days > MAX_DAYS:
        raise PeriodError(f"{(end - start).days} days is too long (at most {MAX_DAYS})")
    return Period(start, end)


def _parse_day(name: str, text: str) -> date | None:
    text = text.strip()
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError:
        raise PeriodError(f"{name} {text[:40]!r} is not a date (expected YYYY-MM-DD)") from None


def _midnight(day: date) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()


def _day_of(ts: float) -> date:
    return datetime.fromtimestamp(ts, UTC).date()


# -- HTML ----------------------------------------------------------------------------------

COLOURS = {"answered": "#2e7d32", "missed": "#c62828", "pending": "#9e9e9e",
           "rating": "#1565c0"}
CSS = (
    "body{font:15px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}"
    "main{max-width:60rem;margin:auto;padding:1rem}"
    "h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}"
    ".totals{display:flex;flex-wrap:wrap;gap:.5rem;padding:0}"
    ".totals div{background:#fff;border:1px solid #ddd;border-radius:4px;padding:.4rem .7rem}"
    ".totals dt{font-size:.8rem;color:#555}.totals dd{margin:0;font-size:1.2rem}"
    "table{border-collapse:collapse;background:#fff;font-variant-numeric:tabular-nums}"
    "th,td{border-bottom:1px solid #ddd;padding:.25rem .5rem;text-align:right}"
    "th:first-child{text-align:left}tfoot th,tfoot td{font-weight:bold}"
    ".scroll{overflow-x:auto}.error{color:#b00020;font-weight:bold}"
    "svg{background:#fff;border:1px solid #ddd;max-width:100%}"
    "svg text{font:11px system-ui,sans-serif;fill:#444}"
    ".axis{stroke:#888}.grid{stroke:#ddd;stroke-dasharray:4 3}"
    ".key{display:inline-block;width:.8em;height:.8em;margin:0 .3em 0 1em}"
    "form{display:flex;flex-wrap:wrap;gap:.75rem;align-items:end;margin:1rem 0}"
    "label{display:flex;flex-direction:column;font-size:.85rem}"
    + "".join(f".{name}{{fill:{colour};background:{colour}}}"
              for name, colour in COLOURS.items())
)
TITLE = "livechat-bridge statistics"
TOTALS = (
    ("Chats", "chats"), ("Missed", "missed"), ("Offline tickets", "tickets"),
    ("Messages", "messages"), ("Wait, median", "wait_median_s"), ("Wait, p90", "wait_p90_s"),
    ("First response, median", "first_response_median_s"),
    ("Duration, median", "duration_median_s"), ("Rating, average", "rating_avg"),
    ("Ratings 1/2/3/4/5", "ratings"),
)


def render_login(fields: Mapping[str, str], message: str = "") -> str:
    """The sign-in form; `message` (escaped) says what went wrong, if anything."""
    error = f'<p class="error" role="alert">{escape(message)}</p>' if message else ""
    return _document(f"{TITLE}: sign in", f"<h1>{TITLE}</h1>{error}{_form(fields, 'Show')}")


def render_page(overview: Overview, period: Period, generated_at: datetime) -> str:
    """The whole statistics page for one period, as static HTML with inline SVG."""
    last = period.until - timedelta(days=1)
    fields = {"since": period.since.isoformat(), "until": period.until.isoformat()}
    body = "".join((
        f"<h1>{TITLE}</h1>",
        f"<p>{period.since} to {last}, UTC days, both included ({len(overview.days)} days);"
        f" the same figures as <code>livechat-bridge report --since {period.since}"
        f" --until {period.until}</code>.</p>",
        _totals(overview.total),
        "<h2>Chats per day</h2>", day_chart(overview.days), _legend(),
        "<h2>Ratings</h2>", rating_chart(overview.total["ratings"]),
        "<h2>By queue</h2>", rows_table("queue", overview.queues, overview.total),
        "<h2>By agent</h2>", rows_table("agent", overview.agents, overview.total),
        "<p>Agent <code>-</code>: chats no agent took, and all offline tickets.</p>",
        "<h2>Another period</h2>", _form(fields, "Show"),
        f"<p><small>Generated {generated_at:%Y-%m-%d %H:%M} UTC. docs/reports.md defines"
        " each figure.</small></p>",
    ))
    return _document(TITLE, body)


def _document(title: str, body: str) -> str:
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            '<meta name="robots" content="noindex">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head>"
            f"<body><main>{body}</main></body></html>\n")


def _form(fields: Mapping[str, str], button: str) -> str:
    """Token and period; it posts to `stats`, relative, so a path prefix of a reverse proxy
    is kept. The token field always starts empty: the page never holds the token."""
    def day(name: str, label: str) -> str:
        value = escape(fields.get(name, ""))
        return f'<label>{label}<input type="date" name="{name}" value="{value}"></label>'

    return ('<form method="post" action="stats">'
            '<label>Admin token<input type="password" name="token" required'
            ' autocomplete="current-password"></label>'
            f"{day('since', 'Since (UTC, included)')}{day('until', 'Until (not included)')}"
            f'<button type="submit">{escape(button)}</button></form>')


def _totals(total: Row) -> str:
    cells = "".join(f"<div><dt>{title}</dt><dd>{escape(cell_text(name, total[name]))}</dd></div>"
                    for title, name in TOTALS)
    return f'<dl class="totals">{cells}</dl>'


def rows_table(key_title: str, rows: Sequence[Row], total: Row) -> str:
    """The CLI table's columns and cell texts as an HTML table, the total in its footer."""
    head = "".join(f'<th scope="col">{escape(title)}</th>'
                   for title in (key_title, *(title for _, title in TABLE_COLUMNS[1:])))
    body = "".join(_table_row(row) for row in rows) or (
        f'<tr><td colspan="{len(TABLE_COLUMNS)}">No chats or tickets in this period.</td></tr>')
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
            f"<tfoot>{_table_row(total)}</tfoot></table></div>")


def _table_row(row: Row) -> str:
    key, *figures = (escape(cell_text(name, row[name])) for name, _ in TABLE_COLUMNS)
    return f'<tr><th scope="row">{key}</th>{"".join(f"<td>{f}</td>" for f in figures)}</tr>'


def _legend() -> str:
    keys = (("answered", "answered"), ("missed", "missed"),
            ("pending", "pending (not answered, not ended yet)"))
    spans = "".join(f'<span class="key {kind}"></span>{text}' for kind, text in keys)
    return f"<p><small>{spans}</small></p>"
