"""Routing decisions: opening hours (with holidays and DST), who gets a new chat, and the
queue settings in the config that feed them. Fixed clock: every instant is built here."""

from __future__ import annotations

import tomllib
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bridge.config import ConfigError, QueueConfig, parse_config
from bridge.config_queues import STRATEGIES
from bridge.core.routing import (
    AgentView,
    Hours,
    choose_agents,
    estimate_wait,
    is_open,
    parse_hours,
)
from tests.unit.test_config import matrix_raw, only_problem

BUDAPEST = ZoneInfo("Europe/Budapest")
NO_HOLIDAYS: frozenset[date] = frozenset()

# A reference week: 2026-03-09 is a Monday, so DAY_OF[name] is that weekday's date.
WEEK = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY_OF = {name: date(2026, 3, 9 + i) for i, name in enumerate(WEEK)}


def at(day: str, hhmm: str) -> datetime:
    """Naive local wall time on the reference week's `day` (the queue's own zone)."""
    hour, minute = (int(x) for x in hhmm.split(":"))
    d = DAY_OF[day]
    return datetime(d.year, d.month, d.day, hour, minute)


def local(utc: str, tz: ZoneInfo = BUDAPEST) -> datetime:
    """The local time the hub computes for a UTC instant ("YYYY-MM-DD HH:MM")."""
    ts = datetime.fromisoformat(utc).replace(tzinfo=UTC).timestamp()
    return datetime.fromtimestamp(ts, tz)


def test_reference_week_starts_on_monday() -> None:
    assert [DAY_OF[name].weekday() for name in WEEK] == list(range(7))


