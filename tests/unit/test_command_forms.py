"""The forms desk (bridge/command_forms.py) on the hub ring with the project's fakes: who
gets forms, the choices in them, each submitted form turned into the command its typed line
would be and run through the one `Commands.run`, and bad values refused without effect."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest

from bridge.command_forms import MENU, CommandForms
from bridge.commands import Commands, Reply
from bridge.config import AgentConfig, QueueConfig
from bridge.core.commands import Command, Registry, parse_line
from bridge.core.forms import Form, Outcome
from bridge.core.models import Conversation, RoomRef
from tests.fakes.backend import RecordingBackend
from tests.fakes.hub import ALICE, BOB, Chat, HubHarness, eventually
from tests.unit.conftest import MakeHub

DIRECT = RoomRef("!dm-alice:recording")
STRANGER = "@eve:example.org"


class FormsBackend(RecordingBackend):
    """The recording backend, given the desk as the XMPP backend is (by build_hub)."""

    desk: CommandForms | None = None

    def serve_forms(self, desk: CommandForms) -> None:
        self.desk = desk


@dataclass
class SpyCommands:
    """The ring's own `Commands`, with each command it was asked to run kept."""

    inner: Commands
    ran: list[tuple[Command, str, str | None]] = field(default_factory=list)

    @property
    def registry(self) -> Registry:
        return self.inner.registry

    async def run(self, command: Command, agent: AgentConfig,
                  conversation: Conversation | None, key: str,
                  lobby: QueueConfig | None = None) -> Reply:
        self.ran.append((command, agent.id, conversation.id if conversation else None))
        return await self.inner.run(command, agent, conversation, key, lobby=lobby)


@dataclass
class Desk:
    ring: HubHarness
    forms: CommandForms
    spy: SpyCommands
    keys: int = 0

    def form(self, command: str, address: str = ALICE) -> Form:
        form = self.forms.form(address, command)
        assert isinstance(form, Form), form
        return form

    def choices(self, command: str, name: str) -> dict[str, str]:
        fields = {f.name: f for f in self.form(command).fields}
        return {c.value: c.label for c in fields[name].choices}

    async def submit(self, command: str, values: Mapping[str, str] | None = None,
                     address: str = ALICE, key: str | None = None) -> Outcome:
        self.keys += 1
        return await self.forms.submit(address, command, values or {},
                                       key or f"adhoc-test-{self.keys}")


@pytest.fixture
async def desk(make_hub: MakeHub) -> Desk:
    backend = FormsBackend()
    ring = await make_hub(backend=backend)
    assert backend.desk is not None  # build_hub handed it over
    spy = SpyCommands(backend.desk._commands)
    backend.desk._commands = spy  # type: ignore[assignment]
    return Desk(ring, backend.desk, spy)


async def answered(ring: HubHarness, name: str = "Anna", email: str = "anna@example.com",
                   agent: str = ALICE) -> tuple[Chat, RoomRef]:
    chat = await ring.start_chat(name, email)
    room = await ring.room_of(chat)
    await ring.join(room, agent)
    await ring.agent_says(room, "Hello!", agent)
    return chat, room


# -- who sees what ----------------------------------------------------------------------

async def test_only_configured_agents_get_forms(desk: Desk) -> None:
    assert desk.forms.menu(ALICE) == MENU
    assert [e.command for e in MENU] == ["end", "transfer", "c", "note", "callback", "claim",
                                         "break", "back", "stats"]
    assert desk.forms.menu(STRANGER) is None
    assert desk.forms.form(STRANGER, "stats") == Outcome(
        "Only the support agents may run these commands.", failed=True)
    refused = await desk.submit("break", address=STRANGER)
    assert refused.failed and desk.spy.ran == []
    assert desk.forms.form(ALICE, "ban") == Outcome("No form 'ban'.", failed=True)


async def test_the_chat_choices_are_the_agent_s_open_chats_newest_first(desk: Desk) -> None:
    ring = desk.ring
    assert desk.forms.form(ALICE, "end") == Outcome("You are in no open chat now.")
    anna, _ = await answered(ring, "Anna")
    ring.clock.advance(12 * 60 + 30)
    ben, _ = await answered(ring, "Ben", "ben@example.com")
    await answered(ring, "Cara", "cara@example.com", agent=BOB)  # Bob's, not Alice's
    [chat] = [f for f in desk.form("end").fields if f.name == "conversation"]
    assert [(c.value, c.label) for c in chat.choices] == [
        (ben.id, "Ben · Support · 0 min"), (anna.id, "Anna · Support · 12 min")]
    assert chat.default == ben.id and chat.required
    assert desk.form("end").instructions == "End the chat; the visitor gets the survey."


