"""The `[[queues]]` tables: who answers which topic, when, and how chats are handed out."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bridge.config_reader import (
    LANG_RE,
    Reader,
    address_check,
    check_http_url,
    check_ident,
    check_mailbox,
    check_not_negative,
    check_one_line,
    check_secret,
)
from bridge.core.routing import Hours, parse_hours
from bridge.core.templates import TemplateError, language_key, render

if TYPE_CHECKING:
    from bridge.config_agents import AgentConfig


@dataclass(frozen=True)
class QueueConfig:
    id: str
    name: str
    agents: tuple[str, ...]
    welcome: str = ""
    topic: str = ""
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    hours: Hours | None = None  # None: always open
    holidays: frozenset[date] = frozenset()
    priority: int = 0
    strategy: str = "least_busy"
    max_waiting: int = 0  # 0: no limit
    agent_priorities: dict[str, int] = field(default_factory=dict)
    helpdesk_email: str = ""
    webhook_url: str = ""
    webhook_secret: str = ""
    lobby: bool = False  # a room where the queue's agents see waiting chats and !claim them
    offer_message_after_minutes: float = 5.0  # 0: never offer "leave a message" to waiters
    unanswered_to_ticket: bool = True  # a chat that ends unanswered becomes a ticket
    peek: bool = False  # agents see the visitor's unsent text (the visitor is told)
    # [queues.translations.de]: name, topic and welcome in other languages
    translations: dict[str, dict[str, str]] = field(default_factory=dict)

    def text(self, key: str, lang: str) -> str:
        """The queue's `name`, `topic` or `welcome` in the visitor's language, else as set."""
        own = self.translations.get(language_key(lang), {})
        if key == "topic" and "topic" not in own and self.topic == self.name:
            key = "name"  # the topic was never set apart from the name: it follows it
        return own.get(key) or getattr(self, key)


def _queue_agent(
    r: Reader, path: str, ref: Any, agents: list[AgentConfig], backend: str
) -> str | None:
    """Resolve a queue member given by agent id or by address to the agent id."""
    if not isinstance(ref, str):
        r.fail(path, f"expected a string, got {ref!r}")
        return None
    for agent in agents:
        if ref in (agent.id, agent.address):
            return agent.id
    if "@" in ref:
        problem = address_check(backend)(ref)
        if problem:
            r.fail(path, problem)
            return None
    r.fail(path, f"{ref!r} is not a declared agent (expected an id or address from [[agents]])")
    return None


def parse_queues(r: Reader, items: Any, agents: list[AgentConfig], backend: str, *,
                 smtp: bool = False) -> list[QueueConfig]:
    """Every `[[queues]]` table; members are resolved to agent ids, problems go to `r`.
    `smtp`: the file has an [smtp] table (mail to a help desk can be sent)."""
    if not isinstance(items, list) or not items:
        r.fail("queues", "expected at least one [[queues]] table")
        return []
    queues: list[QueueConfig] = []
    seen: set[str] = set()
    # With [[agents]] broken, who is in a queue cannot be judged: no follow-on problems.
    agents_ok = not any(problem.startswith("agents") for problem in r.problems)
    for p, t in r.tables(items, "queues"):
        problems_before = len(r.problems)
        r.unknown_keys(t, {"id", "name", "agents", "welcome", "topic", "timezone", "hours",
                           "holidays", "priority", "strategy", "max_waiting",
                           "helpdesk_email", "webhook_url", "webhook_secret", "lobby",
                           "offer_message_after_minutes", "unanswered_to_ticket",
                           "translations", "peek"}, p)
        queue_id = r.get(t, "id", p, str, "", required=True, check=check_ident)
        if queue_id and queue_id in seen:
            r.fail(f"{p}.id", f"{queue_id!r} is declared twice (expected unique ids)")
        seen.add(queue_id)
        members = r.get(t, "agents", p, list, [], required=True)
        priorities: dict[str, int] = {}
        resolved = []
        for j, member in enumerate(members):
            ref, priority = member, 0
            if isinstance(member, dict):  # { id = "bob", priority = 5 }
                r.unknown_keys(member, {"id", "priority"}, f"{p}.agents[{j}]")
                ref, priority = member.get("id"), member.get("priority", 0)
                if not isinstance(priority, int) or isinstance(priority, bool):
                    r.fail(f"{p}.agents[{j}].priority", f"expected an integer, got {priority!r}")
                    priority = 0
            agent_id = _queue_agent(r, f"{p}.agents[{j}]", ref, agents, backend)
            if agent_id:
                resolved.append(agent_id)
                if priority:
                    priorities[agent_id] = priority
        name = r.get(t, "name", p, str, queue_id) or queue_id
        strategy = r.get(t, "strategy", p, str, "least_busy")
        if strategy not in STRATEGIES:
            r.fail(f"{p}.strategy", f"{strategy!r} is not a strategy (expected one of "
                   f"{', '.join(STRATEGIES)})")
        queues.append(
            QueueConfig(
                id=queue_id,
                name=name,
                agents=tuple(resolved),
                welcome=r.get(t, "welcome", p, str, "", check=check_welcome),
                topic=r.get(t, "topic", p, str, name),
                timezone=_timezone(r, t, p),
                hours=_hours(r, t, p),
                holidays=_holidays(r, t, p),
                priority=r.get(t, "priority", p, int, 0),
                strategy=strategy,
                max_waiting=r.get(t, "max_waiting", p, int, 0, check=check_not_negative),
                agent_priorities=priorities,
                helpdesk_email=r.get(t, "helpdesk_email", p, str, "", check=check_mailbox),
                webhook_url=r.get(t, "webhook_url", p, str, "", check=check_http_url),
                webhook_secret=r.get(t, "webhook_secret", p, str, "", check=check_secret),
                lobby=r.get(t, "lobby", p, bool, False),
                offer_message_after_minutes=float(r.get(
                    t, "offer_message_after_minutes", p, (int, float), 5.0,
                    check=check_not_negative)),
                unanswered_to_ticket=r.get(t, "unanswered_to_ticket", p, bool, True),
                peek=r.get(t, "peek", p, bool, False),
                translations=_translations(r, r.table(t, "translations", f"{p}.translations",
                                                      False), f"{p}.translations"),
            )
        )
        if queues[-1].webhook_url and not queues[-1].webhook_secret:
            r.fail(f"{p}.webhook_secret", "missing (expected a secret to sign the webhook)")
        check_tickets_reach(r, p, queues[-1], smtp=smtp,
                            judge=agents_ok and len(r.problems) == problems_before)
    return queues


def check_tickets_reach(r: Reader, path: str, queue: QueueConfig, *, smtp: bool,
                        judge: bool = True) -> None:
    """Nothing a visitor sends may reach nobody: each ticket goes to the queue's agents in
    their messenger (its lobby, else a direct message each), to `helpdesk_email` through
    [smtp], to `webhook_url`. A queue needs at least one of these; a lobby alone does not
    count (its members are the queue's agents). `judge`: the queue's table is otherwise
    right, so its members are known."""
    if queue.helpdesk_email and not smtp:
        r.fail(f"{path}.helpdesk_email", "needs [smtp] to send the mail (expected an [smtp] "
               "table with host and from, or no helpdesk_email)")
    elif judge and not (queue.agents or queue.helpdesk_email or queue.webhook_url):
        r.fail(path, "its tickets (offline messages, unanswered chats) would reach nobody "
               "(expected at least one agent in agents, a helpdesk_email with [smtp], or a "
               "webhook_url)")


STRATEGIES = ("least_busy", "broadcast")


def _timezone(r: Reader, t: dict[str, Any], p: str) -> ZoneInfo:
    name = r.get(t, "timezone", p, str, "UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # "Europe" is a folder, not a zone
        r.fail(f"{p}.timezone", f"{name!r} is not a time zone (expected e.g. Europe/Budapest)")
        return ZoneInfo("UTC")


def _hours(r: Reader, t: dict[str, Any], p: str) -> Hours | None:
    spec = r.get(t, "hours", p, dict, None)
    if spec is None:
        return None
    try:
        return parse_hours(spec)
    except ValueError as exc:
        r.fail(f"{p}.hours", str(exc))
        return None


def _holidays(r: Reader, t: dict[str, Any], p: str) -> frozenset[date]:
    days: set[date] = set()
    for j, value in enumerate(r.get(t, "holidays", p, list, [])):
        try:
            if isinstance(value, datetime):
                raise ValueError  # a moment, not a day: say what is expected
            if not isinstance(value, date):
                if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
                    raise ValueError
                value = date.fromisoformat(value)
            days.add(value)
        except ValueError:
            r.fail(f"{p}.holidays[{j}]", f"{value!r} is not a date (expected YYYY-MM-DD)")
    return frozenset(days)


WELCOME_PLACEHOLDERS = {"visitor", "queue", "agent"}
TRANSLATABLE = {"name", "topic", "welcome"}


def _translations(r: Reader, t: dict[str, Any], path: str) -> dict[str, dict[str, str]]:
    """`[queues.translations.de]` tables: a language code, then name, topic, welcome."""
    found: dict[str, dict[str, str]] = {}
    for lang, texts in t.items():
        p = f"{path}.{lang}"
        if not LANG_RE.fullmatch(lang) or not isinstance(texts, dict):
            r.fail(p, "is not a language table (expected e.g. [queues.translations.de])")
            continue
        r.unknown_keys(texts, TRANSLATABLE, p)
        found[lang] = {}
        for key in sorted(TRANSLATABLE & set(texts)):
            check = check_welcome if key == "welcome" else check_one_line
            if value := r.get(texts, key, p, str, None, check=check):
                found[lang][key] = value
    return found


def check_welcome(value: str) -> str | None:
    try:
        render(value, {name: "" for name in WELCOME_PLACEHOLDERS})
    except TemplateError as exc:
        return str(exc)
    return None

