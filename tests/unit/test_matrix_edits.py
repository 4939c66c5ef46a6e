"""Agents' corrections and deletions in Matrix without a homeserver: events as nio parses
them from the wire turned into an AgentMessage naming the corrected line, or an
AgentRetracted (redacts at the top, before room version 11, or in content, from 11 on),
and nothing for the bot's own redactions or lines already redacted."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from nio import Event

from bridge.backends.base import AgentMessage, AgentRetracted, AgentTyping
from bridge.backends.matrix_timeline import Timeline
from bridge.backends.matrix_wire import FIRST_SYNC_FILTER, SYNC_FILTER, redacted_id
from bridge.core.models import RoomRef

ROOM = RoomRef("!room:example.com")
BOT = "@support:example.com"
ALICE = "@alice:example.com"


def timeline() -> Timeline:
    return Timeline(BOT, lambda _room, user: {ALICE: "Alice"}.get(user, user))


def wire(event_type: str, content: dict[str, Any], event_id: str = "$new",
         sender: str = ALICE, **extra: Any) -> Any:
    """One timeline event as nio makes it out of a sync response."""
    return Event.parse_event({"type": event_type, "event_id": event_id, "sender": sender,
                              "origin_server_ts": 1_700_000_000_000, "content": content,
                              **extra})


def text(body: str, **content: Any) -> dict[str, Any]:
    return {"msgtype": "m.text", "body": body, **content}


def correction(target: Any, new_text: str) -> dict[str, Any]:
    return text(f"* {new_text}", **{"m.new_content": text(new_text),
                                    "m.relates_to": {"rel_type": "m.replace",
                                                     "event_id": target}})


# -- corrections -----------------------------------------------------------------------------


def test_a_correction_names_the_line_it_corrects() -> None:
    message = timeline().translate(ROOM, wire("m.room.message",
                                              correction("$line", "Ships tomorrow")))
    assert message == AgentMessage(ROOM, ALICE, "Alice", "Ships tomorrow", "$new",
                                   1_700_000_000.0, edited=True, replaces="$line")


def test_a_plain_line_replaces_nothing() -> None:
    message = timeline().translate(ROOM, wire("m.room.message", text("Ships today")))
    assert isinstance(message, AgentMessage)
    assert (message.edited, message.replaces) == (False, None)


def test_a_corrected_emote_names_its_line_too() -> None:
    emote = correction("$line", "waves again")
    emote["msgtype"] = "m.emote"
    message = timeline().translate(ROOM, wire("m.room.message", emote))
    assert isinstance(message, AgentMessage)
    assert (message.text, message.replaces) == ("* Alice waves again", "$line")


@pytest.mark.parametrize("target", [None, "", 42])
def test_a_replacement_naming_no_line_is_shown_as_written(target: Any) -> None:
    content = correction(target, "Ships tomorrow")
    if target is None:
        del content["m.relates_to"]["event_id"]
    message = timeline().translate(ROOM, wire("m.room.message", content))
    assert isinstance(message, AgentMessage)
    assert (message.text, message.edited, message.replaces) == ("* Ships tomorrow", False, None)


@pytest.mark.parametrize("relates", ["odd", 7, ["m.replace"]])
def test_a_relation_that_is_no_object_is_a_plain_line(relates: Any) -> None:
    """Anyone may send anything: one odd event must not fail the sync batch over and over."""
    message = timeline().translate(ROOM, wire("m.room.message",
                                              text("Hello", **{"m.relates_to": relates})))
    assert isinstance(message, AgentMessage)
    assert (message.text, message.replaces, message.thread) == ("Hello", None, False)


def test_a_correction_of_a_thread_reply_stays_a_note() -> None:
    rooms = timeline()
    reply = rooms.translate(ROOM, wire("m.room.message", text(
        "He called yesterday", **{"m.relates_to": {"rel_type": "m.thread",
                                                   "event_id": "$root"}}), event_id="$t1"))
    assert isinstance(reply, AgentMessage) and reply.thread
    edit = rooms.translate(ROOM, wire("m.room.message", correction("$t1", "He called twice")))
    assert isinstance(edit, AgentMessage)
    assert (edit.thread, edit.edited, edit.replaces) == (True, True, "$t1")


# -- redactions ------------------------------------------------------------------------------


def test_the_sync_asks_for_redactions_but_the_first_one_for_no_history() -> None:
    assert "m.room.redaction" in SYNC_FILTER["room"]["timeline"]["types"]
    assert FIRST_SYNC_FILTER["room"]["timeline"]["limit"] == 0


def test_a_redaction_before_room_version_11_is_a_retraction() -> None:
    event = wire("m.room.redaction", {"reason": "typo"}, event_id="$r", redacts="$line")
    assert timeline().translate(ROOM, event) == AgentRetracted(ROOM, ALICE, "$line")


def test_a_redaction_from_room_version_11_on_is_a_retraction(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """`redacts` in content only: nio 0.26 calls that a bad event, and no longer says so."""
    with caplog.at_level(logging.DEBUG):
        event = wire("m.room.redaction", {"redacts": "$line"}, event_id="$r")
    assert timeline().translate(ROOM, event) == AgentRetracted(ROOM, ALICE, "$line")
    assert "redacts" not in caplog.text


def test_a_moderators_redaction_names_the_moderator() -> None:
    event = wire("m.room.redaction", {"redacts": "$line"}, event_id="$r", sender="@mod:x.org")
    assert timeline().translate(ROOM, event) == AgentRetracted(ROOM, "@mod:x.org", "$line")


def test_the_bots_own_redaction_is_no_retraction() -> None:
    """The dispatcher skips the bot's echoes already; the timeline does not rely on it."""
    event = wire("m.room.redaction", {"redacts": "$draft"}, event_id="$r", sender=BOT)
    assert timeline().translate(ROOM, event) is None


