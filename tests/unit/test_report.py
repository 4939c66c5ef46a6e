"""`livechat-bridge report`: the pure aggregation, the renderers, and the CLI end to end
against a real SQLite database seeded through the Store."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from bridge.cli import main
from bridge.core.models import (
    AgentId,
    ConversationId,
    ItemKind,
    Page,
    QueueId,
    Sender,
    Status,
    Ticket,
    VisitorInfo,
)
from bridge.report import (
    CSV_FIELDS,
    FIELDS,
    ChatRecord,
    build_report,
    human_duration,
    median,
    percentile,
    render,
    render_csv,
    render_json,
    render_table,
)
from bridge.store import Store

D1 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()  # 2026-03-01T00:00:00Z
D2 = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
HOUR = 3600.0
NO_RATINGS = {"1": 0, "2": 0, "3": 0, "4": 0, "5": 0}


def chat(
    *,
    queue: str = "support",
    agent: str | None = "alice",
    created: float = D1,
    wait: float | None = None,
    duration: float | None = None,
    status: str | None = None,
    rating: int | None = None,
    messages: int = 0,
) -> ChatRecord:
    """A conversation answered after `wait` s (None: never) and ended after `duration` s
    (None: still open)."""
    if status is None:
        status = "ended" if duration is not None else ("active" if wait is not None else "waiting")
    return ChatRecord(
        queue_id=queue,
        agent_id=agent,
        created_at=created,
        first_response_at=None if wait is None else created + wait,
        ended_at=None if duration is None else created + duration,
        status=status,
        rating=rating,
        messages=messages,
    )


def rows_by_key(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in report["rows"]}


# -- statistics -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected_median", "expected_p90"),
    [
        ([], None, None),
        ([7.0], 7.0, 7.0),
        ([60.0, 10.0, 20.0], 20.0, 60.0),  # odd: middle; p90 rank ceil(2.7) = 3
        ([40.0, 10.0, 30.0, 20.0], 25.0, 40.0),  # even: mean of 20 and 30; rank ceil(3.6) = 4
        ([float(n) for n in range(1, 11)], 5.5, 9.0),  # rank ceil(9.0) = 9
        ([float(n) for n in range(1, 21)], 10.5, 18.0),  # rank 18
        ([1.04, 1.08], 1.1, 1.1),  # rounded to 0.1 s
    ],
)
def test_median_and_nearest_rank_p90(
    values: list[float], expected_median: float | None, expected_p90: float | None
) -> None:
    assert median(sorted(values)) == expected_median
    assert percentile(values, 90) == expected_p90


# -- aggregation ------------------------------------------------------------------------


def test_row_has_exactly_the_contract_fields() -> None:
    report = build_report([chat(wait=5)], [("support", D1)])
    assert list(report) == ["rows", "total"]
    assert tuple(report["rows"][0]) == FIELDS
    assert tuple(report["total"]) == FIELDS
    assert report["total"]["key"] == "total"


def test_empty_input_gives_no_rows_and_an_empty_total() -> None:
    for by in ("queue", "agent", "day"):
        report = build_report([], [], by)
        assert report == {
            "rows": [],
            "total": {
                "key": "total", "chats": 0, "missed": 0, "tickets": 0, "messages": 0,
                "wait_median_s": None, "wait_p90_s": None, "first_response_median_s": None,
                "duration_median_s": None, "rating_avg": None, "ratings": NO_RATINGS,
            },
        }


def test_waits_odd_and_even_counts_per_queue() -> None:
    chats = [
        chat(queue="sales", wait=60), chat(queue="sales", wait=10), chat(queue="sales", wait=20),
        chat(queue="support", wait=40), chat(queue="support", wait=10),
        chat(queue="support", wait=30), chat(queue="support", wait=20),
        chat(queue="support"),  # unanswered, still waiting: no wait value
    ]
    report = build_report(chats, [])
    rows = rows_by_key(report)
    assert list(rows) == ["sales", "support"]
    assert (rows["sales"]["wait_median_s"], rows["sales"]["wait_p90_s"]) == (20.0, 60.0)
    assert (rows["support"]["wait_median_s"], rows["support"]["wait_p90_s"]) == (25.0, 40.0)
    assert rows["support"]["first_response_median_s"] == rows["support"]["wait_median_s"]
    assert rows["support"]["chats"] == 5
    # total over all seven waits 10 10 20 20 30 40 60: median 20, p90 rank ceil(6.3) = 7
    total = report["total"]
    assert (total["wait_median_s"], total["wait_p90_s"], total["chats"]) == (20.0, 60.0, 8)
    assert total["first_response_median_s"] == 20.0


def test_missed_is_ended_without_any_answer() -> None:
    chats = [
        chat(agent=None, duration=120),  # ended, nobody answered: missed
        chat(agent=None, duration=30, wait=None),  # missed too
        chat(wait=15, duration=200),  # answered, ended: not missed
        chat(agent=None),  # still waiting: not (yet) missed
        chat(wait=5),  # active
    ]
    total = build_report(chats, [])["total"]
    assert total["missed"] == 2
    assert total["chats"] == 5
    # durations of ended chats only: 30 120 200
    assert total["duration_median_s"] == 120.0
    assert total["wait_median_s"] == 10.0  # 5 and 15


def test_ended_status_without_end_time_has_no_duration() -> None:
    record = ChatRecord(queue_id="support", agent_id=None, created_at=D1,
                        first_response_at=None, ended_at=None, status="ended", rating=None,
                        messages=0)
    total = build_report([record], [])["total"]
    assert (total["missed"], total["duration_median_s"]) == (1, None)


def test_ratings_distribution_and_average() -> None:
    chats = [chat(rating=5), chat(rating=5), chat(rating=4), chat(rating=1), chat(),
             chat(queue="sales", rating=5), chat(queue="sales", rating=4),
             chat(queue="sales", rating=4)]
    report = build_report(chats, [])
    rows = rows_by_key(report)
    assert rows["support"]["rating_avg"] == 3.75
    assert rows["support"]["ratings"] == {"1": 1, "2": 0, "3": 0, "4": 1, "5": 2}
    assert rows["sales"]["rating_avg"] == 4.33  # 13 / 3 rounded to 2 decimals
    assert rows["sales"]["ratings"] == {"1": 0, "2": 0, "3": 0, "4": 2, "5": 1}
    assert report["total"]["rating_avg"] == 4.0  # 28 / 7
    assert report["total"]["ratings"] == {"1": 1, "2": 0, "3": 0, "4": 3, "5": 3}
    assert build_report([chat()], [])["total"]["rating_avg"] is None


def test_messages_and_tickets_per_queue() -> None:
    chats = [chat(messages=3), chat(messages=4), chat(queue="sales", messages=1)]
    tickets = [("support", D1), ("billing", D1 + 5), ("billing", D1 + 9)]
    report = build_report(chats, tickets, "queue")
    rows = rows_by_key(report)
    assert list(rows) == ["billing", "sales", "support"]  # a queue with only tickets too
    assert (rows["billing"]["chats"], rows["billing"]["tickets"]) == (0, 2)
    assert (rows["support"]["messages"], rows["support"]["tickets"]) == (7, 1)
    assert (report["total"]["messages"], report["total"]["tickets"]) == (8, 3)


def test_by_agent_puts_unassigned_chats_and_all_tickets_under_dash() -> None:
    chats = [chat(agent="bob", wait=30), chat(agent="alice", wait=10),
             chat(agent=None, duration=60)]
    report = build_report(chats, [("support", D1), ("sales", D1)], "agent")
    rows = rows_by_key(report)
    assert list(rows) == ["-", "alice", "bob"]
    assert (rows["-"]["chats"], rows["-"]["missed"], rows["-"]["tickets"]) == (1, 1, 2)
    assert rows["alice"]["tickets"] == rows["bob"]["tickets"] == 0
    assert sum(row["tickets"] for row in report["rows"]) == report["total"]["tickets"] == 2


def test_by_day_splits_at_utc_midnight() -> None:
    chats = [chat(created=D2 - 1, wait=10), chat(created=D2, wait=20),
             chat(created=D2 + 23 * HOUR, wait=30)]
    tickets = [("support", D2 - 0.5), ("support", D2 + 0.5), ("support", D2 + 86400.0)]
    rows = rows_by_key(build_report(chats, tickets, "day"))
    assert list(rows) == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert (rows["2026-03-01"]["chats"], rows["2026-03-01"]["tickets"]) == (1, 1)
    assert (rows["2026-03-02"]["chats"], rows["2026-03-02"]["tickets"]) == (2, 1)
    assert rows["2026-03-02"]["wait_median_s"] == 25.0
    assert (rows["2026-03-03"]["chats"], rows["2026-03-03"]["tickets"]) == (0, 1)


def test_unknown_grouping_and_format_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot group by 'week'"):
        build_report([], [], "week")
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        render(build_report([], []), "xml")


# -- renderers --------------------------------------------------------------------------

SAMPLE = build_report(
    [chat(wait=12, duration=185, rating=5, messages=4),
     chat(queue="sales", agent=None, duration=3725, messages=1)],
    [("sales", D1)],
)


def test_render_json_is_the_contract() -> None:
    data = json.loads(render_json(SAMPLE))
    assert data == {"rows": SAMPLE["rows"], "total": SAMPLE["total"]}
    assert data["total"]["ratings"] == {"1": 0, "2": 0, "3": 0, "4": 0, "5": 1}
    assert render(SAMPLE, "json") == render_json(SAMPLE)


def test_render_csv_flattens_ratings_and_ends_with_total() -> None:
    text = render_csv(SAMPLE)
    lines = text.splitlines()
    assert lines[0] == ",".join(CSV_FIELDS)
    assert lines[0].endswith("rating_avg,rating_1,rating_2,rating_3,rating_4,rating_5")
    assert lines[1] == "sales,1,1,1,1,,,,3725.0,,0,0,0,0,0"
    assert lines[2] == "support,1,0,0,4,12.0,12.0,12.0,185.0,5.0,0,0,0,0,1"
    assert lines[3] == "total,2,1,1,5,12.0,12.0,12.0,1955.0,5.0,0,0,0,0,1"
    assert len(lines) == 4
    assert [row["key"] for row in csv.DictReader(io.StringIO(text))] == [
        "sales", "support", "total"]


def test_render_table_is_aligned() -> None:
    text = render_table(SAMPLE)
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["key", "chats", "missed", "tickets", "messages"]
    assert set(lines[1]) == {"-", " "} and set(lines[4]) == {"-", " "}
    assert lines[2].split() == ["sales", "1", "1", "1", "1", "-", "-", "-", "1h02m", "-",
                                "0/0/0/0/0"]
    assert lines[3].split() == ["support", "1", "0", "0", "4", "12s", "12s", "12s", "3m05s",
                                "5.00", "0/0/0/0/1"]
    assert lines[5].split()[0] == "total"
    # right-aligned numbers: every line ends in the same column
    assert len({len(line) for line in lines}) == 1
    empty = render_table(build_report([], [])).splitlines()
    assert len(empty) == 3 and empty[2].split()[:2] == ["total", "0"]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0, "0.0s"), (4.25, "4.2s"), (12.4, "12s"), (59.6, "1m00s"), (185.0, "3m05s"),
     (3725.0, "1h02m"), (90000.0, "25h00m")],
)
def test_human_duration(seconds: float, text: str) -> None:
    assert human_duration(seconds) == text


# -- end to end: Store -> CLI -----------------------------------------------------------

CONFIG = """\
[storage]
path = "state/live.sqlite3"

