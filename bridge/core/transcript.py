"""A conversation as plain text (for emails, downloads and agents' !history), and the rules
for mailing it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from bridge.core.files import human_size
from bridge.core.models import Conversation, FileInfo, Item, ItemChange, ItemKind, Sender
from bridge.core.protocol import ProtocolError


def render_transcript(conversation: Conversation, items: list[Item],
                      link: Callable[[FileInfo], str] | None = None, *,
                      audit: list[ItemChange] | None = None) -> str:
    """Plain text, one line per item, times in UTC; internal notes are never in it. A file
    is listed with its size and, given `link`, the address it is served at. Lines taken
    back are left out, corrected ones show their final text. The agents' view (`audit`:
    the changes of the lines) marks each line with when the other side saw it and what it
    was before a correction or retraction."""
    started = _stamp(conversation.created_at, with_date=True)
    lines = [f"Chat with {conversation.visitor.name} <{conversation.visitor.email}>",
             f"Started {started} UTC", ""]
    changes: dict[int, list[ItemChange]] = {}
    for change in audit or ():
        changes.setdefault(change.seq, []).append(change)
    for item in items:
        if item.deleted_at is not None and audit is None:
            continue
        # Continuation lines are indented, so no one can write a line that looks like
        # another speaker's.
        line = f"[{_stamp(item.ts)}] {_line(item, link)}"
        if audit is not None:
            line += _audit_marks(item, changes.get(item.seq, []))
        lines.append(line.replace("\n", "\n    "))
    return "\n".join(lines) + "\n"


def _audit_marks(item: Item, changes: list[ItemChange]) -> str:
    marks = [f" [{'edited' if c.kind == 'edit' else 'taken back'} {_stamp(c.at)} by "
             f"{_changed_by(item, c)}, was: {c.previous!r}]" for c in changes]
    if item.read_at is not None:
        marks.append(f" [seen {_stamp(item.read_at)}]")
    return "".join(marks)


def _changed_by(item: Item, change: ItemChange) -> str:
    """The agent's id, or "the visitor" for their own line (whatever an agent is called)."""
    if item.sender is Sender.VISITOR and change.key is not None:
        return "the visitor"
    return change.by or "?"


def _line(item: Item, link: Callable[[FileInfo], str] | None = None) -> str:
    if item.kind is ItemKind.FILE and item.file is not None:
        where = f" {link(item.file)}" if link is not None else ""
        return f"{item.name}: [file] {item.file.name} ({human_size(item.file.size)}){where}"
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


# --- transcripts by email --------------------------------------------------------------------
# The mail carries visitor-written text from the site's own address, so it must not become a
# way to send mail to strangers: a visitor may only mail their own address, and every
# address and every chat gets only a few.

MAILS_PER_CHAT = 3  # per conversation, visitors' and agents' mails together
MAILS_PER_RECIPIENT = 3  # per address within RECIPIENT_WINDOW_S, over all conversations
RECIPIENT_WINDOW_S = 24 * 3600


def visitor_recipient(own: str, asked: str | None) -> str:
    """Where a visitor's transcript request may go: the conversation's own address (from
    the pre-chat form or the site's identity), never one named only in the request."""
    own = own.strip()
    if not own:
        raise ProtocolError("mail_address", "this chat has no email address to send it to")
    if asked is not None and asked.strip().lower() != own.lower():
        raise ProtocolError("mail_address", "the transcript can only be emailed to the "
                            "address given when the chat started")
    return own


def mail_refusal(*, in_chat: int, to_recipient: int, by_agent: bool) -> str | None:
    """Why one more transcript mail may not go out, or None. Agents are trusted with any
    address, so only visitors' requests are held to the per-recipient limit; agents' mails
    still count towards it."""
    if in_chat >= MAILS_PER_CHAT:
        return f"this transcript was already emailed {MAILS_PER_CHAT} times"
    if not by_agent and to_recipient >= MAILS_PER_RECIPIENT:
        return (f"this address already got {MAILS_PER_RECIPIENT} transcripts in the last "
                "24 hours; download it instead")
    return None


def mail_subject(site: str) -> str:
    # Only the site's name: nothing a visitor wrote may look like the sender's words.
    return f"Your chat transcript from {site}"


def mail_body(site: str, transcript: str, *, by_agent: bool) -> str:
    """The transcript behind a fixed preface, so a recipient who never chatted knows what
    the mail is and that they can ignore it."""
    how = ("An agent sent it to you from that chat." if by_agent
           else "It was requested in that chat, for the email address given there.")
    return (f"This is a transcript of a chat on {site}. {how}\n"
            "It contains what was written in the chat, by the visitor and by the staff.\n"
            "If you did not ask for it, you can ignore this email.\n"
            f"\n{'-' * 60}\n\n{transcript}")
