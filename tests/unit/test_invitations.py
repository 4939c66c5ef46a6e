"""Routing's memory of invitations: a new room's invitations replace those of an earlier
room, which were never sent (the bridge stopped before the room opened) or went to a room
that is gone; turned-down invitations stay."""

from __future__ import annotations

from pathlib import Path

from bridge.core.models import ConversationId
from bridge.routing.availability import Invitations
from bridge.store import Store
from tests.unit.test_store import new_conversation

C1 = ConversationId("c1")


def test_a_new_rooms_invitations_replace_the_old_ones(tmp_path: Path) -> None:
    store = Store(tmp_path / "livechat.sqlite3")
    try:
        new_conversation(store, C1)
        invitations = Invitations(store)
        invitations.mark(C1, "invited", ["alice"])
        invitations.mark(C1, "declined", ["carol"])
        invitations.replace_invited(C1, ["bob"])
        assert invitations.invited(C1) == {"bob"}
        assert invitations.declined(C1) == {"carol"}
        assert invitations.pending() == {"bob": 1}
        # A restart reads the same from the store.
        again = Invitations(store)
        assert (again.invited(C1), again.declined(C1)) == ({"bob"}, {"carol"})
    finally:
        store.close()