# -- parse_hours ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"mon": "08:00-17:00"}, {0: ((480, 1020),)}),
        ({"tue": "08:00-12:00, 13:00-17:00"}, {1: ((480, 720), (780, 1020))}),
        ({"wed": " 08:00 - 12:00 ,13:00-17:00 "}, {2: ((480, 720), (780, 1020))}),
        ({"thu": "8:00-9:30"}, {3: ((480, 570),)}),
        ({"fri": "00:00-24:00"}, {4: ((0, 1440),)}),
        ({"fri": "18:00-24:00"}, {4: ((1080, 1440),)}),
        ({"sat": "22:00-02:00"}, {5: ((1320, 120),)}),
        ({"sun": "22:00-00:00"}, {6: ((1320, 0),)}),
        (
            {"mon": "09:00-17:00", "sun": "10:00-11:00, 23:00-01:00"},
            {0: ((540, 1020),), 6: ((600, 660), (1380, 60))},
        ),
        ({}, {}),
    ],
)
def test_parse_hours_valid(spec: dict[str, str], expected: dict[int, Any]) -> None:
    assert parse_hours(spec) == Hours(expected)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"monday": "08:00-17:00"},
         "'monday' is not a day (expected one of mon, tue, wed, thu, fri, sat, sun)"),
        ({"Mon": "08:00-17:00"},
         "'Mon' is not a day (expected one of mon, tue, wed, thu, fri, sat, sun)"),
        ({"mon": "08:00"}, "mon: '08:00' is not a range (expected HH:MM-HH:MM)"),
        ({"mon": "8-17"}, "mon: '8-17' is not a range (expected HH:MM-HH:MM)"),
        ({"mon": ""}, "mon: '' is not a range (expected HH:MM-HH:MM)"),
        ({"mon": "08:00-12:00,"}, "mon: '' is not a range (expected HH:MM-HH:MM)"),
        ({"tue": "08:00-12:00, 13:00 to 17:00"},
         "tue: '13:00 to 17:00' is not a range (expected HH:MM-HH:MM)"),
        ({"wed": "25:00-26:00"}, "wed: '25:00-26:00' is not a time of day"),
        ({"wed": "08:00-25:00"}, "wed: '08:00-25:00' is not a time of day"),
        ({"wed": "24:00-02:00"}, "wed: '24:00-02:00' is not a time of day"),
        ({"wed": "22:00-24:30"}, "wed: '22:00-24:30' is not a time of day"),
        ({"thu": "08:60-12:00"}, "thu: '08:60-12:00' is not a time of day"),
        ({"thu": "08:00-12:60"}, "thu: '08:00-12:60' is not a time of day"),
        ({"fri": "08:00-08:00"}, "fri: '08:00-08:00' is empty"),
        ({"fri": "00:00-00:00"}, "fri: '00:00-00:00' is empty"),
        ({"sat": 8}, 'sat: expected a string like "08:00-17:00"'),
        ({"sat": ["08:00-12:00"]}, 'sat: expected a string like "08:00-17:00"'),
        ({"sat": None}, 'sat: expected a string like "08:00-17:00"'),
    ],
)
def test_parse_hours_errors(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_hours(spec)
    assert str(info.value) == message


# -- is_open -------------------------------------------------------------------------------


@pytest.mark.parametrize("when", [at("mon", "00:00"), at("wed", "12:34"), at("sun", "23:59")])
def test_no_hours_is_always_open(when: datetime) -> None:
    assert is_open(None, NO_HOLIDAYS, when)


def test_no_hours_but_holiday_is_closed() -> None:
    assert not is_open(None, frozenset({DAY_OF["wed"]}), at("wed", "12:00"))
    assert is_open(None, frozenset({DAY_OF["wed"]}), at("thu", "00:00"))


WEEKDAYS = parse_hours({
    "mon": "08:00-17:00",
    "tue": "08:00-12:00, 13:00-17:00",
    "wed": "08:00-24:00",
    "thu": "00:00-24:00",
    "sat": "22:00-02:00",
})


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (at("mon", "07:59"), False),
        (at("mon", "08:00"), True),  # start inclusive
        (at("mon", "12:00"), True),
        (at("mon", "16:59"), True),
        (at("mon", "17:00"), False),  # end exclusive
        (at("tue", "11:59"), True),
        (at("tue", "12:00"), False),  # the lunch break
        (at("tue", "12:59"), False),
        (at("tue", "13:00"), True),
        (at("tue", "17:00"), False),
        (at("wed", "23:59"), True),  # "24:00" end runs to midnight...
        (at("thu", "00:00"), True),  # ...and Thursday is open all day
        (at("thu", "23:59"), True),
        (at("fri", "00:00"), False),  # Friday is missing: closed
        (at("fri", "12:00"), False),
        (at("fri", "23:30"), False),
        (at("sat", "21:59"), False),
        (at("sat", "22:00"), True),
        (at("sat", "23:30"), True),
        (at("sun", "00:00"), True),  # Saturday's range runs into Sunday
        (at("sun", "01:59"), True),
        (at("sun", "02:00"), False),
        (at("sun", "12:00"), False),
        (at("sun", "22:00"), False),  # Sunday has no range of its own
        (at("mon", "01:00"), False),  # nothing carries over from Sunday
    ],
)
def test_is_open_boundaries(when: datetime, expected: bool) -> None:
    assert is_open(WEEKDAYS, NO_HOLIDAYS, when) is expected


def test_is_open_ignores_seconds_within_the_last_minute() -> None:
    hours = parse_hours({"mon": "08:00-17:00"})
    assert is_open(hours, NO_HOLIDAYS, at("mon", "16:59").replace(second=59, microsecond=999))
    assert not is_open(hours, NO_HOLIDAYS, at("mon", "07:59").replace(second=59))


SAT_NIGHT = parse_hours({"sat": "22:00-02:00", "sun": "10:00-12:00"})


@pytest.mark.parametrize(
    ("holiday", "when", "expected"),
    [
        # Sunday is a holiday: its own hours and Saturday's tail are closed.
        ("sun", at("sun", "11:00"), False),
        ("sun", at("sun", "00:30"), False),
        ("sun", at("sun", "01:59"), False),
        ("sun", at("sat", "23:30"), True),  # Saturday itself is not a holiday
        # Saturday is a holiday: closed all Saturday.
        ("sat", at("sat", "22:00"), False),
        ("sat", at("sat", "23:59"), False),
        ("sat", at("sun", "11:00"), True),
        # An unrelated holiday changes nothing.
        ("wed", at("sat", "23:30"), True),
        ("wed", at("sun", "01:00"), True),
    ],
)
def test_holidays_close_the_whole_day(holiday: str, when: datetime, expected: bool) -> None:
    assert is_open(SAT_NIGHT, frozenset({DAY_OF[holiday]}), when) is expected


