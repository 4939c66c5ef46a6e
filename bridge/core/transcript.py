"""A conversation as plain text: for emails, downloads and agents' !history."""

from __future__ import annotations

from datetime import UTC, datetime

from bridge.core.models import Conversation, Item, ItemKind, Sender


def render_transcript(conversation: Conversation, items: list[Item]) -> str:
    """Plain text, one line per item, times in UTC; internal notes are never in it."""
    started = _stamp(conversation.created_at, with_date=True)
    lines = [f"Chat with {conversation.visitor.name} <{conversation.visitor.email}>",
             f"Started {started} UTC", ""]
    for item in items:
        # Continuation lines are indented, so no one can write a line that looks like
        # another speaker's.
        lines.append(f"[{_stamp(item.ts)}] {_line(item)}".replace("\n", "\n    "))
    return "\n".join(lines) + "\n"


def _line(item: Item) -> str:
    if item.kind is ItemKind.TEXT:
        if item.sender is Sender.SYSTEM:
            return f"— {item.text}"
        return f"{item.name}: {item.text}"
    if item.kind is ItemKind.ENDED:
        return f"— {item.name} ended the chat"
    if item.kind is ItemKind.TRANSFERRED:
        return f"— {item.name} took over the chat"
    return f"— {item.name} {item.kind.value}"


def _stamp(ts: float, *, with_date: bool = False) -> str:
    fmt = "%Y-%m-%d %H:%M" if with_date else "%Y-%m-%d %H:%M:%S"
    return datetime.fromtimestamp(ts, UTC).strftime(fmt)