async def test_the_default_chat_is_the_newest_one_the_agent_is_in(desk: Desk) -> None:
    ring = desk.ring
    anna, _ = await answered(ring, "Anna")
    await ring.command(DIRECT, "!break")
    await ring.command(RoomRef("!dm-bob:recording"), "!break", sender=BOB)
    ring.clock.advance(60)
    ben = await ring.start_chat("Ben", "ben@example.com")
    await ring.room_of(ben)
    await ring.command(DIRECT, "!claim 1")  # Ben's chat is hers; she is not in its room yet
    [chat] = [f for f in desk.form("note").fields if f.name == "conversation"]
    assert [c.value for c in chat.choices] == [ben.id, anna.id]
    assert chat.default == anna.id


# -- each form, as the command its typed line would be ------------------------------------

async def test_end_runs_the_end_command_and_tells_the_room_who_ran_it(desk: Desk) -> None:
    chat, room = await answered(desk.ring)
    outcome = await desk.submit("end", {"conversation": chat.id})
    assert desk.spy.ran == [(parse_line("!end"), "alice", chat.id)]
    assert chat.sink.last("ended")["by"] == "agent"
    assert not outcome.failed and outcome.text.startswith("Chat ended after")
    assert desk.ring.backend.notices_in(room)[-1] == f"Alice (form): !end\n{outcome.text}"
    assert desk.forms.form(ALICE, "end") == Outcome("You are in no open chat now.")


async def test_transfer_lists_queues_and_available_agents(desk: Desk) -> None:
    chat, room = await answered(desk.ring)
    await desk.ring.command(RoomRef("!dm-carol:recording"), "!break",
                            sender="@carol:example.org")
    assert desk.choices("transfer", "target") == {
        "support": "Queue: Support", "sales": "Queue: Sales", "bob": "Agent: Bob"}
    outcome = await desk.submit("transfer", {"conversation": chat.id, "target": "bob",
                                             "note": "billing question", "stay": "true"})
    command, agent, conversation = desk.spy.ran[-1]
    assert command == parse_line("!transfer bob billing question --stay")
    assert (agent, conversation) == ("alice", chat.id)
    # Whatever `!transfer` answers (a hand-over, an offer), the form answers the same.
    assert outcome.text and not outcome.failed
    assert desk.ring.backend.notices_in(room)[-1] == (
        f"Alice (form): !transfer bob billing question --stay\n{outcome.text}")


async def test_a_command_that_refuses_makes_the_form_an_error(desk: Desk) -> None:
    chat, _ = await answered(desk.ring)
    await desk.ring.command(RoomRef("!dm-carol:recording"), "!break",
                            sender="@carol:example.org")
    outcome = await desk.submit("transfer", {"conversation": chat.id, "target": "sales"})
    assert outcome.failed and outcome.text.startswith("Nobody in Sales can take a chat now")
    assert desk.ring.conversation(chat).agent_id == "alice"  # nothing changed


async def test_a_canned_reply_reaches_the_visitor(desk: Desk) -> None:
    chat, room = await answered(desk.ring)
    await desk.ring.command(DIRECT, '!canned add bye "Bye {visitor}!"')
    assert desk.choices("c", "canned") == {
        "bye": "bye (yours) — Bye {visitor}!",
        "greeting": "greeting — Hello {visitor}, I'm {agent} from {queue}. How can I help?"}
    outcome = await desk.submit("c", {"conversation": chat.id, "canned": "bye"})
    assert desk.spy.ran[-1][0] == parse_line("!c bye")
    assert chat.sink.texts("agent")[-1] == "Bye Anna!"
    assert outcome == Outcome("Done: !c bye")
    assert desk.ring.backend.notices_in(room)[-2:] == ["Alice → visitor: Bye Anna!",
                                                       "Alice (form): !c bye"]


async def test_canned_previews_are_in_the_visitor_s_language(make_hub: MakeHub) -> None:
    def german(raw: dict) -> None:
        raw["canned"]["de"] = {"greeting": "Hallo {visitor}, hier ist {agent}. " + "x" * 80}

    backend = FormsBackend()
    ring = await make_hub(german, backend=backend)
    chat = await ring.start_chat("Jörg", "joerg@example.com", lang="de-AT")
    await ring.join(await ring.room_of(chat), ALICE)
    assert backend.desk is not None
    form = backend.desk.form(ALICE, "c")
    assert isinstance(form, Form)
    [label] = [c.label for c in form.fields[1].choices]
    assert label.startswith("greeting — Hallo {visitor}, hier ist {agent}. xxx")
    assert label.endswith("x…") and len(label) == len("greeting — ") + 60


async def test_a_note_stays_with_the_agents(desk: Desk) -> None:
    chat, room = await answered(desk.ring)
    frames = len(chat.sink.frames)
    text = "VIP customer\ndon't rush them"  # an apostrophe a typed !note could not take
    outcome = await desk.submit("note", {"conversation": chat.id, "note": text})
    assert desk.spy.ran[-1][0] == Command("note", (), rest=text)  # as a thread's note
    assert outcome == Outcome(f"📝 Note saved (agents only): {text}")
    assert len(chat.sink.frames) == frames
    assert [e["detail"] for e in desk.ring.store.events(chat.id) if e["kind"] == "note"] == [
        text]
    assert desk.ring.backend.notices_in(room)[-1] == f"Alice (form): !note {text}\n{outcome.text}"


