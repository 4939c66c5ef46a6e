"""TimelineRepository: lines in order, stored once, the outbox, commands run once."""

from __future__ import annotations

import pytest

from bridge.core.models import ConversationId, Item, ItemKind, RoomRef, Sender, Status
from bridge.store import StoreError
from bridge.store.contracts import StoreRepositories

from .conftest import open_chat

C1 = ConversationId("c1")


def say(repos: StoreRepositories, text: str, *, client_id: str | None = None,
        wait_for_disk: bool = True) -> tuple[Item, bool]:
    """A visitor line, as the hub stores it: undelivered until the messenger confirms it."""
    return repos.timeline.append_item(C1, ItemKind.TEXT, Sender.VISITOR, "Ann", text, 200.0,
                                      client_id=client_id, wait_for_disk=wait_for_disk)


def test_lines_take_seqs_in_order_and_move_the_conversation_on(
        repos: StoreRepositories) -> None:
    open_chat(repos)
    repos.conversations.conversation(C1)  # a cached copy must follow too
    items = [say(repos, f"line {n}")[0] for n in range(3)]
    assert [i.seq for i in items] == [1, 2, 3]
    assert [i.text for i in repos.timeline.items_after(C1, 1)] == ["line 1", "line 2"]
    conversation = repos.conversations.conversation(C1)
    assert conversation is not None and conversation.last_seq == 3


def test_a_repeated_client_id_or_event_id_is_stored_once(repos: StoreRepositories) -> None:
    open_chat(repos)
    first, created = say(repos, "hello", client_id="k1")
    again, created_again = say(repos, "hello (retry)", client_id="k1")
    assert (created, created_again) == (True, False)
    assert again == first
    agent, _ = repos.timeline.append_item(C1, ItemKind.TEXT, Sender.AGENT, "Bob", "hi", 210.0,
                                          event_id="$e1", delivered=True)
    echo, created = repos.timeline.append_item(C1, ItemKind.TEXT, Sender.AGENT, "Bob", "hi",
                                               220.0, event_id="$e1", delivered=True)
    assert (echo, created) == (agent, False)
    assert say(repos, "next")[0].seq == 3  # the refused repeats took no seq
    assert repos.timeline.item_by_client_id(C1, "k1") == first
    assert repos.timeline.item_by_client_id(C1, "nope") is None


def test_a_line_for_no_conversation_is_refused(repos: StoreRepositories) -> None:
    with pytest.raises(StoreError):
        repos.timeline.append_item(ConversationId("nope"), ItemKind.TEXT, Sender.VISITOR,
                                   "Ann", "hello", 200.0)


def test_the_outbox_holds_undelivered_lines_with_their_keys(repos: StoreRepositories) -> None:
    open_chat(repos)
    open_chat(repos, "c2")
    first, _ = say(repos, "one")
    second, _ = say(repos, "two", wait_for_disk=False)
    from_room, _ = repos.timeline.append_item(C1, ItemKind.TEXT, Sender.AGENT, "Bob", "hi",
                                              210.0, event_id="$a", delivered=True)
    assert first.txn_id and second.txn_id and first.txn_id != second.txn_id
    assert from_room.txn_id is None
    assert repos.timeline.undelivered(C1) == [first, second]
    assert repos.timeline.conversations_with_outbox() == [C1]

    repos.timeline.mark_delivered(C1, first.seq, "$e1")
    assert [i.seq for i in repos.timeline.undelivered(C1)] == [second.seq]
    delivered = repos.timeline.items_after(C1, 0)[0]
    assert (delivered.delivered, delivered.event_id, delivered.txn_id) == (
        True, "$e1", first.txn_id)
    repos.timeline.mark_delivered(C1, second.seq, "$e2")
    assert repos.timeline.conversations_with_outbox() == []


async def test_a_line_not_waited_for_is_readable_at_once_and_flush_returns(
        repos: StoreRepositories) -> None:
    open_chat(repos)
    item, _ = say(repos, "fast", client_id="f1", wait_for_disk=False)
    assert repos.timeline.item_by_client_id(C1, "f1") == item
    await repos.flush()
    assert repos.timeline.item_by_client_id(C1, "f1") == item


def test_agent_presence_follows_the_last_join_or_leave(repos: StoreRepositories) -> None:
    open_chat(repos)
    timeline = repos.timeline
    assert not timeline.agent_present(C1, "bob")

    def member(kind: ItemKind) -> None:
        timeline.append_item(C1, kind, Sender.AGENT, "Bob", "", 210.0, sender_id="bob",
                             delivered=True)

    member(ItemKind.JOINED)
    assert timeline.agent_present(C1, "bob") and not timeline.agent_present(C1, "carol")
    member(ItemKind.LEFT)
    assert not timeline.agent_present(C1, "bob")


