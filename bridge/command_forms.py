"""Agents' commands as forms (XMPP ad-hoc commands): which forms an agent sees, the choices
in them (their open chats, queues and agents to transfer to, canned replies, the waiting
line), and each submitted form run as the `!command` it stands for.

A form is only another way to type a command: its values become the very `Command` the
typed line would, run through the one `Commands.run` with the same rules and effects. A
form about a chat also leaves its line and the reply in that chat's room, so the other
agents see who did what, as they would with a typed command.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from typing import Protocol, runtime_checkable

from bridge.commands import Commands, Reply
from bridge.config import AgentConfig, Config
from bridge.core.commands import Command
from bridge.core.forms import (
    Choice,
    Field,
    FieldKind,
    Form,
    FormError,
    MenuEntry,
    Outcome,
    choice_position,
    read_values,
)
from bridge.core.models import Conversation, Status
from bridge.core.names import agent_name
from bridge.core.templates import language_key
from bridge.notices import Notices
from bridge.store import StoreUnavailable

log = logging.getLogger(__name__)

MENU = (
    MenuEntry("end", "End a chat"),
    MenuEntry("transfer", "Transfer a chat"),
    MenuEntry("c", "Send a canned reply"),
    MenuEntry("note", "Write a note (agents only)"),
    MenuEntry("callback", "Ask for a phone number to call back"),
    MenuEntry("claim", "Claim a waiting chat"),
    MenuEntry("break", "Take a break"),
    MenuEntry("back", "Back from a break"),
    MenuEntry("stats", "Today's figures"),
)
ABOUT_A_CHAT = frozenset({"end", "transfer", "c", "note", "callback"})
NOT_AN_AGENT = "Only the support agents may run these commands."
PREVIEW_CHARS = 60


class FormsStore(Protocol):
    def open_conversations(self) -> list[Conversation]: ...

    def conversation(self, conversation_id: str) -> Conversation | None: ...

    def agent_present(self, conversation_id: str, agent_id: str) -> bool: ...

    def personal_canned(self, agent_id: str) -> dict[str, str]: ...

    def command_handled(self, event_id: str) -> bool: ...

    def mark_command_handled(self, event_id: str, now: float, room: str) -> None: ...


class Presence(Protocol):
    def agent_available(self, agent: AgentConfig) -> bool: ...


class CommandForms:
    """The forms desk; the XMPP backend reaches it through its `CommandDesk` protocol."""

    def __init__(self, config: Config, store: FormsStore, commands: Commands,
                 notices: Notices, presence: Presence, turn: asyncio.Lock,
                 clock: Callable[[], float]) -> None:
        self._config = config
        self._turn = turn  # the inbound events' turn: a form runs between two of them
        self._store = store
        self._commands = commands
        self._notices = notices
        self._presence = presence
        self._clock = clock
        self._running: set[str] = set()  # keys of forms running now: a resubmit meanwhile
        # runs nothing, as one after them does (their keys are marked as handled)

    def menu(self, address: str) -> tuple[MenuEntry, ...] | None:
        """The forms the address may open; None for anyone who is not a configured agent."""
        return MENU if self._config.agent_by_address(address) is not None else None

    def form(self, address: str, command: str) -> Form | Outcome:
        """The form with the current choices, or why there is nothing to fill in."""
        agent = self._config.agent_by_address(address)
        if agent is None:
            return Outcome(NOT_AN_AGENT, failed=True)
        entry = next((e for e in MENU if e.command == command), None)
        if entry is None:
            return Outcome(f"No form {command!r}.", failed=True)
        fields: list[Field] = []
        chat = None
        if command in ABOUT_A_CHAT:
            chats = self._chats(agent)
            if not chats:
                return Outcome("You are in no open chat now.")
            chat = self._default_chat(agent, chats)
            fields.append(Field("conversation", "Chat", FieldKind.CHOICE, choices=tuple(
                Choice(c.id, self._label(c)) for c in chats), default=chat.id))
        more = self._fields(command, agent, chat)
        if isinstance(more, Outcome):
            return more
        summary = self._commands.registry.find(command).summary
        return Form(command, entry.title, summary[:1].upper() + summary[1:] + ".",
                    (*fields, *more))

    async def submit(self, address: str, command: str, values: Mapping[str, str], key: str
                     ) -> Outcome:
        """Run a filled-in form once per `key`: its values are checked against the form as
        it is now (the chat may have ended, the waiting chat been taken meanwhile)."""
        agent = self._config.agent_by_address(address)
        if agent is None:
            return Outcome(NOT_AN_AGENT, failed=True)
        if key in self._running or self._store.command_handled(key):
            return Outcome("This form ran already; it runs once.")
        form = self.form(address, command)
        if isinstance(form, Outcome):
            return form
        try:
            picked = read_values(form, values)
        except FormError as exc:
            return Outcome(str(exc), failed=True)
        chat = self._store.conversation(picked["conversation"]) \
            if "conversation" in picked else None
        self._running.add(key)
        try:
            async with self._turn:
                return await self._run(agent, form, picked, chat, key)
        finally:
            self._running.discard(key)

    async def _run(self, agent: AgentConfig, form: Form, picked: dict[str, str],
                   chat: Conversation | None, key: str) -> Outcome:
        command = _command(form, picked)
        line = f"{self._commands.registry.prefix}{command.name} {command.rest}".strip()
        log.info("conversation %s: agent %s runs %s from a form", chat.id if chat else "-",
                 agent.id, command.name)
        reply = await self._commands.run(command, agent, chat, key)
        room = chat.room if chat is not None and chat.room is not None else ""
        try:
            self._store.mark_command_handled(key, self._clock(), room)
        except StoreUnavailable as exc:  # it ran: the agent gets its reply all the same
            log.warning("conversation %s: form %s not marked as run: %s",
                        chat.id if chat else "-", key, exc)
        if chat is not None:
            shown = f"{agent_name(agent, '')} (form): {line}"
            await self._notices.to_agents(chat, "\n".join(filter(None, (
                shown, reply.to_agents))), key=f"{key}-notice")
        return Outcome(reply.to_agents or f"Done: {line}", failed=_failed(reply))

    # -- choices ---------------------------------------------------------------------------

    def _chats(self, agent: AgentConfig) -> list[Conversation]:
        """The agent's open chats, newest first: those they are in or own."""
        mine = [c for c in self._store.open_conversations()
                if c.agent_id == agent.id or self._store.agent_present(c.id, agent.id)]
        return sorted(mine, key=lambda c: c.created_at, reverse=True)

    def _default_chat(self, agent: AgentConfig, chats: list[Conversation]) -> Conversation:
        """The newest chat the agent is in (owning one they left is not being in it)."""
        return next((c for c in chats if self._store.agent_present(c.id, agent.id)), chats[0])

    def _label(self, chat: Conversation, prefix: str = "") -> str:
        queue = self._config.queue(chat.queue_id)
        minutes = max(0, int(self._clock() - chat.created_at)) // 60
        return (f"{chat.visitor.name} · {queue.name if queue else chat.queue_id} · "
                f"{prefix}{minutes} min")

    def _fields(self, command: str, agent: AgentConfig, chat: Conversation | None
                ) -> tuple[Field, ...] | Outcome:
        """The fields after the chat's: what else the command needs."""
        if command == "transfer":
            return (Field("target", "To", FieldKind.CHOICE, choices=self._targets(agent)),
                    Field("note", "Note for them", FieldKind.LINE, required=False),
                    Field("stay", "Stay in the chat", FieldKind.FLAG, required=False))
        if command == "c":
            canned = self._canned(agent, chat)
            if not canned:
                return Outcome("No canned replies yet; add one with !canned add NAME TEXT.")
            return (Field("canned", "Reply", FieldKind.CHOICE, choices=canned),)
        if command == "note":
            return (Field("note", "Note", FieldKind.TEXT),)
        if command == "claim":
            waiting = self._waiting(agent)
            if not waiting:
                return Outcome("Nobody is waiting in your queues.")
            return (Field("waiting", "Waiting chat", FieldKind.CHOICE, choices=tuple(
                Choice(c.id, self._label(c, "waiting ")) for c in waiting)),)
        return ()

    def _targets(self, agent: AgentConfig) -> tuple[Choice, ...]:
        """Every queue, and the other agents who take chats now. An agent goes by id, or by
        address where a queue has the same id (`!transfer` reads a queue's id first)."""
        config = self._config
        queues = [Choice(q.id, f"Queue: {q.name}") for q in config.queues]
        agents = [Choice(a.id if config.queue(a.id) is None else a.address,
                         f"Agent: {a.name or a.id}") for a in config.agents
                  if a.id != agent.id and self._presence.agent_available(a)]
        return (*queues, *agents)

    def _canned(self, agent: AgentConfig, chat: Conversation | None) -> tuple[Choice, ...]:
        """The replies `!c` knows, as the chat's visitor would get them (their language's
        over the shared ones, the agent's own over both), with a preview."""
        lang = chat.visitor.lang if chat else ""
        in_lang = self._config.canned_by_lang.get(language_key(lang), {}) if lang else {}
        personal = self._store.personal_canned(agent.id)
        texts = {**self._config.canned, **in_lang, **personal}
        return tuple(Choice(name, f"{name}{' (yours)' if name in personal else ''} — "
                                  f"{_preview(text)}") for name, text in sorted(texts.items()))

    def _waiting(self, agent: AgentConfig) -> list[Conversation]:
        """The line `!queue` shows and `!claim N` counts in, outside a lobby: the waiting
        chats of every queue the agent is in, nobody's yet, in the store's order."""
        queues = {q.id for q in self._config.queues if agent.id in q.agents}
        return [c for c in self._store.open_conversations()
                if c.status is Status.WAITING and c.agent_id is None and c.queue_id in queues]