def test_holiday_in_the_queue_zone_with_aware_local_time() -> None:
    hours = parse_hours({"mon": "00:00-24:00"})
    holidays = frozenset({date(2026, 3, 9)})
    # 2026-03-08 23:30 UTC is already Monday 00:30 in Budapest (CET, UTC+1).
    assert not is_open(hours, holidays, local("2026-03-08 23:30"))
    # 2026-03-09 23:30 UTC is Tuesday 00:30 local: the holiday is over (and Tue closed).
    assert not is_open(hours, holidays, local("2026-03-09 23:30"))
    assert is_open(hours, frozenset(), local("2026-03-08 23:30"))


DAILY = parse_hours({day: "08:00-17:00" for day in WEEK})


@pytest.mark.parametrize(
    ("utc", "wall", "expected"),
    [
        # Spring forward: 2026-03-29 01:00 UTC, CET (+1) → CEST (+2).
        ("2026-03-28 06:30", "07:30", False),  # Sat, CET
        ("2026-03-28 07:00", "08:00", True),
        ("2026-03-28 15:59", "16:59", True),
        ("2026-03-28 16:00", "17:00", False),
        ("2026-03-29 00:30", "01:30", False),  # Sun, still CET
        ("2026-03-29 01:00", "03:00", False),  # Sun, now CEST
        ("2026-03-29 05:59", "07:59", False),
        ("2026-03-29 06:00", "08:00", True),
        ("2026-03-29 06:30", "08:30", True),
        ("2026-03-29 14:59", "16:59", True),
        ("2026-03-29 15:00", "17:00", False),
        ("2026-03-30 06:00", "08:00", True),  # Mon, CEST
        # Fall back: 2026-10-25 01:00 UTC, CEST (+2) → CET (+1).
        ("2026-10-24 05:59", "07:59", False),  # Sat, CEST
        ("2026-10-24 06:00", "08:00", True),
        ("2026-10-24 14:59", "16:59", True),
        ("2026-10-24 15:00", "17:00", False),
        ("2026-10-25 06:00", "07:00", False),  # Sun, CET
        ("2026-10-25 06:30", "07:30", False),
        ("2026-10-25 07:00", "08:00", True),
        ("2026-10-25 15:59", "16:59", True),
        ("2026-10-25 16:00", "17:00", False),
        ("2026-10-26 07:00", "08:00", True),  # Mon, CET
    ],
)
def test_dst_switches_in_budapest(utc: str, wall: str, expected: bool) -> None:
    when = local(utc)
    assert when.strftime("%H:%M") == wall
    assert is_open(DAILY, NO_HOLIDAYS, when) is expected


SAT_LATE = parse_hours({"sat": "22:00-03:00"})


@pytest.mark.parametrize(
    ("utc", "wall", "expected"),
    [
        # Spring: Saturday night loses an hour (02:00-02:59 local never happens).
        ("2026-03-28 20:59", "21:59", False),  # Sat CET
        ("2026-03-28 21:00", "22:00", True),
        ("2026-03-28 23:00", "00:00", True),  # Sun CET
        ("2026-03-29 00:59", "01:59", True),
        ("2026-03-29 01:00", "03:00", False),  # Sun CEST: straight to closing time
        # Fall: Saturday night gains an hour (02:00-02:59 local happens twice).
        ("2026-10-24 19:59", "21:59", False),  # Sat CEST
        ("2026-10-24 20:00", "22:00", True),
        ("2026-10-24 22:00", "00:00", True),  # Sun CEST
        ("2026-10-25 00:30", "02:30", True),  # first 02:30, CEST
        ("2026-10-25 00:59", "02:59", True),
        ("2026-10-25 01:00", "02:00", True),  # second 02:00, CET
        ("2026-10-25 01:30", "02:30", True),  # second 02:30, CET
        ("2026-10-25 01:59", "02:59", True),
        ("2026-10-25 02:00", "03:00", False),  # Sun CET
    ],
)
def test_range_crossing_midnight_across_dst(utc: str, wall: str, expected: bool) -> None:
    when = local(utc)
    assert when.strftime("%H:%M") == wall
    assert is_open(SAT_LATE, NO_HOLIDAYS, when) is expected