[backend]
type = "matrix"

[matrix]
homeserver = "https://matrix.invalid"
user_id = "@support:matrix.invalid"
password = "bot-pw-1"

[[agents]]
id = "alice"
address = "@alice:matrix.invalid"
name = "Alice"

[[queues]]
id = "support"
name = "Support"
agents = ["alice"]
"""


def seed(store: Store) -> None:
    """Six conversations and three tickets around 2026-03-01/02 UTC.

    c5 and T-3 fall before 2026-03-01; c1 starts exactly at 2026-03-01T00:00Z and c6
    exactly at 2026-03-02T00:00Z (the edges of --since/--until)."""

    def start(cid: str, queue: str, at: float) -> ConversationId:
        conversation_id = ConversationId(cid)
        store.create_conversation(conversation_id, QueueId(queue),
                                  VisitorInfo(name=f"V{cid}", email=f"{cid}@example.com"),
                                  Page(url="https://www.example.com/"), f"hash-{cid}", at)
        return conversation_id

    def say(cid: ConversationId, sender: Sender, at: float, kind: ItemKind = ItemKind.TEXT,
            agent: str | None = None) -> None:
        store.append_item(cid, kind, sender, agent or "Visitor", "text", at,
                          sender_id=agent, delivered=sender is Sender.AGENT)

    def answer(cid: ConversationId, agent: str, at: float) -> None:
        store.set_agent(cid, AgentId(agent))
        store.set_status(cid, Status.ACTIVE)
        say(cid, Sender.AGENT, at, ItemKind.JOINED, agent)  # not a text line
        say(cid, Sender.AGENT, at, agent=agent)
        store.set_first_response(cid, at)

    def end(cid: ConversationId, at: float) -> None:
        store.set_status(cid, Status.ENDED, ended_at=at)

    c1 = start("c1", "support", D1)  # alice: wait 30, duration 330, rated 5, 2 lines
    say(c1, Sender.VISITOR, D1 + 1)
    answer(c1, "alice", D1 + 30)
    end(c1, D1 + 330)
    store.set_rating(c1, 5, "great")

    c2 = start("c2", "support", D1 + 11 * HOUR)  # bob: wait 90, duration 600, rated 3, 3 lines
    say(c2, Sender.VISITOR, D1 + 11 * HOUR + 1)
    answer(c2, "bob", D1 + 11 * HOUR + 90)
    say(c2, Sender.VISITOR, D1 + 11 * HOUR + 100)
    end(c2, D1 + 11 * HOUR + 600)
    store.set_rating(c2, 3, "")

    c3 = start("c3", "sales", D1 + 12 * HOUR)  # nobody: missed, duration 120, 1 line
    say(c3, Sender.VISITOR, D1 + 12 * HOUR + 5)
    end(c3, D1 + 12 * HOUR + 120)

    c4 = start("c4", "sales", D2 + 9 * HOUR)  # alice: wait 60, still active, 2 lines
    answer(c4, "alice", D2 + 9 * HOUR + 60)
    say(c4, Sender.SYSTEM, D2 + 9 * HOUR + 61)

    c5 = start("c5", "support", D1 - HOUR)  # alice, 2026-02-28: wait 10, duration 100, 1 line
    answer(c5, "alice", D1 - HOUR + 10)
    end(c5, D1 - HOUR + 100)
    store.set_rating(c5, 1, "")

    start("c6", "sales", D2)  # nobody, still waiting, no lines

    for tid, queue, at in (("T-1", "support", D1 + 13 * HOUR), ("T-2", "sales", D2 + 10 * HOUR),
                           ("T-3", "support", D1 - 2 * HOUR)):
        store.add_ticket(Ticket(id=tid, created_at=at, queue_id=queue, name="N",
                                email="n@example.com", text="call me"), mail=False, webhook=False)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG, encoding="utf-8")
    store = Store(tmp_path / "state" / "live.sqlite3")
    try:
        seed(store)
    finally:
        store.close()
    return path


def run_report(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> str:
    capsys.readouterr()
    assert main(["report", "-c", str(config), *args]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def run_json(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(run_report(capsys, config, "--format", "json", *args))
    return data


def test_store_report_records(tmp_path: Path, config_path: Path) -> None:
    store = Store(tmp_path / "state" / "live.sqlite3")
    try:
        chats, tickets = store.report_records(None, None)
        assert [c.created_at for c in chats] == sorted(c.created_at for c in chats)
        assert len(chats) == 6 and len(tickets) == 3
        c1 = next(c for c in chats if c.created_at == D1)
        assert c1 == ChatRecord(queue_id="support", agent_id="alice", created_at=D1,
                                first_response_at=D1 + 30, ended_at=D1 + 330, status="ended",
                                rating=5, messages=2)
        chats, tickets = store.report_records(D1, D2)
        assert [c.created_at for c in chats] == [D1, D1 + 11 * HOUR, D1 + 12 * HOUR]
        assert tickets == [("support", D1 + 13 * HOUR)]
        chats, tickets = store.report_records(D2, None)
        assert [c.created_at for c in chats] == [D2, D2 + 9 * HOUR]
        assert tickets == [("sales", D2 + 10 * HOUR)]
    finally:
        store.close()


def test_cli_json_by_agent_all_time(capsys: pytest.CaptureFixture[str],
                                    config_path: Path) -> None:
    data = run_json(capsys, config_path, "--by", "agent")
    assert data == {
        "rows": [
            {"key": "-", "chats": 2, "missed": 1, "tickets": 3, "messages": 1,
             "wait_median_s": None, "wait_p90_s": None, "first_response_median_s": None,
             "duration_median_s": 120.0, "rating_avg": None, "ratings": NO_RATINGS},
            {"key": "alice", "chats": 3, "missed": 0, "tickets": 0, "messages": 5,
             "wait_median_s": 30.0, "wait_p90_s": 60.0, "first_response_median_s": 30.0,
             "duration_median_s": 215.0, "rating_avg": 3.0,
             "ratings": {"1": 1, "2": 0, "3": 0, "4": 0, "5": 1}},
            {"key": "bob", "chats": 1, "missed": 0, "tickets": 0, "messages": 3,
             "wait_median_s": 90.0, "wait_p90_s": 90.0, "first_response_median_s": 90.0,
             "duration_median_s": 600.0, "rating_avg": 3.0,
             "ratings": {"1": 0, "2": 0, "3": 1, "4": 0, "5": 0}},
        ],
        "total": {"key": "total", "chats": 6, "missed": 1, "tickets": 3, "messages": 9,
                  "wait_median_s": 45.0, "wait_p90_s": 90.0, "first_response_median_s": 45.0,
                  "duration_median_s": 225.0, "rating_avg": 3.0,
                  "ratings": {"1": 1, "2": 0, "3": 1, "4": 0, "5": 1}},
    }


def test_cli_since_is_inclusive_until_is_exclusive(capsys: pytest.CaptureFixture[str],
                                                   config_path: Path) -> None:
    one_day = run_json(capsys, config_path, "--since", "2026-03-01", "--until", "2026-03-02")
    rows = rows_by_key(one_day)
    assert list(rows) == ["sales", "support"]
    assert rows["support"] | {"ratings": None} == {
        "key": "support", "chats": 2, "missed": 0, "tickets": 1, "messages": 5,
        "wait_median_s": 60.0, "wait_p90_s": 90.0, "first_response_median_s": 60.0,
        "duration_median_s": 465.0, "rating_avg": 4.0, "ratings": None}
    assert (rows["sales"]["chats"], rows["sales"]["missed"]) == (1, 1)  # c3, not c6 at D2
    assert (one_day["total"]["chats"], one_day["total"]["tickets"]) == (3, 1)

    since = run_json(capsys, config_path, "--since", "2026-03-02", "--by", "day")
    assert [(r["key"], r["chats"], r["tickets"]) for r in since["rows"]] == [
        ("2026-03-02", 2, 1)]  # c6 at exactly 00:00Z is in
    until = run_json(capsys, config_path, "--until", "2026-03-01", "--by", "day")
    assert [(r["key"], r["chats"], r["tickets"]) for r in until["rows"]] == [
        ("2026-02-28", 1, 1)]  # c1 at exactly 00:00Z is out
    empty = run_json(capsys, config_path, "--since", "2027-01-01")
    assert empty["rows"] == [] and empty["total"]["chats"] == 0


def test_cli_by_day_default_format_is_table(capsys: pytest.CaptureFixture[str],
                                            config_path: Path) -> None:
    lines = run_report(capsys, config_path, "--by", "day").splitlines()
    assert lines[0].split()[0] == "key"
    assert [line.split()[:4] for line in lines[2:5]] == [
        ["2026-02-28", "1", "0", "1"], ["2026-03-01", "3", "1", "1"], ["2026-03-02", "2", "0", "1"]]
    assert lines[-1].split()[:4] == ["total", "6", "1", "3"]
    # default grouping is by queue
    queue_lines = run_report(capsys, config_path).splitlines()
    assert [line.split()[0] for line in queue_lines[2:4]] == ["sales", "support"]


def test_cli_csv(capsys: pytest.CaptureFixture[str], config_path: Path) -> None:
    text = run_report(capsys, config_path, "--format", "csv", "--by", "queue")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [row["key"] for row in rows] == ["sales", "support", "total"]
    assert rows[2]["chats"] == "6" and rows[2]["rating_5"] == "1"
    assert rows[0]["wait_median_s"] == "60.0" and rows[0]["rating_avg"] == ""


def test_cli_config_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[backend]\ntype = 'irc'\n", encoding="utf-8")
    assert main(["report", "-c", str(bad)]) == 2
    assert "backend.type" in capsys.readouterr().err


def test_cli_missing_database_is_not_created(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.toml"
    path.write_text(CONFIG, encoding="utf-8")
    assert main(["report", "-c", str(path)]) == 1
    assert "no database" in capsys.readouterr().err
    assert not (tmp_path / "state").exists()


def test_cli_bad_dates(capsys: pytest.CaptureFixture[str], config_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["report", "-c", str(config_path), "--since", "2026-02-30"])
    assert exc.value.code == 2
    assert "is not a date (expected YYYY-MM-DD)" in capsys.readouterr().err
    assert main(["report", "-c", str(config_path), "--since", "2026-03-02",
                 "--until", "2026-03-02"]) == 2
    assert "must be a later day" in capsys.readouterr().err