def test_message_count_counts_text_lines_only(repos: StoreRepositories) -> None:
    open_chat(repos)
    say(repos, "one")
    say(repos, "two")
    repos.timeline.append_item(C1, ItemKind.JOINED, Sender.AGENT, "Bob", "", 210.0,
                               delivered=True)
    assert repos.timeline.message_count(C1) == 2
    assert repos.timeline.message_count("nope") == 0


def test_catch_up_starts_at_the_earlier_of_the_last_agent_line_and_the_outbox(
        repos: StoreRepositories) -> None:
    open_chat(repos, now=100.0)
    repos.conversations.set_room(C1, RoomRef("!r:hs"))
    timeline = repos.timeline
    assert timeline.catch_up_since("!r:hs") == 100.0  # nothing yet: from the start
    timeline.append_item(C1, ItemKind.TEXT, Sender.AGENT, "Bob", "hi", 150.0,
                         event_id="$a", delivered=True)
    assert timeline.catch_up_since("!r:hs") == 150.0
    waiting, _ = timeline.append_item(C1, ItemKind.TEXT, Sender.VISITOR, "Ann", "q", 140.0)
    assert timeline.catch_up_since("!r:hs") == 140.0
    timeline.mark_delivered(C1, waiting.seq, "$v")
    assert timeline.catch_up_since("!r:hs") == 150.0
    repos.conversations.set_status(C1, Status.ENDED, ended_at=300.0)
    assert timeline.catch_up_since("!r:hs") is None


def test_a_lobby_catches_up_from_its_last_command(repos: StoreRepositories) -> None:
    timeline = repos.timeline
    assert timeline.catch_up_since("!lobby:hs") is None
    assert not timeline.command_handled("$c1")
    timeline.mark_command_handled("$c1", 120.0, "!lobby:hs")
    timeline.mark_command_handled("$c2", 130.0, "!lobby:hs")
    timeline.mark_command_handled("$c1", 500.0, "!lobby:hs")  # again: no change
    assert timeline.command_handled("$c1") and timeline.command_handled("$c2")
    assert timeline.catch_up_since("!lobby:hs") == 130.0
    assert timeline.catch_up_since("!elsewhere:hs") is None


def test_a_visitors_change_waits_to_be_sent_with_a_key_of_its_own(
        repos: StoreRepositories) -> None:
    open_chat(repos)
    open_chat(repos, "c2")
    line, _ = say(repos, "Helo")
    repos.timeline.mark_delivered(C1, line.seq, "$line")
    assert repos.timeline.newest_line(C1, Sender.VISITOR) == \
        repos.timeline.items_after(C1, 0)[0]
    assert repos.timeline.newest_line(C1, Sender.AGENT) is None
    edited = repos.timeline.change_item(line, "edit", "Hello", "visitor", 210.0, to_room=True)
    assert (edited.text, edited.edited_at) == ("Hello", 210.0)
    deleted = repos.timeline.change_item(edited, "delete", "", "visitor", 220.0, to_room=True)
    [edit, delete] = repos.timeline.changes_to_send(C1)
    assert (edit.kind, edit.previous, edit.by) == ("edit", "Helo", "visitor")
    assert (delete.kind, delete.previous) == ("delete", "Hello")
    assert edit.key and delete.key and edit.key != delete.key
    assert edit.key.startswith(line.txn_id or "?")
    assert repos.timeline.conversations_with_outbox() == [C1]
    repos.timeline.change_sent(C1, edit.key)
    assert repos.timeline.changes_to_send(C1) == [delete]
    repos.timeline.change_sent(C1, delete.key)
    assert repos.timeline.changes_to_send(C1) == []
    assert repos.timeline.conversations_with_outbox() == []
    assert repos.timeline.newest_line(C1, Sender.VISITOR) == deleted
    assert repos.timeline.item_at(C1, line.seq) == deleted
    assert repos.timeline.item_at(C1, 99) is None
    # An agent's change came from the room: nothing to send, no key.
    agent, _ = repos.timeline.append_item(C1, ItemKind.TEXT, Sender.AGENT, "Bob", "hi", 230.0,
                                          event_id="$e1", delivered=True)
    repos.timeline.change_item(agent, "edit", "hello", "bob", 240.0)
    assert repos.timeline.changes_to_send(C1) == []
    assert [c.key for c in repos.timeline.item_changes(C1)] == [edit.key, delete.key, None]