def test_same_instant_differs_by_zone() -> None:
    # 2026-03-09 07:30 UTC: 08:30 in Budapest (open), 07:30 in London (closed),
    # 03:30 in New York (closed).
    hours = parse_hours({"mon": "08:00-17:00"})
    utc = "2026-03-09 07:30"
    assert is_open(hours, NO_HOLIDAYS, local(utc, BUDAPEST))
    assert not is_open(hours, NO_HOLIDAYS, local(utc, ZoneInfo("Europe/London")))
    assert not is_open(hours, NO_HOLIDAYS, local(utc, ZoneInfo("America/New_York")))


# -- choose_agents -------------------------------------------------------------------------


def agent(
    id: str, priority: int = 0, open_chats: int = 0, max_chats: int = 3, available: bool = True
) -> AgentView:
    return AgentView(id=id, priority=priority, open_chats=open_chats, max_chats=max_chats,
                     available=available)


@pytest.mark.parametrize(
    ("view", "expected"),
    [
        (agent("a"), True),
        (agent("a", open_chats=2, max_chats=3), True),
        (agent("a", open_chats=3, max_chats=3), False),
        (agent("a", open_chats=4, max_chats=3), False),
        (agent("a", available=False), False),
    ],
)
def test_can_take(view: AgentView, expected: bool) -> None:
    assert view.can_take is expected


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ([], []),
        ([agent("a")], ["a"]),
        # Highest priority wins even when busier.
        ([agent("a", priority=1, open_chats=0), agent("b", priority=5, open_chats=2)], ["b"]),
        ([agent("a", priority=-1), agent("b")], ["b"]),
        # Same priority: fewest open chats.
        ([agent("a", open_chats=2), agent("b", open_chats=1), agent("c", open_chats=2)], ["b"]),
        # Same priority and load: config order.
        ([agent("a", open_chats=1), agent("b", open_chats=1)], ["a"]),
        ([agent("b", open_chats=1), agent("a", open_chats=1)], ["b"]),
        # Unavailable and full agents are skipped, whatever their priority.
        ([agent("a", priority=9, available=False), agent("b", priority=1)], ["b"]),
        ([agent("a", priority=9, open_chats=3, max_chats=3), agent("b")], ["b"]),
        ([agent("a", priority=9, open_chats=5, max_chats=3), agent("b", open_chats=2)], ["b"]),
        # Priority, then load, then order, all together.
        (
            [agent("a", priority=2, open_chats=2), agent("b", priority=2, open_chats=1),
             agent("c", priority=2, open_chats=1), agent("d", priority=1, open_chats=0),
             agent("e", priority=3, available=False)],
            ["b"],
        ),
        # Nobody can take it: the chat waits.
        ([agent("a", available=False), agent("b", open_chats=3, max_chats=3)], []),
    ],
)
def test_least_busy(members: list[AgentView], expected: list[str]) -> None:
    assert choose_agents("least_busy", members) == expected


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ([], []),
        ([agent("a"), agent("b"), agent("c")], ["a", "b", "c"]),
        ([agent("c", priority=9), agent("a"), agent("b", open_chats=2)], ["c", "a", "b"]),
        (
            [agent("a", available=False), agent("b"), agent("c", open_chats=3, max_chats=3),
             agent("d", open_chats=1)],
            ["b", "d"],
        ),
        ([agent("a", available=False), agent("b", open_chats=1, max_chats=1)], []),
    ],
)
def test_broadcast(members: list[AgentView], expected: list[str]) -> None:
    assert choose_agents("broadcast", members) == expected


def test_choose_agents_does_not_change_members() -> None:
    members = [agent("b", open_chats=2), agent("a", open_chats=1)]
    before = list(members)
    choose_agents("least_busy", members)
    choose_agents("broadcast", members)
    assert members == before


