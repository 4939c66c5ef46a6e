"""The /stats page's pure parts: SVG bar charts, HTML rendering and escaping, the period,
the Bearer header, and the per-day figures `bridge.report` hands to the page."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest

from bridge.report import ChatRecord, DayVolume, build_overview, build_report, daily_volume
from bridge.web.stats import (
    Period,
    PeriodError,
    bearer_token,
    parse_period,
    render_login,
    render_page,
    rows_table,
)
from bridge.web.stats_charts import (
    MAX_LABELS,
    PLOT_HEIGHT,
    TOP,
    Bar,
    Segment,
    bar_chart,
    day_chart,
    rating_chart,
)

D1 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
DAY = 86400.0
HOSTILE = "<script>alert(1)</script>"
RECT = re.compile(r'<rect class="([^"]+)" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)"'
                  r' height="([\d.]+)"/>')


def rects(svg: str) -> list[tuple[str, float, float]]:
    """(class, y, height) of every bar segment, in document order."""
    return [(m[1], float(m[3]), float(m[5])) for m in RECT.finditer(svg)]


def bar(value: int, label: str = "x", kind: str = "rating") -> Bar:
    return Bar(label=label, tooltip=f"{label}: {value}", segments=(Segment(value, kind),))


def record(queue: str = "support", agent: str | None = "alice", created: float = D1,
           wait: float | None = None, duration: float | None = None,
           rating: int | None = None) -> ChatRecord:
    status = "ended" if duration is not None else ("active" if wait is not None else "waiting")
    return ChatRecord(queue_id=queue, agent_id=agent, created_at=created,
                      first_response_at=None if wait is None else created + wait,
                      ended_at=None if duration is None else created + duration,
                      status=status, rating=rating, messages=2)


# -- bar charts ----------------------------------------------------------------------------


def test_bar_heights_are_proportional_and_the_highest_fills_the_plot() -> None:
    svg = bar_chart([bar(1), bar(2), bar(4), bar(0)], "t")
    heights = [height for _, _, height in rects(svg)]
    assert heights == [pytest.approx(PLOT_HEIGHT / 4, abs=0.01),
                       pytest.approx(PLOT_HEIGHT / 2, abs=0.01), PLOT_HEIGHT]  # 0: no rect
    ys = [y for _, y, _ in rects(svg)]
    assert ys[2] == TOP  # the highest bar reaches the top of the plot
    assert all(y + h == pytest.approx(TOP + PLOT_HEIGHT, abs=0.01)
               for _, y, h in rects(svg))  # every bar stands on the baseline


def test_segments_stack_bottom_up() -> None:
    day = DayVolume(day="2026-03-01", answered=2, missed=1, pending=1)
    other = DayVolume(day="2026-03-02", answered=0, missed=0, pending=0)
    parts = rects(day_chart([day, other]))
    assert [kind for kind, _, _ in parts] == ["answered", "missed", "pending"]
    (_, y0, h0), (_, y1, h1), (_, y2, h2) = parts
    assert [h0, h1, h2] == pytest.approx([PLOT_HEIGHT / 2, PLOT_HEIGHT / 4, PLOT_HEIGHT / 4],
                                         abs=0.01)
    assert y0 + h0 == pytest.approx(TOP + PLOT_HEIGHT, abs=0.01)
    assert y1 + h1 == pytest.approx(y0, abs=0.01) and y2 + h2 == pytest.approx(y1, abs=0.01)
    assert "2026-03-01: 4 chats, 2 answered, 1 missed, 1 pending" in day_chart([day])


@pytest.mark.parametrize("bars", [[], [bar(0), bar(0)]])
def test_a_chart_without_data_says_so(bars: list[Bar]) -> None:
    svg = bar_chart(bars, "Chats per day", empty="No chats in this period.")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<rect" not in svg and "No chats in this period." in svg
    assert "No ratings in this period." in rating_chart(dict.fromkeys("12345", 0))


def test_rating_chart_has_five_bars_in_order() -> None:
    svg = rating_chart({"1": 1, "2": 0, "3": 2, "4": 0, "5": 4})
    assert [h for _, _, h in rects(svg)] == [pytest.approx(PLOT_HEIGHT / 4, abs=0.01),
                                             pytest.approx(PLOT_HEIGHT / 2, abs=0.01),
                                             PLOT_HEIGHT]
    assert [m for m in re.findall(r"<title>rating (\d): (\d)</title>", svg)] == [
        ("1", "1"), ("2", "0"), ("3", "2"), ("4", "0"), ("5", "4")]


def test_many_bars_get_at_most_max_labels() -> None:
    svg = bar_chart([bar(n % 3 + 1, label=f"L{n:03d}") for n in range(366)], "t")
    assert len(rects(svg)) == 366
    labels = re.findall(r">(L\d{3})</text>", svg)
    assert 0 < len(labels) <= MAX_LABELS and labels[0] == "L000"
    assert svg.count("<title>") == 367  # the chart's and one tooltip per bar


def test_chart_text_is_escaped() -> None:
    svg = bar_chart([Bar(label=HOSTILE, tooltip=f'a "{HOSTILE}"',
                         segments=(Segment(1, "x\"><script>"),))], f"<{HOSTILE}>")
    assert "<script" not in svg
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in svg


# -- HTML --------------------------------------------------------------------------------


def hostile_overview() -> tuple[str, str]:
    period = Period(date(2026, 3, 1), date(2026, 3, 3))
    chats = [record(queue=HOSTILE, agent=f"<b>{HOSTILE}", wait=30, duration=330, rating=5),
             record(agent=None, created=D1 + DAY, duration=60)]
    overview = build_overview(chats, [(HOSTILE, D1)], period.days())
    return render_page(overview, period, datetime(2026, 3, 3, 9, 30, tzinfo=UTC)), HOSTILE


def test_page_escapes_queue_and_agent_ids() -> None:
    page, hostile = hostile_overview()
    assert "<script" not in page.lower() and "<b>" not in page
    assert '<th scope="row">&lt;script&gt;alert(1)&lt;/script&gt;</th>' in page
    assert '<th scope="row">&lt;b&gt;&lt;script&gt;alert(1)&lt;/script&gt;</th>' in page
    assert hostile not in page


def test_page_is_self_contained() -> None:
    page, _ = hostile_overview()
    assert page.startswith("<!doctype html>")
    for needle in ("<script", "src=", "href=", "url(", "@import", "javascript:"):
        assert needle not in page.lower()
    assert not re.search(r"\son\w+=", page)  # no event handler attributes
    assert page.count("<svg") == 2
    assert "2026-03-01 to 2026-03-02, UTC days, both included (2 days)" in page
    assert "--since 2026-03-01 --until 2026-03-03" in page
    assert "Generated 2026-03-03 09:30 UTC" in page
    # the period form never carries the token
    assert 'name="token" required' in page and "value" not in page.split('name="token"')[1][:40]


def test_rows_table_uses_the_cli_cells_and_total_in_footer() -> None:
    report = build_report([record(wait=12, duration=185, rating=5),
                           record(queue="sales", agent=None, duration=3725)], [("sales", D1)])
    html = rows_table("queue", report["rows"], report["total"])
    assert '<th scope="col">queue</th><th scope="col">chats</th>' in html
    assert ('<tr><th scope="row">support</th><td>1</td><td>0</td><td>0</td><td>2</td>'
            "<td>12s</td><td>12s</td><td>12s</td><td>3m05s</td><td>5.00</td>"
            "<td>0/0/0/0/1</td></tr>") in html
    assert html.index("<tfoot>") < html.index('<th scope="row">total</th>')
    empty = build_report([], [])
    assert "No chats or tickets in this period." in rows_table("agent", [], empty["total"])


def test_login_form_escapes_what_the_request_sent() -> None:
    html = render_login({"since": f'"><{HOSTILE}', "until": "2026-03-02"}, f"Bad: {HOSTILE}")
    assert "<script" not in html
    assert 'value="&quot;&gt;&lt;&lt;script&gt;' in html
    assert '<p class="error" role="alert">Bad: &lt;script&gt;' in html
    assert '<form method="post" action="stats">' in html
    assert 'type="password" name="token"' in html
    assert 'class="error"' not in render_login({})


# -- period, Bearer header and day figures ------------------------------------------------


def test_period_defaults_to_the_last_30_days_including_today() -> None:
    period = parse_period("", " ", date(2026, 3, 10))
    assert (period.since, period.until) == (date(2026, 2, 9), date(2026, 3, 11))
    assert len(period.days()) == 30 and period.days()[-1] == "2026-03-10"
    assert period.bounds == (datetime(2026, 2, 9, tzinfo=UTC).timestamp(),
                             datetime(2026, 3, 11, tzinfo=UTC).timestamp())
    only_until = parse_period("", "2026-01-01", date(2026, 3, 10))
    assert only_until.since == date(2025, 12, 2)
    assert parse_period("2026-03-01", "2026-03-02", date(2026, 3, 10)).days() == ["2026-03-01"]


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [("2026-02-30", "", "since '2026-02-30' is not a date (expected YYYY-MM-DD)"),
     ("", "yesterday", "until 'yesterday' is not a date"),
     ("2026-03-02", "2026-03-02", "must be a later day than since 2026-03-02"),
     ("2020-01-01", "2026-01-01", "2192 days is too long (at most 366)"),
     ("", "0001-01-02", "out of range")],
)
def test_bad_periods_are_refused_with_a_reason(since: str, until: str, message: str) -> None:
    with pytest.raises(PeriodError, match=re.escape(message)):
        parse_period(since, until, date(2026, 3, 10))


@pytest.mark.parametrize(
    ("header", "token"),
    [("Bearer abc", "abc"), ("bearer  abc ", "abc"), ("Basic abc", None), ("Bearer", None),
     ("Bearer ", None), ("", None), ("abc", None)],
)
def test_bearer_token(header: str, token: str | None) -> None:
    assert bearer_token(header) == token


def test_daily_volume_fills_every_day_and_adds_up() -> None:
    chats = [record(wait=5), record(wait=5, duration=50), record(agent=None, duration=9),
             record(agent=None), record(created=D1 + 2 * DAY, agent=None, duration=3),
             record(created=D1 - DAY, wait=1)]  # outside the days asked for
    days = daily_volume(chats, ["2026-03-01", "2026-03-02", "2026-03-03"])
    assert days == [DayVolume("2026-03-01", answered=2, missed=1, pending=1),
                    DayVolume("2026-03-02", answered=0, missed=0, pending=0),
                    DayVolume("2026-03-03", answered=0, missed=1, pending=0)]
    assert [d.chats for d in days] == [4, 0, 1]


def test_overview_is_build_report_by_queue_and_by_agent() -> None:
    chats = [record(wait=5, rating=4), record(queue="sales", agent=None, duration=9)]
    tickets = [("sales", D1)]
    overview = build_overview(chats, tickets, ["2026-03-01"])
    by_queue = build_report(chats, tickets, "queue")
    assert overview.total == by_queue["total"] and overview.queues == by_queue["rows"]
    assert overview.agents == build_report(chats, tickets, "agent")["rows"]
    assert overview.days == [DayVolume("2026-03-01", answered=1, missed=1, pending=0)]
