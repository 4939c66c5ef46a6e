"""What agents' commands do. Parsing and usage texts are in bridge/core/commands.py.

Every handler gets a `Context` and returns a `Reply`: text for the agents (a notice in the
room). Handlers act through the hub and the store, never through a backend library.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bridge.command_tools import CommandTools
from bridge.config import AgentConfig, QueueConfig
from bridge.core.commands import Command, CommandError, Registry, Spec, unknown, unquote
from bridge.core.models import Conversation, Sender, Status, VisitorInfo
from bridge.core.protocol import ProtocolError
from bridge.core.templates import TemplateError, language_key, render
from bridge.report import median

log = logging.getLogger(__name__)

HISTORY_LIMIT = 10
FIRST_LINES = 2


@dataclass(frozen=True)
class Context:
    command: Command
    agent: AgentConfig
    conversation: Conversation | None  # None in a room that is not a conversation's
    now: float
    key: str  # the command line's event id: makes a replayed command's effects idempotent
    lobby: QueueConfig | None = None  # the queue whose lobby the command was written in


@dataclass(frozen=True)
class Reply:
    to_agents: str = ""
    refused: bool = False  # the command changed nothing (a CommandError's text)


Handler = Callable[[Context], Awaitable[Reply]]


class Commands:
    """The command set, acting through the parts in `tools`."""

    def __init__(self, tools: CommandTools, prefix: str = "!") -> None:
        self.tools = tools
        self.registry = Registry(prefix=prefix)
        self._handlers: dict[str, Handler] = {}
        for spec, handler in (
            (Spec("help", "help [command]", "this list, or one command's usage", False),
             self.help),
            (Spec("c", "c NAME", "send a canned reply to the visitor"), self.canned_reply),
            (Spec("canned", "canned [add NAME TEXT | del NAME]",
                  "list canned replies, or save/delete your own", False), self.canned),
            (Spec("note", "note TEXT", "an internal note; the visitor never sees it"),
             self.note),
            (Spec("info", "info", "who the visitor is and where they came from"), self.info),
            (Spec("history", "history [N]",
                  "the visitor's earlier chats, or the transcript of number N"), self.history),
            (Spec("invite", "invite AGENT", "bring another agent into this chat"), self.invite),
            (Spec("transfer", "transfer AGENT|QUEUE [note] [--stay]",
                  "offer the chat; it is theirs once they join (--stay: you stay in)"),
             self.transfer),
            (Spec("end", "end", "end the chat; the visitor gets the survey"), self.end),
            (Spec("transcript", "transcript [EMAIL]",
                  "email the transcript to the visitor (or to EMAIL)"), self.transcript),
            (Spec("callback", "callback", "ask the visitor for a phone number to call back"),
             self.callback),
            (Spec("queue", "queue", "the chats waiting in your queues", False), self.queue),
            (Spec("claim", "claim [N]", "take this chat, or waiting chat N from !queue",
                  False), self.claim),
            (Spec("break", "break", "take no new chats", False), self.take_break),
            (Spec("back", "back", "take new chats again", False), self.come_back),
            (Spec("stats", "stats", "today's figures", False), self.stats),
            (Spec("ban", "ban [reason]", "end the chat and refuse this visitor's email "
                  "from now on"), self.ban),
        ):
            self.registry.add(spec)
            self._handlers[spec.name] = handler

    async def run(self, command: Command, agent: AgentConfig,
                  conversation: Conversation | None, key: str,
                  lobby: QueueConfig | None = None) -> Reply:
        """Run one command; CommandError text goes back as it is, anything else is logged
        with a reference and the agents see only that reference."""
        try:
            spec = self.registry.find(command.name)
            if spec.in_chat_only and conversation is None:
                raise CommandError(f"{self.registry.prefix}{spec.name} works in a chat's room")
            return await self._handlers[spec.name](
                Context(command, agent, conversation, self.tools.clock(), key, lobby))
        except CommandError as exc:
            return Reply(str(exc), refused=True)
        except Exception:
            ref = f"{time.time_ns() & 0xFFFFFF:06x}"
            log.exception("conversation %s: command %s by %s failed (ref %s)",
                          conversation.id if conversation else "-", command.name, agent.id, ref)
            return Reply(f"internal error (ref {ref})", refused=True)

    def _usage(self, name: str) -> CommandError:
        return CommandError(self.registry.usage(name))

    def _open(self, ctx: Context) -> Conversation:
        assert ctx.conversation is not None
        if ctx.conversation.status is Status.ENDED:
            raise CommandError("This chat has ended.")
        return ctx.conversation

    # -- handlers ------------------------------------------------------------------------

    async def help(self, ctx: Context) -> Reply:
        if ctx.command.args:
            return Reply(self.registry.usage(ctx.command.args[0].lstrip(self.registry.prefix)))
        return Reply(self.registry.help_text())

    def _canned_texts(self, agent: AgentConfig, lang: str = "") -> dict[str, str]:
        """Shared replies, those for the visitor's language over them, the agent's own
        over both."""
        config = self.tools.config
        in_lang = config.canned_by_lang.get(language_key(lang), {}) if lang else {}
        return {**config.canned, **in_lang, **self.tools.store.personal_canned(agent.id)}

    async def canned_reply(self, ctx: Context) -> Reply:
        if len(ctx.command.args) != 1:
            raise self._usage("c")
        conversation = self._open(ctx)
        name = ctx.command.args[0]
        texts = self._canned_texts(ctx.agent, conversation.visitor.lang)
        if name not in texts:
            raise unknown("canned reply", name, list(texts))
        try:
            text = render(texts[name], self.tools.actions.placeholders(conversation, ctx.agent))
        except TemplateError as exc:
            raise CommandError(f"Canned reply {name!r} cannot be filled in: {exc}") from None
        await self.tools.actions.agent_line(conversation, ctx.agent, text, ctx.key)
        return Reply()

    async def canned(self, ctx: Context) -> Reply:
        args = ctx.command.args
        if not args:
            return Reply(self._canned_listing(ctx.agent))
        action = args[0]
        if action == "add" and len(args) >= 3:
            name = args[1]
            text = unquote(ctx.command.rest.split(None, 2)[2])  # as typed, inside quotes
            try:
                render(text, self.tools.actions.placeholders(None, ctx.agent))
            except TemplateError as exc:
                raise CommandError(f"Not saved: {exc}") from None
            self.tools.store.set_canned(ctx.agent.id, name, text)
            self._event(ctx, "canned_add", name)
            return Reply(f"Saved your canned reply {name!r}; send it with "
                         f"{self.registry.prefix}c {name}")
        if action == "del" and len(args) == 2:
            if not self.tools.store.set_canned(ctx.agent.id, args[1], None):
                raise unknown("personal canned reply", args[1],
                              list(self.tools.store.personal_canned(ctx.agent.id)))
            self._event(ctx, "canned_del", args[1])
            return Reply(f"Deleted your canned reply {args[1]!r}.")
        raise self._usage("canned")

    def _canned_listing(self, agent: AgentConfig) -> str:
        shared = self.tools.config.canned
        personal = self.tools.store.personal_canned(agent.id)
        lines = ["Canned replies (send with !c NAME):"]
        lines += [f"  {name}: {text}" for name, text in sorted(shared.items())]
        lines += [f"  {name} (yours): {text}" for name, text in personal.items()]
        if len(lines) == 1:
            lines.append("  none yet; add one with !canned add NAME TEXT")
        return "\n".join(lines)

    async def note(self, ctx: Context) -> Reply:
        if not ctx.command.rest:
            raise self._usage("note")
        assert ctx.conversation is not None
        self._event(ctx, "note", ctx.command.rest)
        return Reply(f"📝 Note saved (agents only): {ctx.command.rest}")

    async def info(self, ctx: Context) -> Reply:
        conversation = ctx.conversation
        assert conversation is not None
        earlier = self.tools.store.earlier_conversations(conversation)
        visitor, page = conversation.visitor, conversation.page
        waited = (conversation.first_response_at or ctx.now) - conversation.created_at
        lines = [
            f"Visitor: {visitor.name} <{visitor.email}> ({_verification(visitor)})",
            f"Page: {page.title or '-'} {page.url or ''}".rstrip(),
            f"Came from: {page.referrer or '-'}",
            f"Language: {visitor.lang or '-'}",
            f"Browser: {visitor.user_agent or '-'}",
            f"Queue: {conversation.queue_id}; status {conversation.status.value}",
            f"Waiting time: {_duration(waited)}",
            f"Earlier chats: {len(earlier)} (see !history)",
        ]
        if conversation.callback_phone:
            lines.append(f"Call back: {conversation.callback_phone} "
                         f"{conversation.callback_time}".rstrip())
        return Reply("\n".join(lines))

    async def history(self, ctx: Context) -> Reply:
        conversation = ctx.conversation
        assert conversation is not None
        earlier = self.tools.store.earlier_conversations(conversation)[:HISTORY_LIMIT]
        if not ctx.command.args:
            if not earlier:
                return Reply(f"No earlier chats with {conversation.visitor.email}.")
            return Reply("\n".join(
                [f"Earlier chats with {conversation.visitor.email} (newest first):"]
                + [self._history_line(n, c) for n, c in enumerate(earlier, 1)]))
        choice = ctx.command.args[0]
        if not choice.isdigit() or not 1 <= int(choice) <= len(earlier):
            raise CommandError(f"No earlier chat number {choice}; there are {len(earlier)}.")
        return Reply(self.tools.aftercare.transcript_text(earlier[int(choice) - 1], audit=True))

    def _history_line(self, number: int, conversation: Conversation) -> str:
        lines = [i.text for i in self.tools.store.items_after(conversation.id, 0)
                 if i.sender is Sender.VISITOR][:FIRST_LINES]
        rating = f"{conversation.rating}/5" if conversation.rating else "not rated"
        return (f"{number}. {_date(conversation.created_at)} · {conversation.queue_id} · "
                f"{conversation.agent_id or 'unanswered'} · {rating} · "
                f"{' / '.join(lines) or '(no lines)'}")

    async def invite(self, ctx: Context) -> Reply:
        if len(ctx.command.args) != 1:
            raise self._usage("invite")
        conversation = self._open(ctx)
        target = self._agent(ctx.command.args[0])
        await self.tools.actions.invite_agent(conversation, target)
        self._event(ctx, "invite", target.id)
        return Reply(f"Invited {target.name or target.id}.")

    async def transfer(self, ctx: Context) -> Reply:
        if not ctx.command.args:
            raise self._usage("transfer")
        conversation = self._open(ctx)
        wanted, note = ctx.command.args[0], " ".join(ctx.command.args[1:])
        queue = self.tools.config.queue(wanted)
        target = self._queue_agent(queue, ctx.agent) if queue else self._agent(wanted)
        if target.id in (ctx.agent.id, conversation.agent_id):
            raise CommandError(f"{target.name or target.id} already has this chat; "
                               "nothing changed.")
        self._check_can_take(target)
        reply = await self.tools.offers.offer(conversation, ctx.agent, target, queue, note,
                                              stay="stay" in ctx.command.flags)
        self._event(ctx, "transfer", f"{target.id} {note}".strip())
        return Reply(reply)

    async def end(self, ctx: Context) -> Reply:
        conversation = self._open(ctx)
        await self.tools.actions.end_by_agent(conversation, ctx.agent)
        self._event(ctx, "end", "")
        return Reply(self.tools.aftercare.summary(conversation.id))

    async def transcript(self, ctx: Context) -> Reply:
        if len(ctx.command.args) > 1:
            raise self._usage("transcript")
        conversation = ctx.conversation
        assert conversation is not None
        address = ctx.command.args[0] if ctx.command.args else conversation.visitor.email
        try:
            # Agents are trusted with any address; visitors only get their own.
            sent_to = await self.tools.aftercare.email_transcript(conversation, address,
                                                                agent_id=ctx.agent.id)
        except ProtocolError as exc:
            raise CommandError(f"Transcript not sent: {exc.message}") from None
        self._event(ctx, "transcript", sent_to)
        return Reply(f"Transcript sent to {sent_to}.")

    async def callback(self, ctx: Context) -> Reply:
        conversation = self._open(ctx)
        await self.tools.aftercare.ask_callback(conversation, ctx.agent)
        self._event(ctx, "callback_asked", "")
        return Reply(f"Asked {conversation.visitor.name} for a phone number; it will show "
                     "here when they answer.")

    def _waiting_for(self, ctx: Context) -> list[Conversation]:
        """The line `!queue` shows and `!claim N` counts in: in a lobby, that queue's;
        elsewhere, that of every queue the agent is in."""
        queues = ([ctx.lobby.id] if ctx.lobby else
                  [q.id for q in self.tools.config.queues if ctx.agent.id in q.agents])
        return [c for c in self.tools.store.open_conversations()
                if c.status is Status.WAITING and c.agent_id is None and c.queue_id in queues]

    async def queue(self, ctx: Context) -> Reply:
        waiting = self._waiting_for(ctx)
        if not waiting:
            return Reply("Nobody is waiting in your queues.")
        lines = ["Waiting (take one with !claim N):"]
        for n, conversation in enumerate(waiting, 1):
            lines.append(f"{n}. {conversation.visitor.name} · {conversation.queue_id} · "
                         f"waiting {_duration(ctx.now - conversation.created_at)}")
        return Reply("\n".join(lines))

    async def claim(self, ctx: Context) -> Reply:
        if not ctx.command.args:
            conversation = self._open(ctx) if ctx.conversation else None
            if conversation is None:
                raise self._usage("claim")
            if conversation.agent_id not in (None, ctx.agent.id):
                raise CommandError(f"{conversation.agent_id} already has this chat; "
                                   "ask them to !transfer it.")
            await self.tools.assignment.take(conversation, ctx.agent)
            self._event(ctx, "claim", conversation.id)
            return Reply(f"This chat is yours, {ctx.agent.name or ctx.agent.id}.")
        waiting = self._waiting_for(ctx)
        choice = ctx.command.args[0]
        if not choice.isdigit() or not 1 <= int(choice) <= len(waiting):
            raise CommandError(f"No waiting chat number {choice}; see !queue.")
        conversation = waiting[int(choice) - 1]
        await self.tools.actions.claim_waiting(conversation, ctx.agent)
        self.tools.store.add_event(conversation.id, ctx.agent.id, "claim", "", ctx.now)
        return Reply(f"Invited you to the chat with {conversation.visitor.name}.")

    async def take_break(self, ctx: Context) -> Reply:
        self.tools.store.set_break(ctx.agent.id, True)
        self._event(ctx, "break", "")
        return Reply("You are on a break: no new chats or transfers to you. !back to return.")

    async def come_back(self, ctx: Context) -> Reply:
        self.tools.store.set_break(ctx.agent.id, False)
        self._event(ctx, "back", "")
        await self.tools.assignment.assign_waiting()
        return Reply("Welcome back: you take new chats again.")

    async def stats(self, ctx: Context) -> Reply:
        day = datetime.fromtimestamp(ctx.now, UTC).replace(hour=0, minute=0, second=0,
                                                           microsecond=0)
        figures = self.tools.store.day_figures(day.timestamp(), ctx.now + 1)
        waits = figures["first_response_s"]
        # The reports' median: an even count takes the mean of the middle two.
        shown = _duration(middle) if (middle := median(waits)) is not None else "-"
        rating = (f"{figures['rating_avg']:.1f}/5 from {figures['ratings']}"
                  if figures["ratings"] else "no ratings yet")
        return Reply(f"Today (UTC): {figures['chats']} chats, {figures['answered']} answered, "
                     f"{figures['waiting']} waiting now; median first response {shown}; "
                     f"{rating}.")

    async def ban(self, ctx: Context) -> Reply:
        conversation = self._open(ctx)
        reason = ctx.command.rest
        self.tools.store.ban(conversation.visitor.email, ctx.agent.id, reason, ctx.now)
        self._event(ctx, "ban", reason)
        await self.tools.actions.end_by_agent(conversation, ctx.agent)
        return Reply(f"Chat ended; {conversation.visitor.email} cannot start new chats.")

    # -- helpers -------------------------------------------------------------------------

    def _agent(self, wanted: str) -> AgentConfig:
        for agent in self.tools.config.agents:
            if wanted in (agent.id, agent.address) or wanted.lower() == agent.name.lower():
                return agent
        known = [a.id for a in self.tools.config.agents] + [q.id for q in self.tools.config.queues]
        raise unknown("agent or queue", wanted, known)

    def _queue_agent(self, queue: QueueConfig, current: AgentConfig) -> AgentConfig:
        """The queue's available agent with the fewest open chats (not the current one)."""
        candidates = [a for agent_id in queue.agents
                      if (a := self.tools.config.agent(agent_id)) is not None
                      and a.id != current.id and self.tools.availability.can_take(a)]
        if not candidates:
            raise CommandError(f"Nobody in {queue.name} can take a chat now; nothing changed.")
        return min(candidates, key=self.tools.availability.open_chats)

    def _check_can_take(self, agent: AgentConfig) -> None:
        if not self.tools.availability.agent_available(agent):
            raise CommandError(f"{agent.name or agent.id} is away; nothing changed.")
        if self.tools.availability.open_chats(agent) >= agent.max_chats:
            raise CommandError(f"{agent.name or agent.id} already has {agent.max_chats} chats; "
                               "nothing changed.")

    def _event(self, ctx: Context, kind: str, detail: str) -> None:
        self.tools.store.add_event(ctx.conversation.id if ctx.conversation else None,
                                 ctx.agent.id, kind, detail, ctx.now)


def _date(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    minutes, seconds = divmod(seconds, 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def _verification(visitor: VisitorInfo) -> str:
    if visitor.verified:
        return f"verified by the site as user {visitor.identity_id}"
    if visitor.identity_id:
        return f"⚠ claims to be site user {visitor.identity_id}, NOT verified"
    return "unverified"