# -- config --------------------------------------------------------------------------------


def with_queue(**keys: Any) -> dict[str, Any]:
    """matrix_raw() with extra keys on its first queue."""
    raw = matrix_raw()
    raw["queues"][0].update(keys)
    return raw


def first_queue(raw: dict[str, Any]) -> QueueConfig:
    return parse_config(raw).queues[0]


def test_queue_routing_defaults() -> None:
    queue = first_queue(matrix_raw())
    assert queue.timezone == ZoneInfo("UTC")
    assert queue.hours is None
    assert queue.holidays == frozenset()
    assert queue.priority == 0
    assert queue.strategy == "least_busy"
    assert queue.max_waiting == 0
    assert queue.agent_priorities == {}
    assert STRATEGIES == ("least_busy", "broadcast")
    assert queue.lobby is False
    assert queue.offer_message_after_minutes == 5.0
    assert queue.unanswered_to_ticket is True


def test_queue_routing_settings() -> None:
    raw = with_queue(
        timezone="Europe/Budapest",
        hours={"mon": "08:00-17:00", "sat": "22:00-02:00"},
        holidays=["2026-12-25", date(2026, 12, 26)],
        priority=3,
        strategy="broadcast",
        max_waiting=10,
        agents=[{"id": "alice", "priority": 5}, {"id": "@bob:example.com"}],
        lobby=True,
        offer_message_after_minutes=0,
        unanswered_to_ticket=False,
    )
    queue = first_queue(raw)
    assert queue.timezone == BUDAPEST
    assert queue.hours == parse_hours({"mon": "08:00-17:00", "sat": "22:00-02:00"})
    assert queue.holidays == frozenset({date(2026, 12, 25), date(2026, 12, 26)})
    assert queue.priority == 3
    assert queue.strategy == "broadcast"
    assert queue.max_waiting == 10
    assert queue.agents == ("alice", "bob")  # by id, or by address
    assert queue.agent_priorities == {"alice": 5}
    assert queue.lobby is True
    assert queue.offer_message_after_minutes == 0
    assert queue.unanswered_to_ticket is False


def test_agents_may_mix_strings_and_tables() -> None:
    queue = first_queue(with_queue(agents=["bob", {"id": "alice", "priority": -2}]))
    assert queue.agents == ("bob", "alice")
    assert queue.agent_priorities == {"alice": -2}