async def test_callback_asks_the_visitor(desk: Desk) -> None:
    chat, _ = await answered(desk.ring)
    outcome = await desk.submit("callback", {"conversation": chat.id})
    assert desk.spy.ran[-1][0] == parse_line("!callback")
    assert outcome.text.startswith("Asked Anna for a phone number")
    assert chat.sink.last("callback")["name"] == "Alice"


async def test_claim_lists_the_waiting_line_as_queue_shows_it(desk: Desk) -> None:
    ring = desk.ring
    await ring.command(DIRECT, "!break")
    await ring.command(RoomRef("!dm-bob:recording"), "!break", sender=BOB)
    anna = await ring.start_chat("Anna")
    ring.clock.advance(180)
    ben = await ring.start_chat("Ben", "ben@example.com")
    await ring.room_of(ben)
    assert desk.choices("claim", "waiting") == {anna.id: "Anna · Support · waiting 3 min",
                                                ben.id: "Ben · Support · waiting 0 min"}
    [listing] = await ring.command(DIRECT, "!queue")
    assert [line.split(" · ")[0] for line in listing.splitlines()[1:]] == ["1. Anna", "2. Ben"]
    outcome = await desk.submit("claim", {"waiting": ben.id})
    assert desk.spy.ran[-1] == (parse_line("!claim 2"), "alice", None)
    assert outcome == Outcome("Invited you to the chat with Ben.")
    assert ring.conversation(ben).agent_id == "alice"
    assert ring.conversation(anna).agent_id is None


async def test_break_back_and_stats_need_no_fields(desk: Desk) -> None:
    for name in ("break", "back", "stats"):
        assert desk.form(name).fields == ()
    assert (await desk.submit("break")).text.startswith("You are on a break")
    assert desk.ring.store.on_break("alice")
    assert await desk.submit("back") == Outcome("Welcome back: you take new chats again.")
    assert not desk.ring.store.on_break("alice")
    assert (await desk.submit("stats")).text.startswith("Today (UTC): 0 chats")
    assert [c for c, _, _ in desk.spy.ran] == [parse_line(f"!{n}")
                                               for n in ("break", "back", "stats")]


# -- once, and bad values ----------------------------------------------------------------

async def test_a_form_submitted_twice_runs_once(desk: Desk) -> None:
    chat, _ = await answered(desk.ring)
    values = {"conversation": chat.id, "canned": "greeting"}
    first = await desk.submit("c", values, key="adhoc-same")
    again = await desk.submit("c", values, key="adhoc-same")
    assert first == Outcome("Done: !c greeting")
    assert again == Outcome("This form ran already; it runs once.")
    assert len(desk.spy.ran) == 1
    assert chat.sink.texts("agent").count(
        "Hello Anna, I'm Alice from Support. How can I help?") == 1


@pytest.mark.parametrize(("command", "values", "error"), [
    ("end", {"conversation": "no-such-chat"}, "Chat: 'no-such-chat' is not one of the choices"),
    ("end", {}, "Chat: this field is required."),
    ("note", {"conversation": "CHAT", "note": "  \n "}, "Note: this field is required."),
    ("transfer", {"conversation": "CHAT", "target": "nobody"},
     "To: 'nobody' is not one of the choices"),
    ("transfer", {"conversation": "CHAT", "target": "alice"},  # herself: not offered
     "To: 'alice' is not one of the choices"),
    ("c", {"conversation": "CHAT", "canned": "greting"},
     "Reply: 'greting' is not one of the choices"),
])
async def test_bad_values_get_an_error_and_change_nothing(
        desk: Desk, command: str, values: dict[str, str], error: str) -> None:
    chat, room = await answered(desk.ring)
    values = {k: chat.id if v == "CHAT" else v for k, v in values.items()}
    notices = len(desk.ring.backend.notices_in(room))
    frames = len(chat.sink.frames)
    outcome = await desk.submit(command, values)
    assert outcome.failed and outcome.text.startswith(error), outcome.text
    assert desk.spy.ran == []
    assert len(desk.ring.backend.notices_in(room)) == notices
    assert len(chat.sink.frames) == frames
    assert desk.ring.store.events(chat.id) == []


async def test_a_chat_that_ended_meanwhile_is_no_longer_a_choice(desk: Desk) -> None:
    anna, room = await answered(desk.ring)
    ben, _ = await answered(desk.ring, "Ben", "ben@example.com")
    await desk.ring.command(room, "!end")
    await eventually(lambda: desk.ring.conversation(anna).status == "ended")
    outcome = await desk.submit("note", {"conversation": anna.id, "note": "too late"})
    assert outcome.failed and "not one of the choices" in outcome.text
    assert desk.spy.ran == []
    assert list(desk.choices("note", "conversation")) == [ben.id]