@runtime_checkable
class FormsBackend(Protocol):
    """A backend that shows agents their commands as forms (XMPP: ad-hoc commands)."""

    def serve_forms(self, desk: CommandForms) -> None: ...


def _command(form: Form, picked: dict[str, str]) -> Command:
    """The command line a filled-in form stands for, as `parse_line` would read it typed."""
    if form.command == "transfer":
        target, note = picked["target"], picked.get("note", "")
        stay = "stay" in picked
        return Command("transfer", (target, *note.split()), frozenset({"stay"} if stay else ()),
                       rest=" ".join(filter(None, (target, note, "--stay" if stay else ""))))
    if form.command == "c":
        return Command("c", (picked["canned"],), rest=picked["canned"])
    if form.command == "note":
        return Command("note", (), rest=picked["note"])  # as a thread's note: no splitting
    if form.command == "claim":
        waiting = next(f for f in form.fields if f.name == "waiting")
        number = str(choice_position(waiting, picked["waiting"]))
        return Command("claim", (number,), rest=number)
    return Command(form.command, ())


def _failed(reply: Reply) -> bool:
    """A command that refused (or crashed): the form's note is an error then."""
    return reply.refused


def _preview(text: str) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= PREVIEW_CHARS else flat[:PREVIEW_CHARS - 1] + "…"