def test_queue_routing_settings_from_toml() -> None:
    text = """\
[backend]
type = "matrix"

[matrix]
homeserver = "https://matrix.example.com"
user_id = "@support:example.com"
password = "bot-pw-1"

[[agents]]
id = "alice"
address = "@alice:example.com"

[[agents]]
id = "bob"
address = "@bob:example.com"

[[queues]]
id = "support"
agents = [{ id = "alice", priority = 5 }, "bob"]
timezone = "Europe/Budapest"
holidays = [2026-12-25, "2026-12-26"]
strategy = "broadcast"
max_waiting = 4

[queues.hours]
mon = "08:00-12:00, 13:00-17:00"
sat = "22:00-02:00"
"""
    raw = tomllib.loads(text)
    assert isinstance(raw["queues"][0]["holidays"][0], date)  # a bare TOML date
    queue = parse_config(raw).queues[0]
    assert queue.holidays == frozenset({date(2026, 12, 25), date(2026, 12, 26)})
    assert queue.agent_priorities == {"alice": 5}
    assert queue.agents == ("alice", "bob")
    assert queue.timezone == BUDAPEST
    assert queue.strategy == "broadcast"
    assert queue.max_waiting == 4
    # The parsed settings drive is_open as the hub does.
    assert queue.hours is not None
    assert not is_open(queue.hours, queue.holidays, local("2026-12-25 08:00", queue.timezone))
    assert is_open(queue.hours, queue.holidays, local("2026-12-28 08:00", queue.timezone))


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ({"timezone": "Mars/Olympus"},
         "queues[0].timezone: 'Mars/Olympus' is not a time zone (expected e.g. Europe/Budapest)"),
        ({"timezone": ""},
         "queues[0].timezone: '' is not a time zone (expected e.g. Europe/Budapest)"),
        ({"timezone": "/etc/localtime"},
         "queues[0].timezone: '/etc/localtime' is not a time zone "
         "(expected e.g. Europe/Budapest)"),
        ({"timezone": "../Europe/Budapest"},
         "queues[0].timezone: '../Europe/Budapest' is not a time zone "
         "(expected e.g. Europe/Budapest)"),
        # A folder of the tz database, not a zone.
        ({"timezone": "Europe"},
         "queues[0].timezone: 'Europe' is not a time zone (expected e.g. Europe/Budapest)"),
        ({"timezone": 1}, "queues[0].timezone: expected a string, got 1"),
        ({"hours": {"mon": "25:00-26:00"}},
         "queues[0].hours: mon: '25:00-26:00' is not a time of day"),
        ({"hours": {"mon": "08:00-08:00"}}, "queues[0].hours: mon: '08:00-08:00' is empty"),
        ({"hours": {"monday": "08:00-17:00"}},
         "queues[0].hours: 'monday' is not a day (expected one of mon, tue, wed, thu, fri, sat, "
         "sun)"),
        ({"hours": {"tue": 9}}, 'queues[0].hours: tue: expected a string like "08:00-17:00"'),
        ({"holidays": ["2026-12-25", "2026-13-01"]},
         "queues[0].holidays[1]: '2026-13-01' is not a date (expected YYYY-MM-DD)"),
        ({"holidays": [date(2026, 12, 25), "christmas"]},
         "queues[0].holidays[1]: 'christmas' is not a date (expected YYYY-MM-DD)"),
        ({"holidays": "2026-12-25"}, "queues[0].holidays: expected a list, got '2026-12-25'"),
        ({"strategy": "random"},
         "queues[0].strategy: 'random' is not a strategy (expected one of least_busy, "
         "broadcast)"),
        ({"strategy": 1}, "queues[0].strategy: expected a string, got 1"),
        ({"priority": "high"}, "queues[0].priority: expected an integer, got 'high'"),
        ({"priority": True}, "queues[0].priority: expected an integer, got True"),
        ({"max_waiting": "10"}, "queues[0].max_waiting: expected an integer, got '10'"),
        ({"agents": [{"id": "alice", "priority": "high"}]},
         "queues[0].agents[0].priority: expected an integer, got 'high'"),
        ({"agents": [{"id": "alice", "priority": True}]},
         "queues[0].agents[0].priority: expected an integer, got True"),
        ({"agents": [{"id": "alice", "priority": 1.5}]},
         "queues[0].agents[0].priority: expected an integer, got 1.5"),
        ({"agents": ["alice", {"id": "carol", "priority": 1}]},
         "queues[0].agents[1]: 'carol' is not a declared agent (expected an id or address from "
         "[[agents]])"),
        ({"agents": [{"priority": 1}]}, "queues[0].agents[0]: expected a string, got None"),
        # A typo in a member table must not silently drop its priority.
        ({"agents": [{"id": "alice", "prio": 5}]},
         "queues[0].agents[0].prio: unknown key; did you mean priority?"),
        ({"rank": 1}, "queues[0].rank: unknown key"),
        ({"lobby": "yes"}, "queues[0].lobby: expected true or false, got 'yes'"),
        ({"offer_message_after_minutes": -1},
         "queues[0].offer_message_after_minutes: -1 is negative (expected a number >= 0; 0 "
         "switches it off)"),
        ({"offer_message_after_minutes": "5"},
         "queues[0].offer_message_after_minutes: expected a number, got '5'"),
        ({"unanswered_to_ticket": 1},
         "queues[0].unanswered_to_ticket: expected true or false, got 1"),
    ],
)
def test_queue_routing_problems(keys: dict[str, Any], problem: str) -> None:
    assert only_problem(with_queue(**keys)) == problem


def test_hours_not_a_table_is_a_problem() -> None:
    problem = only_problem(with_queue(hours="08:00-17:00"))
    assert problem.startswith("queues[0].hours: expected ")
    assert problem.endswith(", got '08:00-17:00'")


