"""Server → visitor frames built from domain records."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bridge.core.frames import (
    ack_frame,
    error_frame,
    item_frame,
    queue_frame,
    resumed_frame,
    started_frame,
    ticket_frame,
    typing_frame,
)
from bridge.core.models import (
    AgentId,
    Conversation,
    ConversationId,
    Item,
    ItemKind,
    Page,
    QueueId,
    Sender,
    Status,
    VisitorInfo,
)

CID = ConversationId("conv-1")


def item(**overrides: Any) -> Item:
    fields: dict[str, Any] = {
        "conversation_id": CID,
        "seq": 3,
        "kind": ItemKind.TEXT,
        "sender": Sender.AGENT,
        "name": "Alice",
        "text": "Hello <b>there</b>",
        "ts": 1700000000.25,
    }
    fields.update(overrides)
    return Item(**fields)


def conversation(**overrides: Any) -> Conversation:
    fields: dict[str, Any] = {
        "id": CID,
        "queue_id": QueueId("support"),
        "status": Status.ACTIVE,
        "visitor": VisitorInfo(name="Ann", email="ann@example.com"),
        "page": Page(),
        "created_at": 1.0,
        "agent_id": AgentId("alice"),
        "last_seq": 9,
    }
    fields.update(overrides)
    return Conversation(**fields)


def roundtrip(frame: dict[str, Any]) -> dict[str, Any]:
    """Frames go out as JSON text: they must serialise, and read back equal."""
    decoded = json.loads(json.dumps(frame))
    assert decoded == frame
    return decoded


def test_agent_message() -> None:
    frame = roundtrip(item_frame(item()))
    assert frame == {
        "type": "message",
        "seq": 3,
        "from": "agent",
        "name": "Alice",
        "text": "Hello <b>there</b>",
        "ts": 1700000000.25,
    }
    assert "client_id" not in frame


def test_visitor_message_carries_client_id() -> None:
    frame = roundtrip(
        item_frame(item(sender=Sender.VISITOR, name="Ann", text="hi", client_id="c-7"))
    )
    assert frame["from"] == "visitor"
    assert frame["client_id"] == "c-7"
    assert frame["name"] == "Ann"


def test_system_message() -> None:
    frame = item_frame(item(sender=Sender.SYSTEM, name="", text="Welcome"))
    assert frame["type"] == "message"
    assert frame["from"] == "system"
    assert type(frame["from"]) is str


def test_message_frame_does_not_leak_internal_fields() -> None:
    frame = item_frame(
        item(sender_id="@alice:example.com", txn_id="lcb.conv-1.3", event_id="$ev", delivered=True)
    )
    assert set(frame) == {"type", "seq", "from", "name", "text", "ts"}
    assert "@alice:example.com" not in json.dumps(frame)


def test_ended_frame_carries_the_survey() -> None:
    frame = roundtrip(
        item_frame(item(kind=ItemKind.ENDED, sender=Sender.VISITOR, seq=11, text="", ts=5.0),
                   "How was it?")
    )
    assert frame == {"type": "ended", "by": "visitor", "seq": 11, "ts": 5.0,
                     "survey": {"question": "How was it?", "scale": 5}}


def test_ended_by_agent() -> None:
    assert item_frame(item(kind=ItemKind.ENDED, sender=Sender.AGENT))["by"] == "agent"


@pytest.mark.parametrize(("kind", "event"), [(ItemKind.JOINED, "joined"), (ItemKind.LEFT, "left")])
def test_agent_event_frames(kind: ItemKind, event: str) -> None:
    frame = roundtrip(item_frame(item(kind=kind, seq=4, ts=2.5, text="")))
    assert frame == {"type": "agent", "event": event, "name": "Alice", "seq": 4, "ts": 2.5}


def test_every_item_kind_gives_a_frame_with_its_seq() -> None:
    for kind in ItemKind:
        frame = item_frame(item(kind=kind, seq=42))
        assert frame["seq"] == 42
        assert frame["type"] in {"message", "ended", "agent", "callback"}


def test_started_frame() -> None:
    assert roundtrip(started_frame(conversation(last_seq=0), "secret-token")) == {
        "type": "started",
        "conversation": "conv-1",
        "token": "secret-token",
        "seq": 0,
    }


@pytest.mark.parametrize("status", list(Status))
def test_resumed_frame(status: Status) -> None:
    frame = roundtrip(resumed_frame(conversation(status=status, last_seq=9)))
    assert frame == {"type": "resumed", "conversation": "conv-1", "seq": 9,
                     "status": status.value, "rated": False, "read": 0}


def test_resumed_frame_has_no_token_or_visitor_details() -> None:
    text = json.dumps(resumed_frame(conversation()))
    assert "ann@example.com" not in text
    assert "token" not in text


def test_ack_frame() -> None:
    assert roundtrip(ack_frame("c-1", 5)) == {"type": "ack", "client_id": "c-1", "seq": 5}


@pytest.mark.parametrize("active", [True, False])
def test_typing_frame(active: bool) -> None:
    assert roundtrip(typing_frame("Alice", active)) == {
        "type": "typing",
        "name": "Alice",
        "active": active,
    }


def test_queue_frame() -> None:
    assert roundtrip(queue_frame(2, 90)) == {"type": "queue", "position": 2, "wait_s": 90,
                                             "offer_message": False}
    assert roundtrip(queue_frame(1, None, True)) == {"type": "queue", "position": 1,
                                                     "wait_s": None, "offer_message": True}
    assert json.dumps(queue_frame(1, None)) == (
        '{"type": "queue", "position": 1, "wait_s": null, "offer_message": false}')


def test_ticket_frame() -> None:
    assert roundtrip(ticket_frame("T-1A2B3C4D")) == {"type": "ticket", "ticket": "T-1A2B3C4D"}


def test_error_frame() -> None:
    assert roundtrip(error_frame("queue_closed", "The queue is closed.")) == {
        "type": "error",
        "code": "queue_closed",
        "message": "The queue is closed.",
    }


def test_unicode_survives_serialisation() -> None:
    frame = item_frame(item(name="Łukasz", text="Árvíztűrő 👩\u200d💻"))
    assert json.loads(json.dumps(frame))["text"] == "Árvíztűrő 👩\u200d💻"
    assert json.loads(json.dumps(frame))["name"] == "Łukasz"
