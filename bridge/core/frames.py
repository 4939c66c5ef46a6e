"""Server → visitor frames of the WebSocket protocol, built from domain records."""

from __future__ import annotations

from typing import Any

from bridge.core.models import Conversation, FileInfo, Item, ItemKind
from bridge.core.protocol import SURVEY_SCALE

Frame = dict[str, Any]


def item_frame(item: Item, survey_question: str = "") -> Frame:
    """The frame that shows one timeline item in the widget (live or on resume); the end
    of a chat carries the survey the widget offers."""
    if item.kind in (ItemKind.TEXT, ItemKind.FILE):
        frame: Frame = {
            "type": "message",
            "seq": item.seq,
            "from": item.sender.value,
            "name": item.name,
            "text": item.text,
            "ts": item.ts,
        }
        if item.client_id is not None:
            frame["client_id"] = item.client_id
        if item.deleted_at is not None:
            frame["deleted"] = True
            frame["text"] = ""
        elif item.file is not None:
            frame["file"] = file_fields(item.file)
        if item.edited_at is not None and item.deleted_at is None:
            frame["edited"] = True
        return frame
    if item.kind is ItemKind.CALLBACK:
        return {"type": "callback", "seq": item.seq, "name": item.name, "ts": item.ts}
    if item.kind is ItemKind.ENDED:
        return {"type": "ended", "by": item.sender.value, "seq": item.seq, "ts": item.ts,
                "survey": {"question": survey_question, "scale": SURVEY_SCALE}}
    return {
        "type": "agent",
        "event": item.kind.value,
        "name": item.name,
        "seq": item.seq,
        "ts": item.ts,
    }


def file_fields(file: FileInfo) -> Frame:
    """How a file is described to the visitor (`GET /v1/files/{id}` fetches it)."""
    fields: Frame = {"id": file.id, "name": file.name, "size": file.size,
                     "type": file.mimetype}
    if file.width is not None and file.height is not None:
        fields["width"] = file.width
        fields["height"] = file.height
    return fields


def started_frame(conversation: Conversation, token: str) -> Frame:
    return {"type": "started", "conversation": conversation.id, "token": token, "seq": 0}


def resumed_frame(conversation: Conversation, seen: int = 0) -> Frame:
    """`seen`: the newest visitor line an agent has seen (0: none)."""
    return {
        "type": "resumed",
        "conversation": conversation.id,
        "seq": conversation.last_seq,
        "status": conversation.status.value,
        "rated": conversation.rating is not None,
        "read": seen,
    }


def edit_frame(item: Item, ts: float) -> Frame:
    """An agent corrected the line `item.seq`: its new text, shown in place."""
    return {"type": "edit", "seq": item.seq, "text": item.text, "ts": ts}


def delete_frame(seq: int) -> Frame:
    """An agent took back the line `seq`."""
    return {"type": "delete", "seq": seq}


def read_frame(seq: int) -> Frame:
    """An agent has seen the visitor's lines up to `seq`."""
    return {"type": "read", "seq": seq}


def ack_frame(client_id: str, seq: int) -> Frame:
    return {"type": "ack", "client_id": client_id, "seq": seq}


def typing_frame(name: str, active: bool) -> Frame:
    return {"type": "typing", "name": name, "active": active}


def queue_frame(position: int, wait_s: int | None, offer_message: bool = False) -> Frame:
    """A waiting visitor's place in line; `offer_message`: they waited long enough to be
    offered "leave a message instead"."""
    return {"type": "queue", "position": position, "wait_s": wait_s,
            "offer_message": offer_message}


def ticket_frame(ticket_id: str) -> Frame:
    """The visitor's lines became a help-desk ticket; the answer comes by email."""
    return {"type": "ticket", "ticket": ticket_id}


def error_frame(code: str, message: str, client_id: str | None = None) -> Frame:
    """An error; `client_id` names the visitor line it refuses, when it was a message."""
    frame: Frame = {"type": "error", "code": code, "message": message}
    if client_id is not None:
        frame["client_id"] = client_id
    return frame


def idle_frame(ends_in_s: float) -> Frame:
    """Nobody wrote for a while: the chat ends in `ends_in_s` unless the visitor extends it."""
    return {"type": "idle", "ends_in_s": max(1, round(ends_in_s))}


def extended_frame(ends_in_s: float) -> Frame:
    return {"type": "extended", "ends_in_s": round(ends_in_s)}


def rated_frame(rating: int) -> Frame:
    return {"type": "rated", "rating": rating}


def transcript_sent_frame(email: str) -> Frame:
    return {"type": "transcript", "sent": True, "email": email}


def callback_saved_frame(phone: str) -> Frame:
    return {"type": "callback_saved", "phone": phone}