@pytest.mark.parametrize("source", [
    {"type": "m.room.redaction", "content": {}},
    {"type": "m.room.redaction", "content": {"redacts": ""}, "redacts": 5},
    {"type": "m.room.message", "content": {"redacts": "$line"}, "redacts": "$line"},
])
def test_what_names_no_event_takes_nothing_back(source: dict[str, Any]) -> None:
    assert redacted_id(source) is None


def test_the_servers_top_level_redacts_wins_over_content() -> None:
    """Before room version 11 only the top-level key counts (the server sets it; content is
    whatever the client wrote); from 11 on there is no top-level key."""
    assert redacted_id({"type": "m.room.redaction", "content": {"redacts": "$a"},
                        "redacts": "$b"}) == "$b"


def test_a_redaction_naming_nothing_is_dropped() -> None:
    assert timeline().translate(ROOM, wire("m.room.redaction", {}, event_id="$r")) is None


def test_a_line_already_redacted_when_first_synced_is_nothing() -> None:
    redacted = wire("m.room.message", {}, event_id="$line", unsigned={"redacted_because": {
        "type": "m.room.redaction", "sender": ALICE, "event_id": "$r",
        "origin_server_ts": 1, "content": {"redacts": "$line"}}})
    assert timeline().translate(ROOM, redacted) is None


# -- one sync batch --------------------------------------------------------------------------


def test_a_line_redacted_in_the_same_batch_never_comes_in() -> None:
    """Synapse serves the line as written when its redaction is in the same batch."""
    batch = [
        wire("m.room.message", text("Your code is 1234"), event_id="$line"),
        wire("m.room.message", correction("$line", "Your code is 4321"), event_id="$edit"),
        wire("m.room.message", {"msgtype": "m.image", "body": "code.png",
                                "url": "mxc://example.com/abc"}, event_id="$file"),
        wire("m.room.redaction", {"redacts": "$line"}, event_id="$r1"),
        wire("m.room.redaction", {"redacts": "$file"}, event_id="$r2"),
        wire("m.room.message", text("Anyone there?"), event_id="$next"),
    ]
    translated = timeline().translate_batch(ROOM, batch)
    assert [type(e).__name__ for e in translated] == ["AgentRetracted", "AgentRetracted",
                                                      "AgentMessage"]
    assert translated[:2] == [AgentRetracted(ROOM, ALICE, "$line"),
                              AgentRetracted(ROOM, ALICE, "$file")]
    assert isinstance(translated[2], AgentMessage) and translated[2].event_id == "$next"


def test_a_redacted_correction_leaves_its_line() -> None:
    batch = [wire("m.room.message", text("Ships today"), event_id="$line"),
             wire("m.room.message", correction("$line", "Ships tomorrow"), event_id="$edit"),
             wire("m.room.redaction", {"redacts": "$edit"}, event_id="$r")]
    translated = timeline().translate_batch(ROOM, batch)
    assert [getattr(e, "text", None) for e in translated] == ["Ships today", None]
    assert translated[1] == AgentRetracted(ROOM, ALICE, "$edit")


def test_the_bots_echoes_are_left_out_of_a_batch() -> None:
    batch = [wire("m.room.message", {"msgtype": "m.notice", "body": "✍ Hello"}, sender=BOT),
             wire("m.room.redaction", {"redacts": "$new"}, event_id="$r", sender=BOT)]
    assert timeline().translate_batch(ROOM, batch) == []


# -- typing (moved here from the backend) ----------------------------------------------------


def test_typing_sets_become_per_person_changes_without_the_bot() -> None:
    rooms = timeline()
    assert rooms.typing_changes(ROOM, {ALICE, BOT}) == [AgentTyping(ROOM, ALICE, "Alice", True)]
    assert rooms.typing_changes(ROOM, {ALICE}) == []
    assert rooms.typing_changes(ROOM, set()) == [AgentTyping(ROOM, ALICE, "Alice", False)]