def test_negative_max_waiting_is_a_problem() -> None:
    problem = only_problem(with_queue(max_waiting=-1))
    assert problem.startswith("queues[0].max_waiting: ")


def test_problems_in_several_routing_keys_are_reported_together() -> None:
    raw = with_queue(
        timezone="Mars/Olympus",
        hours={"mon": "08:60-12:00"},
        holidays=[date(2026, 1, 1), "2026-13-01"],
        strategy="random",
        agents=[{"id": "alice", "priority": "high"}],
    )
    with pytest.raises(ConfigError) as info:
        parse_config(raw)
    assert sorted(info.value.problems) == sorted([
        "queues[0].agents[0].priority: expected an integer, got 'high'",
        "queues[0].strategy: 'random' is not a strategy (expected one of least_busy, broadcast)",
        "queues[0].timezone: 'Mars/Olympus' is not a time zone (expected e.g. Europe/Budapest)",
        "queues[0].hours: mon: '08:60-12:00' is not a time of day",
        "queues[0].holidays[1]: '2026-13-01' is not a date (expected YYYY-MM-DD)",
    ])


@pytest.mark.parametrize(
    "holiday",
    ["2026-12-25", date(2026, 12, 25)],
    ids=["string", "date"],
)
def test_holiday_as_string_or_date(holiday: Any) -> None:
    queue = first_queue(with_queue(holidays=[holiday]))
    assert queue.holidays == frozenset({date(2026, 12, 25)})
    assert all(type(d) is date for d in queue.holidays)


@pytest.mark.parametrize(
    "value",
    [datetime(2026, 12, 25, 0, 0), datetime(2026, 12, 25, 0, 0, tzinfo=UTC)],
    ids=["local-datetime", "offset-datetime"],
)
def test_holiday_given_as_toml_datetime_is_a_problem_or_a_date(value: datetime) -> None:
    """tomllib turns `2026-12-25T00:00:00` into a datetime, a subclass of date. Kept as is it
    never equals `local.date()`, so the holiday would be silently ignored: it must either be
    refused or reduced to its date."""
    raw = with_queue(holidays=[value])
    try:
        queue = first_queue(raw)
    except ConfigError as exc:
        assert exc.problems == [
            f"queues[0].holidays[0]: {value!r} is not a date (expected YYYY-MM-DD)"
        ]
        return
    assert queue.holidays == frozenset({date(2026, 12, 25)})
    assert all(type(d) is date for d in queue.holidays)
    hours = parse_hours({day: "00:00-24:00" for day in WEEK})
    assert not is_open(hours, queue.holidays, datetime(2026, 12, 25, 12, 0))


# -- the wait estimate -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("position", "waits", "serving", "waited", "expected"),
    [
        (1, [60.0, 120.0, 180.0], 1, 0.0, 120),  # the median of recent answers
        (1, [180.0, 60.0, 120.0], 1, 0.0, 120),  # in any order
        (1, [60.0, 100.0, 140.0, 1000.0], 1, 0.0, 120),  # even count: between the middle two
        (2, [60.0, 120.0, 180.0], 1, 0.0, 240),  # one agent: a turn per place in line
        (3, [60.0, 120.0, 180.0], 2, 0.0, 240),  # two agents: places 3-4 wait two turns
        (2, [60.0, 120.0, 180.0], 2, 0.0, 120),
        (1, [60.0, 120.0, 180.0], 1, 30.0, 90),  # time already waited counts
        (1, [60.0, 120.0, 180.0], 1, 119.5, 1),  # rounded up: never "0" while waiting
        (1, [60.0, 120.0, 180.0], 1, 120.0, None),  # past the estimate: no guess
        (1, [60.0, 120.0], 1, 0.0, None),  # too few answers to say anything
        (1, [], 3, 0.0, None),
        (1, [60.0, 120.0, 180.0], 0, 0.0, None),  # nobody on duty: unknown
        (0, [60.0, 120.0, 180.0], 1, 0.0, None),  # not in line
    ],
)
def test_estimate_wait(position: int, waits: list[float], serving: int, waited: float,
                       expected: int | None) -> None:
    assert estimate_wait(position, waits, serving, waited) == expected
